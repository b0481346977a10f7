"""Shared file checks and image loading for the dataset readers (clear errors, one place)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from spot_tutorial.errors import DatasetError


class CorruptImageError(DatasetError):
    """An image file exists but cannot be decoded."""


def check_split(dataset: str, split: str, valid: Sequence[str]) -> None:
    """Raise ``ValueError`` listing the valid splits when ``split`` is unknown."""
    if split not in valid:
        raise DatasetError(f"unknown split {split!r} for {dataset}; valid splits are "
                         + ", ".join(repr(s) for s in valid))


def require_dir(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a folder, otherwise ``FileNotFoundError`` naming it and how to fix it."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what} not found: expected a folder at {path}. {hint}")
    return path


def require_file(path: Path, what: str, hint: str) -> Path:
    """``path`` if it is a file, otherwise ``FileNotFoundError`` naming it and how to fix it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: expected a file at {path}. {hint}")
    return path


def _open_fully(path: Path, what: str, dataset: bool = True) -> Image.Image:
    """Open and decode ``path`` entirely, turning PIL's decoding errors into clear ones.

    ``dataset``: the file belongs to a downloaded dataset (the fix is to fetch it again); False for
    the user's own images (the fix is to check or re-export the file)."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. The dataset folder is incomplete; "
                                "re-download or re-extract it.")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        fix = ("Delete this file and re-download it." if dataset else
               "Check that it is a complete image file (open it in a viewer, or export it again).")
        raise CorruptImageError(f"cannot read this image: {path} cannot be decoded ({error}). "
                                + fix) from error


def load_rgb(path: Path) -> Image.Image:
    """An RGB PIL image read from ``path``."""
    return _open_fully(path, "image file").convert("RGB")


def load_photo(path: Path) -> Image.Image:
    """An RGB PIL image from a file of any mode, as a viewer shows it (for your own photos).

    Unlike `load_rgb` (the datasets' exact protocol), the EXIF orientation of camera photos is
    applied, 16-bit and float images are scaled to 0..255 by their range, and transparent
    pixels are composed over white.
    """
    from PIL import ImageOps

    image = ImageOps.exif_transpose(_open_fully(path, "image file", dataset=False))
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) * 255.0 if high > low else np.zeros_like(values)
        image = Image.fromarray(scaled.round().astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        white = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, image)
    return image.convert("RGB")


def load_label_png(path: Path) -> np.ndarray:
    """A 2-D integer label map from a palette ('P'), grayscale ('L') or 16-bit PNG.

    Palette PNGs are read as their palette indices (the label ids), never as colours.
    """
    image = _open_fully(path, "label PNG")
    if image.mode not in ("P", "L", "I", "I;16", "1"):
        raise DatasetError(f"label PNG {path} has mode {image.mode!r}; expected a palette ('P') or "
                         "grayscale ('L') PNG whose pixel values are label ids")
    return np.asarray(image).astype(np.int64)


def load_binary_png(path: Path) -> np.ndarray:
    """A 2-D boolean mask (non-zero = on) from a PNG of any mode."""
    return np.asarray(_open_fully(path, "mask PNG").convert("L")) > 0
