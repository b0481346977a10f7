"""The package's own architecture: which part imports which, read from the source and drawn.

`import_graph` parses every module of `spot_tutorial` (no import is executed) and lists, for each
part of the package (a subpackage such as ``model`` or a top-level module such as ``config``), the
other parts it imports, lazy imports inside functions included. `LAYERS` is the intended order,
top to bottom; `layer_violations` lists every import that does not point to a lower layer (the
tests require none), and `layers_figure` draws the layers with the imports between them.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

# The parts of the package, top layer first. A part may import only parts of lower layers.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tutorial",),                             # what the notebooks share
    ("apps",),                                 # the command line and the quickstart
    ("training",),                             # the two stages of SPOT
    ("inference",),                            # segment() and segmenting image files
    ("evaluation",),                           # metrics, evaluation loop, baselines
    ("io", "viz"),                             # checkpoint files; figures
    ("model", "data", "recipes", "runtime"),   # the network; datasets; presets; device and RNG
    ("config",),                               # the model's shape and the run's settings
    ("orders",),                               # the words for patch orders and their check
    ("errors",),                               # the exceptions users see
)
ROLES = {
    "tutorial": "notebook modes, models", "apps": "spot CLI, quickstart",
    "training": "teacher and student stages", "inference": "segment(), image files",
    "evaluation": "metrics, evaluate, baselines", "io": "checkpoint files, downloads",
    "viz": "figures, animations", "model": "encoder, slots, decoders", "data": "datasets, transforms",
    "recipes": "named presets", "runtime": "device, precision, RNG", "config": "Architecture, SPOTConfig",
    "orders": "patch-order choices", "errors": "user-facing exceptions",
}
LAYER_OF = {part: depth for depth, parts in enumerate(LAYERS) for part in parts}


def part_of(module: str) -> str:
    """'spot_tutorial.model.spot' -> 'model'; the package's own __init__ is '__init__'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imported_modules(node: ast.ImportFrom | ast.Import) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        raise ValueError("relative import found: the package uses absolute imports only")
    if node.module == "spot_tutorial":  # from spot_tutorial import viz
        return [f"spot_tutorial.{alias.name}" for alias in node.names]
    return [node.module]


def import_graph(package_dir: str | Path | None = None) -> dict[str, set[str]]:
    """{part: the other parts it imports}, from the source files (nothing is imported)."""
    package_dir = Path(package_dir or Path(__file__).resolve().parents[1])
    graph: dict[str, set[str]] = defaultdict(set)
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).with_suffix("").parts
        importer = relative[0]  # a subpackage, a top-level module, __init__ or __main__
        graph.setdefault(importer, set())
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            for module in _imported_modules(node):
                if module.split(".")[0] == "spot_tutorial" and part_of(module) != importer:
                    graph[importer].add(part_of(module))
    return dict(graph)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Imports that do not point to a strictly lower layer, in words (empty when the layers hold).

    The package's ``__init__`` (the public API) and ``__main__`` sit above every layer.
    """
    problems = []
    for importer, imported in sorted(graph.items()):
        if importer in ("__init__", "__main__"):
            continue
        if importer not in LAYER_OF:
            problems.append(f"{importer} is in no layer: add it to LAYERS")
            continue
        for part in sorted(imported):
            if LAYER_OF.get(part, -1) <= LAYER_OF[importer]:
                problems.append(f"{importer} imports {part}, which is not in a lower layer")
    return problems


def transitive_reduction(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """The imports that no chain of other imports implies (what a picture needs to show)."""
    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for nxt in graph.get(node, ()):
                if (node, nxt) != skip and nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    return {u: {v for v in vs if v not in reachable(u, skip=(u, v))} for u, vs in graph.items()}


def layers_figure(graph: dict[str, set[str]] | None = None):
    """The layers as rows of boxes, top layer first; arrows: the imports no other chain implies."""
    import matplotlib.pyplot as plt

    graph = transitive_reduction(import_graph() if graph is None else graph)
    width, row_height = 12.0, 1.25
    fig, axis = plt.subplots(figsize=(8.5, 0.62 * len(LAYERS) + 0.4))
    centres = {}
    for depth, parts in enumerate(LAYERS):
        y = -depth * row_height
        box_width = min(2.6, (width - 0.4 * len(parts)) / len(parts))
        start = (width - len(parts) * box_width - 0.4 * (len(parts) - 1)) / 2
        for index, part in enumerate(parts):
            x = start + index * (box_width + 0.4)
            axis.add_patch(plt.Rectangle((x, y - 0.3), box_width, 0.6, facecolor="#dfe7f2",
                                         edgecolor="#333333", linewidth=1.0))
            axis.text(x + box_width / 2, y + 0.08, part, ha="center", va="center", fontsize=10,
                      fontweight="bold")
            axis.text(x + box_width / 2, y - 0.15, ROLES.get(part, ""), ha="center", va="center",
                      fontsize=7, color="#444444")
            centres[part] = (x + box_width / 2, y)
    for importer, imported in graph.items():
        for part in imported:
            if importer in centres and part in centres:
                (x0, y0), (x1, y1) = centres[importer], centres[part]
                axis.annotate("", xy=(x1, y1 + 0.3), xytext=(x0, y0 - 0.3),
                              arrowprops=dict(arrowstyle="->", color="#888888", linewidth=0.6,
                                              shrinkA=0, shrinkB=0))
    axis.set_xlim(-0.2, width + 0.2)
    axis.set_ylim(-(len(LAYERS) - 1) * row_height - 0.5, 0.5)
    axis.axis("off")
    axis.set_title("spot_tutorial: each part imports only parts below it\n"
                   "(arrows: the imports that no chain of other imports implies)", fontsize=10)
    fig.tight_layout()
    return fig


def save_layers_figure(path: str | Path, dpi: int = 130) -> Path:
    """Write `layers_figure` as a PNG that also stores the arrows it draws (its 'Description' text),
    so a test can tell when the picture no longer matches the source."""
    import json

    import matplotlib.pyplot as plt

    graph = import_graph()
    drawn = {part: sorted(imported) for part, imported in sorted(transitive_reduction(graph).items())}
    fig = layers_figure(graph)
    fig.savefig(path, dpi=dpi, metadata={"Description": json.dumps(drawn)})
    plt.close(fig)
    return Path(path)
