"""The `spot` command's options are declared once (spot_tutorial/apps/options.py): the parser, the
library calls and the book's reference page book/cli.md must hold exactly the options of the tables."""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from spot_tutorial.apps import options
from spot_tutorial.apps.cli import build_parser
from spot_tutorial.recipes import get_preset, student_config

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = {"train": "spot_tutorial.training.loop:Trainer.__init__",
           "quickstart": "spot_tutorial.apps.quickstart:run_quickstart",
           "evaluate": "spot_tutorial.evaluation.evaluate:run_evaluation",
           "segment": "spot_tutorial.inference:segment_files"}


def subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def table_names(command: options.Command) -> set[str]:
    """The flags of the tables, with the older spellings they declare."""
    names = {flag for option in command.options for flag in (option.flag, *option.aliases)}
    if command.config_options:
        names |= {flag for option in options.config_options()
                  for flag in (option.flag, *options.old_flags(option.name))}
    return names


def parser_names(parser: argparse.ArgumentParser) -> set[str]:
    names = set()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        strings = [s for s in action.option_strings if not s.startswith("--no-") or s == "--no-progress"]
        names |= set(strings) if strings else {action.dest}
    return names


def reference_names() -> dict[str, set[str]]:
    """{command: the options and arguments listed on book/cli.md} (each definition term's first word)."""
    sections = re.split(r"^## `spot (\w+)`$", (ROOT / "book" / "cli.md").read_text(), flags=re.M)
    return {name: set(re.findall(r"^`([-\w]+)[^`]*`\n: ", body, flags=re.M))
            for name, body in zip(sections[1::2], sections[2::2], strict=True)}


def test_the_parser_holds_exactly_the_tables_options():
    parsers = subparsers()
    assert list(parsers) == [command.name for command in options.COMMANDS]
    for command in options.COMMANDS:
        assert parser_names(parsers[command.name]) == table_names(command), command.name


def test_the_reference_page_lists_exactly_the_tables_options_and_is_current():
    listed = reference_names()
    assert list(listed) == [command.name for command in options.COMMANDS]
    for command in options.COMMANDS:
        names = {option.metavar if option.nargs == "+" and not option.flag.startswith("-") else option.flag
                 for option in command.options}
        if command.config_options:
            names |= {option.flag for option in options.config_options()}
        assert listed[command.name] == names, command.name
    assert (ROOT / "book" / "cli.md").read_text() == options.reference_markdown(), (
        "book/cli.md is out of date: python -m spot_tutorial.apps.options --write book/cli.md")


def test_help_shows_every_options_help_text(capsys):
    for command in options.COMMANDS:
        with pytest.raises(SystemExit):
            build_parser().parse_args([command.name, "--help"])
        printed = "".join(capsys.readouterr().out.split())   # argparse wraps lines, at hyphens too
        for option in command.options:
            assert option.flag in printed or option.metavar in printed
            if option.help:
                assert "".join(option.help.split()) in printed, (command.name, option.flag)


def test_field_help_shows_the_values_of_the_named_preset_and_stage(capsys):
    def help_of(*argv: str) -> str:
        with pytest.raises(SystemExit):
            build_parser(list(argv)).parse_args(list(argv))
        return " ".join(capsys.readouterr().out.split())

    assert "--batch-size INT (COCO default: 64)" in help_of("train", "--help")
    assert "--batch-size INT (--preset tiny default: 32)" in help_of("train", "--preset", "tiny", "--help")
    voc = get_preset("voc")
    student = student_config(voc)
    assert voc.init_method != student.init_method  # the paper's student differs, and the help says so
    assert f"--init-method STR (--preset voc, stage 2 default: {student.init_method!r})" in help_of(
        "train", "--stage", "2", "--preset", "voc", "--help")


def test_every_keyword_is_a_parameter_of_the_library_function():
    for command in options.COMMANDS:
        module_name, qualified = LIBRARY[command.name].split(":")
        target = importlib.import_module(module_name)
        for part in qualified.split("."):
            target = getattr(target, part)
        parameters = inspect.signature(target).parameters
        for option in command.options:
            if option.parameter is not None:
                assert option.parameter in parameters, (command.name, option.flag, option.parameter)


def test_library_arguments_follow_the_table():
    args = build_parser().parse_args(["segment", "m.pt", "a.png", "b", "--out", "o", "--no-progress"])
    got = options.library_arguments(args, options.SEGMENT)
    assert got["checkpoint"] == "m.pt" and got["inputs"] == ["a.png", "b"] and got["out_dir"] == "o"
    assert got["progress"] is False and got["orders"] == "standard" and "out" not in got
    args = build_parser().parse_args(["quickstart"])
    assert "minutes" not in options.library_arguments(args, options.QUICKSTART)  # None: the scenes' own


def test_the_book_extension_writes_the_page_and_is_registered(tmp_path):
    path = ROOT / "book" / "_ext" / "cli_reference.py"
    spec = importlib.util.spec_from_file_location("cli_reference", path)
    extension = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(extension)
    assert extension.write_reference(tmp_path) is True
    assert (tmp_path / "cli.md").read_text() == options.reference_markdown()
    assert extension.write_reference(tmp_path) is False   # unchanged: not rewritten
    config = (ROOT / "book" / "_config.yml").read_text()
    assert re.search(r"^\s+cli_reference: _ext$", config, flags=re.M)
    toc = (ROOT / "book" / "_toc.yml").read_text()
    assert "- file: cli\n" in toc[toc.index("caption: Reference"):]
