"""spot-tutorial: SPOT (CVPR 2024) as a small, tested PyTorch library.

Object-centric learning with slot attention on frozen ViT features, an autoregressive
transformer decoder with nine patch orders, and self-training by attention distillation.
"""

from spot_tutorial.config import Architecture, SPOTConfig
from spot_tutorial.evaluation.evaluate import evaluate_model
from spot_tutorial.inference import plot_segmentation, segment
from spot_tutorial.io.checkpoint_file import load_model, save_model
from spot_tutorial.io.official import load_official_checkpoint
from spot_tutorial.model.encoder import ViTEncoder, build_encoder
from spot_tutorial.model.outputs import SPOTOutput
from spot_tutorial.model.permutations import patch_orders
from spot_tutorial.model.spot import SPOT
from spot_tutorial.recipes import PRESETS, get_preset, list_presets, register_preset

__version__ = "0.2.0"

__all__ = [
    "SPOT", "SPOTConfig", "Architecture", "SPOTOutput", "PRESETS", "get_preset",
    "list_presets", "register_preset",
    "ViTEncoder",
    "build_encoder",
    "load_model", "load_official_checkpoint", "save_model", "patch_orders", "segment",
    "plot_segmentation", "evaluate_model",
]
