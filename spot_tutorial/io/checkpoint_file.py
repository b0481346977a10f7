"""The checkpoint file format of this library: safe, atomic save and load of a model with its shape.

Our files are plain `torch.save` dictionaries of tensors and JSON-like values, read back with
`torch.load(..., weights_only=True)` (no arbitrary pickle), and written atomically (temporary
file + rename) so a crash or a kill never leaves a half-written checkpoint. Every file holds the
model's architecture next to its weights, which is all `load_model` needs::

    format 2 (now):    {"format": "spot-tutorial", "version": 2, "architecture": {...},
                        "settings": {training and runtime settings}, "model": state_dict, ...}
    format 1 (before): {"format": "spot-tutorial", "version": 1, "config": {every field}, "model": ...}

Both load (`checkpoint_config`). A training run's own state on top of this (optimiser, progress,
random states) is `spot_tutorial.training.run_state`.

The authors' checkpoints are read by `spot_tutorial.io.official`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from spot_tutorial.config import SPOTConfig
from spot_tutorial.errors import CheckpointError
from spot_tutorial.model.spot import SPOT

FORMAT = "spot-tutorial"
FORMAT_VERSION = 2  # 2: architecture and settings apart; 1: one flat "config"

__all__ = ["CheckpointError", "save_model", "load_model", "config_payload", "checkpoint_config",
           "atomic_save", "safe_load", "load_state_strict"]


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
    """A weights-only `torch.load`, with one clear message for each way a file can be wrong:
    missing, empty, not a PyTorch file, truncated or damaged, holding more than tensors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    with path.open("rb") as file:
        head = file.read(4)
    if not head:
        raise CheckpointError(f"{path} is empty (0 bytes): its writing was interrupted or never "
                              "happened; use another checkpoint (e.g. last.pt of the run)")
    if head != b"PK\x03\x04" and head[:1] != b"\x80":  # a zip archive, or a legacy pickle
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (it starts with bytes {head!r}); "
                              "pass last.pt / best.pt of `spot train` or an authors' .pt file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated archives, unsafe pickles, ...
        text = str(error)
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        unsupported = [line for line in lines if "Unsupported" in line]
        reason = (unsupported or lines or [type(error).__name__])[0].split(". ")[0]
        if "Weights only load failed" in text or unsupported:
            raise CheckpointError(
                f"{path} holds Python objects that a safe (weights-only) load refuses ({reason}): it "
                "was not written by spot-tutorial or the SPOT authors' scripts") from error
        raise CheckpointError(f"{path} is truncated or damaged ({reason}): copy it again, or use "
                              "another checkpoint of the run") from error


def checkpoint_dict(payload: Any, path: str | os.PathLike) -> dict:
    """A loaded checkpoint must be a dict (of weights, or ours with its header): say so otherwise."""
    if not isinstance(payload, dict):
        raise CheckpointError(f"{path} holds a {type(payload).__name__}, not a checkpoint (a dict of "
                              "weights): pass last.pt / best.pt of `spot train` or an authors' checkpoint")
    return payload


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
    payload = checkpoint_dict(safe_load(path, map_location), path)
    if payload.get("format") != FORMAT:
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
            shown = "\n    ".join(items[:20]) + (f"\n    ... and {len(items) - 20} "
                                                 f"more" if len(items) > 20 else "")
            problems.append(f"  {title} ({len(items)}):\n    {shown}")
    if problems:
        raise CheckpointError(f"checkpoint {source} does not fit the model:\n" + "\n".join(problems))
    model.load_state_dict(state, strict=True)
