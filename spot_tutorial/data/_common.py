"""Shared file checks and image loading for the dataset readers (clear errors, one place)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DatasetError


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


def _open_fully(path: Path, what: str) -> Image.Image:
    """Open and decode ``path`` entirely, turning PIL's decoding errors into clear ones."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. The dataset folder is incomplete; "
                                "re-download or re-extract it.")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"corrupt {what}: {path} cannot be decoded ({error}). "
                                "Delete this file and re-download it.") from error


def load_rgb(path: Path) -> Image.Image:
    """An RGB PIL image read from ``path``."""
    return _open_fully(path, "image file").convert("RGB")


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
