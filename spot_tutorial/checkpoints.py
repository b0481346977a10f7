"""Checkpoints: our own safe save/load, and import of the authors' published checkpoints.

Our files are plain `torch.save` dictionaries of tensors and JSON-like values, read back with
`torch.load(..., weights_only=True)` (no arbitrary pickle), and written atomically (temporary
file + rename) so a crash or a kill never leaves a half-written checkpoint. Every file holds the
model's architecture next to its weights, which is all `load_model` needs::

    format 2 (now):    {"format": "spot-tutorial", "version": 2, "architecture": {...},
                        "settings": {training and runtime settings}, "model": state_dict, ...}
    format 1 (before): {"format": "spot-tutorial", "version": 1, "config": {every field}, "model": ...}

Both load (`checkpoint_config`). A training run's own state on top of this (optimiser, progress,
random states) is `spot_tutorial.checkpointing`.

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
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from .config import SPOTConfig
from .encoders import ViTEncoder, build_encoder
from .errors import CheckpointError
from .model import SPOT

FORMAT = "spot-tutorial"
FORMAT_VERSION = 2  # 2: architecture and settings apart; 1: one flat "config"

__all__ = ["CheckpointError", "save_model", "load_model", "config_payload", "checkpoint_config", "load_official_checkpoint", "infer_official_config",
           "official_assumptions", "atomic_save", "safe_load", "load_state_strict", "initialize_from",
           "InitReport"]


# ------------------------------------------------------------------------------------------
# our own checkpoints
def atomic_save(payload: Any, path: str | os.PathLike) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as tmp:
            torch.save(payload, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
        raise


def safe_load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> Any:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # pickle errors, truncated files, ...
        raise CheckpointError(
            f"cannot read {path} as a safe (weights-only) torch checkpoint: {error}. "
            "Is the file complete and written by spot-tutorial or the SPOT authors' scripts?") from error


def config_payload(config: SPOTConfig) -> dict[str, Any]:
    """The header of every checkpoint we write: format, version, architecture, settings."""
    return {"format": FORMAT, "version": FORMAT_VERSION, "architecture": config.architecture.to_dict(),
            "settings": config.settings()}


def checkpoint_config(payload: Mapping[str, Any], source: str = "checkpoint") -> SPOTConfig:
    """The configuration stored in one of our checkpoints, format 2 or 1.

    Format 2 needs only its "architecture"; its "settings" (training and runtime) fill the rest
    where present. Format 1 files (one flat "config", e.g. the tutorial's stored checkpoints)
    written before `num_bos_tokens` existed load with its default (9; MLP decoder: 1).
    """
    version = payload.get("version", 1)
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{source} is a format-{version} checkpoint; this spot-tutorial reads formats "
                              f"1 to {FORMAT_VERSION}: update spot-tutorial")
    if "architecture" in payload:
        return SPOTConfig.from_architecture(payload["architecture"], **payload.get("settings", {}))
    if "config" in payload:
        return SPOTConfig.from_dict(payload["config"])
    raise CheckpointError(f"{source} holds no model architecture (no 'architecture' or 'config' entry)")


def save_model(model: SPOT, path: str | os.PathLike, **extra: Any) -> None:
    """Save weights + architecture + settings (+ any JSON-like extras) atomically."""
    payload = {**config_payload(model.config), "model": model.state_dict(), **extra}
    atomic_save(payload, path)


def load_model(path: str | os.PathLike, map_location: str | torch.device = "cpu",
               num_slots: int | None = None) -> SPOT:
    """Rebuild a SPOT from one of our checkpoints (no download: weights come from the file).

    `num_slots` changes the slot count of a Gaussian-init model (its weights do not depend on
    it); an embedding-init model stores one vector per slot, so a different count is refused.
    Both formats load (see `checkpoint_config`).
    """
    payload = safe_load(path, map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a spot-tutorial checkpoint; for the authors' files use "
                              "spot_tutorial.load_official_checkpoint(path, encoder)")
    config = with_num_slots(checkpoint_config(payload, str(path)), num_slots, source=str(path))
    model = SPOT.from_config(config, pretrained=False)
    load_state_strict(model, payload["model"], source=str(path))
    return model.eval()


def with_num_slots(config: SPOTConfig, num_slots: int | None, source: str) -> SPOTConfig:
    """`config` with the asked slot count; refused where the weights fix the count."""
    if num_slots is None or num_slots == config.num_slots:
        return config
    if config.init_method == "embedding":
        raise CheckpointError(
            f"{source} stores {config.num_slots} learned slot vectors (init_method='embedding'), but "
            f"num_slots={num_slots} was asked for: drop --num-slots or pass --num-slots {config.num_slots}")
    return config.replace(num_slots=num_slots)


def load_state_strict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict that explains every missing, unexpected or mis-shaped key."""
    expected = model.state_dict()
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    for title, items in (("missing from checkpoint", missing), ("not in model", unexpected),
                         ("shape mismatch", mismatched)):
        if items:
            shown = "\n    ".join(items[:20]) + (f"\n    ... and {len(items) - 20} more" if len(items) > 20 else "")
            problems.append(f"  {title} ({len(items)}):\n    {shown}")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model:\n" + "\n".join(problems))
    model.load_state_dict(state, strict=True)


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
    (r"^dec\.blocks\.(\d+)\.encoder_decoder_attn_layer_norm\.", r"decoder.transformer.blocks.\1.cross_attn_norm."),
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
        state = safe_load(state)
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
        raise CheckpointError(f"decoder blocks {sorted(indices)} are not numbered 0..n-1: the file is incomplete")
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
        found["train_permutations"] = found["eval_permutations"] = "standard"
    else:
        found["dec_type"] = "transformer"
        found["num_dec_blocks"] = _num_decoder_blocks(state)
        found["num_bos_tokens"] = _num_bos_tokens(state)
        if found["num_bos_tokens"] == 1:  # trained with train_permutations='standard'
            found["train_permutations"] = found["eval_permutations"] = "standard"
    if any(k.startswith("second_encoder.") for k in state):  # a stage-2 student
        found["truncate"] = "bi-level" if config.truncate == "none" else config.truncate
        if config.finetune_blocks_after >= 100:
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
    base = config or SPOTConfig()
    config = infer_official_config(state, base.replace(num_slots=num_slots) if num_slots else base)
    if num_slots is not None and config.num_slots != num_slots:
        raise CheckpointError(
            f"the checkpoint stores {config.num_slots} learned slot vectors (init_method='embedding'), but "
            f"num_slots={num_slots} was asked for: drop --num-slots or pass --num-slots {config.num_slots}")
    has_target = any(k.startswith("second_encoder.") for k in state)
    if isinstance(encoder, str):
        config = config.replace(which_encoder=encoder)
        vit_encoder = build_encoder(encoder, config.image_size, pretrained=False,
                                    final_norm=config.encoder_final_norm)
    else:
        vit_encoder = encoder if isinstance(encoder, ViTEncoder) else ViTEncoder(encoder, config.encoder_final_norm)
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
        parts = [f"initialised from {self.source} ({self.kind} checkpoint): {len(self.loaded)} tensors loaded"]
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
    if any(k.startswith(target_prefix) for k in expected) and not any(k.startswith(target_prefix) for k in state):
        state.update({target_prefix + k[len(encoder_prefix):]: v for k, v in state.items()
                      if k.startswith(encoder_prefix)})
    mismatched = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
                  for k in sorted(set(state) & set(expected)) if state[k].shape != expected[k].shape]
    if mismatched:
        raise CheckpointError(f"--init-from {path} does not fit the model being trained (same encoder, slot "
                              "size and decoder sizes are needed):\n    " + "\n    ".join(mismatched[:20]))
    loaded = sorted(set(state) & set(expected))
    if not any(k.startswith("slot_attention.") for k in loaded):
        raise CheckpointError(f"--init-from {path}: no slot-attention weights fit the model; is it a SPOT checkpoint?")
    model.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return InitReport(str(path), kind, loaded, sorted(set(expected) - set(state)), sorted(set(state) - set(expected)))
