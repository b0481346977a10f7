"""spot-tutorial: SPOT (CVPR 2024) as a small, tested PyTorch library."""

from .config import PRESETS, SPOTConfig, get_preset

__version__ = "0.1.0"
