"""The options of the `spot` command, declared once: the parser, the library calls and the book's
reference page are all built from the tables below.

    COMMANDS                  one `Command` per subcommand (train, quickstart, evaluate, segment)
    Option                    one flag or positional argument: its argparse settings, help, and the
                              keyword of the library function it is handed to
    add_config_options        one ``--field-name`` per `SPOTConfig` field (train), typed from the dataclass
    library_arguments(...)    the keyword arguments of a command's library call, from parsed options
    reference_markdown()      the book's page book/cli.md::

        python -m spot_tutorial.apps.options > book/cli.md    # book/_ext/cli_reference.py does it too
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import typing
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from spot_tutorial.config import ORDER_MODES, RENAMED_FIELDS, SPOTConfig
from spot_tutorial.data.registry import DATASETS
from spot_tutorial.recipes import PRESETS

CONFIG_PREFIX = "config__"  # argparse dest of the SPOTConfig options
CONFIG_GROUP = "configuration (override the preset; see SPOTConfig)"
NOT_GIVEN: Any = object()  # an argparse setting left to argparse's own default


# ----------------------------------------------------------------------------------------------
# value types
def parse_order_spec(values: Sequence[str]) -> str | list[int]:
    """['random'] -> 'random'; ['0', '5', '8'] -> [0, 5, 8] (explicit order ids)."""
    if len(values) == 1 and values[0] in ORDER_MODES:
        return values[0]
    try:
        return [int(v) for v in values]
    except ValueError:
        raise argparse.ArgumentTypeError(f"patch orders must be one of {ORDER_MODES} or order ids 0..8, "
                                         f"got {' '.join(values)!r}") from None


class OrderSpecAction(argparse.Action):
    """``--train-orders random`` or ``--train-orders 0 5 8``, checked while parsing."""

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, parse_order_spec(values))
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None


def _int_at_least(low: int, words: str):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {words}, got {value}")
        return value
    return parse


non_negative_int = _int_at_least(0, "an integer >= 0")
positive_int = _int_at_least(1, "a positive integer")


def thread_count(text: str) -> int | str:
    """`--threads`: 'auto' or an integer >= 0."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or an integer >= 0, got {text!r}")
    return value


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(
            f"expected a JSON object such as '{{\"key\": 1}}': {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


# ----------------------------------------------------------------------------------------------
# the tables
@dataclass(frozen=True)
class Option:
    """One option (``--data-path``) or positional argument (``checkpoint``) of a command.

    The argparse settings are those of ``add_argument``; `NOT_GIVEN` leaves one to argparse.
    `keyword` is the parameter of the command's library function that receives the value (None:
    the command uses it itself); `negate` hands over ``not value`` (``--no-progress`` ->
    ``progress``). `path`: the value names a file or folder the user provides.
    """

    flag: str
    help: str | None = None
    default: Any = NOT_GIVEN
    type: Callable[[str], Any] | None = None
    choices: Sequence[Any] | None = None
    action: str | type[argparse.Action] | None = None
    nargs: str | None = None
    metavar: str | None = None
    required: bool = False
    keyword: str | None = NOT_GIVEN
    negate: bool = False
    path: bool = False
    aliases: tuple[str, ...] = ()  # older spellings of the flag, still accepted

    @property
    def dest(self) -> str:
        """The attribute of the parsed namespace."""
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def parameter(self) -> str | None:
        """The library keyword the value goes to (default: the dest)."""
        return self.dest if self.keyword is NOT_GIVEN else self.keyword

    def argparse_settings(self) -> dict[str, Any]:
        settings = {"help": self.help, "default": self.default, "type": self.type, "choices": self.choices,
                    "action": self.action, "nargs": self.nargs, "metavar": self.metavar}
        if self.required:
            settings["required"] = True
        return {key: value for key, value in settings.items() if value is not None and value is not NOT_GIVEN}


@dataclass(frozen=True)
class Command:
    """One subcommand: its help line, description, options and whether SPOTConfig fields are options."""

    name: str
    help: str
    description: str
    options: tuple[Option, ...]
    config_options: bool = False


NO_PROGRESS = Option("--no-progress", action="store_true", help="no progress bar", keyword="progress",
                     negate=True)
ENCODER = Option("--encoder", default="vit_base_patch16_224.dino",
                 help="timm ViT of an authors' checkpoint (its weights come from the file)")
DEVICE = Option("--device", default="auto", help="auto (GPU if any), cpu, cuda, ...")

TRAIN = Command("train", help="train a stage-1 teacher or a stage-2 student",
                description="Train one stage of SPOT (run it with torchrun for several GPUs).",
                config_options=True, options=(
    Option("--stage", type=int, choices=(1, 2), default=1,
           help="1: teacher; 2: self-training student (needs --teacher)"),
    Option("--preset", choices=sorted(PRESETS), default="coco", keyword=None,
           help="a dataset's settings (COCO, VOC: the paper's; MOVi: the authors' released commands); "
                "'synthetic' runs on the CPU, no data needed (default coco). The field options "
                "below show the values of the preset named on the command line (COCO's if none)"),
    Option("--data-path", path=True,
           help="dataset folder (not needed for --preset synthetic); with "
                "--dataset folder, any folder of your images (searched recursively)"),
    Option("--mask-path", path=True, help="--dataset folder: instance-mask PNGs parallel to --data-path, for "
                                          "evaluation during training (without them: figures only)"),
    Option("--teacher", path=True,
           help="stage 2: the stage-1 checkpoint (its last.pt, as in the paper). It must match the "
                "student in slots, image size and encoder (checked before training); its slot size "
                "and decoder may differ, as only its decoder masks are distilled"),
    Option("--init-from", metavar="CHECKPOINT", path=True,
           help="start from the weights of a checkpoint (ours or the authors'): fine-tuning"),
    Option("--output-dir", keyword=None,
           help="where checkpoints and logs go (default: outputs/<preset>_stage<N>)"),
    Option("--resume", action="store_true",
           help="continue the run in --output-dir from its last.pt (exactly where it stopped)"),
    Option("--overwrite", action="store_true", help="start afresh in a folder that holds a run"),
    Option("--device", default="auto", help="auto (GPU if any), cpu, cuda, cuda:1, ..."),
    Option("--encoder-weights", path=True, help="local ViT weights file instead of downloading them"),
    Option("--select-by", default=None,
           help="metric choosing best.pt on the --selection-images held-out training "
                "images: <slot|decoder>/<fg_ari|mbo_i|mbo_c|miou> (default decoder/mbo_i). "
                "Without --selection-images there is no model selection: the reported "
                "model is last.pt, as in the paper"),
    dataclasses.replace(NO_PROGRESS, help="no progress bars"),
))

QUICKSTART = Command(
    "quickstart", help="both stages on synthetic shapes, CPU, a few minutes",
    description="Train a teacher and a self-trained student on the built-in synthetic dataset and compare "
                "them (no downloads).", options=(
    Option("--output-dir", default="outputs/quickstart",
           help="report.json, masks.png and both runs go here (default: outputs/quickstart)"),
    Option("--minutes", type=float, default=None, keyword=None,
           help="training minutes of the teacher (default 6 on shapes, 4.5 on camouflage; under "
                "10 minutes in all)"),
    Option("--student-minutes", type=float, default=None,
           help="training minutes of the student (default 2.5 on shapes, 3.8 on camouflage, or in "
                "proportion to --minutes)"),
    Option("--scenes", choices=("shapes", "camouflage"), default="shapes",
           help="shapes (flat-coloured shapes, pixel encoder; default) or camouflage (textured "
                "scenes colour cannot segment, the project's self-supervised ViT, 7 slots: SPOT's "
                "regime in miniature, where the student beats its teacher; benchmarks/RESULTS.md)"),
    Option("--seed", type=int, default=0, help="seed of the weights, data order and noise"),
    Option("--train-images", type=int, default=0, help="synthetic training images (0: 10000)"),
    Option("--eval-images", type=int, default=0, help="held-out evaluation images (0: 256)"),
    Option("--device", default="cpu", help="cpu (the point of the quickstart), or cuda"),
    Option("--threads", type=thread_count, default="auto",
           help="torch CPU threads, or auto (default): with prerendered scenes, the faster of "
                "1 and 2 on this machine, timed at the start (2 on a near-tie); otherwise 1 "
                "(0: PyTorch's default)"),
    Option("--data-workers", type=int, default=None,
           help="with --no-prerender: processes that render the training images (default: 1 "
                "when the machine has 2 or more cores, else 0)"),
    Option("--prerender", action=argparse.BooleanOptionalAction, default=True,
           help="render the training scenes once before training (about 5 s, 120 MB; the default) "
                "or, with --no-prerender, again every epoch in --data-workers processes"),
    dataclasses.replace(NO_PROGRESS, help="no progress bars"),
))

EVALUATE = Command(
    "evaluate", help="FG-ARI, mBO^i, mBO^c, mIoU of slot and decoder masks on a dataset",
    description="Evaluate a checkpoint (ours, or the authors' .pt file) on COCO, VOC, MOVi or the "
                "built-in synthetic data; prints a table and writes results.json, results.csv and "
                "masks.png to --output-dir.", options=(
    Option("checkpoint", path=True, help="last.pt (or best.pt) of `spot train`, or the authors' checkpoint"),
    Option("--dataset", choices=DATASETS, help="default: the dataset in the checkpoint's config; "
                                               "'folder': your images with --mask-path"),
    Option("--data-path", path=True, help="dataset folder (not needed for synthetic)"),
    Option("--mask-path", path=True, help="--dataset folder: instance-mask PNGs parallel to the images"),
    Option("--mask-size", type=positive_int, default=None, metavar="PIXELS",
           help="side of the ground-truth masks the predictions are scored at: 320 for COCO and "
                "VOC as in the paper (default: the preset's), 224 to compare with later papers"),
    Option("--panoptic", action="store_true",
           help="COCO: also score against the panoptic ground truth (P-ARI, PQ; FT-DINOSAUR's "
                "protocol); needs annotations/panoptic_val2017.json and its PNGs"),
    Option("--eval-orders", default="all", nargs="+", action=OrderSpecAction, metavar="ORDER",
           keyword="orders", aliases=("--eval-permutations",),
           help="standard, random, all (the paper's final numbers; default) or order ids 0..8"),
    ENCODER,
    Option("--num-slots", type=positive_int, default=None, metavar="K",
           help="slots of a shared-Gaussian model, whose weights do not store the count "
                "(default: the dataset preset's, e.g. COCO 7, VOC 6, MOVi-C 11, MOVi-E 24); "
                "an embedding-init model stores its count and refuses another"),
    Option("--bf16", action="store_true",
           help="bf16 autocast (CUDA or CPU): faster, moves a few argmax labels; default fp32, "
                "as the authors evaluate"),
    Option("--batch-size", type=positive_int, default=32, help="images per forward pass (default 32)"),
    DEVICE,
    Option("--num-workers", type=non_negative_int, default=None,
           help="data-loading processes (default: min(4, the machine's cores))"),
    Option("--max-images", type=non_negative_int, default=0,
           help="only the first N images (default 0: all)"),
    Option("--figure-images", type=int, default=8, help="images in masks.png (0: no figure)"),
    Option("--seed", type=int, default=0,
           help="seed of the slots' random start (default 0, written to results.json): the same "
                "checkpoint and images give the same numbers on every run; other seeds sample the "
                "same distribution"),
    Option("--output-dir", default="outputs/evaluate",
           help="where results.json, results.csv and masks.png go (default outputs/evaluate)"),
    NO_PROGRESS,
))

SEGMENT = Command(
    "segment", help="masks for your own images: overlays, label maps, a contact sheet",
    description="Segment images (files, folders searched recursively, or quoted glob patterns; any size "
                "and mode) with a checkpoint (ours or the authors'). Writes, per image, an overlay PNG and "
                "a label-map PNG (pixel value = slot id) for each kind of mask, plus contact_sheet.png and "
                "index.json to --out. Unreadable files are reported and skipped; the exit status is 1 "
                "when any failed.", options=(
    Option("checkpoint", path=True, help="last.pt of `spot train`, or the authors' checkpoint"),
    Option("inputs", nargs="+", metavar="INPUT", help="image files, folders or glob patterns"),
    Option("--out", required=True, help="output folder", keyword="out_dir"),
    Option("--orders", choices=("standard", "all"), default="standard",
           help="decoder patch orders: standard (raster, fast; default) or all nine averaged "
                "(the paper's evaluation)"),
    Option("--masks", choices=("slot", "decoder", "both"), default="both",
           help="which masks to write (default both)"),
    DEVICE,
    Option("--batch-size", type=positive_int, default=8, help="images per forward pass (default 8)"),
    ENCODER,
    Option("--num-slots", type=positive_int, default=None, metavar="K",
           help="slots of an authors' shared-Gaussian model (default: the --preset's)"),
    Option("--preset", choices=sorted(PRESETS), default="coco",
           help="what an authors' checkpoint does not store comes from this preset (default coco)"),
    Option("--sheet-images", type=int, default=12, help="images on the contact sheet (0: none; default 12)"),
    Option("--overwrite", action="store_true",
           help="replace the contents of a non-empty --out folder (default: refuse it)"),
    Option("--seed", type=int, default=0,
           help="seed of the slots' random start: the same images give the same masks on every run "
                "(default 0; recorded in index.json)"),
    NO_PROGRESS,
))

COMMANDS = (TRAIN, QUICKSTART, EVALUATE, SEGMENT)
COMMANDS_BY_NAME = {command.name: command for command in COMMANDS}
PROGRAM = "spot"
DESCRIPTION = "SPOT (CVPR 2024): object-centric learning with patch-order permutation and self-training."


# ----------------------------------------------------------------------------------------------
# SPOTConfig fields as options
@dataclass(frozen=True)
class ConfigOption:
    """The option of one SPOTConfig field: ``--num-slots INT``, ``--bf16 / --no-bf16``, ..."""

    name: str        # the field
    flag: str        # --field-name
    settings: dict   # add_argument settings other than dest, default and help
    default: Any     # the COCO preset's value (SPOTConfig's default)

    @property
    def help(self) -> str:
        return f"(COCO default: {self.default!r})"

    def help_for(self, preset: str, stage: int, value: Any) -> str:
        """The help line under a chosen preset (and stage): that preset's value of the field."""
        where = f"--preset {preset}" + (", stage 2" if stage == 2 else "")
        return f"({where} default: {value!r})"


def old_flags(name: str) -> list[str]:
    """The flags of a field's former names (``--train-permutations`` for train_orders)."""
    return ["--" + old.replace("_", "-") for old, new in RENAMED_FIELDS.items() if new == name]


def config_options() -> list[ConfigOption]:
    """One option per SPOTConfig field, typed from the dataclass annotations."""
    hints = typing.get_type_hints(SPOTConfig)
    defaults = SPOTConfig()
    options = []
    for spec in dataclasses.fields(SPOTConfig):
        kind = hints[spec.name]
        if kind is bool:
            settings: dict[str, Any] = dict(action=argparse.BooleanOptionalAction)
        elif kind in (int, float, str):
            settings = dict(type=kind, metavar=kind.__name__.upper())
        elif kind is dict:
            settings = dict(type=_json_dict, metavar="JSON")
        else:  # the patch-order specification
            settings = dict(nargs="+", metavar="ORDER", action=OrderSpecAction)
        options.append(ConfigOption(spec.name, "--" + spec.name.replace("_", "-"), settings,
                                    getattr(defaults, spec.name)))
    return options


def add_config_options(parser: argparse.ArgumentParser, preset: str | None = None, stage: int = 1) -> None:
    """One ``--field-name`` option per SPOTConfig field; an option not given is absent from the namespace.

    The help of each shows the value that the run would use: COCO's (SPOTConfig's defaults) when no
    preset is named, else that preset's, after the paper's student settings for ``stage == 2``.
    """
    from spot_tutorial.recipes import get_preset, student_config

    chosen = None
    if preset in PRESETS:
        chosen = get_preset(preset)
        chosen = student_config(chosen) if stage == 2 else chosen
    group = parser.add_argument_group(CONFIG_GROUP)
    for option in config_options():
        text = option.help if chosen is None else option.help_for(preset, stage, getattr(chosen, option.name))
        group.add_argument(option.flag, *old_flags(option.name), dest=CONFIG_PREFIX + option.name,
                           default=argparse.SUPPRESS, help=text, **option.settings)


def chosen_preset(argv: Sequence[str] | None) -> tuple[str | None, int]:
    """``--preset`` and ``--stage`` as given on a command line (before it is parsed), for the help."""
    scout = argparse.ArgumentParser(add_help=False)
    scout.add_argument("--preset", default=None)
    scout.add_argument("--stage", default="1")
    known, _ = scout.parse_known_args([] if argv is None else list(argv))
    return known.preset, 2 if known.stage == "2" else 1


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The SPOTConfig fields given on the command line, converted to their types."""
    return {key[len(CONFIG_PREFIX):]: value for key, value in vars(args).items()
            if key.startswith(CONFIG_PREFIX)}


# ----------------------------------------------------------------------------------------------
# the parser and the library calls
def add_command(commands: argparse._SubParsersAction, command: Command, preset: str | None = None,
                stage: int = 1) -> argparse.ArgumentParser:
    """The subparser of `command`, its options in table order (then the SPOTConfig fields, their
    help showing `preset`'s values)."""
    parser = commands.add_parser(command.name, help=command.help, description=command.description)
    for option in command.options:
        parser.add_argument(option.flag, *option.aliases, **option.argparse_settings())
    if command.config_options:
        add_config_options(parser, preset, stage)
    return parser


def library_arguments(args: argparse.Namespace, command: Command) -> dict[str, Any]:
    """The keyword arguments of `command`'s library function, from the parsed options that have one."""
    values = {}
    for option in command.options:
        if option.parameter is not None:
            value = getattr(args, option.dest)
            values[option.parameter] = not value if option.negate else value
    return values


def user_paths(args: argparse.Namespace, command: Command) -> dict[str, str]:
    """The files and folders the user named: {path: the option that named it}."""
    named = {}
    for option in command.options:
        value = getattr(args, option.dest, None) if option.path else None
        if value is not None:
            named[str(value)] = option.flag
    return named


# ----------------------------------------------------------------------------------------------
# the book's reference page
def _markdown_text(text: str) -> str:
    """Help text as literal markdown (no HTML tags, emphasis or table cells), its flags as code."""
    for special in ("\\", "<", ">", "*", "|", "[", "]"):
        text = text.replace(special, "\\" + special)
    return re.sub(r"(?<![\w`-])(--[a-z][a-z0-9-]*)", r"`\1`", text)


def _sentence(text: str) -> str:
    return text if text.endswith(".") else text + "."


def _usage(option: Option) -> str:
    if not option.flag.startswith("-"):
        name = option.metavar or option.flag
        return f"{name} ..." if option.nargs == "+" else name
    if option.action == "store_true":
        return option.flag
    if option.action is argparse.BooleanOptionalAction:
        return f"{option.flag} / --no-{option.flag[2:]}"
    choices = "{" + ",".join(str(choice) for choice in option.choices) + "}" if option.choices else None
    metavar = option.metavar or choices or option.dest.upper()
    return f"{option.flag} {metavar} ..." if option.nargs == "+" else f"{option.flag} {metavar}"


def _option_entry(option: Option) -> str:
    notes = [_sentence(_markdown_text(option.help))] if option.help else []
    if option.required:
        notes.append("Required.")
    if option.default not in (NOT_GIVEN, None) and option.action != "store_true":
        notes.append(f"Default: `{option.default}`.")
    if option.aliases:
        notes.append("Also accepted: " + ", ".join(f"`{alias}`" for alias in option.aliases) + ".")
    return f"`{_usage(option)}`\n: {' '.join(notes) or 'See the description above.'}\n"


def _config_entry(option: ConfigOption) -> str:
    settings = option.settings
    if settings.get("action") is argparse.BooleanOptionalAction:
        usage = f"{option.flag} / --no-{option.flag[2:]}"
    else:
        usage = f"{option.flag} {settings['metavar']}" + (" ..." if settings.get("nargs") == "+" else "")
    also = "".join(f" Also accepted: `{flag}`." for flag in old_flags(option.name))
    return f"`{usage}`\n: COCO default: `{option.default!r}`.{also}\n"


def reference_markdown() -> str:
    """The page book/cli.md: every command and option of `spot`, from the tables of this module."""
    lines = ["# The `spot` command", "",
             "<!-- generated from spot_tutorial/apps/options.py by book/_ext/cli_reference.py; "
             "edit the tables there, not this page -->", "",
             f"{DESCRIPTION} Every command prints the same list with `spot COMMAND --help`; "
             "`python -m spot_tutorial` and `torchrun ... -m spot_tutorial` run the same command.", ""]
    for command in COMMANDS:
        lines += [f"## `spot {command.name}`", "", _markdown_text(command.description), ""]
        lines += [_option_entry(option) for option in command.options]
        if command.config_options:
            lines += ["### Configuration options", "",
                      "Every field of `SPOTConfig` is an option of `spot train`; a given option overrides "
                      "the preset (stage 2 first applies the paper's student settings, which these still "
                      "override). The defaults below are the COCO preset's.", ""]
            lines += [_config_entry(option) for option in config_options()]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m spot_tutorial.apps.options [--write PATH]``: print (or write) book/cli.md."""
    parser = argparse.ArgumentParser(prog="python -m spot_tutorial.apps.options",
                                     description="The `spot` command's reference page, from its tables.")
    parser.add_argument("--write", metavar="PATH", help="write the page to PATH instead of printing it")
    args = parser.parse_args(argv)
    text = reference_markdown()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
