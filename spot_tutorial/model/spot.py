"""SPOT: ViT encoder -> slot attention -> autoregressive decoder (paper, section 3, Fig. 2).

The model reconstructs the encoder's patch features from K slots. It returns everything a
reader, a trainer or an evaluator needs as one named `SPOTOutput`: the loss, the slots, the
two kinds of masks (slot-attention masks and decoder cross-attention masks) and the logits
that stage-2 self-training distils into. It knows nothing about optimisers or data.
"""

from __future__ import annotations

import copy
import functools
from contextlib import nullcontext

import torch
from torch import nn

from spot_tutorial.config import FROZEN_ENCODER, Architecture, SPOTConfig
from spot_tutorial.errors import ConfigError, InputError
from spot_tutorial.model.decoders import AutoregressiveDecoder, MLPDecoder
from spot_tutorial.model.encoder import ViTEncoder, build_encoder
from spot_tutorial.model.outputs import SPOTOutput, grid_maps
from spot_tutorial.model.permutations import select_orders
from spot_tutorial.model.slot_attention import SlotAttentionEncoder
from spot_tutorial.orders import OrderSpec, check_order_ids


class SPOT(nn.Module):
    """SPOT, built from its architecture: encoder -> slot attention -> decoder.

    Args:
        encoder: a `ViTEncoder` or a bare timm ViT (wrapped with the architecture's options).
        architecture: the model's shape (`spot_tutorial.config.Architecture`, what a checkpoint
            stores next to the weights). A whole `SPOTConfig` is accepted too: its architecture
            builds the model, its settings are kept for `config` and checkpoints.
        target_encoder: stage 2's frozen copy of the encoder, which gives the reconstruction targets.
        train_orders / eval_orders: the patch orders decoded in train / eval mode when `forward`
            is not told ('random', 'standard', 'all' or order ids); default: those of the config,
            or 'random' / 'standard' ('standard' only, for a model with one [BOS] token).
        attention_impl: the decoder's attention kernel, 'sdpa' or 'math' (the same math).
    """

    def __init__(self, encoder: nn.Module, architecture: Architecture | SPOTConfig,
                 target_encoder: nn.Module | None = None, *, train_orders: OrderSpec | None = None,
                 eval_orders: OrderSpec | None = None, attention_impl: str | None = None):
        super().__init__()
        settings = architecture.settings() if isinstance(architecture, SPOTConfig) else {}
        chosen = dict(train_orders=train_orders, eval_orders=eval_orders,
                      attention_impl=attention_impl)
        settings.update({name: value for name, value in chosen.items() if value is not None})
        self.architecture = shape = (architecture.architecture if isinstance(architecture, SPOTConfig)
                                     else architecture)
        self._settings = settings
        config = self.config  # checks the orders against the architecture
        self.train_orders, self.eval_orders = config.train_orders, config.eval_orders
        self.encoder = as_vit_encoder(encoder, shape)
        self.target_encoder = None if target_encoder is None else as_vit_encoder(target_encoder, shape,
                                                                                 frozen=True)
        grid = self.encoder.grid_size
        if self.encoder.vit.patch_embed.grid_size[0] != self.encoder.vit.patch_embed.grid_size[1]:
            raise ValueError(f"SPOT needs a square token grid, the encoder gives "
                             f"{tuple(self.encoder.vit.patch_embed.grid_size)}")
        d_model, num_patches = self.encoder.embed_dim, grid * grid
        self.slot_attention = SlotAttentionEncoder(
            d_model, shape.num_slots, shape.slot_size, shape.mlp_hidden_size,
            shape.num_iterations, shape.slot_att_heads, shape.truncate, shape.init_method)
        if shape.dec_type == "transformer":
            self.decoder = AutoregressiveDecoder(
                d_model, shape.slot_size, num_patches, shape.num_dec_blocks, shape.num_heads,
                shape.num_orders, config.attention_impl)
        else:
            self.decoder = MLPDecoder(d_model, shape.slot_size, num_patches, shape.mlp_dec_hidden)
        # stage 2: run the frozen leading encoder blocks once for both encoders (same math)
        self.share_encoder_blocks = True
        self._shared_blocks: tuple | None = None  # (frozen parameters' versions, number of shared blocks)

    @functools.cached_property
    def config(self) -> SPOTConfig:
        """The architecture with the settings this model was built with (what checkpoints store)."""
        return SPOTConfig.from_architecture(self.architecture, **self._settings)

    @classmethod
    def from_config(cls, config: SPOTConfig, pretrained: bool = False,
                    weights_path: str | None = None) -> "SPOT":
        """Build encoder(s) from the config: a frozen target copy when some blocks are trained."""
        encoder = build_encoder(config.which_encoder, config.image_size, pretrained, weights_path,
                                config.encoder_final_norm, config.finetune_blocks_after,
                                config.pos_embed_scale)
        target = None
        if not encoder.is_frozen:
            target = copy.deepcopy(encoder)
            target.set_trainable_blocks(FROZEN_ENCODER)
        return cls(encoder, config, target)

    def compile_modules(self) -> "SPOT":
        """`torch.compile` the heavy parts in place: every ViT block, slot attention, the decoder.

        Regional compilation: each block is compiled on its own (the blocks share code, so they
        share compiled graphs), while the Python around them (the choice of patch orders, the
        shared encoder blocks of stage 2) stays eager. Parameters and state_dict keys do not
        change, so checkpoints are the same with and without it.
        """
        blocks = [block for encoder in (self.encoder, self.target_encoder) if encoder is not None
                  for block in encoder.vit.blocks]
        decoder = getattr(self.decoder, "transformer", self.decoder)  # AR: its transformer blocks
        for module in (*blocks, self.slot_attention, decoder):
            module.compile()
        return self

    # ------------------------------------------------------------------
    def shared_encoder_blocks(self) -> int:
        """Leading encoder blocks that the target encoder shares (frozen, same weights).

        Decided by comparing the weights once, when first asked after the model is built, and
        again only if a *frozen* parameter of either encoder is replaced or modified in place
        (loading a checkpoint, say), which the tensors' version counters reveal. The optimiser's
        updates of the trained blocks change nothing here, so training never pays for the check.
        """
        if self.target_encoder is None:
            return 0
        params = [*self.encoder.parameters(), *self.target_encoder.parameters()]
        key = tuple((id(p), p._version) if not p.requires_grad else (id(p), -1) for p in params)
        if self._shared_blocks is None or self._shared_blocks[0] != key:
            self._shared_blocks = (key, self.encoder.frozen_prefix_shared_with(self.target_encoder))
        return self._shared_blocks[1]

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(features for slot attention, reconstruction targets), both [B, N, D]."""
        if self.target_encoder is None:
            with torch.no_grad() if self.encoder.is_frozen else nullcontext():
                features = self.encoder(images)
            return features, features.detach()
        shared = self.shared_encoder_blocks() if self.share_encoder_blocks else 0
        if shared == 0:
            with torch.no_grad():
                target = self.target_encoder(images)
            return self.encoder(images), target
        with torch.no_grad():  # frozen leading blocks: computed once for both encoders
            tokens = self.encoder.run_blocks(self.encoder.embed(images), start=0, stop=shared)
            target = self.target_encoder.patch_tokens(self.target_encoder.run_blocks(tokens, start=shared))
        features = self.encoder.patch_tokens(self.encoder.run_blocks(tokens, start=shared))
        return features, target

    def forward(self, images: torch.Tensor, orders: OrderSpec | None = None,
                features: torch.Tensor | None = None) -> SPOTOutput:
        """images [B, 3, H, W], float, ImageNet-normalised; `orders` overrides the config's
        train/eval orders ('all' and 'random' mean the orders this model has: order 0 only for a
        model with one [BOS] token, which refuses explicit ids other than 0). `features` [B, N, D]:
        this model's frozen encoder's output for `images`, computed earlier (`training.feature_cache`):
        the encoder is skipped, the rest is the same computation."""
        if features is not None:
            self.check_cached_features(features)
            return self.forward_features(features, features, orders)
        check_image_dtype(images)
        features, target = self.encode(images)
        return self.forward_features(features, target, orders)

    def check_cached_features(self, features: torch.Tensor) -> None:
        """Precomputed features stand for the encoder only where it is frozen and is the target."""
        if self.target_encoder is not None or not self.encoder.is_frozen:
            raise ConfigError("precomputed features need a frozen encoder that also gives the targets; "
                              "this model trains encoder blocks (finetune_blocks_after): pass images")
        expected = (self.encoder.num_patches, self.encoder.embed_dim)
        if features.ndim != 3 or tuple(features.shape[1:]) != expected:
            raise InputError(f"precomputed features must be [B, {expected[0]}, {expected[1]}] for this "
                             f"encoder, got {tuple(features.shape)}: compute them with this model's encoder")

    def forward_features(self, features: torch.Tensor, target: torch.Tensor,
                         orders: OrderSpec | None = None) -> SPOTOutput:
        """Slot attention + decoder on precomputed encoder features [B, N, D] and targets [B, N, D]."""
        slot_out = self.slot_attention(features)
        if orders is None:
            orders = self.train_orders if self.training else self.eval_orders
        order_ids = self.order_ids(orders)
        decoded = self.decoder(slot_out.slots, target, order_ids)
        loss = (target - decoded.reconstruction).pow(2).sum() / target.numel()
        # logsumexp over heads: softmax over slots of these logits == slot masks (any #heads)
        slot_logits = slot_out.slot_logits.logsumexp(dim=1)  # [B, N, K]
        return SPOTOutput(
            loss=loss,
            slots=slot_out.slots,
            slot_masks=grid_maps(slot_out.slot_masks),
            decoder_masks=grid_maps(decoded.masks),
            reconstruction=decoded.reconstruction,
            target=target,
            slot_logits=grid_maps(slot_logits),
            order_ids=order_ids,
        )


    def order_ids(self, orders: OrderSpec) -> list[int]:
        """The order ids one forward pass runs; explicit ids this model cannot decode are refused."""
        where = f"this model (decoder {self.architecture.dec_type!r})"
        if not isinstance(orders, str):
            check_order_ids(orders, self.architecture.num_orders, where)
        return select_orders(orders, self.architecture.num_orders)


def check_image_dtype(images: torch.Tensor) -> None:
    """The model takes float images normalised with the ImageNet mean/std, not raw pixels."""
    if not isinstance(images, torch.Tensor):
        raise InputError(f"images must be a float tensor [B, 3, H, W], got {type(images).__name__}; "
                         "for PIL images or arrays use spot_tutorial.segment()")
    if not images.is_floating_point():
        raise InputError(
            f"images must be a float tensor [B, 3, H, W] normalised with the ImageNet mean/std, got dtype "
            f"{images.dtype}: convert with images.float() / 255, then normalise "
            "(spot_tutorial.data transforms), or use spot_tutorial.segment(), which does both")


def refuse_nan(images: torch.Tensor, what: str = "the image tensor") -> None:
    """NaN pixels make every mask NaN (and every label 0) without an error: refuse them."""
    nan = int(torch.isnan(images).sum())
    if nan:
        raise InputError(f"{what} holds {nan} NaN value(s) (of {images.numel()}): the masks "
                         "would all be NaN; replace or drop those pixels first")


def as_vit_encoder(encoder: nn.Module, architecture: Architecture, frozen: bool = False) -> ViTEncoder:
    """Accept a ViTEncoder or a bare timm ViT (wrapped with the architecture's freezing options)."""
    if isinstance(encoder, ViTEncoder):
        return encoder
    blocks_after = FROZEN_ENCODER if frozen else architecture.finetune_blocks_after
    return ViTEncoder(encoder, final_norm=architecture.encoder_final_norm, finetune_blocks_after=blocks_after)
