"""Random states: seeding, saving and restoring them, and evaluating without touching them.

SPOT draws at random in every training step (the patch order of the batch, the Gaussian slot
initialisation), so an exact resume needs the random generators' states in the checkpoint, and
an evaluation in the middle of a run must not consume draws that training would have made.

    seed_everything(seed)        Python, numpy and torch (every CUDA device too)
    capture_rng_state()          the generators' states, as plain values a checkpoint can hold
    restore_rng_state(state)     back to them
    isolated_rng(device, seed)   a context with its own seeded state; the outer state is untouched
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch


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
