"""The frozen (or partly fine-tuned) ViT that turns an image into patch features (paper, section 3).

SPOT, like DINOSAUR, reconstructs self-supervised ViT features rather than pixels. Any timm
ViT works: DINO ViT-B/16 (the paper's default), DINO ViT-S/8, DINOv2 with or without
registers, MAE ViT-B/16. The output is the tokens after the last block, WITHOUT the final
LayerNorm (DINOSAUR convention) unless asked for, with CLS and register tokens dropped.
In stage 2 the blocks from `finetune_blocks_after` on are trained; the encoder always stays
in eval mode (no dropout, no drop-path).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import timm
import torch
from torch import nn

from spot_tutorial.config import FROZEN_ENCODER
from spot_tutorial.errors import CheckpointError, InputError

ENCODER_NAMES = {
    "dino_vitb16": "vit_base_patch16_224.dino",
    "dino_vits8": "vit_small_patch8_224.dino",
    "dinov2_vitb14": "vit_base_patch14_dinov2.lvd142m",
    "dinov2_vitb14_reg": "vit_base_patch14_reg4_dinov2.lvd142m",
    "mae_vitb16": "vit_base_patch16_224.mae",
}
TINY_ENCODER = "tiny"  # CPU tutorial encoder, see `tiny_vit`
# The CPU tutorial's small self-supervised ViT: trained by `spot_tutorial.training.pretrain_encoder`
# (DINO on the camouflage scenes) and shipped with the package, so it loads with no network.
TINY_DINO_ENCODER = "tiny-dino"
TINY_DINO_WEIGHTS = Path(__file__).resolve().parents[1] / "weights" / "tiny_dino.safetensors"


class OfflineError(RuntimeError):
    """Pretrained weights were asked for but cannot be downloaded."""


class ViTEncoder(nn.Module):
    """Wraps a timm VisionTransformer: images [B, 3, H, W] -> patch tokens [B, N, D]."""

    def __init__(self, vit: nn.Module, final_norm: bool = False, finetune_blocks_after: int = FROZEN_ENCODER):
        super().__init__()
        if not hasattr(vit, "patch_embed") or not hasattr(vit, "blocks"):
            raise TypeError(f"expected a timm VisionTransformer, got {type(vit).__name__}")
        self.vit = vit
        self.final_norm = final_norm
        self.set_trainable_blocks(finetune_blocks_after)
        self.train(False)

    # -- properties readers need -------------------------------------------------
    @property
    def embed_dim(self) -> int:
        return self.vit.embed_dim

    @property
    def image_size(self) -> int:
        return int(self.vit.patch_embed.img_size[0])

    @property
    def grid_size(self) -> int:
        return int(self.vit.patch_embed.grid_size[0])

    @property
    def num_patches(self) -> int:
        return self.grid_size ** 2

    # -- freezing ----------------------------------------------------------------
    def set_trainable_blocks(self, finetune_blocks_after: int) -> None:
        """Freeze everything except transformer blocks with index >= finetune_blocks_after."""
        self.finetune_blocks_after = finetune_blocks_after
        for name, param in self.vit.named_parameters():
            parts = name.split(".")
            is_late_block = parts[0] == "blocks" and int(parts[1]) >= finetune_blocks_after
            param.requires_grad_(is_late_block)

    @property
    def is_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.vit.parameters())

    def train(self, mode: bool = True) -> "ViTEncoder":
        # Always eval: the paper never uses the encoder's dropout or drop-path.
        super().train(False)
        return self

    # -- forward -------------------------------------------------------------------
    def check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"expected images [B, 3, H, W], got shape {tuple(images.shape)}")
        size = self.image_size
        if tuple(images.shape[-2:]) != (size, size):
            raise InputError(
                f"images are {images.shape[-2]}x{images.shape[-1]} but this encoder was built for "
                f"{size}x{size}: resize/crop them (spot_tutorial.data transforms), or use "
                "spot_tutorial.segment() for images of any size")

    def embed(self, images: torch.Tensor) -> torch.Tensor:
        """Patch embedding + position embedding (+ CLS / register tokens).  # [B, P+N, D]"""
        self.check_images(images)
        vit = self.vit
        return vit.norm_pre(vit.patch_drop(add_position_embedding(vit, vit.patch_embed(images))))

    def run_blocks(self, tokens: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        """Transformer blocks start..stop-1 (default: to the end)."""
        for block in self.vit.blocks[start:stop]:
            tokens = block(tokens)
        return tokens

    def patch_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Optional final LayerNorm, then drop CLS / register tokens.  # [B, N, D]"""
        if self.final_norm:
            tokens = self.vit.norm(tokens)
        return tokens[:, self.vit.num_prefix_tokens:]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.patch_tokens(self.run_blocks(self.embed(images)))

    def frozen_prefix_shared_with(self, other: "ViTEncoder") -> int:
        """How many leading blocks are frozen here and hold the same weights as in `other`.

        Stage 2 runs two encoders on the same images: the trained one and its frozen copy for
        the targets. Their frozen leading blocks compute the same thing, so `SPOT.encode`
        runs them once. 0 when the embeddings differ.
        """
        def same(a: nn.Module, b: nn.Module) -> bool:
            pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
            return pa.keys() == pb.keys() and all(
                not pa[k].requires_grad and pa[k].shape == pb[k].shape and torch.equal(pa[k],
                                                                                       pb[k]) for k in pa)

        vit, other_vit = self.vit, other.vit
        embed_names = [n for n, _ in vit.named_parameters() if not n.startswith(("blocks.", "norm.",
                                                                                 "fc_norm.", "head"))]
        own, theirs = dict(vit.named_parameters()), dict(other_vit.named_parameters())
        if any(n not in theirs or own[n].requires_grad or not torch.equal(own[n],
                                                                          theirs[n]) for n in embed_names):
            return 0
        shared = 0
        for block, other_block in zip(vit.blocks, other_vit.blocks, strict=False):
            if not same(block, other_block):
                break
            shared += 1
        return shared


def add_position_embedding(vit: nn.Module, patches: torch.Tensor) -> torch.Tensor:
    """timm's step that adds the position embeddings and prepends CLS / register tokens.

    timm has no public name for it (it is `VisionTransformer._pos_embed`), and SPOT needs the
    tokens between the embedding and the blocks (stage 2 runs the shared blocks once). This is the
    only call of it; tests/test_encoders.py checks the whole path against timm's public
    `forward_features`, so a change of its meaning in a new timm fails there.
    """
    step = getattr(vit, "_pos_embed", None)
    if step is None:
        raise RuntimeError(f"timm {timm.__version__}: VisionTransformer has no _pos_embed, which "
                           "spot_tutorial.model.encoder uses to embed the patches; install a timm release "
                           "that has it (0.9.12 - 1.0.x) and report the new version as an issue")
    return step(patches)  # [B, P+N, D]


# ----------------------------------------------------------------------------------
def tiny_vit(image_size: int = 64, patch_size: int = 8, embed_dim: int = 64,
             pos_embed_scale: float = 0.5) -> nn.Module:
    """A depth-0 timm ViT (patch embedding only) with fixed 2-D sin-cos positions.

    Used by the CPU tutorials: with random frozen weights it is a random linear projection of
    each 8x8 patch plus a position code, enough for slot attention to group simple shapes in
    minutes. timm's learned position embeddings start near zero, so a fixed sin-cos code scaled
    by 0.5 is used instead.
    """
    vit = timm.models.vision_transformer.VisionTransformer(
        img_size=image_size, patch_size=patch_size, embed_dim=embed_dim, depth=0, num_heads=4,
        num_classes=0)
    grid = image_size // patch_size
    sincos = timm.layers.build_sincos2d_pos_embed([grid, grid], dim=embed_dim)  # [N, D]
    with torch.no_grad():
        vit.pos_embed.zero_()
        vit.pos_embed[0, vit.num_prefix_tokens:] = pos_embed_scale * sincos
    return vit


def small_vit(image_size: int = 64, patch_size: int = 8, embed_dim: int = 128, depth: int = 4,
              num_heads: int = 4) -> nn.Module:
    """A small timm ViT with a CLS token (the shape pretrained by DINO for the CPU tutorials)."""
    return timm.models.vision_transformer.VisionTransformer(
        img_size=image_size, patch_size=patch_size, embed_dim=embed_dim, depth=depth,
        num_heads=num_heads, num_classes=0, dynamic_img_size=True)


def verify_sha256(path: Path) -> None:
    """Compare a file with the digest in the ``.sha256`` file beside it (as `sha256sum` writes)."""
    import hashlib

    digest_file = path.with_suffix(".sha256")
    if not path.is_file() or not digest_file.is_file():
        raise CheckpointError(f"{path} or its checksum {digest_file.name} is missing: reinstall "
                              "spot-tutorial, or rebuild the weights with "
                              "spot_tutorial.training.pretrain_encoder")
    expected = digest_file.read_text().split()[0]
    found = hashlib.sha256(path.read_bytes()).hexdigest()
    if found != expected:
        raise CheckpointError(f"{path} is damaged or was replaced: its sha256 is {found}, expected "
                              f"{expected}; reinstall spot-tutorial or rebuild the weights")


def tiny_dino_vit(image_size: int = 64, path: str | os.PathLike = TINY_DINO_WEIGHTS) -> nn.Module:
    """The shipped self-supervised small ViT (DINO + iBOT), its shape read from the recipe in the file."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    verify_sha256(path)
    with safe_open(str(path), "pt") as weights:
        recipe = json.loads(weights.metadata()["recipe"])
    vit = small_vit(image_size, recipe["patch_size"], recipe["embed_dim"], recipe["depth"],
                    recipe["num_heads"])
    vit.load_state_dict(load_file(str(path)))
    return vit


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """A quick check (seconds, not timm's ~50 s of retries) that the model hub answers."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _offline_message(name: str) -> str:
    return (f"Pretrained weights for '{name}' are needed but the model hub cannot be reached "
            "(no network, or HF_HUB_OFFLINE=1) and they are not in the local cache. Either run "
            "once with internet access (e.g. in Colab) so timm downloads and caches them, or pass "
            "a local weights file: build_encoder(name, weights_path='/path/to/weights.pth or "
            ".safetensors'). Tests and tutorials can use pretrained=False (random weights).")


def cached_weights(name: str) -> str | None:
    """Path of the timm weights of `name` in the local Hugging Face cache, if any (no network)."""
    from huggingface_hub import try_to_load_from_cache

    hub_id = getattr(timm.models.get_pretrained_cfg(name), "hf_hub_id", None)
    if not hub_id:
        return None
    for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
        path = try_to_load_from_cache(hub_id, filename)
        if isinstance(path, str):
            return path
    return None


def create_vit(name: str, image_size: int = 224, pretrained: bool = False) -> nn.Module:
    """timm ViT by name, with a fast, clear failure when pretrained weights can't be fetched."""
    name = ENCODER_NAMES.get(name, name)
    kwargs = dict(num_classes=0, img_size=image_size)
    if not pretrained:
        return timm.create_model(name, pretrained=False, **kwargs)
    if hub_reachable():
        return timm.create_model(name, pretrained=True, **kwargs)
    cached = cached_weights(name)  # offline: only the local cache, never timm's slow retries
    if cached is None:
        raise OfflineError(_offline_message(name))
    return timm.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=cached), **kwargs)


def load_weights_file(vit: nn.Module, path: str | os.PathLike) -> None:
    """Load a local weights file (timm, DINO or DINOv2 layout; .pth/.pt or .safetensors)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"encoder weights file not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(str(path))
    else:
        state = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "teacher"):  # common wrappers
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    state = {k.removeprefix("module.").removeprefix("backbone."): v for k, v in state.items()}
    state = timm.models.vision_transformer.checkpoint_filter_fn(state, vit)
    missing, unexpected = vit.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("head")]
    if missing:
        raise CheckpointError(f"{path} does not fit this ViT: missing {missing[:8]}"
                         f"{' ...' if len(missing) > 8 else ''}; unexpected {unexpected[:8]}")


def build_encoder(name: str = "vit_base_patch16_224.dino", image_size: int = 224,
                  pretrained: bool = False, weights_path: str | os.PathLike | None = None,
                  final_norm: bool = False, finetune_blocks_after: int = FROZEN_ENCODER,
                  pos_embed_scale: float = 0.5) -> ViTEncoder:
    """Build the patch-feature encoder.

    `name` is a timm model name, a short alias from ENCODER_NAMES, 'tiny' (the CPU tutorials'
    pixel encoder) or 'tiny-dino' (their shipped self-supervised ViT, loaded with no network).
    `pretrained=True` uses timm's hub download; `weights_path` loads a local file instead.
    """
    if name == TINY_ENCODER:
        vit = tiny_vit(image_size=image_size, pos_embed_scale=pos_embed_scale)
    elif name == TINY_DINO_ENCODER:
        vit = tiny_dino_vit(image_size)
    else:
        vit = create_vit(name, image_size, pretrained=pretrained and weights_path is None)
    if weights_path is not None:
        load_weights_file(vit, weights_path)
    return ViTEncoder(vit, final_norm=final_norm, finetune_blocks_after=finetune_blocks_after)
