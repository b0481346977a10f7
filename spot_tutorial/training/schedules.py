"""The schedules of SPOT's recipe (paper, section 4 and appendix): learning rate, CE weight, T.

Per optimisation step::

    lr(step) = lr_main * step / warmup                                  for step < warmup
             = lr_min + (lr_main - lr_min) * (1 + cos(pi * t)) / 2,     t = (step - warmup) / (T - warmup)
    w(step)  = ce_weight   (or ce_weight * (1 + cos(pi * step / T)) / 2 with cosine_ce_weight)

T, the schedule's length in optimisation steps, is the planned number of steps (`max_steps`,
or `epochs` x steps per epoch), or, with a wall-time budget (`max_minutes`), the number of
steps that fit in it at the speed measured so far.
"""

from __future__ import annotations

import math

from spot_tutorial.config import SPOTConfig


def learning_rate(step: int, total_steps: float, config: SPOTConfig) -> float:
    """Linear warm-up from 0 over `lr_warmup_steps`, then cosine from lr_main to lr_min at `total_steps`."""
    warmup = config.lr_warmup_steps
    if step < warmup:
        return config.lr_main * step / warmup
    progress = min(1.0, (step - warmup) / max(1.0, total_steps - warmup))
    return config.lr_min + (config.lr_main - config.lr_min) * 0.5 * (1.0 + math.cos(math.pi * progress))


def ce_weight(step: int, total_steps: float, config: SPOTConfig) -> float:
    """Weight w of the distillation CE: constant, or cosine from ce_weight down to 0."""
    if not config.cosine_ce_weight:
        return config.ce_weight
    progress = min(1.0, step / max(1.0, total_steps))
    return config.ce_weight * 0.5 * (1.0 + math.cos(math.pi * progress))


def planned_steps(config: SPOTConfig, steps_per_epoch: int) -> int:
    """T without a time budget: `max_steps` when set, else `epochs` full epochs."""
    if config.max_steps > 0:
        return config.max_steps
    return config.epochs * steps_per_epoch


def fits_time_budget(config: SPOTConfig) -> bool:
    """Whether T is fit to the wall-time budget (a budget is set and `max_steps` is not)."""
    return config.max_minutes > 0 and config.max_steps <= 0


def steps_in_budget(step: int, elapsed_seconds: float, planned: int, config: SPOTConfig) -> float:
    """T = the steps that fit in `max_minutes` at the speed so far: step * budget / elapsed.

    Re-estimated after every step, so the cosine reaches lr_min just when the time is up,
    whatever the speed of the machine (or of its other jobs). During warm-up T does not matter
    yet, so the first, slower steps do no harm. Never more than the planned steps.
    """
    projected = step * config.max_minutes * 60.0 / max(elapsed_seconds, 1e-9)
    return min(float(planned), projected)
