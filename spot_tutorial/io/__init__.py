"""Files in and out: this library's checkpoint format, the authors' checkpoints, downloads.

    checkpoint_file   save_model / load_model: weights with the model's architecture, atomic writes
    official          load_official_checkpoint: the authors' published .pt files; initialize_from
    downloads         COCO val2017 and the authors' checkpoint, fetched once into a cache folder

May import: `spot_tutorial.model`, `spot_tutorial.config`, `spot_tutorial.recipes`,
`spot_tutorial.errors`. A training run's own state (optimiser, progress) is not here but in
`spot_tutorial.training.run_state`.
"""

from spot_tutorial.io.checkpoint_file import load_model, save_model
from spot_tutorial.io.official import load_official_checkpoint

__all__ = ["load_model", "save_model", "load_official_checkpoint"]
