"""Which floating-point precision the hardware allows, and the autocast context for it.

bf16 autocast needs a GPU with native bf16 (NVIDIA Ampere or newer: A100, L4, H100, ...). Older
GPUs such as Colab's free T4 or a V100 have none: there, training uses fp16 autocast with
gradient scaling (`torch.amp.GradScaler`) and evaluation stays in fp32. On the CPU everything
runs in fp32 unless asked otherwise (see `SPOTConfig.cpu_bf16`).

    cuda_has_native_bf16()      True on Ampere and newer (emulated bf16 does not count)
    choose_precision(device)    'bf16' | 'fp16' | 'fp32' for training on this device
    autocast(device, precision) the matching torch.autocast (a no-op for 'fp32')
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

PRECISIONS = ("bf16", "fp16", "fp32")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_has_native_bf16() -> bool:
    """Whether the current CUDA GPU computes in bf16 natively.

    Recent torch versions answer True on a T4 too, counting a slow emulation; that one is
    excluded here (``including_emulation=False``).
    """
    if not torch.cuda.is_available():
        return False
    try:
        return bool(torch.cuda.is_bf16_supported(including_emulation=False))
    except TypeError:  # torch < 2.3 has no including_emulation and reports native support only
        return bool(torch.cuda.is_bf16_supported())


def choose_precision(device: str | torch.device, want_bf16: bool = True) -> str:
    """The training precision for `device`: 'bf16' on a GPU with native bf16, 'fp16' (to be used
    with gradient scaling) on other GPUs, 'fp32' on the CPU or when `want_bf16` is False."""
    kind = torch.device(device).type
    if kind != "cuda" or not want_bf16:
        return "fp32"
    return "bf16" if cuda_has_native_bf16() else "fp16"


def autocast(device: str | torch.device, precision: str):
    """torch.autocast for 'bf16' or 'fp16' on `device`; a no-op context for 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])
