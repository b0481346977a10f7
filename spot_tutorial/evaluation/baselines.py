"""Trivial baselines that give the metrics their scale: masks that know nothing about the image.

`grid_masks` splits the image into a fixed side x side grid (side = floor(sqrt(K))); a model
whose masks score no better than it has not learnt to find objects.
"""

from __future__ import annotations

import math

import torch
from torch.utils.data import DataLoader

from spot_tutorial.evaluation.metrics import SegmentationMetrics


# ----------------------------------------------------------------------------------------------
# the trivial baseline
def grid_masks(batch_size: int, num_slots: int, height: int, width: int) -> torch.Tensor:
    """A fixed side x side grid of masks, side = floor(sqrt(K)): [B, K, h, w] (unused slots empty)."""
    side = max(1, math.isqrt(num_slots))
    rows = torch.arange(height) * side // height           # [h] cell row of each pixel row
    cols = torch.arange(width) * side // width              # [w]
    cell = rows[:, None] * side + cols[None, :]             # [h, w] cell id
    masks = torch.nn.functional.one_hot(cell, num_slots).permute(2, 0, 1).float()  # [K, h, w]
    return masks.expand(batch_size, -1, -1, -1)


def grid_baseline(eval_set, num_slots: int, batch_size: int = 64) -> dict[str, float]:
    """Metrics of the fixed grid on the evaluation set (no model involved)."""
    metrics = SegmentationMetrics()
    for batch in DataLoader(eval_set, batch_size=batch_size):
        target = batch["instance_mask"]
        masks = grid_masks(target.shape[0], num_slots, *target.shape[-2:])
        metrics.update(masks, target, batch.get("class_mask"), batch.get("ignore_mask"))
    return metrics.compute()
