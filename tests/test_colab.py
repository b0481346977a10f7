"""One repository setting (book/_config.yml repository.url) and the notebooks' first cell.

Every Colab link, install command and repository address in the notebooks, the README, the book
and the library must agree with the setting; `python -m spot_tutorial.tutorial.colab --sync` rewrites them
all from it. The first code cell of every notebook sets MODE, installs in Colab and prints the
device, the GPU, its bf16 support, the precision and the mode.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import torch
import yaml

from spot_tutorial.tutorial import colab

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TEXT_FILES = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
SETTING = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["repository"]
GITHUB = re.compile(r"https://github\.com/[\w.-]+/[\w.-]+")
COLAB = re.compile(r"https://colab\.research\.google\.com/github/[^\s)\"']+")
PIP_GIT = re.compile(r"git\+https://[^\s\"']+")
OTHER_PROJECTS = ("gkakogeorgiou/", "facebookresearch/", "huggingface/")  # cited, not ours


def notebook_text(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(cell["source"]) for cell in cells)


def first_code_cell(path: Path) -> dict:
    return next(c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")


def test_library_copy_equals_the_setting():
    assert colab.read_repository_setting(ROOT) == (SETTING["url"], SETTING["branch"])
    assert (colab.REPOSITORY_URL, colab.BRANCH) == (SETTING["url"], SETTING["branch"])


@pytest.mark.parametrize("path", NOTEBOOKS + TEXT_FILES, ids=lambda p: p.name)
def test_every_link_and_install_command_agrees_with_the_setting(path):
    text = notebook_text(path) if path.suffix == ".ipynb" else path.read_text()
    for url in COLAB.findall(text):
        name = Path(url).stem
        assert url == colab.colab_url(name, SETTING["url"], SETTING["branch"]), f"{path.name}: {url}"
        assert (ROOT / "notebooks" / f"{name}.ipynb").is_file(), f"{path.name} links a missing notebook {url}"
    for source in PIP_GIT.findall(text):
        assert source.removesuffix(".git") == colab.pip_source(SETTING["url"]), f"{path.name}: {source}"
    for url in GITHUB.findall(text):
        if not any(other in url for other in OTHER_PROJECTS):
            assert url.removesuffix(".git") == SETTING["url"], f"{path.name}: {url}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_its_badge_and_installs_from_the_setting(path):
    assert f"({colab.colab_url(path.stem, SETTING['url'], SETTING['branch'])})" in notebook_text(path)
    source = "".join(first_code_cell(path)["source"])
    assert f'REPOSITORY = "{SETTING["url"]}"' in source
    assert "google.colab" in source and "pip install" in source and "[colab]" in source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_sets_the_mode_and_prints_the_environment(path):
    cell = first_code_cell(path)
    source = "".join(cell["source"])
    assert source.startswith('MODE = "auto"') and "colab.start(MODE)" in source
    assert len(source.splitlines()) <= 15, (
        "the first cell should stay short: put logic in spot_tutorial.tutorial.colab")
    printed = "".join("".join(o.get("text", "")) for o in cell["outputs"])
    for label in ("device", "GPU", "bf16", "precision", "mode"):
        assert re.search(rf"^{label}\s", printed, re.M), f"{path.name}: the first cell does not print {label}"


def test_sync_points_every_copy_at_a_fork(tmp_path):
    for relative in ("README.md", "book/_config.yml", "book/reproduce.md", "spot_tutorial/tutorial/colab.py",
                     *(f"notebooks/{p.name}" for p in NOTEBOOKS)):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / relative, tmp_path / relative)
    config = tmp_path / "book" / "_config.yml"
    config.write_text(config.read_text().replace(f"url: {SETTING['url']}", "url: https://github.com/someone/spot-fork")
                      .replace(f"branch: {SETTING['branch']}", "branch: dev"))
    changed = colab.sync_repository(tmp_path)
    assert len(changed) == 3 + len(NOTEBOOKS)
    fork = "https://colab.research.google.com/github/someone/spot-fork/blob/dev/notebooks/01_slot_attention.ipynb"
    assert fork in notebook_text(tmp_path / "notebooks" / NOTEBOOKS[0].name)
    assert 'git+https://github.com/someone/spot-fork' in (tmp_path / "README.md").read_text()
    for path in changed:
        assert SETTING["url"] not in path.read_text(), path
    assert 'BRANCH = "dev"' in (tmp_path / "spot_tutorial" / "tutorial" / "colab.py").read_text()


def fake_gpu(monkeypatch, name: str, native_bf16: bool):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=0: name)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: native_bf16)


def test_start_on_a_t4_chooses_full_mode_and_fp16(monkeypatch, capsys):
    monkeypatch.delenv("SPOT_TUTORIAL_MODE", raising=False)
    fake_gpu(monkeypatch, "Tesla T4", native_bf16=False)
    env = colab.start("auto")
    printed = capsys.readouterr().out
    assert (env.mode, env.gpu, env.bf16, env.precision) == ("full", "Tesla T4", False, "fp16")
    assert "Tesla T4" in printed and "fp16 autocast with gradient scaling" in printed
    import os
    assert "SPOT_TUTORIAL_MODE" not in os.environ   # the mode is returned, not left in the environment
    from spot_tutorial import tutorial
    assert tutorial.detect_mode(env.mode) == "full"   # what tutorial.setup(mode=env.mode) uses


def test_start_honours_an_explicit_mode_and_refuses_unknown_ones(monkeypatch, capsys):
    fake_gpu(monkeypatch, "NVIDIA A100-SXM4-40GB", native_bf16=True)
    monkeypatch.delenv("SPOT_TUTORIAL_MODE", raising=False)
    env = colab.start("tutorial")
    assert env.mode == "tutorial" and env.precision == "bf16"
    from spot_tutorial import tutorial
    assert tutorial.detect_mode(env.mode) == "tutorial"
    assert tutorial.detect_mode() == "full"   # nothing handed over behind the notebook's back
    with pytest.raises(ValueError, match="MODE = 'gpu'"):
        colab.start("gpu")


def test_start_leaves_a_users_mode_variable_alone(monkeypatch, capsys):
    import os
    monkeypatch.setenv("SPOT_TUTORIAL_MODE", "tutorial")
    fake_gpu(monkeypatch, "NVIDIA A100-SXM4-40GB", native_bf16=True)
    assert colab.start("auto").mode == "tutorial"   # MODE = "auto" follows the variable, as before
    assert colab.start("full").mode == "full"
    assert os.environ["SPOT_TUTORIAL_MODE"] == "tutorial"


def test_notebooks_hand_the_first_cells_mode_to_setup():
    for path in NOTEBOOKS:
        cells = [cell for cell in json.loads(path.read_text())["cells"] if cell["cell_type"] == "code"]
        sources = ["".join(cell["source"]) for cell in cells]
        first = next(i for i, text in enumerate(sources) if "ENV = colab.start(MODE)" in text)
        setups = [i for i, text in enumerate(sources) if "tutorial.setup(" in text]
        assert setups and setups[0] > first, f"{path.name}: tutorial.setup comes before colab.start"
        for i in setups:
            assert "tutorial.setup(mode=ENV.mode" in sources[i], f"{path.name}: setup without ENV.mode"


def test_one_in_colab_for_the_notebooks_and_the_download_cache(monkeypatch):
    from spot_tutorial import runtime, tutorial
    from spot_tutorial.io import downloads

    assert colab.in_colab is runtime.in_colab and downloads.in_colab is runtime.in_colab
    assert tutorial.in_colab is runtime.in_colab
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert not runtime.in_colab() and not colab.environment("tutorial").in_colab
    monkeypatch.setitem(sys.modules, "google.colab", object())
    assert runtime.in_colab() and colab.environment("tutorial").in_colab


def test_readme_colab_section_matches_the_notebooks():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Colab"):]
    section = section[:section.index("\n## ", 4)]
    for fact in ('MODE = "auto"', "SPOT_DATA", "val2017", "gdown", "bf16", "fp16", "book/_config.yml",
                 "python -m spot_tutorial.tutorial.colab --sync", "train2017"):
        assert fact in section, f"the README's Colab section does not mention {fact}"
    for path in NOTEBOOKS:
        assert colab.colab_url(path.stem) in section, (
            f"the README's Colab section lacks the link to {path.stem}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_first_cell_is_the_install_cell_of_the_library(path):
    """One source for the install cell: colab.install_cell, written into every notebook by --sync."""
    assert "".join(first_code_cell(path)["source"]) == colab.install_cell(SETTING["url"]), (
        f"{path.name}: its first cell differs from colab.install_cell(); run "
        "python -m spot_tutorial.tutorial.colab --sync")


def test_sync_rewrites_an_edited_install_cell_and_keeps_its_outputs(tmp_path):
    notebook = tmp_path / "notebooks" / NOTEBOOKS[0].name
    notebook.parent.mkdir()
    data = json.loads(NOTEBOOKS[0].read_text())
    cell = next(c for c in data["cells"] if c["cell_type"] == "code")
    outputs = cell["outputs"]
    cell["source"] = ["MODE = 'auto'\n", "print('edited by hand')\n"]
    notebook.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    assert colab.sync_install_cells(tmp_path) == [notebook]
    assert notebook.read_text() == NOTEBOOKS[0].read_text()   # the stored file, byte for byte
    assert first_code_cell(notebook)["outputs"] == outputs
    assert colab.sync_install_cells(tmp_path) == []            # nothing left to change
