"""A small folder of generated images (and their instance masks) standing in for a user's own data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SIZES = ((96, 72), (64, 80), (120, 90), (70, 70))  # (width, height)
MODES = ("RGB", "L", "RGBA", "P")  # what photos and screenshots come as


def scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 [H, W, 3], instance ids int64 [H, W]): 1-3 coloured rectangles on a plain background."""
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = rng.integers(0, 256, 3)
    ids = np.zeros((height, width), dtype=np.int64)
    for number in range(1, int(rng.integers(1, 4)) + 1):
        x0, y0 = int(rng.integers(0, width * 2 // 3)), int(rng.integers(0, height * 2 // 3))
        x1, y1 = x0 + int(rng.integers(width // 5, width // 2)), y0 + int(rng.integers(height // 5,
                                                                                       height // 2))
        image[y0:y1, x0:x1] = rng.integers(0, 256, 3)
        ids[y0:y1, x0:x1] = number
    return image, ids


def write_image_folder(root: Path, count: int = 8, masks: Path | None = None, seed: int = 0) -> list[Path]:
    """`count` images of several sizes and modes under `root` (half in a sub-folder), with
    instance-mask PNGs at the same relative paths under `masks` when given. Returns the files."""
    rng = np.random.default_rng(seed)
    written = []
    for index in range(count):
        width, height = SIZES[index % len(SIZES)]
        pixels, ids = scene(rng, width, height)
        mode = MODES[index % len(MODES)]
        suffix = ".jpg" if mode == "RGB" else ".png"
        relative = Path("street" if index % 2 else "") / f"photo_{index:02d}{suffix}"
        image = Image.fromarray(pixels)
        image = image.convert(mode) if mode != "P" else image.quantize(16)
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        written.append(path)
        if masks is not None:
            mask_file = masks / relative.with_suffix(".png")
            mask_file.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(ids.astype(np.uint8)).save(mask_file)
    return written
