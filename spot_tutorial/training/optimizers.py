"""One optimisation step of SPOT's recipe (paper, section 4): Adam after clipping the gradient.

The gradient is clipped in the infinity norm (every entry to at most `clip`, the paper's 0.3)
before the Adam update. With fp16 autocast (GPUs without bf16, see `spot_tutorial.runtime`)
the loss is scaled by a `torch.amp.GradScaler` before backward, and the gradients are unscaled
before clipping, so the clipped values are the same as without scaling.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the optimiser updates (the frozen ViT blocks are left out)."""
    return [p for p in model.parameters() if p.requires_grad]


def adam(parameters: list[nn.Parameter], lr: float) -> torch.optim.Adam:
    """The paper's Adam, with torch's fused kernel (one kernel for every parameter, the same
    update up to rounding) on CUDA and, since torch 2.4, on the CPU; plain Adam where torch has none."""
    try:
        return torch.optim.Adam(parameters, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch or an unsupported device
        return torch.optim.Adam(parameters, lr=lr)


def apply_gradients(model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, clip: float,
                    check: Callable[[torch.Tensor], Any] | None = None,
                    scaler: "torch.amp.GradScaler | None" = None) -> torch.Tensor:
    """Backward, clip the gradients in the infinity norm (the paper's 0.3), optimiser step.

    With an enabled `scaler` (fp16 training) the loss is scaled before backward and the gradients
    are unscaled before clipping; a step whose gradients overflowed is skipped by the scaler (and
    its scale lowered) instead of being reported to `check`, which sees finite norms only.
    """
    optimizer.zero_grad(set_to_none=True)
    if scaler is None or not scaler.is_enabled():
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), clip, norm_type=float("inf"))
        if check is not None:
            check(grad_norm)
        optimizer.step()
        return grad_norm
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(trainable_parameters(model), clip, norm_type=float("inf"))
    if check is not None and torch.isfinite(grad_norm):
        check(grad_norm)
    scaler.step(optimizer)
    scaler.update()
    return grad_norm
