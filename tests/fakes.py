"""Stand-ins for what full mode downloads, written in the real formats (no network in tests).

    write_coco_val(root, n)          COCO-style val2017/ images + annotations/instances_val2017.json
    write_official_checkpoint(path)  a tiny SPOT saved under the authors' parameter names
    full_mode_cache(folder)          both, laid out as spot_tutorial.io.downloads caches them
"""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import tiny_model
from test_checkpoints import to_official

from spot_tutorial.data.coco_like import write_coco_like_folder


def write_coco_val(root: Path, num_images: int = 12, seed: int = 0) -> Path:
    """Small COCO-like val2017/ images with their instances JSON (`data.coco_like`, 80x64 pixels)."""
    return write_coco_like_folder(root, num_images, seed, split="val", sizes=((80, 64, 1.0),))


def write_official_checkpoint(path: Path) -> Path:
    """A tiny stage-2-like SPOT (learned slot embeddings) in the authors' file format."""
    model = tiny_model(init_method="embedding", truncate="bi-level")
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": to_official(model.state_dict()), "epoch": 49}, path)
    return path


def full_mode_cache(folder: Path, num_images: int = 12) -> Path:
    """A pre-filled download cache: <folder>/COCO2017 and <folder>/checkpoints/spot_coco.pt."""
    write_coco_val(folder / "COCO2017", num_images)
    write_official_checkpoint(folder / "checkpoints" / "spot_coco.pt")
    return folder
