"""Import of the authors' published checkpoints, and starting a model from either kind of file.

`load_official_checkpoint` reads the `.pt` files written by the authors' training scripts
(stage 1 teacher, raster-only teacher with one [BOS] token, stage 2 student with its
`second_encoder`, DINOSAUR MLP baseline, older files whose decoder is named `tf_dec.`), maps
their parameter names onto this library's modules, infers what the shapes tell, and refuses
with a precise list of differences when something does not fit. What the shapes cannot tell
(the slot count of a Gaussian-init model, iterations, attention heads) comes from the config
passed in; `official_assumptions` lists those fields so callers can print them.

`initialize_from` starts a model from either kind of file, for fine-tuning (``--init-from``).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from spot_tutorial.config import FROZEN_ENCODER, SPOTConfig
from spot_tutorial.errors import CheckpointError
from spot_tutorial.io.checkpoint_file import (
    FORMAT,
    checkpoint_dict,
    load_state_strict,
    safe_load,
    with_num_slots,
)
from spot_tutorial.model.encoder import ViTEncoder, build_encoder
from spot_tutorial.model.spot import SPOT

# ------------------------------------------------------------------------------------------
# the authors' checkpoints
# (pattern in their parameter names, replacement in ours); applied in order, first match wins.
OFFICIAL_KEY_RULES: list[tuple[str, str]] = [
    (r"^second_encoder\.", "target_encoder.vit."),
    (r"^encoder\.", "encoder.vit."),
    (r"^slot_attn\.", "slot_attention."),
    (r"^bos_tokens$", "decoder.bos_tokens"),
    (r"^input_proj\.", "decoder.input_proj."),
    (r"^slot_proj\.", "decoder.slot_proj."),
    (r"^dec\.blocks\.(\d+)\.self_attn_layer_norm\.", r"decoder.transformer.blocks.\1.self_attn_norm."),
    (r"^dec\.blocks\.(\d+)\.encoder_decoder_attn_layer_norm\.",
     r"decoder.transformer.blocks.\1.cross_attn_norm."),
    (r"^dec\.blocks\.(\d+)\.encoder_decoder_attn\.", r"decoder.transformer.blocks.\1.cross_attn."),
    (r"^dec\.blocks\.(\d+)\.ffn_layer_norm\.", r"decoder.transformer.blocks.\1.ffn_norm."),
    (r"^dec\.blocks\.", "decoder.transformer.blocks."),
    (r"^dec\.layer_norm\.", "decoder.transformer.layer_norm."),
    (r"^dec\.pos_embed$", "decoder.pos_embed"),
    (r"^dec\.decoder\.", "decoder.mlp."),
]
# Stored by the authors but not parameters of ours: the causal mask is rebuilt on the fly;
# the MLP-decoder model keeps an unused [BOS] token and input projection.
OFFICIAL_UNUSED = re.compile(r"^dec\.blocks\.\d+\.self_attn_mask$")
OFFICIAL_UNUSED_MLP = re.compile(r"^(bos_tokens|input_proj\..*)$")
OLD_DECODER_PREFIX = "tf_dec."  # older name of the transformer decoder, read as "dec."
# Model shapes the weights do not reveal: they come from the config (preset or user).
UNREVEALED_FIELDS = ("num_iterations", "slot_att_heads")
UNREVEALED_TRANSFORMER_FIELDS = ("num_heads",)


def official_to_ours(key: str) -> str:
    for pattern, replacement in OFFICIAL_KEY_RULES:
        if re.match(pattern, key):
            return re.sub(pattern, replacement, key)
    raise CheckpointError(f"unknown parameter name in the authors' checkpoint: {key!r}")


def _read_official(path_or_state_dict: str | os.PathLike | Mapping[str, Any]) -> dict[str, torch.Tensor]:
    state = path_or_state_dict
    if not isinstance(state, Mapping):
        state = checkpoint_dict(safe_load(state), state)
    if "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]  # {'model': state_dict, 'optimizer': ..., 'epoch': ...}
    state = {k.removeprefix("module."): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not any(k.startswith("slot_attn.") for k in state):
        raise CheckpointError("this does not look like a SPOT checkpoint of the authors: "
                              "no 'slot_attn.*' parameters found")
    return _rename_old_decoder_prefix(state)


def _rename_old_decoder_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Older files name the transformer decoder `tf_dec.`; the authors' evaluation renames it `dec.`."""
    old = [k for k in state if k.startswith(OLD_DECODER_PREFIX)]
    if not old:
        return state
    if any(k.startswith("dec.") for k in state):
        raise CheckpointError("the checkpoint holds both 'tf_dec.*' and 'dec.*' decoder parameters; "
                              "keep one of them (they are the same decoder under its old and new name)")
    return {("dec." + k[len(OLD_DECODER_PREFIX):] if k in old else k): v for k, v in state.items()}


def _num_decoder_blocks(state: Mapping[str, torch.Tensor]) -> int:
    """Transformer blocks stored as dec.blocks.<i>.*, numbered 0..n-1 without gaps."""
    indices = {int(k.split(".")[2]) for k in state if re.match(r"^dec\.blocks\.\d+\.", k)}
    if not indices:
        prefixes = sorted({k.split(".")[0] for k in state})
        raise CheckpointError(
            "no decoder found in the authors' checkpoint: expected transformer blocks 'dec.blocks.<i>.*' "
            "(older files: 'tf_dec.blocks.<i>.*') or MLP-decoder layers 'dec.decoder.*'; the file's "
            f"top-level names are {prefixes}")
    if indices != set(range(max(indices) + 1)):
        raise CheckpointError(f"decoder blocks {sorted(indices)} are not numbered 0..n-1: the file is "
                              f"incomplete")
    return len(indices)


def infer_official_config(state: Mapping[str, torch.Tensor], config: SPOTConfig | None = None) -> SPOTConfig:
    """Fill in what the shapes tell; keep the rest from `config` (default: the COCO preset)."""
    config = config or SPOTConfig()
    found: dict[str, Any] = {}
    if "slot_attn.slots_init.weight" in state:
        found["init_method"] = "embedding"
        found["num_slots"], found["slot_size"] = state["slot_attn.slots_init.weight"].shape
    elif "slot_attn.slot_mu" in state:
        found["init_method"] = "shared_gaussian"
        found["slot_size"] = state["slot_attn.slot_mu"].shape[-1]
    found["mlp_hidden_size"] = state["slot_attn.slot_attention.mlp.0.weight"].shape[0]
    if "dec.decoder.0.weight" in state:
        found["dec_type"] = "mlp"
        found["mlp_dec_hidden"] = state["dec.decoder.0.weight"].shape[0]
        found["train_orders"] = found["eval_orders"] = "standard"
    else:
        found["dec_type"] = "transformer"
        found["num_dec_blocks"] = _num_decoder_blocks(state)
        found["num_bos_tokens"] = _num_bos_tokens(state)
        if found["num_bos_tokens"] == 1:  # trained with train_orders='standard'
            found["train_orders"] = found["eval_orders"] = "standard"
    if any(k.startswith("second_encoder.") for k in state):  # a stage-2 student
        found["truncate"] = "bi-level" if config.truncate == "none" else config.truncate
        if config.finetune_blocks_after >= FROZEN_ENCODER:
            found["finetune_blocks_after"] = 8
    return config.replace(**found)


def _num_bos_tokens(state: Mapping[str, torch.Tensor]) -> int:
    """One [BOS] per patch order the model was trained with: 9, or 1 for a raster-only model."""
    if "bos_tokens" not in state:
        raise CheckpointError("the authors' checkpoint has a transformer decoder but no 'bos_tokens'")
    return int(state["bos_tokens"].shape[0])


def official_assumptions(state: Mapping[str, torch.Tensor], config: SPOTConfig) -> dict[str, Any]:
    """Model shapes of an authors' checkpoint that its weights do not reveal, with the values in
    `config` (the ones a loaded model uses): print them next to the results."""
    state = _rename_old_decoder_prefix(dict(state))
    names = list(UNREVEALED_FIELDS)
    if "slot_attn.slots_init.weight" not in state:  # shared Gaussian: any number of slots
        names.insert(0, "num_slots")
    if "dec.decoder.0.weight" not in state:
        names += UNREVEALED_TRANSFORMER_FIELDS
    return {name: getattr(config, name) for name in names}


def load_official_checkpoint(path_or_state_dict: str | os.PathLike | Mapping[str, Any],
                             encoder: str | nn.Module = "vit_base_patch16_224.dino",
                             config: SPOTConfig | None = None, num_slots: int | None = None) -> SPOT:
    """A SPOT in eval mode from a checkpoint written by the authors' scripts.

    `encoder` is a timm model name (built with random weights: the checkpoint holds the
    encoder's weights) or a timm ViT module. Stage-2 checkpoints bring their `second_encoder`
    (the frozen target encoder). Shapes the weights do not reveal come from `config` (default:
    the COCO preset): see `official_assumptions`. `num_slots` sets the slot count of a
    Gaussian-init model; an embedding-init model stores its count, and a different one is refused.
    """
    state = _read_official(path_or_state_dict)
    config = infer_official_config(state, config or SPOTConfig())
    config = with_num_slots(config, num_slots, source="the checkpoint")
    has_target = any(k.startswith("second_encoder.") for k in state)
    if isinstance(encoder, str):
        config = config.replace(which_encoder=encoder)
        vit_encoder = build_encoder(encoder, config.image_size, pretrained=False,
                                    final_norm=config.encoder_final_norm)
    else:
        vit_encoder = encoder if isinstance(encoder, ViTEncoder) else ViTEncoder(encoder,
                                                                                 config.encoder_final_norm)
    target = None
    if has_target:
        import copy
        target = copy.deepcopy(vit_encoder)
    vit_encoder.set_trainable_blocks(config.finetune_blocks_after)
    model = SPOT(vit_encoder, config, target)

    unused = [k for k in state if OFFICIAL_UNUSED.match(k)
              or (config.dec_type == "mlp" and OFFICIAL_UNUSED_MLP.match(k))]
    check_causal_masks(state, unused)
    ours = {official_to_ours(k): v for k, v in state.items() if k not in unused}
    ours = _adapt_encoder_layout(model, ours)
    load_state_strict(model, ours, source=str(path_or_state_dict)[:200] if not isinstance(
        path_or_state_dict, Mapping) else "state dict")
    return model.eval()


def check_causal_masks(state: Mapping[str, torch.Tensor], keys: list[str]) -> None:
    for key in keys:
        if key.endswith("self_attn_mask"):
            mask = state[key].bool()
            expected = torch.ones_like(mask).triu(1)
            if not torch.equal(mask, expected):
                raise CheckpointError(f"{key} is not the upper-triangular causal mask we rebuild")


def _adapt_encoder_layout(model: SPOT, ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Let timm convert encoder weights stored in another layout (e.g. DINOv2's own names)."""
    from timm.models.vision_transformer import checkpoint_filter_fn
    for prefix, module in (("encoder.vit.", model.encoder), ("target_encoder.vit.", model.target_encoder)):
        if module is None:
            continue
        part = {k[len(prefix):]: v for k, v in ours.items() if k.startswith(prefix)}
        expected = module.vit.state_dict()
        if set(part) == set(expected) and all(part[k].shape == expected[k].shape for k in part):
            continue
        converted = checkpoint_filter_fn(part, module.vit)
        ours = {k: v for k, v in ours.items() if not k.startswith(prefix)}
        ours.update({prefix + k: v for k, v in converted.items()})
    return ours


# ------------------------------------------------------------------------------------------
# fine-tuning: start a model from the weights of another checkpoint (ours or the authors')
@dataclass
class InitReport:
    """What `initialize_from` copied into the model."""

    source: str
    kind: str                # "spot-tutorial" or "authors'"
    loaded: list[str]        # parameter names copied from the file
    kept_fresh: list[str]    # parameters of the model the file does not have (left as built)
    unused: list[str]        # tensors of the file the model has no place for

    def summary(self) -> str:
        parts = [f"initialised from {self.source} ({self.kind} checkpoint): {len(self.loaded)} tensors "
                 f"loaded"]
        for title, names in (("kept as built", self.kept_fresh), ("not used", self.unused)):
            if names:
                shown = ", ".join(names[:6]) + (f", ... ({len(names)} in all)" if len(names) > 6 else "")
                parts.append(f"{title}: {shown}")
        return "; ".join(parts)


def checkpoint_state(path: str | os.PathLike, config: SPOTConfig) -> tuple[dict[str, torch.Tensor], str]:
    """(state dict in our parameter names, kind) of our checkpoint or an authors' one.

    An authors' file is read with `config` for what its weights do not store (its encoder is
    built from `config.which_encoder`, without downloading: the file holds the weights).
    """
    payload = safe_load(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        return dict(payload["model"]), "spot-tutorial"
    model = load_official_checkpoint(payload, config.which_encoder, config)
    return model.state_dict(), "authors'"


def initialize_from(model: SPOT, path: str | os.PathLike) -> InitReport:
    """Copy the weights of checkpoint `path` into `model` wherever names and shapes agree.

    For fine-tuning (``spot train --init-from``). A stage-2 model started from a stage-1 file
    gets the file's frozen encoder as its target encoder too. Parameters the file does not have
    (e.g. learned slot embeddings when the file has a shared Gaussian) keep their fresh values
    and are listed; a parameter stored with another shape is refused.
    """
    state, kind = checkpoint_state(path, model.config)
    expected = model.state_dict()
    target_prefix, encoder_prefix = "target_encoder.", "encoder."
    expects_target = any(k.startswith(target_prefix) for k in expected)
    if expects_target and not any(k.startswith(target_prefix) for k in state):
        state.update({target_prefix + k[len(encoder_prefix):]: v for k, v in state.items()
                      if k.startswith(encoder_prefix)})
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if mismatched:
        raise CheckpointError(f"--init-from {path} does not fit the model being trained (same encoder, slot "
                              "size and decoder sizes are needed):\n    " + "\n    ".join(mismatched[:20]))
    loaded = sorted(set(state) & set(expected))
    if not any(k.startswith("slot_attention.") for k in loaded):
        raise CheckpointError(f"--init-from {path}: no slot-attention weights fit the model; is it a SPOT "
                              f"checkpoint?")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return InitReport(str(path), kind, loaded, sorted(set(expected) - set(state)),
                      sorted(set(state) - set(expected)))
