"""COCO panoptic ground truth: every thing instance and every stuff region is one segment.

The newer protocol of FT-DINOSAUR (ICLR 2025) scores COCO also against these segments (P-ARI
and class-agnostic PQ, see ``spot_tutorial.evaluation.metrics``). COCO stores them as one JSON file and
one PNG per image, whose colour encodes the segment id: ``id = R + 256 G + 256^2 B``; the
JSON's ``segments_info`` lists the image's segments (``id``, ``category_id``, ``iscrowd``).
Id 0 marks unlabelled pixels, which every metric leaves out.

Here segment ids are renumbered ``1..n`` in ``segments_info`` order (the raw ids reach 16
million), so that the label maps resize exactly like the instance masks. Expected layout
(``panoptic_annotations_trainval2017.zip`` holds the JSON files and a zip of the PNGs to
unzip next to them)::

    ROOT/annotations/panoptic_val2017.json
    ROOT/annotations/panoptic_val2017/*.png     (or ROOT/panoptic_val2017/*.png)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from spot_tutorial.data._common import _open_fully, require_file
from spot_tutorial.errors import DatasetError

PANOPTIC_HINT = ("Download panoptic_annotations_trainval2017.zip from https://cocodataset.org/#download, "
                 "unzip it into ROOT (it creates annotations/panoptic_*.json) and unzip "
                 "annotations/panoptic_{split}2017.zip next to the JSON file.")


@dataclass
class PanopticSegments:
    """The panoptic ground truth of one image at its original resolution."""

    segments: np.ndarray  # [H, W] int64: 0 unlabelled, 1..n segments in segments_info order
    crowd: np.ndarray     # [H, W] bool: pixels of crowd segments (iscrowd = 1)
    category_ids: list[int]  # COCO category of segment 1..n


def rgb_to_segment_id(rgb: np.ndarray) -> np.ndarray:
    """[H, W, 3] uint8 colours -> [H, W] int64 ids, id = R + 256 G + 256^2 B."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def read_panoptic_png(path: Path, segments_info: list[dict]) -> PanopticSegments:
    """Decode one panoptic PNG with its ``segments_info`` into renumbered segments."""
    image = _open_fully(path, "panoptic PNG")
    if image.mode != "RGB":
        raise DatasetError(f"panoptic PNG {path} has mode {image.mode!r}; COCO panoptic PNGs are RGB "
                           "(segment id = R + 256 G + 256^2 B)")
    raw = rgb_to_segment_id(np.asarray(image))  # [H, W]
    listed = np.array([info["id"] for info in segments_info], dtype=np.int64)
    unknown = np.setdiff1d(np.unique(raw), np.concatenate([[0], listed]))
    if unknown.size:
        raise DatasetError(f"panoptic PNG {path} holds segment ids {unknown[:5].tolist()} that its "
                           "segments_info does not list; the PNG and the JSON file do not belong together")
    segments = np.zeros(raw.shape, dtype=np.int64)
    crowd = np.zeros(raw.shape, dtype=bool)
    for number, info in enumerate(segments_info, start=1):
        on = raw == info["id"]
        segments[on] = number
        if info.get("iscrowd", 0):
            crowd |= on
    return PanopticSegments(segments, crowd, [int(info["category_id"]) for info in segments_info])


class PanopticAnnotations:
    """``panoptic_{split}2017.json`` and its PNG folder: ground truth per COCO image id."""

    def __init__(self, root: Path, split: str) -> None:
        self.json_path = require_file(root / "annotations" / f"panoptic_{split}2017.json",
                                      "COCO panoptic annotation file", PANOPTIC_HINT.format(split=split))
        self.png_dir = self._find_png_dir(root, split)
        try:
            data = json.loads(self.json_path.read_text())
            self.by_image = {int(entry["image_id"]): entry for entry in data["annotations"]}
        except (json.JSONDecodeError, KeyError, TypeError) as error:
            raise DatasetError(f"cannot read the COCO panoptic file {self.json_path} ({error!r}); "
                               "re-download it") from error

    @staticmethod
    def _find_png_dir(root: Path, split: str) -> Path:
        for folder in (root / "annotations" / f"panoptic_{split}2017", root / f"panoptic_{split}2017"):
            if folder.is_dir():
                return folder
        raise FileNotFoundError(f"COCO panoptic PNG folder not found: expected "
                                f"{root / 'annotations' / f'panoptic_{split}2017'}/. "
                                + PANOPTIC_HINT.format(split=split))

    def __contains__(self, image_id: int) -> bool:
        return int(image_id) in self.by_image

    def __getitem__(self, image_id: int) -> PanopticSegments:
        entry = self.by_image.get(int(image_id))
        if entry is None:
            raise DatasetError(f"image {image_id} has no entry in {self.json_path.name}; the panoptic "
                               "file belongs to another split or is incomplete")
        return read_panoptic_png(self.png_dir / entry["file_name"], entry["segments_info"])
