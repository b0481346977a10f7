"""The tutorial's models: the recipes of the stored lesson checkpoints and how to remake them.

Three tiny models ship with the notebooks (a random-order teacher, a raster-order teacher and a
self-trained student); `make_tutorial_checkpoints` retrains them from their recipes, and
`DEMO_BUDGET` is the short budget of the demonstration models trained in full (COCO) mode.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

import torch

from spot_tutorial.config import NO_LIMIT, SPOTConfig

# Tutorial-mode models stored with the notebooks (notebooks/checkpoints/tiny_<kind>.pt, ~1 MB each),
# trained on the CPU by `make_tutorial_checkpoints()` with the library's trainer and ONE recipe, the
# quickstart's (`spot_tutorial.apps.quickstart`: its teacher and student settings on the tiny preset), for a
# fixed number of steps instead of a wall-time budget, so the files are reproducible bit for bit:
#   teacher: stage 1, a random patch order per batch, 12,000 steps (what `spot quickstart` reaches
#            in its 6 minutes on two idle cores)
#   raster:  the same, always in raster order (lesson 3 compares the two)
#   student: stage 2, distilled from the teacher, 3,000 steps (the quickstart's 2.5 minutes)
# Their training logs (log.jsonl, eval.csv) are stored beside them in logs/<kind>/.
TUTORIAL_KINDS = {"teacher": "random", "raster": "standard", "student": "random"}
TUTORIAL_STEPS = {"teacher": 12_000, "raster": 12_000, "student": 3_000}
CHECKPOINTS_ENV = "SPOT_TUTORIAL_CHECKPOINTS"
# Full mode: demonstration models (not released by the authors) are trained for this budget on
# val2017 images DEMO_HOLDOUT.., the lessons evaluate on images 0..DEMO_HOLDOUT-1. The paper trains
# 50 epochs of train2017 (about 20 h per stage); 10 minutes is a few thousand images' worth of
# steps, so the warm-up is shortened to fit.
DEMO_BUDGET = dict(max_minutes=10.0, epochs=NO_LIMIT, lr_warmup_steps=500, checkpoint_every=0,
                   eval_every=NO_LIMIT)
DEMO_HOLDOUT = 1000
DEMO_EVAL_IMAGES = 64  # the trainer's periodic evaluation (a learning curve only)


def tutorial_checkpoint_dir() -> Path:
    """Where the tutorial-mode checkpoints live: $SPOT_TUTORIAL_CHECKPOINTS or notebooks/checkpoints."""
    if os.environ.get(CHECKPOINTS_ENV):
        return Path(os.environ[CHECKPOINTS_ENV]).expanduser()
    return Path(__file__).resolve().parents[2] / "notebooks" / "checkpoints"


def tutorial_recipe(kind: str = "teacher", steps: Optional[int] = None, seed: int = 0) -> SPOTConfig:
    """The configuration a tutorial checkpoint was trained with (the tiny preset on synthetic
    shapes; stage 1 for 'teacher' and 'raster', stage 2 for 'student')."""
    if kind not in TUTORIAL_KINDS:
        raise ValueError(f"unknown tutorial checkpoint {kind!r}; choose one of {sorted(TUTORIAL_KINDS)}")
    from spot_tutorial.apps.quickstart import QUICKSTART_STUDENT_SETTINGS, quickstart_config

    steps = TUTORIAL_STEPS[kind] if steps is None else steps
    config = quickstart_config(0.0, seed, train_orders=TUTORIAL_KINDS[kind], max_steps=steps,
                               eval_every=1, log_every=50)  # evaluated after every epoch: the curves
    if kind == "raster":  # its decoder learned the raster order only: its masks are read in that order
        config = config.replace(eval_orders="standard")
    if kind == "student":
        from spot_tutorial.recipes import student_config
        config = student_config(config).replace(**QUICKSTART_STUDENT_SETTINGS)
    return config


def make_tutorial_checkpoints(kinds: Sequence[str] = tuple(TUTORIAL_KINDS),
                              output_dir: str | Path | None = None, progress: bool = True,
                              steps: Optional[int] = None) -> dict[str, Path]:
    """Train the tutorial checkpoints on the CPU with the library's trainer (one thread,
    deterministic; 3-8 minutes each) and save them (weights + config) as ``tiny_<kind>.pt``, with
    their training logs in ``logs/<kind>/``. The student is distilled from the teacher in
    ``output_dir``. The stored ones were made with::

        python -c "from spot_tutorial.tutorial.models import make_tutorial_checkpoints as m; m()"
    """
    import tempfile

    from spot_tutorial.io.checkpoint_file import load_model, save_model
    from spot_tutorial.training.loop import train

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
            logs = output_dir / "logs" / kind
            logs.mkdir(parents=True, exist_ok=True)
            for name in ("log.jsonl", "eval.csv"):
                shutil.copyfile(Path(run_dir) / name, logs / name)
    return paths
