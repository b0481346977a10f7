"""What the notebooks share: the two modes, reproducibility, data, models and small explorers.

Every lesson runs in one of two modes:

``tutorial``
    A CPU, the built-in ``SyntheticShapes`` scenes and the ``tiny`` preset (64 px images, 8x8
    patches, 5 slots). Nothing is downloaded; every number is reproducible (fixed seeds, one
    thread, deterministic algorithms). This is what CI runs and what the stored outputs show.
``full``
    A GPU (e.g. Colab), DINO ViT-B/16 features and COCO 2017, the paper's configuration.

The mode is chosen automatically (a visible GPU means ``full``) and can be forced with the
environment variable ``SPOT_TUTORIAL_MODE=tutorial|full``. In full mode the data and
checkpoints are looked for in the folders below (override them with environment variables):

=========================  ==========================================  ============================
what                       default (Colab: under ``/content``)          environment variable
=========================  ==========================================  ============================
COCO 2017                  ``data/COCO2017``                            ``SPOT_COCO_ROOT``
authors' COCO checkpoint   ``checkpoints/spot_coco.pth``                ``SPOT_CHECKPOINT``
your stage-1 teacher       ``checkpoints/spot_teacher_coco.pt``         ``SPOT_TEACHER_CHECKPOINT``
=========================  ==========================================  ============================

Usage in a notebook::

    from spot_tutorial import tutorial
    T = tutorial.setup()          # seeds, threads, mode
    batch = T.batch(4)            # images and ground truth  # image [4, 3, H, W]
    model = T.new_model()         # an untrained SPOT of the mode's configuration
"""

from __future__ import annotations

import io
import os
import random
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np
import torch

from .config import SPOTConfig, get_preset

MODES = ("tutorial", "full")
MODE_ENV = "SPOT_TUTORIAL_MODE"
COCO_ENV = "SPOT_COCO_ROOT"
CHECKPOINT_ENV = "SPOT_CHECKPOINT"
TEACHER_ENV = "SPOT_TEACHER_CHECKPOINT"

# Placeholder GitHub owner of the repository; replace it once the repository is published.
GITHUB_OWNER = "spot-tutorial"
GITHUB_REPO = f"https://github.com/{GITHUB_OWNER}/spot-tutorial"
PIP_SOURCE = f"git+{GITHUB_REPO}.git"
COLAB_URL = f"https://colab.research.google.com/github/{GITHUB_OWNER}/spot-tutorial/blob/main/notebooks/"

EVAL_SEED = 999_999  # seed of the held-out synthetic scenes (the trainer's evaluation set)

# Tutorial-mode models stored with the notebooks (notebooks/checkpoints/tiny_<kind>.pt, ~1 MB each),
# trained on the CPU by `make_tutorial_checkpoints()` with the library's trainer:
#   teacher: the stage-1 recipe (random patch order per batch)
#   raster:  the same, always in raster order (lesson 3 compares the two)
#   student: stage 2, distilled from the teacher (lesson 4)
TUTORIAL_KINDS = {"teacher": "random", "raster": "standard", "student": "random"}
TUTORIAL_STEPS = {"teacher": 8000, "raster": 8000, "student": 8000}
CHECKPOINTS_ENV = "SPOT_TUTORIAL_CHECKPOINTS"
# Full mode without your own checkpoints: short COCO runs (the paper trains 50 epochs, ~20 h).
# A 20-minute run is a few thousand steps, so the warm-up is shortened to fit in it.
SHORT_RUN = dict(max_minutes=20.0, epochs=10**6, lr_warmup_steps=500, eval_images=500)


def in_colab() -> bool:
    """True inside Google Colab (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def detect_mode(default: Optional[str] = None) -> str:
    """``SPOT_TUTORIAL_MODE`` if set, else ``default`` if given, else 'full' on a GPU, 'tutorial' otherwise."""
    value = os.environ.get(MODE_ENV, "").strip().lower() or (default or "")
    if value:
        if value not in MODES:
            raise ValueError(f"{MODE_ENV}={value!r}; choose one of {MODES}")
        return value
    return "full" if torch.cuda.is_available() else "tutorial"


def seed_everything(seed: int) -> None:
    """Python, numpy and torch random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def tutorial_checkpoint_dir() -> Path:
    """Where the tutorial-mode checkpoints live: $SPOT_TUTORIAL_CHECKPOINTS or notebooks/checkpoints."""
    if os.environ.get(CHECKPOINTS_ENV):
        return Path(os.environ[CHECKPOINTS_ENV]).expanduser()
    return Path(__file__).resolve().parent.parent / "notebooks" / "checkpoints"


def tutorial_recipe(kind: str = "teacher", steps: Optional[int] = None, seed: int = 0) -> SPOTConfig:
    """The configuration a tutorial checkpoint was trained with (the tiny preset on synthetic
    shapes; stage 1 for 'teacher' and 'raster', stage 2 for 'student')."""
    if kind not in TUTORIAL_KINDS:
        raise ValueError(f"unknown tutorial checkpoint {kind!r}; choose one of {sorted(TUTORIAL_KINDS)}")
    steps = TUTORIAL_STEPS[kind] if steps is None else steps
    config = get_preset("tiny", seed=seed, train_permutations=TUTORIAL_KINDS[kind], max_steps=steps,
                        train_images=32_000, eval_images=256, eval_every=1, checkpoint_every=0)
    if kind == "student":
        from .train import student_config
        config = student_config(config)
    return config


def make_tutorial_checkpoints(kinds: Sequence[str] = tuple(TUTORIAL_KINDS), output_dir: str | Path | None = None,
                              progress: bool = True, steps: Optional[int] = None) -> dict[str, Path]:
    """Train the tutorial checkpoints on the CPU with the library's trainer (one thread,
    deterministic; 10-20 minutes each) and save them (weights + config) as ``tiny_<kind>.pt``.
    The student is distilled from the teacher in ``output_dir``. The stored ones were made with::

        python -c "from spot_tutorial.tutorial import make_tutorial_checkpoints as m; m()"
    """
    import tempfile

    from .checkpoints import load_model, save_model
    from .train import train

    output_dir = Path(output_dir) if output_dir is not None else tutorial_checkpoint_dir()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    paths = {}
    for kind in kinds:
        with tempfile.TemporaryDirectory() as run_dir:
            stage, teacher = 1, None
            if kind == "student":
                stage, teacher = 2, output_dir / "tiny_teacher.pt"
            result = train(tutorial_recipe(kind, steps), stage=stage, output_dir=run_dir, progress=progress,
                           device="cpu", teacher=teacher)
            model = load_model(result.last_checkpoint)
            paths[kind] = output_dir / f"tiny_{kind}.pt"
            save_model(model, paths[kind], steps=result.steps, metrics=result.final_metrics)
    return paths


def _base_dir() -> Path:
    return Path("/content") if in_colab() else Path(".")


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


@dataclass
class Tutorial:
    """The settings of one notebook run (see the module docstring)."""

    mode: str
    device: torch.device
    config: SPOTConfig  # the stage-1 (teacher) configuration of this mode
    seed: int = 0
    coco_root: Path = field(default_factory=lambda: _path_from_env(COCO_ENV, _base_dir() / "data" / "COCO2017"))
    checkpoint: Path = field(default_factory=lambda: _path_from_env(
        CHECKPOINT_ENV, _base_dir() / "checkpoints" / "spot_coco.pth"))
    teacher_checkpoint: Path = field(default_factory=lambda: _path_from_env(
        TEACHER_ENV, _base_dir() / "checkpoints" / "spot_teacher_coco.pt"))

    # ------------------------------------------------------------------------------------
    @property
    def tutorial(self) -> bool:
        return self.mode == "tutorial"

    @property
    def grid_side(self) -> int:
        """Side of the token grid: 8 (64 px / 8 px patches) or 14 (224 px / 16 px)."""
        patch = 8 if self.config.which_encoder == "tiny" else 16
        return self.config.image_size // patch

    def __str__(self) -> str:
        c = self.config
        where = ("CPU, built-in data; SPOT_TUTORIAL_MODE=full for GPUs" if self.tutorial
                 else f"{self.device.type}, the paper's setting")
        data = "SyntheticShapes (built in)" if self.tutorial else f"COCO 2017 at {self.coco_root}"
        return "\n".join([
            f"mode   {self.mode} ({where})",
            f"model  encoder {c.which_encoder!r}, {c.image_size} px images, "
            f"{self.grid_side}x{self.grid_side} tokens, {c.num_slots} slots",
            f"data   {data}"])

    __repr__ = __str__

    # -- data ------------------------------------------------------------------------------
    def eval_dataset(self, num_images: int = 256):
        """Images with ground truth (instance, class and ignore masks)."""
        from torch.utils.data import Subset

        from . import data

        if self.tutorial:
            return data.SyntheticShapes(num_images, self.config.image_size, seed=EVAL_SEED,
                                        mask_size=self.config.gt_mask_size)
        dataset = data.COCO2017(self.coco_root, "val", image_size=self.config.image_size,
                                mask_size=self.config.gt_mask_size)
        return Subset(dataset, range(min(num_images, len(dataset))))

    def batch(self, num_images: int, start: int = 0) -> dict[str, torch.Tensor]:
        """Evaluation items ``start .. start+num_images-1`` stacked into one batch on the device."""
        dataset = self.eval_dataset(start + num_images)
        items = [dataset[i] for i in range(start, start + num_images)]
        return {key: torch.stack([item[key] for item in items]).to(self.device) for key in items[0]}

    def loader(self, num_images: int = 256, batch_size: Optional[int] = None):
        from torch.utils.data import DataLoader

        workers = 0 if self.tutorial else min(4, os.cpu_count() or 1)
        return DataLoader(self.eval_dataset(num_images), batch_size=batch_size or self.config.batch_size,
                          num_workers=workers)

    # -- models ----------------------------------------------------------------------------
    def new_model(self, **overrides: Any):
        """An untrained SPOT of this mode (full mode: pretrained DINO encoder, downloaded by timm)."""
        from .model import SPOT

        seed_everything(self.seed)
        config = self.config.replace(**overrides)
        return SPOT.from_config(config, pretrained=not self.tutorial).to(self.device)

    def train(self, config: Optional[SPOTConfig] = None, stage: int = 1, output_dir: str | Path | None = None,
              teacher: str | Path | None = None, **overrides: Any):
        """Run the library's Trainer (no progress bar) and return its TrainResult.

        Tutorial mode: on SyntheticShapes, in a temporary folder unless ``output_dir`` is given.
        Full mode: on COCO (``coco_root``), in ``output_dir`` (default ``outputs/notebook_stage{stage}``).
        """
        import tempfile

        from .train import train

        config = (config or self.config).replace(**overrides)
        if output_dir is None:
            output_dir = (Path(tempfile.mkdtemp(prefix=f"spot_stage{stage}_")) if self.tutorial
                          else _base_dir() / "outputs" / f"notebook_stage{stage}")
        result = train(config, stage=stage, output_dir=output_dir, teacher=teacher, progress=False,
                       data_path=None if self.tutorial else self.coco_root, device=self.device.type,
                       overwrite=True)
        seed_everything(self.seed)  # the same random state after training, however long it took
        return result

    def model_path(self, kind: str = "teacher") -> Path:
        """Checkpoint of a trained model: kind 'teacher' (stage 1, random orders), 'raster' (stage 1,
        raster order) or 'student' (stage 2, tutorial mode only).

        Tutorial mode: ``notebooks/checkpoints/tiny_<kind>.pt``, trained here first if it is missing.
        Full mode: your stage-1 COCO checkpoint (``teacher_checkpoint``) if it exists, else a
        20-minute stage-1 run on COCO (far from the paper's 50 epochs; the book's "Reproducing"
        chapter has the full recipe).
        """
        if self.tutorial:
            path = tutorial_checkpoint_dir() / f"tiny_{kind}.pt"
            if not path.exists():
                print(f"{path} is missing: training it now on the CPU (10-20 minutes) ...")
                if kind == "student":
                    self.model_path("teacher")
                path = make_tutorial_checkpoints([kind], output_dir=path.parent, progress=False)[kind]
            return path
        if kind == "teacher" and self.teacher_checkpoint.exists():
            return self.teacher_checkpoint
        if kind == "student":
            raise ValueError("in full mode the student is trained in the notebook (lesson 4) or is the "
                             "authors' checkpoint (T.official_model())")
        permutations = TUTORIAL_KINDS[kind]
        run = self.train(train_permutations=permutations, output_dir=_base_dir() / "outputs" / f"notebook_{kind}",
                         **SHORT_RUN)
        return run.last_checkpoint

    def load(self, kind: str = "teacher"):
        """The model of :meth:`model_path`, in eval mode on the device."""
        from .checkpoints import load_model

        model = load_model(self.model_path(kind)).to(self.device).eval()
        seed_everything(self.seed)
        return model

    def teacher(self):
        """The stage-1 teacher (see :meth:`model_path`), in eval mode on the device."""
        return self.load("teacher")

    def official_model(self):
        """The authors' COCO checkpoint (full mode), loaded into our SPOT (eval mode)."""
        from .checkpoints import load_official_checkpoint

        if not self.checkpoint.exists():
            raise FileNotFoundError(
                f"the authors' COCO checkpoint is not at {self.checkpoint}. Download it from the link "
                "'Checkpoint' under 'Pretrained model' in https://github.com/gkakogeorgiou/spot#pretrained-model, "
                f"save it there (or set {CHECKPOINT_ENV}=/path/to/file) and run this cell again.")
        return load_official_checkpoint(self.checkpoint).to(self.device).eval()


def setup(mode: Optional[str] = None, seed: int = 0, **config_overrides: Any) -> Tutorial:
    """Choose the mode, make the run reproducible and return its settings.

    Tutorial mode also limits torch to one thread and turns on deterministic algorithms,
    so that every printed number is the same on every run.
    """
    mode = detect_mode(mode)
    if mode == "tutorial":
        torch.set_num_threads(1)
        torch.use_deterministic_algorithms(True)
        device = torch.device("cpu")
        config = get_preset("tiny", seed=seed, **config_overrides)
    else:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        config = get_preset("coco", seed=seed, **config_overrides)
    seed_everything(seed)
    _matplotlib_defaults()
    return Tutorial(mode=mode, device=device, config=config, seed=seed)


def _matplotlib_defaults() -> None:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return
    plt.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "font.size": 9,
                         "axes.titlesize": 9, "figure.max_open_warning": 0})


# ----------------------------------------------------------------------------------------------
# widgets: an Image widget redrawn by Python when a control changes
def figure_png(fig, dpi: int = 80, close: bool = True) -> bytes:
    """A matplotlib figure as PNG bytes (closed afterwards, so it is not displayed twice)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    if close:
        plt.close(fig)
    return buffer.getvalue()


def show_widget(widget, summary: str) -> None:
    """Display a widget with a fixed plain-text alternative (what nbval compares and print shows)."""
    from IPython.display import display

    display({"application/vnd.jupyter.widget-view+json": {
                "version_major": 2, "version_minor": 0, "model_id": widget.model_id},
             "text/plain": summary}, raw=True)


def explorer(render: Callable[..., Any], controls: dict[str, Sequence[Any] | range],
             labels: Optional[dict[str, Callable[[Any], str]]] = None, play: Sequence[str] = (),
             title: str = "", dpi: int = 80):
    """An interactive figure: one control per keyword of ``render``, an image redrawn on change.

    ``render(**values)`` returns a matplotlib figure. ``controls`` maps each keyword to its
    choices: a ``range`` becomes a slider (plus a play button if listed in ``play``), any other
    sequence a drop-down (``labels[name](value)`` names its entries). Returns the widget box;
    show it with :func:`show_widget`. Needs a running kernel to react (Jupyter, Colab); the built
    book shows its first frame.
    """
    import ipywidgets as widgets

    labels = labels or {}
    inputs: dict[str, Any] = {}
    rows = []
    for name, choices in controls.items():
        if isinstance(choices, range):
            slider = widgets.IntSlider(value=choices.start, min=choices.start, max=choices[-1],
                                       step=choices.step, description=name, continuous_update=False)
            inputs[name] = slider
            row = [slider]
            if name in play:
                player = widgets.Play(value=choices.start, min=choices.start, max=choices[-1],
                                      step=choices.step, interval=400, description=f"play {name}")
                widgets.jslink((player, "value"), (slider, "value"))
                row.insert(0, player)
            rows.append(widgets.HBox(row))
        else:
            name_of = labels.get(name, str)
            options = [(name_of(value), value) for value in choices]
            dropdown = widgets.Dropdown(options=options, value=options[0][1], description=name)
            inputs[name] = dropdown
            rows.append(dropdown)
    image = widgets.Image(format="png")

    def redraw(*_):
        image.value = figure_png(render(**{name: w.value for name, w in inputs.items()}), dpi=dpi)

    for control in inputs.values():
        control.observe(redraw, names="value")
    redraw()
    header = [widgets.HTML(f"<b>{title}</b>")] if title else []
    return widgets.VBox(header + rows + [image])
