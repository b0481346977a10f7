"""What the notebooks share: their mode, their models, small widgets and the Colab start.

    session   `setup()` and the `Tutorial` object: seeds, threads, data, models of the chosen mode
    models    the recipes of the stored tutorial checkpoints, and how to remake them
    widgets   matplotlib defaults, PNG bytes, sliders that fall back to a static figure
    colab     the notebooks' first cell: install in Colab, pick the mode

A top layer beside `spot_tutorial.apps`: may import everything below it; nothing in the library
imports it.
"""

from spot_tutorial.runtime import in_colab
from spot_tutorial.tutorial.colab import (
    BRANCH,
    COPIES,
    MODE_CHOICES,
    REPOSITORY_URL,
    Environment,
    colab_url,
    environment,
    main,
    pip_source,
    read_repository_setting,
    resolve_mode,
    start,
    sync_repository,
)
from spot_tutorial.tutorial.models import (
    CHECKPOINTS_ENV,
    DEMO_BUDGET,
    DEMO_EVAL_IMAGES,
    DEMO_HOLDOUT,
    TUTORIAL_KINDS,
    TUTORIAL_STEPS,
    make_tutorial_checkpoints,
    tutorial_checkpoint_dir,
    tutorial_recipe,
)
from spot_tutorial.tutorial.session import (
    CHECKPOINT_ENV,
    COCO_ENV,
    EVAL_SEED,
    MODE_ENV,
    MODES,
    TEACHER_ENV,
    Tutorial,
    detect_mode,
    setup,
)
from spot_tutorial.tutorial.widgets import explorer, figure_png, show_widget

__all__ = ["MODES", "MODE_ENV", "COCO_ENV", "CHECKPOINT_ENV", "TEACHER_ENV", "EVAL_SEED", "in_colab",
           "detect_mode", "Tutorial", "setup", "TUTORIAL_KINDS", "TUTORIAL_STEPS", "CHECKPOINTS_ENV",
           "DEMO_BUDGET", "DEMO_HOLDOUT", "DEMO_EVAL_IMAGES", "tutorial_checkpoint_dir", "tutorial_recipe",
           "make_tutorial_checkpoints", "figure_png", "show_widget", "explorer", "REPOSITORY_URL", "BRANCH",
           "MODE_CHOICES", "COPIES", "colab_url", "pip_source", "read_repository_setting", "sync_repository",
           "Environment", "resolve_mode", "environment", "start", "main"]
