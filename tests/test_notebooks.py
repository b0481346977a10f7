"""The lesson notebooks are stored executed, so that nbval has something to compare.

nbval (``pytest --nbval notebooks/ -p no:cacheprovider``) re-runs every notebook and compares the
fresh outputs with the stored ones; a code cell stored without outputs is compared with nothing.
These checks make sure every code cell was run, in order, in one kernel, without errors, and that
each notebook has its Colab badge and install cell.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from spot_tutorial.tutorial.colab import colab_url  # checked against book/_config.yml in test_colab.py

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
EXPECTED = [
    "01_slot_attention",
    "02_decoder_attention_masks",
    "03_patch_order_permutations",
    "04_self_training",
    "05_coco_evaluation",
]
MAX_BYTES = 3_000_000  # stored outputs stay small (figures at low dpi, no giant widget states)
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def source(cell: dict) -> str:
    text = cell["source"]
    return text if isinstance(text, str) else "".join(text)


def test_the_five_lessons_are_there():
    assert [path.stem for path in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_is_executed_and_has_output(path):
    cells = code_cells(load(path))
    assert cells, f"{path.name} has no code cells"
    missing_count = [i for i, cell in enumerate(cells) if cell.get("execution_count") is None]
    no_output = [i for i, cell in enumerate(cells) if not cell.get("outputs")]
    assert not missing_count, (f"{path.name}: code cells {missing_count} have no execution count; "
                               "re-execute the notebook (jupyter execute --inplace)")
    assert not no_output, (f"{path.name}: code cells {no_output} have no stored output, so nbval "
                           "would compare nothing; make each cell print or show something")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_executed_top_to_bottom_in_one_kernel_without_errors(path):
    cells = code_cells(load(path))
    counts = [cell.get("execution_count") for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: execution counts {counts}"
    for i, cell in enumerate(cells):
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name}: code cell {i} stored an error"
            if output["output_type"] == "stream":
                assert output["name"] == "stdout", (
                    f"{path.name}: code cell {i} wrote to stderr (a warning or a progress bar?): "
                    f"{''.join(output['text'])[:200]!r}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_widgets_have_a_plain_text_alternative(path):
    """nbval compares text/plain; widget views must carry a fixed one (tutorial.show_widget)."""
    for i, cell in enumerate(code_cells(load(path))):
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "application/vnd.jupyter.widget-view+json" in data:
                assert "text/plain" in data and "model_id" not in "".join(data["text/plain"]), (
                    f"{path.name}: code cell {i} shows a widget without a fixed text/plain")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_colab_badge_and_install_cell(path):
    notebook = load(path)
    first = notebook["cells"][0]
    assert first["cell_type"] == "markdown"
    assert colab_url(path.stem) in source(first), f"{path.name}: Colab badge missing or wrong"
    install = code_cells(notebook)[0]
    assert "google.colab" in source(install) and "pip" in source(install)
    assert notebook["metadata"].get("kernelspec", {}).get("name") == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_size(path):
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes"


def test_book_lists_every_notebook():
    toc = (ROOT / "book" / "_toc.yml").read_text()
    for name in EXPECTED:
        assert f"notebooks/{name}" in toc
    link = ROOT / "book" / "notebooks"
    assert link.is_symlink() and link.resolve() == NOTEBOOK_DIR.resolve()


# ---------------------------------------------------------------------------------------------
# spot_tutorial.tutorial.session: what the notebooks rely on
def test_mode_follows_the_environment_variable(monkeypatch):
    from spot_tutorial import tutorial

    monkeypatch.setenv("SPOT_TUTORIAL_MODE", "full")
    assert tutorial.detect_mode() == "full"
    monkeypatch.setenv("SPOT_TUTORIAL_MODE", "Tutorial")
    assert tutorial.detect_mode() == "tutorial"
    monkeypatch.setenv("SPOT_TUTORIAL_MODE", "gpu")
    with pytest.raises(ValueError, match="SPOT_TUTORIAL_MODE"):
        tutorial.detect_mode()
    monkeypatch.setenv("SPOT_TUTORIAL_MODE", "tutorial")
    assert tutorial.detect_mode("full") == "full"  # the notebook's own choice wins
    with pytest.raises(ValueError, match="mode='gpu'"):
        tutorial.detect_mode("gpu")
    monkeypatch.delenv("SPOT_TUTORIAL_MODE")
    import torch
    assert tutorial.detect_mode() == ("full" if torch.cuda.is_available() else "tutorial")


@pytest.mark.parametrize("kind", ["teacher", "raster", "student"])
def test_stored_tutorial_checkpoints_load_with_their_recipe(kind):
    from spot_tutorial import tutorial
    from spot_tutorial.io.checkpoint_file import load_model

    path = tutorial.tutorial_checkpoint_dir() / f"tiny_{kind}.pt"
    assert path.is_file(), f"{path} missing: make it with tutorial.make_tutorial_checkpoints(['{kind}'])"
    assert path.stat().st_size < 2_000_000
    model = load_model(path)
    recipe = tutorial.tutorial_recipe(kind)
    for name in ("num_slots", "image_size", "init_method", "truncate", "train_orders", "max_steps",
                 "lr_main", "batch_size", "num_iterations", "eval_orders", "seed", "train_images"):
        assert getattr(model.config, name) == getattr(recipe, name), name
    # the stored training logs behind the book's curves: one record per 50 steps, evaluations per epoch
    logs = path.parent / "logs" / kind
    records = [json.loads(line) for line in (logs / "log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if r.get("kind") == "train"]
    assert steps[-1] == recipe.max_steps and len(steps) == recipe.max_steps // recipe.log_every + 1
    assert len((logs / "eval.csv").read_text().splitlines()) >= 3


def test_tutorial_models_follow_the_quickstart_recipe():
    """One recipe: the stored models are trained like `spot quickstart`, for steps instead of minutes."""
    from spot_tutorial import tutorial
    from spot_tutorial.apps.quickstart import QUICKSTART_STUDENT_SETTINGS, quickstart_config
    from spot_tutorial.recipes import student_config

    budget = ("max_minutes", "max_steps", "eval_every", "epochs")
    teacher, quick = tutorial.tutorial_recipe("teacher"), quickstart_config(6.0)
    differ = {k for k, v in teacher.to_dict().items() if quick.to_dict()[k] != v}
    assert differ <= {*budget, "log_every"}, differ
    assert teacher.max_minutes == 0 and teacher.max_steps == tutorial.TUTORIAL_STEPS["teacher"]
    raster = tutorial.tutorial_recipe("raster")
    assert raster.train_orders == raster.eval_orders == "standard"
    assert raster.replace(train_orders="random", eval_orders="all") == teacher
    student = tutorial.tutorial_recipe("student")
    expected = student_config(quick).replace(**QUICKSTART_STUDENT_SETTINGS)
    differ = {k for k, v in student.to_dict().items() if expected.to_dict()[k] != v}
    assert differ <= {*budget, "log_every"}, differ


def test_explorer_redraws_when_a_control_changes():
    pytest.importorskip("ipywidgets")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spot_tutorial import tutorial

    calls = []

    def render(a, b):
        calls.append((a, b))
        fig, axis = plt.subplots(figsize=(1, 1))
        axis.plot([0, a], [0, b])
        return fig

    box = tutorial.explorer(render, {"a": range(3), "b": ["x", "y"]}, play=["a"], title="t")
    image = box.children[-1]
    first = image.value
    assert calls == [(0, "x")] and first[:4] == b"\x89PNG"
    box.children[1].children[1].value = 2          # the slider of 'a' (after its play button)
    assert calls[-1] == (2, "x") and image.value != first


MAX_CODE_COLUMNS = 88  # what the book's code boxes show without scrolling (book/_static/tables.css)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_code_lines_fit_the_books_code_boxes(path):
    long = [(i, line) for i, cell in enumerate(code_cells(load(path)))
            for line in source(cell).splitlines() if len(line) > MAX_CODE_COLUMNS]
    assert not long, (f"{path.name}: code lines over {MAX_CODE_COLUMNS} columns (code cell, line): "
                      f"{long}")


def chapter_titles() -> dict[str, str]:
    """The book's prose chapters by title (their first heading)."""
    titles = {}
    for page in (ROOT / "book").glob("*.md"):
        heading = next((line for line in page.read_text().splitlines() if line.startswith("# ")), None)
        if heading:
            titles[heading[2:].strip()] = page.name
    return titles


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_link_the_books_chapters(path):
    """A chapter is a link ([title](../chapter.md)), not its title in italics or its path as text."""
    text = "\n".join(source(cell) for cell in load(path)["cells"] if cell["cell_type"] == "markdown")
    assert "book/" not in re.sub(r"\]\([^)]*\)", "]()", text), f"{path.name} prints a book path as text"
    for title, page in chapter_titles().items():
        assert f"*{title}*" not in text, f"{path.name}: *{title}* should be [{title}](../{page})"
    for target in re.findall(r"\]\((\.\./[^)#]+)", text):   # relative to book/notebooks, in the book
        chapter = Path(os.path.normpath(ROOT / "book" / "notebooks" / target))
        assert chapter.parent == ROOT / "book" and chapter.is_file(), f"{path.name} links a missing {target}"
