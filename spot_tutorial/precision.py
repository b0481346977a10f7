"""Which floating-point precision the hardware allows, and the autocast context for it.

bf16 autocast needs a GPU with native bf16 (NVIDIA Ampere or newer: A100, L4, H100, ...). Older
GPUs such as Colab's free T4 or a V100 have none: there, training uses fp16 autocast with
gradient scaling (`torch.amp.GradScaler`) and evaluation stays in fp32. On the CPU everything
runs in fp32 unless asked otherwise (see `SPOTConfig.cpu_bf16`).

    cuda_has_native_bf16()      True on Ampere and newer (emulated bf16 does not count)
    cpu_has_native_bf16()       True on CPUs with AVX512-BF16 or AMX
    choose_precision(device)    'bf16' | 'fp16' | 'fp32' for training on this device
    training_precision(...)     the same, with the CPU's opt-in bf16 (`SPOTConfig.cpu_bf16`)
    autocast(device, precision) the matching torch.autocast (a no-op for 'fp32'); the only
                                place in the library that opens an autocast context
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


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 matrix products natively (AVX512-BF16 or AMX)."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def choose_precision(device: str | torch.device, want_bf16: bool = True) -> str:
    """The training precision for `device`: 'bf16' on a GPU with native bf16, 'fp16' (to be used
    with gradient scaling) on other GPUs, 'fp32' on the CPU or when `want_bf16` is False."""
    kind = torch.device(device).type
    if kind != "cuda" or not want_bf16:
        return "fp32"
    return "bf16" if cuda_has_native_bf16() else "fp16"


def training_precision(device: str | torch.device, bf16: bool = True, cpu_bf16: bool = False) -> str:
    """The training step's precision: 'bf16', 'fp16' or 'fp32'.

    CUDA with `bf16`: bf16 autocast where the GPU has native bf16 (Ampere or newer), otherwise
    fp16 autocast with a `torch.amp.GradScaler` (a T4 or V100 has no bf16). CPU: bf16 autocast
    with `cpu_bf16`, otherwise fp32. Other devices: fp32.
    """
    kind = torch.device(device).type
    if kind == "cpu":
        return "bf16" if cpu_bf16 else "fp32"
    if kind != "cuda":
        return "fp32"
    return choose_precision(device, want_bf16=bf16)


def autocast(device: str | torch.device, precision: str):
    """torch.autocast for 'bf16' or 'fp16' on `device`; a no-op context for 'fp32'."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {PRECISIONS}")
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(torch.device(device).type, dtype=DTYPES[precision])
