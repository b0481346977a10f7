"""The package's layers (spot_tutorial.viz.layers): imports point down, and the book's page is current."""

import json
import re
from pathlib import Path

from PIL import Image

from spot_tutorial.viz.layers import (
    LAYERS,
    import_graph,
    layer_violations,
    layers_figure,
    transitive_reduction,
)

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "spot_tutorial"


def test_every_import_points_to_a_lower_layer():
    graph = import_graph(PACKAGE)
    assert set(graph) - {"__init__", "__main__"} == {part for parts in LAYERS for part in parts}
    assert layer_violations(graph) == []


def test_an_upward_or_lazy_import_is_found(tmp_path):
    package = tmp_path / "spot_tutorial"
    (package / "model").mkdir(parents=True)
    (package / "training").mkdir()
    (package / "model" / "spot.py").write_text(
        "def build():\n    from spot_tutorial.training.loop import Trainer\n    return Trainer\n")
    (package / "training" / "loop.py").write_text("from spot_tutorial.model.spot import build\n")
    graph = import_graph(package)
    assert graph == {"model": {"training"}, "training": {"model"}}
    assert layer_violations(graph) == ["model imports training, which is not in a lower layer"]


def test_the_package_uses_absolute_imports_only():
    relative = [str(path.relative_to(ROOT)) for path in PACKAGE.rglob("*.py")
                if re.search(r"^\s*from \.", path.read_text(), re.MULTILINE)]
    assert relative == []


def test_the_architecture_page_lists_every_module_and_shows_the_current_picture():
    page = (ROOT / "book" / "architecture.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in page.splitlines()
            if line.startswith("| `")}
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name in ("__init__.py", "__main__.py"):
            continue
        if len(relative.parts) == 1:
            assert relative.name in rows, f"{relative} has no row on book/architecture.md"
        else:
            row = rows.get(relative.parts[0] + "/", "")
            assert f"`{relative.stem}`" in row, f"{relative} is not listed on book/architecture.md"
    stored = Image.open(ROOT / "book" / "_static" / "layers.png")
    drawn = json.loads(stored.text["Description"])
    current = transitive_reduction(import_graph(PACKAGE))
    assert drawn == {part: sorted(parts) for part, parts in sorted(current.items())}, (
        "book/_static/layers.png is out of date: redraw it with save_layers_figure (book/architecture.md)")
    width, height = layers_figure().get_size_inches() * 130
    assert stored.size == (round(width), round(height))
    assert "architecture" in (ROOT / "book" / "_toc.yml").read_text()
