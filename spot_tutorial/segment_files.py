"""Segmenting image files: what `spot segment` does with your own photos.

For every image (files, folders searched recursively, or glob patterns; any size and mode) the
model's slot masks and/or decoder masks are computed at the image's own resolution
(`evaluate.segment`) and written as two PNGs per kind of mask:

    OUT/<name>_<slot|decoder>_overlay.png   the photo with one colour per slot blended over it
    OUT/<name>_<slot|decoder>_labels.png    the label map: pixel value = slot id (palette PNG)

plus ``contact_sheet.png`` (the first images and their overlays) and ``index.json`` (per file:
its size and the masks written; the files that failed and why; the run's settings). A file that
cannot be read is reported by name and skipped; the others are still processed.
"""

from __future__ import annotations

import glob
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from .config import OrderSpec, get_preset
from .data._common import load_photo
from .data.folder import IMAGE_SUFFIXES, list_images
from .devices import resolve_device
from .errors import InputError, SpotUserError
from .evaluate import load_checkpoint_for_evaluation, segment

MASK_CHOICES = {"slot": ("slot",), "decoder": ("decoder",), "both": ("slot", "decoder")}
GLOB_CHARACTERS = set("*?[")


@dataclass
class ImageFile:
    path: Path  # the file to read
    name: str   # its output name (relative path without suffix; unique within the run)


@dataclass
class SegmentedImage:
    file: str
    size: list[int]                   # [width, height]
    mode: str                         # PIL mode of the file (RGB, L, RGBA, P, I;16, ...)
    masks: dict[str, dict[str, str]]  # {"slot": {"overlay": ..., "labels": ...}, ...}, relative to OUT


@dataclass
class FailedImage:
    file: str
    error: str


@dataclass
class SegmentRun:
    out_dir: Path
    images: list[SegmentedImage]
    failed: list[FailedImage]
    index_path: Path
    sheet_path: Path | None
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / max(len(self.images), 1)

    def summary(self) -> str:
        line = (f"segmented {len(self.images)} image(s) into {self.out_dir} "
                f"({self.seconds_per_image:.2f} s per image)")
        if self.failed:
            line += f"; {len(self.failed)} failed: " + "; ".join(f"{f.file} ({f.error})" for f in self.failed)
        return line


# ------------------------------------------------------------------------------------------
def find_images(inputs: Sequence[str | os.PathLike]) -> tuple[list[ImageFile], list[FailedImage]]:
    """Files, folders (recursive) and glob patterns -> (images to segment, inputs not found).

    A file named explicitly is taken whatever its suffix (reading it will tell); folders and
    patterns contribute files with an image suffix. Each file is taken once.
    """
    found: list[ImageFile] = []
    missing: list[FailedImage] = []
    seen: set[Path] = set()
    used: set[str] = set()

    def add(path: Path, name: str) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        unique, number = name, 2
        while unique in used:
            unique, number = f"{name}_{number}", number + 1
        used.add(unique)
        found.append(ImageFile(path, unique))

    for item in map(str, inputs):
        path = Path(item).expanduser()
        if path.is_dir():
            for relative in list_images(path):
                add(path / relative, relative.with_suffix("").as_posix())
        elif path.is_file():
            add(path, path.stem)
        elif GLOB_CHARACTERS & set(item):
            matches = [Path(m) for m in sorted(glob.glob(os.path.expanduser(item), recursive=True))]
            matches = [m for m in matches if m.is_file() and m.suffix.lower() in IMAGE_SUFFIXES]
            if not matches:
                missing.append(FailedImage(item, "no image file matches this pattern"))
            for match in matches:
                add(match, match.stem)
        else:
            missing.append(FailedImage(item, "no such file or folder"))
    return found, missing


def _write_masks(image: np.ndarray, labels: dict[str, torch.Tensor], out_dir: Path, name: str):
    """Overlay and label PNGs of one image; returns ({kind: {overlay, labels}}, overlay images)."""
    from .viz import label_png, overlay_png

    written, overlays = {}, []
    for kind, label_map in labels.items():
        paths = {"overlay": f"{name}_{kind}_overlay.png", "labels": f"{name}_{kind}_labels.png"}
        (out_dir / paths["overlay"]).parent.mkdir(parents=True, exist_ok=True)
        overlay = overlay_png(image, label_map.numpy())
        overlay.save(out_dir / paths["overlay"])
        label_png(label_map.numpy()).save(out_dir / paths["labels"])
        written[kind] = paths
        overlays.append(overlay)
    return written, overlays


def _save_sheet(rows: list, kinds: Sequence[str], path: Path) -> Path | None:
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from .viz import contact_sheet

    fig = contact_sheet(rows, ["image", *[f"{kind} masks" for kind in kinds]])
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ------------------------------------------------------------------------------------------
def segment_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                  orders: OrderSpec = "standard", masks: str = "both", device: str = "auto",
                  batch_size: int = 8, encoder: str = "vit_base_patch16_224.dino",
                  num_slots: int | None = None, preset: str = "coco", sheet_images: int = 12,
                  progress: bool = True) -> SegmentRun:
    """Segment image files with a checkpoint (ours or the authors'); see the module docstring.

    `orders`: the decoder's patch orders ('standard' raster, 'all' nine averaged as in the
    paper's evaluation); `masks`: 'slot', 'decoder' or 'both'. An authors' checkpoint takes what
    its weights do not store (e.g. the slot count) from `preset` unless `num_slots` is given.
    """
    if masks not in MASK_CHOICES:
        raise InputError(f"masks={masks!r}; choose one of {sorted(MASK_CHOICES)}")
    kinds = MASK_CHOICES[masks]
    files, failed = find_images(inputs)
    if not files:
        raise InputError("no images to segment: " + "; ".join(f"{f.file}: {f.error}" for f in failed)
                         + ". Pass image files, folders or quoted glob patterns such as 'photos/**/*.jpg'")
    device = resolve_device(device)
    model, shapes = load_checkpoint_for_evaluation(checkpoint, encoder, get_preset(preset), num_slots)
    model = model.to(device).eval()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    done: list[SegmentedImage] = []
    sheet_rows: list = []
    started = time.perf_counter()
    bar = tqdm(total=len(files), desc="segment", unit="image", disable=not progress)
    for start in range(0, len(files), batch_size):
        loaded = []
        for item in files[start:start + batch_size]:
            try:
                with_mode = load_photo(item.path)
                loaded.append((item, with_mode, _file_mode(item.path)))
            except (SpotUserError, OSError) as error:  # corrupt, unreadable, vanished
                failed.append(FailedImage(str(item.path), str(error)))
                bar.update(1)
        if not loaded:
            continue
        result = segment(model, [image for _, image, _ in loaded], orders, device, batch_size=len(loaded),
                         soft_masks=False)
        for index, (item, image, mode) in enumerate(loaded):
            pixels = np.asarray(image)  # [H, W, 3] uint8
            labels = {"slot": result.slot_labels[index], "decoder": result.decoder_labels[index]}
            written, overlays = _write_masks(pixels, {k: labels[k] for k in kinds}, out_dir, item.name)
            done.append(SegmentedImage(str(item.path), list(image.size), mode, written))
            if len(sheet_rows) < sheet_images:
                sheet_rows.append((item.name, [image, *overlays]))
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - started
    sheet_path = _save_sheet(sheet_rows, kinds, out_dir / "contact_sheet.png")
    settings = {"checkpoint": str(checkpoint), "orders": orders, "order_ids": model.order_ids(orders),
                "masks": list(kinds), "num_slots": shapes["num_slots"], "num_slots_from": shapes["num_slots_from"],
                "device": str(device), "batch_size": batch_size, "image_size": model.config.image_size,
                "precision": "fp32"}
    run = SegmentRun(out_dir, done, failed, out_dir / "index.json", sheet_path, seconds, settings)
    _write_index(run)
    return run


def _file_mode(path: Path) -> str:
    from PIL import Image

    with Image.open(path) as image:
        return image.mode


def _write_index(run: SegmentRun) -> None:
    index = {**run.settings, "images": [asdict(image) for image in run.images],
             "failed": [asdict(failure) for failure in run.failed],
             "contact_sheet": run.sheet_path.name if run.sheet_path else None,
             "seconds": round(run.seconds, 3), "seconds_per_image": round(run.seconds_per_image, 4)}
    run.index_path.write_text(json.dumps(index, indent=2) + "\n")
