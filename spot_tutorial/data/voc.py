"""PASCAL VOC 2012 for SPOT: training images and the evaluation ground truth of the paper.

Training uses the ``trainaug`` list (images only) with a random 224 crop. Evaluation reads the
``SegmentationObject`` (instances) and ``SegmentationClass`` (classes) palette PNGs; the border
value 255 becomes background 0 (it is not ignored), as in the paper's protocol. Images: shorter
side to 224 + centre crop; masks: shorter side to 320 (nearest) + centre crop.

Expected layout (ROOT is the ``VOC2012`` folder; ``ROOT/VOCdevkit/VOC2012`` is also found)::

    ROOT/ImageSets/Segmentation/{trainaug,train,val}.txt
    ROOT/JPEGImages/*.jpg
    ROOT/SegmentationObject/*.png   ROOT/SegmentationClass/*.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch.utils.data import Dataset

from spot_tutorial.data._common import check_split, load_label_png, load_rgb, require_dir, require_file
from spot_tutorial.data.decode import train_image_reader
from spot_tutorial.data.transforms import eval_image_transform, eval_mask_transform, train_transform
from spot_tutorial.errors import DatasetError

VOC_DOWNLOAD_HINT = ("Download VOCtrainval_11-May-2012.tar from "
                     "http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ and extract it; the "
                     "trainaug list comes with the SBD augmentation (e.g. DeepLab's trainaug.txt).")

VOC_CLASSES = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
VOC_BORDER = 255


def _find_voc_root(root: Path) -> Path:
    """``root`` itself, or its ``VOCdevkit/VOC2012`` sub-folder when that is where the data is."""
    if not (root / "ImageSets").is_dir() and (root / "VOCdevkit" / "VOC2012" / "ImageSets").is_dir():
        return root / "VOCdevkit" / "VOC2012"
    return root


def read_voc_labels(path: Path) -> np.ndarray:
    """A VOC palette PNG as int64 label ids [H, W], with the 255 borders set to background 0."""
    labels = load_label_png(path)
    labels[labels == VOC_BORDER] = 0
    return labels


class PascalVOC(Dataset):
    """PASCAL VOC 2012 images (training) or images with instance/class/ignore masks (evaluation).

    Args:
        root: the ``VOC2012`` folder (or a folder holding ``VOCdevkit/VOC2012``).
        split: ``"trainaug"``, ``"train"`` or ``"val"`` (a list in ImageSets/Segmentation).
        image_size, mask_size: sides of the square images and ground-truth masks (224, 320).
        train: True returns only augmented images; False returns evaluation items with masks.
        center_crop, random_crop: cropping of the resized images; VOC training uses a random crop.
        decode: how training images are decoded (see ``decode``); evaluation always uses PIL.

    Items are dicts, see ``spot_tutorial.data``. ``ignore_mask`` is all False.
    """

    SPLITS = ("trainaug", "train", "val")
    class_names = list(VOC_CLASSES)
    num_classes = len(VOC_CLASSES) - 1

    def __init__(self, root: Union[str, Path], split: str = "val", image_size: int = 224,
                 mask_size: int = 320, train: bool = False, center_crop: bool = True,
                 random_crop: bool = True, decode: str = "pil") -> None:
        check_split("PascalVOC", split, self.SPLITS)
        self.root = _find_voc_root(Path(root).expanduser())
        self.split = split
        self.train = train
        list_file = require_file(self.root / "ImageSets" / "Segmentation" / f"{split}.txt",
                                 f"VOC {split} image list", VOC_DOWNLOAD_HINT)
        self.names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        if not self.names:
            raise DatasetError(f"the VOC image list {list_file} is empty; re-download it.")
        self.image_dir = require_dir(self.root / "JPEGImages", "VOC image folder", VOC_DOWNLOAD_HINT)
        if train:
            self.image_transform = train_transform(image_size, random_crop, center_crop)
            self.read_train_image = train_image_reader(decode, image_size, random_crop, center_crop,
                                                       self.image_transform)
        else:
            for folder in ("SegmentationObject", "SegmentationClass"):
                require_dir(self.root / folder, f"VOC {folder} folder", VOC_DOWNLOAD_HINT)
            self.image_transform = eval_image_transform(image_size, center_crop)
            self.mask_transform = eval_mask_transform(mask_size, center_crop)

    def __len__(self) -> int:
        return len(self.names)

    def image_path(self, index: int) -> Path:
        return self.image_dir / f"{self.names[index]}.jpg"

    def _mask_path(self, folder: str, name: str) -> Path:
        path = self.root / folder / f"{name}.png"
        if not path.is_file():
            raise FileNotFoundError(f"VOC ground truth {path} is missing. Only images of the "
                                    "official train/val lists have masks; evaluate on split='val'.")
        return path

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.train:
            return {"image": self.read_train_image(self.image_path(index))}
        image = load_rgb(self.image_path(index))
        name = self.names[index]
        instance = read_voc_labels(self._mask_path("SegmentationObject", name))
        classes = read_voc_labels(self._mask_path("SegmentationClass", name))
        if instance.shape != classes.shape or instance.shape != (image.size[1], image.size[0]):
            raise DatasetError(f"VOC image {name}: image {image.size[1]}x{image.size[0]}, object PNG "
                             f"{instance.shape}, class PNG {classes.shape} differ in size; "
                             "re-download the dataset.")
        return {
            "image": self.image_transform(image),
            "instance_mask": self.mask_transform(instance),
            "class_mask": self.mask_transform(classes),
            "ignore_mask": torch.zeros((self.mask_transform.mask_size,) * 2, dtype=torch.bool),
        }
