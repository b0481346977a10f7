"""Decoders that reconstruct the ViT patch features from the slots (paper, sections 3.2 and 4).

- `AutoregressiveDecoder`: SPOT's decoder. A SLATE-style transformer predicts the patch
  features one token at a time, in one of nine patch orders, attending to the slots through
  cross-attention. The softmax weights of the LAST block's cross-attention are the *decoder
  masks*; they are returned explicitly with the reconstruction.
- `MLPDecoder`: the DINOSAUR baseline: each slot is decoded on its own to every patch plus an
  alpha logit; a softmax of the alphas over slots gives the masks and mixes the predictions.

Attention has two implementations behind one switch: 'math' (explicit softmax, the reference
you can read) and 'sdpa' (`torch.nn.functional.scaled_dot_product_attention`, fused kernels).
The cross-attention whose weights are needed always uses the math path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spot_tutorial.model.permutations import inverse_orders, patch_orders
from spot_tutorial.model.slot_attention import linear
from spot_tutorial.orders import check_order_ids

ATTENTION_IMPLS = ("math", "sdpa")


@dataclass
class DecoderOutput:
    reconstruction: torch.Tensor  # [B, N, D]  predicted patch features, raster order
    masks: torch.Tensor           # [B, N, K]  decoder masks, sum to 1 over slots, raster order


class MultiHeadAttention(nn.Module):
    """Bias-free q/k/v/o projections; q scaled by head_dim^-0.5."""

    def __init__(self, d_model: int, num_heads: int, gain: float = 1.0):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"decoder width {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.proj_q = linear(d_model, d_model, bias=False)
        self.proj_k = linear(d_model, d_model, bias=False)
        self.proj_v = linear(d_model, d_model, bias=False)
        self.proj_o = linear(d_model, d_model, bias=False, gain=gain)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape  # [B, L, D] -> [B, heads, L, D/heads]
        return x.view(batch, length, self.num_heads, -1).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor, causal: bool = False,
                need_weights: bool = False, impl: str = "sdpa"):
        """Returns (output [B, T, D], weights [B, heads, T, S] or None)."""
        batch, length, _ = queries.shape
        q = self._heads(self.proj_q(queries))
        k = self._heads(self.proj_k(keys_values))
        v = self._heads(self.proj_v(keys_values))
        weights = None
        if need_weights or impl == "math":
            logits = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)  # [B, heads, T, S]
            if causal:
                future = torch.ones(length, k.shape[2], dtype=torch.bool, device=q.device).triu(1)
                logits = logits.masked_fill(future, float("-inf"))
            weights = logits.softmax(dim=-1)
            out = weights @ v
        else:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        out = out.transpose(1, 2).reshape(batch, length, -1)
        return self.proj_o(out), (weights if need_weights else None)


class TransformerDecoderBlock(nn.Module):
    """Pre-LayerNorm block: causal self-attention, cross-attention to slots, ReLU FFN."""

    def __init__(self, d_model: int, num_heads: int, gain: float, is_first: bool):
        super().__init__()
        self.is_first = is_first
        self.self_attn_norm = nn.LayerNorm(d_model)
        self.self_attn = MultiHeadAttention(d_model, num_heads, gain)
        self.cross_attn_norm = nn.LayerNorm(d_model)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, gain)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(linear(d_model, 4 * d_model, init="kaiming"), nn.ReLU(),
                                 linear(4 * d_model, d_model, gain=gain))

    def forward(self, tokens: torch.Tensor, slots: torch.Tensor, need_weights: bool, impl: str):
        if self.is_first:
            # Quirk of the original (SLATE) code, kept for checkpoint compatibility:
            # in the first block the normalised tokens replace the residual stream.
            tokens = self.self_attn_norm(tokens)
            tokens = tokens + self.self_attn(tokens, tokens, causal=True, impl=impl)[0]
        else:
            normed = self.self_attn_norm(tokens)
            tokens = tokens + self.self_attn(normed, normed, causal=True, impl=impl)[0]
        attended, cross_weights = self.cross_attn(self.cross_attn_norm(tokens), slots,
                                                  need_weights=need_weights, impl=impl)
        tokens = tokens + attended
        tokens = tokens + self.ffn(self.ffn_norm(tokens))
        return tokens, cross_weights


class TransformerDecoder(nn.Module):
    """A stack of decoder blocks and a final LayerNorm; returns the last cross-attention."""

    def __init__(self, num_blocks: int, d_model: int, num_heads: int):
        super().__init__()
        gain = (3 * num_blocks) ** -0.5
        self.blocks = nn.ModuleList(
            TransformerDecoderBlock(d_model, num_heads, gain, is_first=(i == 0)) for i in range(num_blocks))
        self.layer_norm = nn.LayerNorm(d_model)

    def forward(self, tokens: torch.Tensor, slots: torch.Tensor, impl: str = "sdpa"):
        """tokens [B, N, D], slots [B, K, D] -> (features [B, N, D], last cross-attn [B, heads, N, K])."""
        last = len(self.blocks) - 1
        for index, block in enumerate(self.blocks):
            tokens, cross_weights = block(tokens, slots, need_weights=(index == last), impl=impl)
        return self.layer_norm(tokens), cross_weights


def slot_projection(slot_size: int, d_model: int) -> nn.Sequential:
    """Slots -> decoder width: bias-free Linear(S, D) + LayerNorm."""
    return nn.Sequential(linear(slot_size, d_model, bias=False), nn.LayerNorm(d_model))


class AutoregressiveDecoder(nn.Module):
    """SPOT's decoder: teacher-forced autoregressive transformer over a chosen patch order."""

    def __init__(self, d_model: int, slot_size: int, num_patches: int, num_blocks: int = 4,
                 num_heads: int = 6, num_orders: int = 9, attention_impl: str = "sdpa"):
        """`num_orders`: [BOS] tokens = patch orders it can decode (9, or 1 for raster only)."""
        super().__init__()
        side = round(num_patches ** 0.5)
        if side * side != num_patches:
            raise ValueError(f"the decoder needs a square token grid; got {num_patches} tokens")
        if attention_impl not in ATTENTION_IMPLS:
            raise ValueError(f"attention_impl={attention_impl!r}; choose one of {ATTENTION_IMPLS}")
        if not 1 <= num_orders <= 9:
            raise ValueError(f"num_orders must be between 1 and 9 (one [BOS] token per order), got "
                             f"{num_orders}")
        self.num_patches, self.attention_impl = num_patches, attention_impl
        self.bos_tokens = nn.Parameter(torch.randn(num_orders, 1, 1, d_model) * 0.02)  # one per order
        self.input_proj = nn.Sequential(linear(d_model, d_model, bias=False), nn.LayerNorm(d_model))
        self.slot_proj = slot_projection(slot_size, d_model)
        self.transformer = TransformerDecoder(num_blocks, d_model, num_heads)
        orders = patch_orders(side)[:num_orders]
        self.register_buffer("orders", orders, persistent=False)                    # [P, N]
        self.register_buffer("inverse_orders", inverse_orders(orders), persistent=False)

    @property
    def num_orders(self) -> int:
        """Patch orders this decoder can run, one per [BOS] token."""
        return self.bos_tokens.shape[0]

    def check_order_ids(self, order_ids: Sequence[int]) -> None:
        """Refuse orders without a [BOS] token (a raster-only model decodes order 0 only)."""
        check_order_ids(order_ids, self.num_orders, where="this decoder")

    def decoder_inputs(self, targets: torch.Tensor,
                       order_ids: Sequence[int]) -> torch.Tensor:
        """Teacher forcing: per order, [BOS] + the targets in that order but the last."""
        self.check_order_ids(order_ids)
        batch = targets.shape[0]
        inputs = []
        for order_id in order_ids:
            shifted = targets[:, self.orders[order_id][:-1]]              # [B, N-1, D]
            bos = self.bos_tokens[order_id].expand(batch, -1, -1)        # [B, 1, D]
            bos = bos.to(targets.dtype)
            inputs.append(torch.cat([bos, shifted], dim=1))
        return self.input_proj(torch.cat(inputs, dim=0))                  # [P*B, N, D]

    def forward(self, slots: torch.Tensor, targets: torch.Tensor,
                order_ids: Sequence[int] = (0,)) -> DecoderOutput:
        """slots [B, K, S], targets [B, N, D]. Several orders run as one batch and are averaged."""
        if targets.shape[1] != self.num_patches:
            raise ValueError(f"decoder built for {self.num_patches} tokens, got {targets.shape[1]}")
        num_orders, batch = len(order_ids), targets.shape[0]
        tokens = self.decoder_inputs(targets, order_ids)                  # [P*B, N, D]
        slot_tokens = self.slot_proj(slots).repeat(num_orders, 1, 1)     # [P*B, K, D]
        features, cross_weights = self.transformer(tokens, slot_tokens, impl=self.attention_impl)
        masks = cross_weights.sum(dim=1)                                  # [P*B, N, K]
        masks = masks / masks.sum(dim=-1, keepdim=True)
        inverse = self.inverse_orders[list(order_ids)]                    # [P, N]
        index = inverse.repeat_interleave(batch, dim=0).unsqueeze(-1)     # [P*B, N, 1]
        features = features.gather(1, index.expand_as(features))          # back to raster order
        masks = masks.gather(1, index.expand_as(masks))
        return DecoderOutput(
            reconstruction=features.view(num_orders, batch, *features.shape[1:]).mean(0),
            masks=masks.view(num_orders, batch, *masks.shape[1:]).mean(0),
        )


class MLPDecoder(nn.Module):
    """DINOSAUR's spatial-broadcast MLP decoder (the baseline SPOT compares against)."""

    def __init__(self, d_model: int, slot_size: int, num_patches: int, hidden_size: int = 2048,
                 num_hidden_layers: int = 3):
        super().__init__()
        self.slot_proj = slot_projection(slot_size, d_model)
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches, d_model) * 0.02)
        layers: list[nn.Module] = []
        width = d_model
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(width, hidden_size), nn.ReLU()]
            width = hidden_size
        layers.append(nn.Linear(width, d_model + 1))  # D features + 1 alpha logit
        for layer in layers:
            if isinstance(layer, nn.Linear):
                nn.init.zeros_(layer.bias)
        self.mlp = nn.Sequential(*layers)

    def forward(self, slots: torch.Tensor, targets: torch.Tensor | None = None,
                order_ids: Sequence[int] = (0,)) -> DecoderOutput:
        """slots [B, K, S] -> reconstruction [B, N, D] and alpha masks [B, N, K]."""
        slot_tokens = self.slot_proj(slots)                                # [B, K, D]
        broadcast = slot_tokens.unsqueeze(2) + self.pos_embed.unsqueeze(1)  # [B, K, N, D]
        patches, alpha_logits = self.mlp(broadcast).split([broadcast.shape[-1], 1], dim=-1)
        alpha = alpha_logits.softmax(dim=1)                                # [B, K, N, 1]
        reconstruction = (patches * alpha).sum(dim=1)                      # [B, N, D]
        return DecoderOutput(reconstruction, alpha.squeeze(-1).transpose(1, 2))
