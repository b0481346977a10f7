"""Where and how a run executes: its device, its floating-point precision and its random states.

Training, evaluation, segmentation and the notebooks all take these three decisions here, so
'auto' means the same device everywhere, one policy picks the precision, and one set of helpers
seeds and restores the random generators.

Colab
-----
``in_colab()``: whether this process runs in Google Colab (the notebooks' setup and the download
cache folder ask it).

Devices
-------
Which device a run uses: the one place that turns 'auto', 'cpu', 'cuda' or 'cuda:1' into a device.

Training, evaluation and segmentation all go through `resolve_device`, so 'auto' means the
same everywhere (this process's GPU if PyTorch sees one, else the CPU) and asking for a GPU
that is not there fails the same clear way.

Precision
---------
Which floating-point precision the hardware allows, and the autocast context for it.

bf16 autocast needs a GPU with native bf16 (NVIDIA Ampere or newer: A100, L4, H100, ...). Older
GPUs such as Colab's free T4 or a V100 have none: there, training uses fp16 autocast with
gradient scaling (`torch.amp.GradScaler`) and evaluation stays in fp32. On the CPU everything
runs in fp32 unless asked otherwise (see `SPOTConfig.cpu_bf16`). The functions::

    cuda_has_native_bf16()      True on Ampere and newer (emulated bf16 does not count)
    cpu_has_native_bf16()       True on CPUs with AVX512-BF16 or AMX
    choose_precision(device)    'bf16' | 'fp16' | 'fp32' for training on this device
    training_precision(...)     the same, with the CPU's opt-in bf16 (`SPOTConfig.cpu_bf16`)
    autocast(device, precision) the matching torch.autocast (a no-op for 'fp32'); the only
                                place in the library that opens an autocast context
    evaluation_precision(...)   'bf16' | 'fp32' for an evaluation (fp32 unless bf16 is asked for)
    evaluation_autocast(...)    the evaluation's autocast context; refuses fp16 and other devices

Evaluation runs in fp32 by default, as the authors evaluate; bf16 autocast (on CUDA or the CPU)
is an opt-in (faster on a GPU; it moves a small share of the argmax labels). It never uses fp16.

Random states
-------------
Random states: seeding, saving and restoring them, and evaluating without touching them.

SPOT draws at random in every training step (the patch order of the batch, the Gaussian slot
initialisation), so an exact resume needs the random generators' states in the checkpoint, and
an evaluation in the middle of a run must not consume draws that training would have made. The functions::

    seed_everything(seed)        Python, numpy and torch (every CUDA device too)
    capture_rng_state()          the generators' states, as plain values a checkpoint can hold
    restore_rng_state(state)     back to them
    isolated_rng(device, seed)   a context with its own seeded state; the outer state is untouched
"""

from __future__ import annotations

import os
import random
import sys
from contextlib import contextmanager, nullcontext
from typing import Any, Iterator

import numpy as np
import torch

from spot_tutorial.errors import ConfigError, InputError


def in_colab() -> bool:
    """True inside Google Colab (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def available_cpus() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it, e.g. in a container)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def data_workers(requested: int) -> int:
    """DataLoader worker processes: the requested number, at most one per available core (more
    would only compete for the cores, and PyTorch warns about it); 0 loads in the main process."""
    return min(int(requested), available_cpus())


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


EVALUATION_PRECISIONS = ("fp32", "bf16")


def evaluation_precision(device: str | torch.device, precision: str = "fp32", amp: bool = False) -> str:
    """The precision an evaluation really uses: 'bf16' when asked for, else 'fp32'.

    `amp` is the older switch: bf16 on CUDA only, and fp32 on a GPU without native bf16 (e.g. a T4).
    """
    if precision == "bf16":
        return "bf16"
    on_cuda = torch.device(device).type == "cuda"
    return "bf16" if amp and on_cuda and cuda_has_native_bf16() else "fp32"


def evaluation_autocast(device: str | torch.device, precision: str = "fp32"):
    """The evaluation's context: 'fp32' opens no autocast at all, 'bf16' bf16 autocast on CUDA or
    the CPU. Anything else is refused before any work is done."""
    if precision not in EVALUATION_PRECISIONS:
        raise InputError(f"precision={precision!r}; choose one of {EVALUATION_PRECISIONS}")
    kind = torch.device(device).type
    if precision != "fp32" and kind not in ("cuda", "cpu"):
        raise InputError(f"bf16 autocast runs on CUDA or the CPU, not on {kind!r}; use fp32")
    return autocast(device, precision)


def seed_everything(seed: int) -> None:
    """Python, numpy and torch random generators (torch seeds every CUDA device too)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) generator states; numpy's as lists (weights_only loading)."""
    numpy_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": [numpy_state[0], numpy_state[1].tolist(), *numpy_state[2:]],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """The inverse of `capture_rng_state` (the CUDA states only where there is a GPU)."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@contextmanager
def isolated_rng(device: torch.device, seed: int) -> Iterator[None]:
    """``with isolated_rng(device, seed):`` torch draws start from `seed` inside, and the
    generators outside (CPU, and `device` if it is a GPU) continue as if nothing was drawn."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield
