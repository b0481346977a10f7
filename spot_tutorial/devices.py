"""Which device a run uses: the one place that turns 'auto', 'cpu', 'cuda' or 'cuda:1' into a device.

Training, evaluation and segmentation all go through `resolve_device`, so 'auto' means the
same everywhere (this process's GPU if PyTorch sees one, else the CPU) and asking for a GPU
that is not there fails the same clear way.
"""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device: str | torch.device, local_rank: int = 0) -> torch.device:
    """'auto' -> this process's GPU if there is one, else the CPU.

    A CUDA device without an index becomes GPU `local_rank` (torchrun's LOCAL_RANK: one GPU per
    process), and becomes the current CUDA device.
    """
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device 'cuda' was asked for but PyTorch sees no GPU; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    return device
