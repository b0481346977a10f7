"""MOVi-C / MOVi-E (Kubric) for SPOT: video frames as independent images.

Implements the MOVi protocol of the paper's experiments (section 4), with the settings of the
authors' released MOVi commands: frames are resized to 224x224 without cropping, with bicubic
interpolation (PIL's default resampling filter, which the authors' loader relies on) and without
random horizontal flips, in training and evaluation alike. Training uses a fixed random subset
of frames per video (9 by default), drawn once from a seeded generator so that both training
stages see the same frames; evaluation uses every frame. The instance target of a pixel is the
index ``NN`` of the per-object mask that covers it (``00`` = background).

Evaluation ground truth is 128x128 (``mask_size=128``, the authors' ``--val_mask_size 128``):
MOVi-C/E are exported from TFDS at 128x128 (``movi_c/128x128``), so at 128 px the masks are
scored at their native resolution, without resampling; exports at 256x256 are brought to the
same 128-px grid with PIL's nearest filter, so that the numbers stay comparable. The predicted
masks are upsampled to 128x128 for scoring.

Expected layout (as written by the usual TFDS export script)::

    ROOT/{train,validation}/VIDEO/FFFFFFFF_image.png
    ROOT/validation/VIDEO/FFFFFFFF_mask_NN.png     NN = 00..24, 00 = background

The training split needs no masks; every frame of an evaluation split needs its mask files,
which is checked when the dataset is built.
"""

from __future__ import annotations

import os
import re
import zlib
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from spot_tutorial.data._common import check_split, load_binary_png, load_rgb, require_dir
from spot_tutorial.data.transforms import eval_image_transform, eval_mask_transform, train_transform
from spot_tutorial.errors import DatasetError

MOVI_HINT = ("Export MOVi-C / MOVi-E from TFDS (gs://kubric-public/tfds, e.g. movi_c/128x128 or "
             "256x256) to PNG files with the usual export script: one folder per video holding "
             "FFFFFFFF_image.png and FFFFFFFF_mask_NN.png.")

_IMAGE_SUFFIX = "_image.png"
BICUBIC = InterpolationMode.BICUBIC  # PIL's default filter, used by the authors for MOVi frames
_MASK_RE = re.compile(r"^(?P<frame>.+)_mask_(?P<index>\d+)\.png$")


def _scan_video(video_dir: Path) -> tuple[list[str], dict[str, list[tuple[int, str]]]]:
    """Frame prefixes (sorted) and, per frame, its (object index, mask file name) pairs."""
    frames: list[str] = []
    masks: dict[str, list[tuple[int, str]]] = {}
    with os.scandir(video_dir) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith(_IMAGE_SUFFIX):
                frames.append(name[: -len(_IMAGE_SUFFIX)])
            elif (match := _MASK_RE.match(name)) is not None:
                masks.setdefault(match["frame"], []).append((int(match["index"]), name))
    for pairs in masks.values():
        pairs.sort()
    return sorted(frames), masks


def choose_training_frames(video_name: str, num_frames: int, frames_per_video: Optional[int],
                           seed: int) -> list[int]:
    """Indices of the frames kept for training: a fixed random subset, sorted.

    The generator is seeded by (seed, CRC32 of the video name), so the choice is the same in
    every run, stage and worker, and does not depend on which other videos are present.
    """
    if frames_per_video is None or frames_per_video >= num_frames:
        return list(range(num_frames))
    rng = np.random.default_rng([seed, zlib.crc32(video_name.encode())])
    return sorted(int(i) for i in rng.choice(num_frames, size=frames_per_video, replace=False))


class MOVi(Dataset):
    """MOVi-C / MOVi-E frames (training) or frames with instance masks (evaluation).

    Args:
        root: folder holding ``train/`` and ``validation/`` with one sub-folder per video.
        split: ``"train"`` or ``"validation"``.
        frames_per_video: frames kept per video when ``train=True`` (None = all); evaluation
            always uses every frame.
        seed: seed of the fixed training-frame choice.
        image_size, mask_size: sides of the square images and masks (224 and 128).
        train: True returns only augmented images; False returns evaluation items with masks.
        center_crop: False (the authors' MOVi setting) resizes frames to a square without cropping.

    Items are dicts, see ``spot_tutorial.data``. There are no class labels: ``class_mask``
    equals ``instance_mask``; ``ignore_mask`` is all False.
    """

    SPLITS = ("train", "validation")

    def __init__(self, root: Union[str, Path], split: str = "validation",
                 frames_per_video: Optional[int] = 9, seed: int = 0, image_size: int = 224,
                 mask_size: int = 128, train: bool = False, center_crop: bool = False) -> None:
        check_split("MOVi", split, self.SPLITS)
        if frames_per_video is not None and frames_per_video < 1:
            raise DatasetError(f"frames_per_video must be >= 1 or None (all frames), got {frames_per_video}")
        self.root = Path(root).expanduser()
        self.split = split
        self.train = train
        self.split_dir = require_dir(self.root / split, f"MOVi {split} folder", MOVI_HINT)
        self.frames: list[tuple[str, str]] = []  # (video folder name, frame prefix)
        self._masks: dict[tuple[str, str], list[tuple[int, str]]] = {}
        self._index_videos(frames_per_video, seed)
        if train:
            self.image_transform = train_transform(image_size, False, center_crop,
                                                   horizontal_flip=False, interpolation=BICUBIC)
        else:
            self.image_transform = eval_image_transform(image_size, center_crop, interpolation=BICUBIC)
            self.mask_transform = eval_mask_transform(mask_size, center_crop)

    def _index_videos(self, frames_per_video: Optional[int], seed: int) -> None:
        videos = sorted(p.name for p in self.split_dir.iterdir() if p.is_dir())
        for video in videos:
            frames, masks = _scan_video(self.split_dir / video)
            if self.train:
                frames = [frames[i] for i in
                          choose_training_frames(video, len(frames), frames_per_video, seed)]
            for frame in frames:
                self.frames.append((video, frame))
                if not self.train:
                    self._masks[(video, frame)] = masks.get(frame, [])
        if not self.frames:
            raise FileNotFoundError(f"no *{_IMAGE_SUFFIX} frames found in the video folders of "
                                    f"{self.split_dir}. {MOVI_HINT}")
        if not self.train:
            self._check_masks_present()

    def _check_masks_present(self) -> None:
        """Evaluation needs the masks of every frame: fail now, not at the first evaluation."""
        missing = [self.split_dir / video / f"{frame}_mask_00.png"
                   for (video, frame), pairs in self._masks.items() if not pairs]
        if missing:
            examples = ", ".join(str(path) for path in missing[:3])
            raise FileNotFoundError(
                f"{len(missing)} of the {len(self.frames)} frames in {self.split_dir} have no mask "
                f"files (e.g. {examples} and the other _mask_NN.png of these frames are missing). "
                f"Evaluation needs FFFFFFFF_mask_NN.png next to every FFFFFFFF_image.png (NN = 00 "
                f"for the background, then one per object; the export writes 00..24 for the "
                f"validation split). Re-export this split with its segmentations, or use "
                f"train=True if you only train on it. {MOVI_HINT}")

    def __len__(self) -> int:
        return len(self.frames)

    def image_path(self, index: int) -> Path:
        video, frame = self.frames[index]
        return self.split_dir / video / f"{frame}{_IMAGE_SUFFIX}"

    def instance_labels(self, index: int) -> np.ndarray:
        """Instance ids [H, W] of one frame at full resolution: the NN of the mask that is on."""
        video, frame = self.frames[index]
        pairs = self._masks[(video, frame)]
        if not pairs:
            raise FileNotFoundError(f"no {frame}_mask_NN.png files next to {self.image_path(index)}; "
                                    f"evaluation needs the per-object masks. {MOVI_HINT}")
        labels = None
        for object_index, name in pairs:
            on = load_binary_png(self.split_dir / video / name)
            if labels is None:
                labels = np.zeros(on.shape, dtype=np.int64)
            elif on.shape != labels.shape:
                raise DatasetError(f"mask {self.split_dir / video / name} has shape {on.shape}, "
                                 f"other masks of the frame {labels.shape}")
            if object_index > 0:  # 00 is the background mask
                labels[on & (labels == 0)] = object_index
        return labels

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        image = load_rgb(self.image_path(index))
        if self.train:
            return {"image": self.image_transform(image)}
        instance = self.mask_transform(self.instance_labels(index))
        return {
            "image": self.image_transform(image),
            "instance_mask": instance,
            "class_mask": instance.clone(),
            "ignore_mask": torch.zeros_like(instance, dtype=torch.bool),
        }
