"""What the notebooks share: the two modes, reproducibility, data, models and small explorers.

Every lesson runs in one of two modes:

``tutorial``
    A CPU, the built-in ``SyntheticShapes`` scenes and the ``tiny`` preset (64 px images, 8x8
    patches, 5 slots). Nothing is downloaded; every number is reproducible (fixed seeds, one
    thread, deterministic algorithms). This is what CI runs and what the stored outputs show.
``full``
    A GPU (e.g. Colab), DINO ViT-B/16 features and COCO val2017, the paper's configuration. The
    trained model shown is the authors' released COCO checkpoint (stage 2). Models they did not
    release (a stage-1 teacher, a raster-only decoder, a student of that teacher) are
    *demonstration models*: trained here for a short budget (`DEMO_BUDGET`, 10 minutes each) on
    val2017 images 1000-4999, cached and reused by every lesson; the lessons evaluate on images
    0-999, which these models never saw. COCO train2017 is never needed.

The notebooks' first cell chooses the mode (``MODE = "auto"``: full on a GPU, tutorial
otherwise; see `spot_tutorial.tutorial.colab.start`); the environment variable
``SPOT_TUTORIAL_MODE=tutorial|full`` does the same. In full mode the files are downloaded once
into the cache folder of `spot_tutorial.io.downloads` ($SPOT_DATA, in Colab /content/spot_data):

==========================  ==============================================  ============================
what                        default                                         environment variable
==========================  ==============================================  ============================
COCO val2017                ``<cache>/COCO2017`` (downloaded, ~1 GB)        ``SPOT_COCO_ROOT``
authors' COCO checkpoint    ``<cache>/checkpoints/spot_coco.pt``            ``SPOT_CHECKPOINT``
your own stage-1 teacher    ``<cache>/checkpoints/spot_teacher_coco.pt``    ``SPOT_TEACHER_CHECKPOINT``
demonstration models        ``<cache>/demo_models/coco_<kind>.pt``          (none)
==========================  ==============================================  ============================

Usage in a notebook::

    from spot_tutorial import tutorial
    T = tutorial.setup()          # seeds, threads, mode
    batch = T.batch(4)            # images and ground truth  # image [4, 3, H, W]
    model = T.new_model()         # an untrained SPOT of the mode's configuration
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch

from spot_tutorial.config import SPOTConfig
from spot_tutorial.data.registry import SYNTHETIC_EVAL_SEED as EVAL_SEED  # the held-out scenes' seed
from spot_tutorial.recipes import get_preset
from spot_tutorial.runtime import data_workers, resolve_device, seed_everything
from spot_tutorial.tutorial.models import (
    DEMO_BUDGET,
    DEMO_EVAL_IMAGES,
    DEMO_HOLDOUT,
    TUTORIAL_KINDS,
    make_tutorial_checkpoints,
    tutorial_checkpoint_dir,
    tutorial_recipe,
)
from spot_tutorial.tutorial.widgets import _matplotlib_defaults

MODES = ("tutorial", "full")
MODE_ENV = "SPOT_TUTORIAL_MODE"
COCO_ENV = "SPOT_COCO_ROOT"
CHECKPOINT_ENV = "SPOT_CHECKPOINT"
TEACHER_ENV = "SPOT_TEACHER_CHECKPOINT"



def detect_mode(default: Optional[str] = None) -> str:
    """The mode asked for (``default``, the notebook's first cell) if given, else
    ``SPOT_TUTORIAL_MODE`` if set, else 'full' on a GPU, 'tutorial' otherwise."""
    value = (default or "").strip().lower() or os.environ.get(MODE_ENV, "").strip().lower()
    if value:
        if value not in MODES:
            source = "mode" if default else MODE_ENV
            raise ValueError(f"{source}={value!r}; choose one of {MODES}")
        return value
    return "full" if torch.cuda.is_available() else "tutorial"


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser() if value else default


def _cache(*parts: str) -> Path:
    from spot_tutorial.io.downloads import data_dir
    return data_dir().joinpath(*parts)


@dataclass
class Tutorial:
    """The settings of one notebook run (see the module docstring)."""

    mode: str
    device: torch.device
    config: SPOTConfig  # the stage-1 (teacher) configuration of this mode
    seed: int = 0
    coco_root: Path = field(default_factory=lambda: _path_from_env(COCO_ENV, _cache("COCO2017")))
    checkpoint: Path = field(default_factory=lambda: _path_from_env(
        CHECKPOINT_ENV, _cache("checkpoints", "spot_coco.pt")))
    teacher_checkpoint: Path = field(default_factory=lambda: _path_from_env(
        TEACHER_ENV, _cache("checkpoints", "spot_teacher_coco.pt")))
    demo_dir: Path = field(default_factory=lambda: _cache("demo_models"))
    demo_budget: dict = field(default_factory=lambda: dict(DEMO_BUDGET))
    demo_holdout: int = DEMO_HOLDOUT

    # ------------------------------------------------------------------------------------
    @property
    def tutorial(self) -> bool:
        return self.mode == "tutorial"

    @property
    def grid_side(self) -> int:
        """Side of the token grid, 8 (64 px / 8 px patches) or 14 (224 px / 16 px)."""
        patch = 8 if self.config.which_encoder == "tiny" else 16
        return self.config.image_size // patch

    def __str__(self) -> str:
        c = self.config
        where = ("CPU, built-in data; MODE = 'full' in the first cell for GPUs" if self.tutorial
                 else f"{self.device.type}, the paper's setting")
        data = "SyntheticShapes (built in)" if self.tutorial else f"COCO val2017 at {self.coco_root}"
        return "\n".join([
            f"mode   {self.mode} ({where})",
            f"model  encoder {c.which_encoder!r}, {c.image_size} px images, "
            f"{self.grid_side}x{self.grid_side} tokens, {c.num_slots} slots",
            f"data   {data}"])

    __repr__ = __str__

    # -- data ------------------------------------------------------------------------------
    def coco(self, train: bool = False):
        """COCO val2017 (downloaded into the cache first if needed): evaluation items with masks,
        or with ``train=True`` augmented images only (what demonstration models train on)."""
        from spot_tutorial.data import COCO2017
        from spot_tutorial.io.downloads import ensure_coco_val

        root = ensure_coco_val(self.coco_root)
        common = dict(image_size=self.config.image_size, center_crop=self.config.center_crop)
        if train:
            return COCO2017(root, "val", train=True, random_crop=self.config.random_crop, **common)
        return COCO2017(root, "val", mask_size=self.config.gt_mask_size, **common)

    def eval_dataset(self, num_images: int = 256):
        """Images with ground truth (instance, class and ignore masks); full mode: the first
        COCO val2017 images (at most `demo_holdout` of them unless the lesson asks for more)."""
        from torch.utils.data import Subset

        from spot_tutorial import data

        if self.tutorial:
            return data.SyntheticShapes(num_images, self.config.image_size,
                                        self.config.synthetic_difficulty, seed=EVAL_SEED,
                                        mask_size=self.config.gt_mask_size)
        dataset = self.coco()
        return Subset(dataset, range(min(num_images, len(dataset))))

    def demo_datasets(self):
        """(training, evaluation) sets of the demonstration models: val2017 images from
        `demo_holdout` on for training, the first `DEMO_EVAL_IMAGES` for the trainer's evaluation."""
        from torch.utils.data import Subset

        train_set, eval_set = self.coco(train=True), self.coco()
        held_out_ids = eval_set.image_ids[:self.demo_holdout]
        held_out = {image["file_name"] for image in eval_set.coco.loadImgs(held_out_ids)}
        indices = [i for i, name in enumerate(train_set.image_files) if name not in held_out]
        if not indices:
            raise ValueError(f"no COCO val2017 images left to train on after holding out {self.demo_holdout}")
        return Subset(train_set, indices), Subset(eval_set, range(min(DEMO_EVAL_IMAGES, len(eval_set))))

    def batch(self, num_images: int, start: int = 0) -> dict[str, torch.Tensor]:
        """Evaluation items ``start .. start+num_images-1`` stacked into one batch on the device."""
        dataset = self.eval_dataset(start + num_images)
        items = [dataset[i] for i in range(start, start + num_images)]
        return {key: torch.stack([item[key] for item in items]).to(self.device) for key in items[0]}

    def loader(self, num_images: int = 256, batch_size: Optional[int] = None):
        from torch.utils.data import DataLoader

        workers = 0 if self.tutorial else data_workers(self.config.num_workers)
        return DataLoader(self.eval_dataset(num_images), batch_size=batch_size or self.config.batch_size,
                          num_workers=workers)

    # -- models ----------------------------------------------------------------------------
    def new_model(self, **overrides: Any):
        """An untrained SPOT of this mode (full mode: pretrained DINO encoder, downloaded by timm)."""
        from spot_tutorial.model.spot import SPOT

        seed_everything(self.seed)
        config = self.config.replace(**overrides)
        return SPOT.from_config(config, pretrained=self.config.which_encoder != "tiny").to(self.device)

    def recipe(self, kind: str = "teacher") -> SPOTConfig:
        """The configuration model `kind` ('teacher', 'raster', 'student') is trained with: the
        tutorial recipe, or in full mode this mode's config with the demonstration budget."""
        if self.tutorial:
            return tutorial_recipe(kind, seed=self.seed)
        if kind not in TUTORIAL_KINDS:
            raise ValueError(f"unknown model {kind!r}; choose one of {sorted(TUTORIAL_KINDS)}")
        config = self.config.replace(train_orders=TUTORIAL_KINDS[kind], **self.demo_budget)
        if kind == "student":
            from spot_tutorial.recipes import student_config
            config = student_config(config).replace(**self.demo_budget)
        return config

    def train(self, config: Optional[SPOTConfig] = None, stage: int = 1, output_dir: str | Path | None = None,
              teacher: str | Path | None = None, **overrides: Any):
        """Run the library's Trainer (no progress bar) and return its TrainResult.

        Tutorial mode: on SyntheticShapes. Full mode: on the demonstration split of COCO val2017
        (`demo_datasets`). In a temporary folder unless ``output_dir`` is given.
        """
        import tempfile

        from spot_tutorial.training.loop import train

        config = (config or self.config).replace(**overrides)
        output_dir = output_dir or tempfile.mkdtemp(prefix=f"spot_stage{stage}_")
        datasets = None if self.tutorial else self.demo_datasets()
        result = train(config, stage=stage, output_dir=output_dir, teacher=teacher, progress=False,
                       device=self.device.type, overwrite=True, datasets=datasets)
        seed_everything(self.seed)  # the same random state after training, however long it took
        return result

    def model_path(self, kind: str = "teacher") -> Path:
        """Checkpoint of a trained model: kind 'teacher' (stage 1, random orders), 'raster' (stage 1,
        raster order) or 'student' (stage 2, distilled from the teacher).

        Tutorial mode: ``notebooks/checkpoints/tiny_<kind>.pt``, trained here first if it is missing.
        Full mode: for 'teacher' your own stage-1 COCO checkpoint (``teacher_checkpoint``) if it
        exists; else the demonstration model ``demo_dir/coco_<kind>.pt``, trained first if it is
        missing (`demo_budget`, 10 minutes by default) and reused afterwards by every lesson.
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
        path = self.demo_dir / f"coco_{kind}.pt"
        if not path.exists():
            self.train_demo(kind, path)
        return path

    def train_demo(self, kind: str, path: Path) -> Path:
        """Train demonstration model `kind` (full mode) with `recipe(kind)` and save it to `path`."""
        from spot_tutorial.io.checkpoint_file import load_model, save_model

        teacher = self.model_path("teacher") if kind == "student" else None
        config = self.recipe(kind)
        budget = (f"{config.max_minutes:g} minutes" if config.max_minutes > 0 and config.max_steps <= 0
                  else f"{config.max_steps} steps")
        print(f"training the demonstration model '{kind}' for {budget} on COCO val2017 images "
              f"{self.demo_holdout}+ (a demonstration, not the paper's 50-epoch model) ...")
        run = self.train(config, stage=2 if kind == "student" else 1, teacher=teacher)
        save_model(load_model(run.last_checkpoint), path, steps=run.steps, demonstration=True)
        print(f"saved {path} ({run.steps} steps); later lessons reuse it")
        return path

    def load(self, kind: str = "teacher"):
        """The model of :meth:`model_path`, in eval mode on the device."""
        from spot_tutorial.io.checkpoint_file import load_model

        model = load_model(self.model_path(kind)).to(self.device).eval()
        seed_everything(self.seed)
        return model

    def teacher(self):
        """The stage-1 teacher (see :meth:`model_path`), in eval mode on the device."""
        return self.load("teacher")

    def official_model(self):
        """The authors' released COCO checkpoint (stage 2, 7 slots; downloaded into the cache first
        if needed), loaded into our SPOT in eval mode on the device."""
        from spot_tutorial.io.downloads import ensure_official_checkpoint
        from spot_tutorial.io.official import load_official_checkpoint

        path = ensure_official_checkpoint(self.checkpoint)
        model = load_official_checkpoint(path, encoder=self.config.which_encoder, config=self.config)
        seed_everything(self.seed)
        return model.to(self.device).eval()

    def spot_model(self):
        """The trained SPOT lessons 2 and 5 study: tutorial mode the stored tiny teacher, full mode
        the authors' released COCO model."""
        return self.teacher() if self.tutorial else self.official_model()


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
        device = resolve_device("auto")
        config = get_preset("coco", seed=seed, **config_overrides)
    seed_everything(seed)
    _matplotlib_defaults()
    return Tutorial(mode=mode, device=device, config=config, seed=seed)
