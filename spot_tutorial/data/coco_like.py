"""A COCO-like folder written on the spot: JPEG images at COCO's sizes with an instances JSON.

For benchmarks and tests that need COCO's input pipeline without the 19 GB download: the images
have COCO 2017's common sizes (mostly 640x480 and 480x640), are saved as baseline JPEG at quality
90 with 4:2:0 chroma subsampling (like most COCO files) and hold natural-image-like content (a
smooth colour field, finer structure and sensor-like grain, with textured shapes on top), so
decoding and resizing them costs about what COCO's files cost. Every shape is an annotation of
``instances_{split}2017.json``: a polygon, or (about one image in ten) a crowd region stored as
uncompressed RLE; category ids are COCO's 80 non-contiguous ids. `COCO2017` (``coco.py``) reads
the folder unchanged; only its evaluation items need pycocotools, as with the real files.

Nothing here needs pycocotools, and an image depends only on (seed, its index), so the same call
writes the same bytes, and a larger ``count`` adds images without changing the first ones.

    write_coco_like_folder("/tmp/coco", 200, seed=0)               # train2017/ + its JSON
    write_coco_like_folder("/tmp/coco", 50, seed=1, split="val")   # val2017/ + its JSON
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence, Union

import numpy as np
from PIL import Image, ImageDraw

from spot_tutorial.errors import DatasetError

# (width, height, share) of the sizes written: COCO 2017's most common sizes, roughly in proportion.
COCO_IMAGE_SIZES: tuple[tuple[int, int, float], ...] = (
    (640, 480, 0.50), (480, 640, 0.20), (640, 427, 0.12), (427, 640, 0.06), (500, 375, 0.06),
    (640, 360, 0.06))
# COCO's 80 category ids (1..90 with gaps), so readers must map them to contiguous labels.
COCO_CATEGORY_IDS: tuple[int, ...] = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83),
    *range(84, 91))
JPEG_QUALITY = 90
CROWD_SHARE = 0.1  # images that get one crowd (RLE) annotation
MIN_PIXELS = 16  # smaller shapes are left out
GRAIN = 12.0  # std of the per-pixel noise, in 0..255 levels (sets the JPEG file size)


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int,
                  low: float = 0.0, high: float = 255.0) -> np.ndarray:
    """Random colours on a coarse grid, upsampled bicubically: float32 [height, width, 3]."""
    grid_w = max(2, round(cells * width / max(width, height)))
    grid_h = max(2, round(cells * height / max(width, height)))
    coarse = rng.uniform(low, high, size=(grid_h, grid_w, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), dtype=np.float32)


def _polygon(rng: np.random.Generator, width: int, height: int) -> list[float]:
    """A random convex-ish polygon or ellipse outline [x0, y0, x1, y1, ...] inside the image."""
    scale = min(width, height)
    radius_x, radius_y = rng.uniform(0.06, 0.3, size=2) * scale
    cx = rng.uniform(radius_x, max(radius_x + 1, width - radius_x))
    cy = rng.uniform(radius_y, max(radius_y + 1, height - radius_y))
    corners = int(rng.choice([3, 4, 5, 6, 8, 24]))  # 24 corners: an ellipse
    angles = np.sort(rng.uniform(0, 2 * np.pi, corners)) if corners < 24 else np.linspace(0, 2 * np.pi, 24,
                                                                                          endpoint=False)
    rotation = rng.uniform(0, np.pi)
    xs = np.clip(cx + radius_x * np.cos(angles + rotation), 0, width - 1)
    ys = np.clip(cy + radius_y * np.sin(angles + rotation), 0, height - 1)
    return [round(float(v), 2) for pair in zip(xs, ys, strict=True) for v in pair]


def _mask(width: int, height: int, polygons: Sequence[Sequence[float]],
          ellipses: Sequence = ()) -> np.ndarray:
    """bool [height, width]: the union of the polygons and of the ellipse boxes, as PIL draws them."""
    canvas = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    for points in polygons:
        draw.polygon([(points[i], points[i + 1]) for i in range(0, len(points), 2)], fill=255)
    for box in ellipses:
        draw.ellipse(box, fill=255)
    return np.asarray(canvas) > 0


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE of a bool mask [H, W]: run lengths in column-major order, zeros first."""
    flat = np.asarray(mask, dtype=np.uint8).flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _paint(pixels: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> None:
    """Fill `mask` of `pixels` [H, W, 3] (float32, in place) with a shaded, textured colour."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1  # the mask's box
    height, width = bottom - top, right - left
    base = rng.uniform(30, 200, size=3).astype(np.float32)
    texture = _smooth_field(rng, width, height, int(rng.integers(3, 12)), -30, 30)  # [h, w, 3]
    shade = np.linspace(rng.uniform(-30, 0), rng.uniform(0, 30), width, dtype=np.float32)[None, :, None]
    inside = mask[top:bottom, left:right]
    box = pixels[top:bottom, left:right]
    box[inside] = (base + texture + shade)[inside]


def _crowd(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """bool [H, W]: a band of small blobs (a crowd of people, a shelf of bottles)."""
    top = rng.uniform(0.1, 0.7) * height
    band = rng.uniform(0.1, 0.25) * height
    boxes = []
    for _ in range(int(rng.integers(8, 20))):
        x, y = rng.uniform(0, width), rng.uniform(top, top + band)
        r = rng.uniform(0.015, 0.04) * min(width, height)
        boxes.append((x - r, y - r, x + r, y + r))
    return _mask(width, height, (), boxes)


def render_image(seed: int, index: int, width: int, height: int
                 ) -> tuple[np.ndarray, list[tuple[list[float] | None, np.ndarray | None]]]:
    """One image uint8 [height, width, 3] and its objects: (polygon, None) or (None, crowd mask)."""
    rng = np.random.default_rng([seed, index])
    pixels = 0.75 * _smooth_field(rng, width, height, 5) + 0.25 * _smooth_field(rng, width, height, 64)
    objects: list[tuple[list[float] | None, np.ndarray | None]] = []
    for _ in range(int(rng.integers(1, 9))):
        polygon = _polygon(rng, width, height)
        mask = _mask(width, height, [polygon])
        if mask.sum() < MIN_PIXELS:  # a sliver that a rasteriser may turn into no pixel at all
            continue
        _paint(pixels, mask, rng)
        objects.append((polygon, None))
    if rng.random() < CROWD_SHARE:
        crowd = _crowd(rng, width, height)
        _paint(pixels, crowd, rng)
        objects.append((None, crowd))
    pixels += rng.standard_normal(size=pixels.shape, dtype=np.float32) * GRAIN  # sensor grain
    return np.clip(pixels, 0, 255).astype(np.uint8), objects


def _annotation(ann_id: int, image_id: int, category: int, polygon: list[float] | None,
                crowd: np.ndarray | None, width: int, height: int) -> dict:
    """One entry of "annotations": a polygon (iscrowd 0) or an uncompressed-RLE crowd (iscrowd 1)."""
    if polygon is not None:
        xs, ys = np.array(polygon[0::2]), np.array(polygon[1::2])
        area = 0.5 * abs(float(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))
        x0, y0 = float(xs.min()), float(ys.min())
        bbox = [x0, y0, float(xs.max()) - x0, float(ys.max()) - y0]
        return {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 0,
                "segmentation": [polygon], "area": area, "bbox": bbox}
    rows, cols = np.nonzero(crowd)
    bbox = [float(cols.min()), float(rows.min()), float(cols.max() - cols.min() + 1),
            float(rows.max() - rows.min() + 1)]
    return {"id": ann_id, "image_id": image_id, "category_id": category, "iscrowd": 1,
            "segmentation": uncompressed_rle(crowd), "area": float(crowd.sum()), "bbox": bbox}


def _choose_size(rng: np.random.Generator, sizes: Sequence[tuple[int, int, float]]) -> tuple[int, int]:
    shares = np.array([share for _, _, share in sizes], dtype=np.float64)
    width, height, _ = sizes[int(rng.choice(len(sizes), p=shares / shares.sum()))]
    return width, height


def write_coco_like_folder(root: Union[str, Path], count: int = 200, seed: int = 0, split: str = "train",
                           sizes: Sequence[tuple[int, int, float]] = COCO_IMAGE_SIZES,
                           quality: int = JPEG_QUALITY, first_id: int = 1) -> Path:
    """Write ``root/{split}2017/*.jpg`` and ``root/annotations/instances_{split}2017.json``.

    Args:
        count: images to write; image ids ``first_id .. first_id + count - 1``, files named like
            COCO's (``000000000001.jpg``).
        seed: the seed of every image; image i depends only on (seed, i).
        split: ``"train"`` or ``"val"`` (any name works; COCO2017 reads these two).
        sizes: (width, height, share) to draw each image's size from (default: COCO's).
        quality: JPEG quality (COCO's files are mostly 75-95).

    Returns `root`. Existing files of the same names are overwritten; other files are left.
    """
    if not isinstance(count, int) or count < 1:
        raise DatasetError(f"count must be a positive integer (images to write), got {count!r}")
    if not sizes or any(w < 8 or h < 8 or share < 0 for w, h, share in sizes):
        raise DatasetError(f"sizes must be (width >= 8, height >= 8, share >= 0) triples, got {sizes!r}")
    root = Path(root).expanduser()
    image_dir = root / f"{split}2017"
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(count):
        image_id = first_id + index
        width, height = _choose_size(np.random.default_rng([seed, index, 1]), sizes)
        pixels, objects = render_image(seed, index, width, height)
        name = f"{image_id:012d}.jpg"
        Image.fromarray(pixels).save(image_dir / name, quality=quality, subsampling="4:2:0")
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        categories = np.random.default_rng([seed, index, 2]).choice(COCO_CATEGORY_IDS, size=len(objects))
        for (polygon, crowd), category in zip(objects, categories, strict=True):
            annotations.append(_annotation(len(annotations) + 1, image_id, int(category), polygon, crowd,
                                           width, height))
    content = {"info": {"description": f"COCO-like generated images (seed {seed}), spot_tutorial"},
               "images": images, "annotations": annotations,
               "categories": [{"id": c, "name": f"category {c}", "supercategory": "shape"}
                              for c in COCO_CATEGORY_IDS]}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(content))
    return root
