"""Named recipes: the paper's configurations as a registry, in the spirit of timm's `create_model`.

`get_preset(name, **overrides)` returns a validated `SPOTConfig`; `register_preset` adds a
named recipe of your own and `list_presets` names them all. The built-in ones: `coco` (the
default, the paper's COCO run), `voc`, `movi_c` / `movi_e` (the authors' released MOVi commands),
`tiny` / `synthetic` (the CPU model of the tutorials), `camouflage` (the CPU model with its
DINO-pretrained encoder on scenes colour cannot segment). `student_config` turns a stage-1
(teacher) configuration into the stage-2 student's, as the paper does.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from spot_tutorial.config import SPOTConfig
from spot_tutorial.errors import ConfigError

# ----------------------------------------------------------------------------
# Presets. `coco` is the default; the others change only what the paper changes.
# `movi_c` / `movi_e` follow the authors' released MOVi commands (their repository's README):
# 11 / 24 slots, 65 epochs with lr 2e-4 -> 4e-5, 128-px ground truth, frames not cropped.
# `tiny` is the CPU tutorial model (64 px images, the small CPU encoder).
PRESETS: dict[str, dict[str, Any]] = {
    "coco": {},
    "voc": dict(dataset="voc", num_slots=6, epochs=560, center_crop=True, random_crop=True),
    "movi_c": dict(dataset="movi_c", num_slots=11, epochs=65, lr_main=2e-4, lr_min=4e-5,
                   gt_mask_size=128, center_crop=False),
    "movi_e": dict(dataset="movi_e", num_slots=24, epochs=65, lr_main=2e-4, lr_min=4e-5,
                   gt_mask_size=128, center_crop=False),
    "tiny": dict(which_encoder="tiny", dataset="synthetic", image_size=64, num_slots=5, slot_size=64,
                 mlp_hidden_size=128, num_dec_blocks=2, num_heads=4, mlp_dec_hidden=256,
                 batch_size=32, epochs=1, lr_warmup_steps=30, lr_min=4e-6, gt_mask_size=64,
                 num_workers=0, pos_embed_scale=0.5),
}
PRESETS["synthetic"] = PRESETS["tiny"]
# `camouflage`: the miniature in SPOT's regime (`spot quickstart --scenes camouflage`; the
# tutorials still use `tiny`): the camouflage scenes, which colour alone cannot segment, seen
# through the shipped self-supervised small ViT ('tiny-dino': DINO + iBOT's masked-patch term;
# 4 blocks, width 128, patch 8) with its final LayerNorm; 7 slots for 3-6 objects and the
# background; its frozen features computed once.
PRESETS["camouflage"] = dict(PRESETS["tiny"], which_encoder="tiny-dino", encoder_final_norm=True,
                             synthetic_difficulty="camouflage", num_slots=7, cache_features=True)

# Stage-2 (student) schedule where it differs from stage 1, per dataset; applied on top of the
# teacher's configuration by `student_config`. MOVi, as in the authors'
# stage-2 MOVi command: 30 epochs, lr 2e-4 -> 1.5e-4. COCO and VOC keep their stage-1 schedule.
STAGE2_SETTINGS: dict[str, dict[str, Any]] = {
    "movi_c": dict(epochs=30, lr_main=2e-4, lr_min=1.5e-4),
    "movi_e": dict(epochs=30, lr_main=2e-4, lr_min=1.5e-4),
}


# Stage 2 student, as in the paper: learned slot embeddings, bi-level truncation, ViT blocks
# with index >= 8 trained (the frozen target copy is built by SPOT.from_config).
STUDENT_SETTINGS = dict(init_method="embedding", truncate="bi-level", finetune_blocks_after=8)


def student_config(config: SPOTConfig) -> SPOTConfig:
    """The stage-2 student's configuration for a stage-1 (teacher) configuration.

    The student settings above, plus the dataset's stage-2 schedule where it has its own
    (`STAGE2_SETTINGS`: MOVi trains 30 epochs with lr 2e-4 -> 1.5e-4).
    """
    return config.replace(**STUDENT_SETTINGS, **STAGE2_SETTINGS.get(config.dataset, {}))


def register_preset(name: str, **settings: Any) -> None:
    """Add a named recipe: the `SPOTConfig` fields it changes from the COCO defaults.

    The settings are checked at once (an unknown field or a bad value is refused here, not when
    the recipe is first used), and a built-in name cannot be redefined.
    """
    if name in PRESETS:
        raise ConfigError(f"a preset named {name!r} exists already; pick another name")
    unknown = sorted(set(settings) - {f.name for f in dataclasses.fields(SPOTConfig)})
    if unknown:
        raise ConfigError(f"register_preset({name!r}): {unknown} are not SPOTConfig fields")
    SPOTConfig(**settings)
    PRESETS[name] = dict(settings)


def list_presets() -> list[str]:
    """The names `get_preset` knows, sorted."""
    return sorted(PRESETS)


def get_preset(name: str, **overrides: Any) -> SPOTConfig:
    """The named preset as a `SPOTConfig`, with optional field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return SPOTConfig(**{**PRESETS[name], **overrides})
