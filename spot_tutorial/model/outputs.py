"""The model's typed output: everything one SPOT forward pass returns, by name (paper, Fig. 2).

`SPOTOutput` holds the loss, the slots, both kinds of masks and the logits that stage-2
self-training distils; `grid_maps` puts per-token values back on the square patch grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class SPOTOutput:
    loss: torch.Tensor            # []  sum((target - reconstruction)^2) / (B*N*D)
    slots: torch.Tensor           # [B, K, S]
    slot_masks: torch.Tensor      # [B, K, h, w]  slot-attention masks (last iteration)
    decoder_masks: torch.Tensor   # [B, K, h, w]  last-block cross-attention (MLP: alpha masks)
    reconstruction: torch.Tensor  # [B, N, D]
    target: torch.Tensor          # [B, N, D]  features of the (target) encoder
    slot_logits: torch.Tensor     # [B, K, h, w]  last-iteration attention logits
    order_ids: list[int]          # the patch orders the decoder ran (averaged when several)


def grid_maps(per_token: torch.Tensor) -> torch.Tensor:
    """[B, N, K] per-token values -> [B, K, h, w] maps on the square token grid."""
    batch, num_tokens, num_slots = per_token.shape
    side = round(num_tokens ** 0.5)
    return per_token.transpose(1, 2).reshape(batch, num_slots, side, side)
