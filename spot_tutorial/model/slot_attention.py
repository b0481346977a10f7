"""Slot attention: the encoder that groups patch features into K slots (paper, section 3.1).

SPOT uses the slot attention of Locatello et al. (2020) on top of a frozen ViT, as DINOSAUR
does, with two initialisations (a shared Gaussian, or one learned vector per slot) and the
truncated back-propagation of BO-QSA before the last iteration. The last iteration's attention
gives the *slot masks*; its logits are what stage-2 self-training distils into.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def linear(in_features: int, out_features: int, bias: bool = True,
           init: str = "xavier", gain: float = 1.0) -> nn.Linear:
    """nn.Linear with the paper's init: xavier-uniform (or kaiming-uniform for ReLU inputs), zero bias."""
    layer = nn.Linear(in_features, out_features, bias=bias)
    if init == "kaiming":
        nn.init.kaiming_uniform_(layer.weight, nonlinearity="relu")
    else:
        nn.init.xavier_uniform_(layer.weight, gain=gain)
    if bias:
        nn.init.zeros_(layer.bias)
    return layer


def gru_cell(size: int) -> nn.GRUCell:
    """GRUCell with xavier input weights, orthogonal hidden weights and zero biases."""
    cell = nn.GRUCell(size, size)
    nn.init.xavier_uniform_(cell.weight_ih)
    nn.init.orthogonal_(cell.weight_hh)
    nn.init.zeros_(cell.bias_ih)
    nn.init.zeros_(cell.bias_hh)
    return cell


@dataclass
class SlotAttentionOutput:
    slots: torch.Tensor        # [B, K, S]  slots after the last iteration
    slot_masks: torch.Tensor   # [B, N, K]  last-iteration attention, summed over heads
    slot_logits: torch.Tensor  # [B, heads, N, K]  last-iteration attention logits
    init_slots: torch.Tensor   # [B, K, S]  the slots the iterations started from


class SlotAttention(nn.Module):
    """The iterative attention itself: slots compete for the inputs (softmax over slots)."""

    def __init__(self, input_size: int, slot_size: int, mlp_hidden_size: int,
                 num_iterations: int = 3, num_heads: int = 1, truncate: str = "none",
                 epsilon: float = 1e-8):
        super().__init__()
        if truncate not in ("bi-level", "fixed-point", "none"):
            raise ValueError(f"truncate={truncate!r}; choose 'bi-level', 'fixed-point' or 'none'")
        if slot_size % num_heads:
            raise ValueError(f"slot_size {slot_size} is not divisible by num_heads {num_heads}")
        self.slot_size, self.num_heads = slot_size, num_heads
        self.num_iterations, self.truncate, self.epsilon = num_iterations, truncate, epsilon

        self.norm_inputs = nn.LayerNorm(input_size)
        self.norm_slots = nn.LayerNorm(slot_size)
        self.norm_mlp = nn.LayerNorm(slot_size)
        self.project_q = linear(slot_size, slot_size, bias=False)
        self.project_k = linear(input_size, slot_size, bias=False)
        self.project_v = linear(input_size, slot_size, bias=False)
        self.gru = gru_cell(slot_size)
        self.mlp = nn.Sequential(linear(slot_size, mlp_hidden_size, init="kaiming"), nn.ReLU(),
                                 linear(mlp_hidden_size, slot_size))

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # [B, L, S] -> [B, heads, L, S/heads]
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def truncate_gradient(self, slots: torch.Tensor,
                          init_slots: torch.Tensor) -> torch.Tensor:
        """Applied once, before the last iteration (BO-QSA)."""
        if self.truncate == "bi-level":  # value of `slots`, gradient to the init
            return slots.detach() + init_slots - init_slots.detach()
        if self.truncate == "fixed-point":  # no gradient through earlier iterations
            return slots.detach()
        return slots

    def forward(self, inputs: torch.Tensor,
                init_slots: torch.Tensor) -> SlotAttentionOutput:
        batch, num_inputs, _ = inputs.shape     # [B, N, D]
        num_slots = init_slots.shape[1]         # init_slots: [B, K, S]
        inputs = self.norm_inputs(inputs)
        scale = (self.slot_size // self.num_heads) ** -0.5
        keys = self._heads(self.project_k(inputs)) * scale  # [B, heads, N, S/heads]
        values = self._heads(self.project_v(inputs))  # [B, heads, N, S/heads]

        slots = init_slots
        for iteration in range(self.num_iterations):
            if iteration == self.num_iterations - 1:
                slots = self.truncate_gradient(slots, init_slots)
            queries = self._heads(self.project_q(self.norm_slots(slots)))
            logits = keys @ queries.transpose(-1, -2)                     # [B, heads, N, K]
            # softmax over slots, jointly over heads x slots, per input token
            attn = logits.transpose(1, 2).reshape(batch, num_inputs, -1).softmax(dim=-1)
            attn = attn.view(batch, num_inputs, self.num_heads, num_slots).transpose(1, 2)
            slot_masks = attn.sum(dim=1)                                  # [B, N, K]
            weights = attn + self.epsilon             # weighted mean over the inputs
            weights = weights / weights.sum(dim=-2, keepdim=True)
            updates = weights.transpose(-1, -2) @ values      # [B, heads, K, S/heads]
            updates = updates.transpose(1, 2).reshape(batch * num_slots, self.slot_size)
            slots = self.gru(updates, slots.reshape(batch * num_slots, self.slot_size))
            slots = slots.view(batch, num_slots, self.slot_size)
            slots = slots + self.mlp(self.norm_mlp(slots))
        return SlotAttentionOutput(slots, slot_masks, logits, init_slots)


class SlotAttentionEncoder(nn.Module):
    """Patch features -> LayerNorm + MLP -> slot initialisation -> slot attention."""

    def __init__(self, input_size: int, num_slots: int, slot_size: int, mlp_hidden_size: int,
                 num_iterations: int = 3, num_heads: int = 1, truncate: str = "none",
                 init_method: str = "shared_gaussian"):
        super().__init__()
        if init_method not in ("shared_gaussian", "embedding"):
            raise ValueError(f"init_method={init_method!r}; choose 'shared_gaussian' or 'embedding'")
        self.num_slots, self.slot_size, self.init_method = num_slots, slot_size, init_method
        self.layer_norm = nn.LayerNorm(input_size)
        self.mlp = nn.Sequential(linear(input_size, input_size, init="kaiming"), nn.ReLU(),
                                 linear(input_size, input_size))
        if init_method == "shared_gaussian":
            self.slot_mu = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, slot_size)))
            self.slot_log_sigma = nn.Parameter(nn.init.xavier_uniform_(torch.empty(1, 1, slot_size)))
        else:
            self.slots_init = nn.Embedding(num_slots, slot_size)
            nn.init.xavier_uniform_(self.slots_init.weight)
        self.slot_attention = SlotAttention(input_size, slot_size, mlp_hidden_size,
                                            num_iterations, num_heads, truncate)

    def initial_slots(self, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """Gaussian: fresh noise on every call (in eval mode too). Embedding: deterministic."""
        if self.init_method == "shared_gaussian":
            noise = torch.randn(batch_size, self.num_slots, self.slot_size,
                                dtype=like.dtype, device=like.device)
            return self.slot_mu + self.slot_log_sigma.exp() * noise  # [B, K, S]
        return self.slots_init.weight.expand(batch_size, -1, -1)    # [B, K, S]

    def forward(self, features: torch.Tensor) -> SlotAttentionOutput:
        features = self.mlp(self.layer_norm(features))  # [B, N, D]
        init_slots = self.initial_slots(features.shape[0], features)
        return self.slot_attention(features, init_slots)
