"""Stand-ins for what full mode downloads, written in the real formats (no network in tests).

    write_coco_val(root, n)          COCO-style val2017/ images + annotations/instances_val2017.json
    write_official_checkpoint(path)  a tiny SPOT saved under the authors' parameter names
    full_mode_cache(folder)          both, laid out as spot_tutorial.io.downloads caches them
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from conftest import tiny_model
from PIL import Image
from test_checkpoints import to_official


def write_coco_val(root: Path, num_images: int = 12, seed: int = 0) -> Path:
    """Images of random rectangles on noise, each rectangle an annotated instance (polygon)."""
    rng = np.random.default_rng(seed)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(1, num_images + 1):
        width, height = 80, 64
        pixels = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
        name = f"{image_id:012d}.jpg"
        for _ in range(int(rng.integers(1, 4))):
            x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
            x1, y1 = x0 + int(rng.integers(10, 20)), y0 + int(rng.integers(10, 20))
            pixels[y0:y1, x0:x1] = rng.integers(100, 255, size=3)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(rng.integers(1, 3)), "iscrowd": 0,
                                "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]],
                                "area": float((x1 - x0) * (y1 - y0)), "bbox": [x0, y0, x1 - x0, y1 - y0]})
        Image.fromarray(pixels).save(root / "val2017" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
    categories = [{"id": 1, "name": "box"}, {"id": 2, "name": "block"}]
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


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
