"""Segmenting images of any size (`segment`), and image files: what `spot segment` does with your
own photos.

For every image (files, folders searched recursively, or glob patterns; any size and mode) the
model's slot masks and/or decoder masks are computed at the image's own resolution
(`segment`, in fp32) and written as two PNGs per kind of mask:

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
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from spot_tutorial.config import OrderSpec
from spot_tutorial.data._common import load_photo
from spot_tutorial.data.folder import IMAGE_SUFFIXES, list_images
from spot_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from spot_tutorial.errors import InputError, SpotUserError
from spot_tutorial.evaluation.evaluate import load_checkpoint_for_evaluation
from spot_tutorial.model.spot import SPOT, refuse_nan
from spot_tutorial.recipes import get_preset
from spot_tutorial.runtime import isolated_rng, resolve_device


# ------------------------------------------------------------------------------------------
@dataclass
class Segmentation:
    slot_masks: list[torch.Tensor]     # per image [K, H, W], soft, at the image's own size (or none)
    decoder_masks: list[torch.Tensor]  # per image [K, H, W]
    slot_labels: list[torch.Tensor]    # per image [H, W] argmax
    decoder_labels: list[torch.Tensor]  # per image [H, W]


def _as_image_tensor(image: Any) -> torch.Tensor:
    """One image -> [3, H, W] float in [0, 1].

    Accepts a PIL image, an image file's path, an H x W x 3 uint8 array, a [3, H, W] uint8
    tensor (0..255, scaled to [0, 1]) or a [3, H, W] float tensor in [0, 1].
    """
    if isinstance(image, torch.Tensor):
        return _tensor_to_unit_range(image)
    if isinstance(image, (str, os.PathLike)):
        image = load_photo(Path(image))
    array = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if array.ndim != 3 or array.shape[2] != 3:
        raise InputError(f"images must be RGB (H x W x 3); got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        raise InputError(f"image arrays must be uint8 (0..255), got dtype {array.dtype}; pass float images "
                         "as [3, H, W] tensors in [0, 1]")
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float() / 255.0


def image_list(images: Any) -> list:
    """One image of any accepted kind, a list of them, or one [B, 3, H, W] batch -> a list of images."""
    if isinstance(images, torch.Tensor):
        if images.ndim == 3:
            return [images]
        if images.ndim == 4:
            return list(images)
        raise InputError("image tensors must be [3, H, W] or a [B, 3, H, W] batch, got "
                         f"{tuple(images.shape)}")
    if isinstance(images, np.ndarray) and images.ndim == 3 or isinstance(images, (str, os.PathLike)):
        return [images]
    if hasattr(images, "convert"):  # a PIL image
        return [images]
    try:
        return list(images)
    except TypeError:
        raise InputError(f"segment() takes images as a PIL image, an image path, an H x W x 3 uint8 "
                         f"array, a [3, H, W] tensor, a [B, 3, H, W] batch or a list of these; got "
                         f"{type(images).__name__}") from None


def _tensor_to_unit_range(image: torch.Tensor) -> torch.Tensor:
    """[3, H, W] uint8 (0..255) or float in [0, 1] -> float [3, H, W] in [0, 1]."""
    if image.ndim != 3 or image.shape[0] != 3:
        raise InputError(f"image tensors must be [3, H, W] (or one [B, 3, H, W] batch); "
                         f"got {tuple(image.shape)}")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if not image.is_floating_point():
        raise InputError(f"image tensors must be uint8 (0..255) or float in [0, 1], got dtype {image.dtype}")
    refuse_nan(image)
    low, high = float(image.min()), float(image.max())
    if low < -0.01 or high > 1.01:
        raise InputError(
            f"float image tensors must hold unnormalised pixels in [0, 1], got values in "
            f"[{low:.2f}, {high:.2f}]: pass uint8 0..255 or divide by 255, and do not normalise "
            "(segment() normalises)")
    return image.float()


@torch.no_grad()
def segment(model: SPOT, images: Sequence[Any] | torch.Tensor, orders: OrderSpec = "standard",
            device: str | torch.device | None = None, batch_size: int = 1,
            soft_masks: bool = True, seed: int | None = 0) -> Segmentation:
    """Masks for images of any size: resize to the model's input, run, upsample back.

    `images`: one image or a list of them (PIL images, image paths, HxWx3 uint8 arrays,
    [3,H,W] tensors), or one [B,3,H,W] tensor. Tensors hold raw pixels: uint8 in 0..255
    (scaled to [0, 1]) or float in [0, 1]; this function normalises with the ImageNet mean/std,
    so do not normalise beforehand.
    `batch_size` images go through the model at once; `soft_masks=False` keeps only the label
    maps (the soft masks of a large photo take K times its pixels in floats).

    The slots start from random draws (a property of the method), so two runs would differ;
    `seed` (default 0) fixes those draws: the same images give the same masks on every call, and
    the caller's random generators are left as they were. `seed=None` draws fresh randomness.
    The model's train/eval mode is restored on return.
    """
    device = torch.device(device) if device is not None else next(model.parameters()).device
    if batch_size < 1:
        raise InputError(f"batch_size must be >= 1, got {batch_size}")
    was_training = model.training
    model.eval()
    try:
        if seed is None:
            return _segment_batches(model, image_list(images), orders, device, batch_size,
                                    soft_masks)
        with isolated_rng(device, seed):
            return _segment_batches(model, image_list(images), orders, device, batch_size,
                                    soft_masks)
    finally:
        model.train(was_training)


def _segment_batches(model: SPOT, images: list, orders: OrderSpec, device: torch.device,
                     batch_size: int, soft_masks: bool) -> Segmentation:
    result = Segmentation([], [], [], [])
    for start in range(0, len(images), batch_size):
        pixels = [_as_image_tensor(image) for image in images[start:start + batch_size]]  # [3, H, W] each
        output = model(_model_input(pixels, model.encoder.image_size, device), orders=orders)
        for index, image in enumerate(pixels):
            size = tuple(image.shape[-2:])
            kinds = ((output.slot_masks, result.slot_masks, result.slot_labels),
                     (output.decoder_masks, result.decoder_masks, result.decoder_labels))
            for masks, soft_list, label_list in kinds:
                up = F.interpolate(masks[index:index + 1].float(), size=size, mode="bilinear",
                                   align_corners=False)[0]  # [K, H, W]
                if soft_masks:
                    soft_list.append(up.cpu())
                label_list.append(up.argmax(0).cpu())  # [H, W]
    return result


def _model_input(pixels: list[torch.Tensor], size: int, device: torch.device) -> torch.Tensor:
    """Images [3, H, W] in [0, 1] -> one normalised batch [B, 3, size, size] on `device`."""
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(3, 1, 1)
    resized = [F.interpolate(image.to(device)[None], size=(size, size), mode="bilinear", align_corners=False,
                             antialias=True)[0] for image in pixels]
    return (torch.stack(resized) - mean) / std  # [B, 3, size, size]


def plot_segmentation(images: Sequence[Any], segmentation: Segmentation, alpha: float = 0.5):
    """Images with slot and decoder masks drawn over them (one row per image)."""
    import matplotlib.pyplot as plt

    from spot_tutorial.viz.masks import overlay

    fig, axes = plt.subplots(len(images), 3, figsize=(9, 3 * len(images)), squeeze=False)
    for row, image in enumerate(images):
        rgb = _as_image_tensor(image).permute(1, 2, 0).numpy()
        panels = (rgb, overlay(rgb, segmentation.slot_labels[row].numpy(), alpha),
                  overlay(rgb, segmentation.decoder_labels[row].numpy(), alpha))
        titles = ("image", "slot masks", "decoder masks")
        for col, (panel, title) in enumerate(zip(panels, titles, strict=True)):
            axes[row, col].imshow(panel)
            axes[row, col].set_title(title if row == 0 else "")
            axes[row, col].axis("off")
    fig.tight_layout()
    return fig

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
    """Overlay and label PNGs of one image, all or none: each is written under a temporary name
    and renamed once every one is complete. Returns ({kind: {overlay, labels}}, overlay images)."""
    from spot_tutorial.viz.masks import label_png, overlay_png

    written, overlays, pending = {}, [], []
    try:
        for kind, label_map in labels.items():
            paths = {"overlay": f"{name}_{kind}_overlay.png", "labels": f"{name}_{kind}_labels.png"}
            (out_dir / paths["overlay"]).parent.mkdir(parents=True, exist_ok=True)
            overlay = overlay_png(image, label_map.numpy())
            for picture, relative in ((overlay, paths["overlay"]), (label_png(label_map.numpy()),
                                                                    paths["labels"])):
                partial = out_dir / f"{relative}.partial"
                pending.append((partial, out_dir / relative))
                picture.save(partial, format="PNG")
            written[kind] = paths
            overlays.append(overlay)
    except BaseException:
        for partial, _ in pending:
            partial.unlink(missing_ok=True)
        raise
    for partial, final in pending:
        os.replace(partial, final)
    return written, overlays


def _save_sheet(rows: list, kinds: Sequence[str], path: Path) -> Path | None:
    if not rows:
        return None
    import matplotlib
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from spot_tutorial.viz.masks import contact_sheet

    fig = contact_sheet(rows, ["image", *[f"{kind} masks" for kind in kinds]])
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def prepare_output_folder(out_dir: Path, overwrite: bool) -> Path:
    """Refuse a non-empty output folder unless `overwrite`, which empties a previous run's folder
    (one with an index.json) and nothing else."""
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} is a file, not a folder: pass a folder path")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise InputError(f"--out {out_dir} is not empty: its files would sit beside the new ones "
                             "with no entry in index.json; pass an empty or new folder, or --overwrite "
                             "to replace its contents")
        if not (out_dir / "index.json").is_file():
            raise InputError(f"--out {out_dir} holds files that no `spot segment` run wrote (it has no "
                             "index.json), so --overwrite will not delete them: pass another folder")
        shutil.rmtree(out_dir)
    return out_dir


# ------------------------------------------------------------------------------------------
def segment_files(checkpoint: str | os.PathLike, inputs: Sequence[str | os.PathLike],
                  out_dir: str | os.PathLike, orders: OrderSpec = "standard", masks: str = "both",
                  device: str = "auto", batch_size: int = 8, encoder: str = "vit_base_patch16_224.dino",
                  num_slots: int | None = None, preset: str = "coco", sheet_images: int = 12,
                  progress: bool = True, seed: int | None = 0, overwrite: bool = False) -> SegmentRun:
    """Segment image files with a checkpoint (ours or the authors'); see the module docstring.

    `orders`: the decoder's patch orders ('standard' raster, 'all' nine averaged as in the
    paper's evaluation); `masks`: 'slot', 'decoder' or 'both'. An authors' checkpoint takes what
    its weights do not store (e.g. the slot count) from `preset` unless `num_slots` is given.
    `seed` fixes the slots' random start of each batch (see `segment`), so the same files give the
    same masks on every run; it is recorded in index.json. A non-empty `out_dir` is refused
    unless `overwrite` (then its previous contents are removed first), so index.json always
    describes every file in the folder.
    """
    if masks not in MASK_CHOICES:
        raise InputError(f"masks={masks!r}; choose one of {sorted(MASK_CHOICES)}")
    kinds = MASK_CHOICES[masks]
    out_dir = prepare_output_folder(Path(out_dir), overwrite)
    files, failed = find_images(inputs)
    if not files:
        raise InputError("no images to segment: " + "; ".join(f"{f.file}: {f.error}" for f in failed)
                         + ". Pass image files, folders or quoted glob patterns such as 'photos/**/*.jpg'")
    device = resolve_device(device)
    model, shapes = load_checkpoint_for_evaluation(checkpoint, encoder, get_preset(preset), num_slots)
    model = model.to(device).eval()
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
                         soft_masks=False, seed=None if seed is None else seed + start)
        for index, (item, image, mode) in enumerate(loaded):
            pixels = np.asarray(image)  # [H, W, 3] uint8
            labels = {"slot": result.slot_labels[index], "decoder": result.decoder_labels[index]}
            try:
                written, overlays = _write_masks(pixels, {k: labels[k] for k in kinds}, out_dir,
                                                 item.name)
            except (SpotUserError, OSError) as error:  # e.g. a full disk: this image fails alone
                failed.append(FailedImage(str(item.path), f"its masks could not be written: {error}"))
                bar.update(1)
                continue
            done.append(SegmentedImage(str(item.path), list(image.size), mode, written))
            if len(sheet_rows) < sheet_images:
                sheet_rows.append((item.name, [image, *overlays]))
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - started
    sheet_path = _save_sheet(sheet_rows, kinds, out_dir / "contact_sheet.png")
    settings = {"checkpoint": str(checkpoint), "orders": orders, "order_ids": model.order_ids(orders),
                "masks": list(kinds), "num_slots": shapes["num_slots"],
                "num_slots_from": shapes["num_slots_from"],
                "device": str(device), "batch_size": batch_size, "image_size": model.config.image_size,
                "precision": "fp32", "seed": seed}
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
