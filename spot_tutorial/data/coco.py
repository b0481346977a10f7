"""MS COCO 2017 for SPOT: training images and the evaluation ground truth of the paper.

Ground truth follows the paper's evaluation protocol: masks come from
``instances_{split}2017.json`` via pycocotools and include every annotation (crowd regions too).
Instance ids are ``1 + index`` in the image's annotation order, category ids are mapped to a
contiguous ``1..80``; where annotations overlap the first one keeps the pixel and every pixel
covered by two or more annotations is ignored. Images are resized (shorter side) to 224 and centre
cropped; masks are resized (shorter side) to 320 with PIL's nearest filter and centre cropped,
pixel for pixel as the authors' torchvision transforms on PIL mask images (see ``transforms``).

With ``panoptic=True`` the items also hold the panoptic ground truth (``coco_panoptic``): every
thing and stuff segment, for the P-ARI and PQ of FT-DINOSAUR's protocol.

Expected layout::

    ROOT/annotations/instances_train2017.json   ROOT/train2017/*.jpg
    ROOT/annotations/instances_val2017.json     ROOT/val2017/*.jpg
    ROOT/annotations/panoptic_val2017.json      ROOT/annotations/panoptic_val2017/*.png  (panoptic=True)
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Union

import numpy as np
import torch
from torch.utils.data import Dataset

from spot_tutorial.data._common import check_split, load_rgb, require_dir, require_file
from spot_tutorial.data.coco_panoptic import PanopticAnnotations
from spot_tutorial.data.decode import train_image_reader
from spot_tutorial.data.transforms import eval_image_transform, eval_mask_transform, train_transform
from spot_tutorial.errors import DatasetError

COCO_DOWNLOAD_URL = "https://cocodataset.org/#download"


def coco_ground_truth(coco, image_id: int, category_to_label: dict[int, int]
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance, class and ignore masks [H, W] of one image at its original resolution.

    ``coco`` is a ``pycocotools.coco.COCO``; ``category_to_label`` maps COCO category ids to
    contiguous class ids. Returns (int64 instance ids, int64 class ids, bool ignore).
    """
    info = coco.loadImgs(image_id)[0]
    height, width = info["height"], info["width"]
    instance = np.zeros((height, width), dtype=np.int64)
    classes = np.zeros((height, width), dtype=np.int64)
    coverage = np.zeros((height, width), dtype=np.int32)
    for index, annotation in enumerate(coco.loadAnns(coco.getAnnIds(imgIds=image_id))):
        on = coco.annToMask(annotation).astype(bool)  # polygons, RLE and uncompressed RLE
        if on.shape != (height, width):
            raise DatasetError(f"annotation {annotation.get('id')} of image {image_id} decodes to "
                             f"shape {on.shape}, but the image entry says {(height, width)}")
        first = on & (coverage == 0)  # earlier annotations keep their pixels
        instance[first] = index + 1
        classes[first] = category_to_label[annotation["category_id"]]
        coverage += on
    return instance, classes, coverage >= 2


class COCO2017(Dataset):
    """COCO 2017 images (training) or images with instance/class/ignore masks (evaluation).

    Args:
        root: folder holding ``annotations/`` and ``{train,val}2017/``.
        split: ``"train"`` or ``"val"``.
        image_size: side of the square network input (224 in the paper).
        mask_size: side of the square ground-truth masks (320 in the paper).
        train: True returns only augmented images (listed from the image folder, no annotation
            file needed); False returns evaluation items with masks.
        center_crop, random_crop: cropping of the resized images (see ``transforms``).
        decode: how training images are decoded ('pil', 'pil-draft', 'torchvision', 'gpu'; see
            ``decode``); evaluation always reads them with PIL.
        panoptic: evaluation items also hold ``"panoptic_mask"`` (int64 segment ids, 0 =
            unlabelled) and ``"panoptic_crowd"`` (bool), resized like the instance masks.

    Items are dicts, see ``spot_tutorial.data``.
    """

    SPLITS = ("train", "val")

    def __init__(self, root: Union[str, Path], split: str = "val", image_size: int = 224,
                 mask_size: int = 320, train: bool = False, center_crop: bool = True,
                 random_crop: bool = False, panoptic: bool = False, decode: str = "pil") -> None:
        check_split("COCO2017", split, self.SPLITS)
        self.root = Path(root).expanduser()
        self.split = split
        self.train = train
        self.image_dir = require_dir(
            self.root / f"{split}2017", f"COCO {split} image folder",
            f"Download {split}2017.zip from {COCO_DOWNLOAD_URL} and unzip it into {self.root}.")
        self.coco = None
        self.panoptic = None
        if train and panoptic:
            raise DatasetError("panoptic ground truth is for evaluation: pass train=False with panoptic=True")
        if train:
            self.image_files = sorted(p.name for p in self.image_dir.glob("*.jpg"))
            if not self.image_files:
                raise FileNotFoundError(f"no .jpg images in {self.image_dir}; download "
                                        f"{split}2017.zip from {COCO_DOWNLOAD_URL} and unzip it there.")
            self.image_transform = train_transform(image_size, random_crop, center_crop)
            self.read_train_image = train_image_reader(decode, image_size, random_crop, center_crop,
                                                       self.image_transform)
        else:
            self._load_annotations()
            self.panoptic = PanopticAnnotations(self.root, split) if panoptic else None
            self.image_transform = eval_image_transform(image_size, center_crop)
            self.mask_transform = eval_mask_transform(mask_size, center_crop)

    # ------------------------------------------------------------------
    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / f"instances_{self.split}2017.json"

    def _load_annotations(self) -> None:
        require_file(self.annotation_file, "COCO annotation file",
                     f"Download annotations_trainval2017.zip from {COCO_DOWNLOAD_URL} and unzip it "
                     f"into {self.root} (it creates the annotations/ folder).")
        from pycocotools.coco import COCO  # imported lazily: only evaluation needs it

        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            try:
                self.coco = COCO(str(self.annotation_file))
            except (ValueError, KeyError, TypeError) as error:
                raise DatasetError(f"cannot read COCO annotation file {self.annotation_file} "
                                 f"({error!r}); re-download it from {COCO_DOWNLOAD_URL}.") from error
        self.image_ids = sorted(self.coco.getImgIds())
        category_ids = sorted(self.coco.getCatIds())
        self.category_to_label = {cat: i + 1 for i, cat in enumerate(category_ids)}
        self.class_names = ["background"] + [c["name"] for c in self.coco.loadCats(category_ids)]

    @property
    def num_classes(self) -> int:
        """Number of object classes (80 for COCO), without background; evaluation only."""
        return len(self.category_to_label)

    def __len__(self) -> int:
        return len(self.image_files) if self.train else len(self.image_ids)

    def image_path(self, index: int) -> Path:
        if self.train:
            return self.image_dir / self.image_files[index]
        return self.image_dir / self.coco.loadImgs(self.image_ids[index])[0]["file_name"]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.train:
            return {"image": self.read_train_image(self.image_path(index))}
        image = load_rgb(self.image_path(index))
        image_id = self.image_ids[index]
        instance, classes, ignore = coco_ground_truth(self.coco, image_id, self.category_to_label)
        if image.size != (instance.shape[1], instance.shape[0]):
            raise DatasetError(f"image {self.image_path(index)} is {image.size[0]}x{image.size[1]} "
                             f"but {self.annotation_file.name} says {instance.shape[1]}x"
                             f"{instance.shape[0]}; the image or the annotation file is wrong")
        item = {
            "image": self.image_transform(image),
            "instance_mask": self.mask_transform(instance),
            "class_mask": self.mask_transform(classes),
            "ignore_mask": self.mask_transform(ignore),
        }
        if self.panoptic is not None:
            truth = self.panoptic[image_id]
            if truth.segments.shape != instance.shape:
                raise DatasetError(f"the panoptic PNG of image {image_id} is {truth.segments.shape[1]}x"
                                   f"{truth.segments.shape[0]}, the image "
                                   f"{instance.shape[1]}x{instance.shape[0]}")
            item["panoptic_mask"] = self.mask_transform(truth.segments)
            item["panoptic_crowd"] = self.mask_transform(truth.crowd)
        return item
