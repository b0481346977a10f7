"""spot-tutorial: SPOT (CVPR 2024) as a small, tested PyTorch library.

Object-centric learning with slot attention on frozen ViT features, an autoregressive
transformer decoder with nine patch orders, and self-training by attention distillation.
"""

from .checkpoints import load_model, load_official_checkpoint, save_model
from .config import PRESETS, Architecture, SPOTConfig, get_preset
from .encoders import ViTEncoder, build_encoder
from .evaluate import evaluate_model, plot_segmentation, segment
from .model import SPOT, SPOTOutput
from .permutations import patch_orders

__version__ = "0.1.0"

__all__ = [
    "SPOT", "SPOTConfig", "Architecture", "SPOTOutput", "PRESETS", "get_preset", "ViTEncoder", "build_encoder",
    "load_model", "load_official_checkpoint", "save_model", "patch_orders", "segment",
    "plot_segmentation", "evaluate_model",
]
