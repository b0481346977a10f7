"""Any folder of images, for training SPOT on your own data (no labels needed).

Training reads every image under the folder (recursively) with the COCO recipe's transforms:
shorter side to 224 (bilinear), centre crop (or a random crop), random horizontal flip, ImageNet
normalisation. Evaluation is possible when a parallel folder of instance-mask PNGs is given:
``MASKS/<same relative path>.png`` per image, pixel value = instance id (0 = background), as a
grayscale, palette or 16-bit PNG of the image's size. Images without a mask PNG are not
evaluated; masks are resized like COCO's (shorter side to ``mask_size``, nearest, centre crop).

Layout::

    my_photos/beach/001.jpg        my_masks/beach/001.png     (masks: optional)
    my_photos/street.png           my_masks/street.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
from torch.utils.data import Dataset

from spot_tutorial.data._common import load_label_png, load_rgb, require_dir
from spot_tutorial.data.decode import train_image_reader
from spot_tutorial.data.transforms import eval_image_transform, eval_mask_transform, train_transform
from spot_tutorial.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def list_images(root: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under `root` (recursive, sorted), as paths relative to `root`.

    Hidden files and folders are skipped, and so is everything under `exclude` (a mask folder
    kept inside the image folder).
    """
    root = Path(root)
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts) or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if exclude is not None and path.resolve().is_relative_to(exclude.resolve()):
            continue
        if path.is_file():
            found.append(relative)
    return sorted(found)


class ImageFolder(Dataset):
    """The images of a folder (training), optionally with instance masks (evaluation).

    Args:
        root: folder of images (searched recursively).
        train: True returns augmented images only; False returns evaluation items.
        masks: folder of instance-mask PNGs parallel to `root` (evaluation only). Without it,
            evaluation items hold only the image (enough for figures, not for metrics).
        image_size, mask_size: sides of the square images and ground-truth masks (224, 320).
        center_crop, random_crop: cropping of the resized images (see ``transforms``).
        exclude: a folder inside `root` whose files are not images to read (default: `masks`).
        decode: how training images are decoded (see ``decode``); evaluation always uses PIL.

    ``relative_paths`` names the items, in order. Items are dicts, see ``spot_tutorial.data``.
    """

    def __init__(self, root: Union[str, Path], train: bool = False, masks: Union[str, Path, None] = None,
                 image_size: int = 224, mask_size: int = 320, center_crop: bool = True,
                 random_crop: bool = False, exclude: Union[str, Path, None] = None,
                 decode: str = "pil") -> None:
        self.root = require_dir(Path(root).expanduser(), "image folder",
                                "Pass the folder that holds your images (--data-path).")
        self.train = train
        self.mask_root = None
        if masks is not None:
            if train:
                raise DatasetError("mask PNGs are for evaluation; a training folder needs none (drop masks=)")
            self.mask_root = require_dir(Path(masks).expanduser(), "mask folder",
                                         "Pass the folder of instance-mask PNGs parallel to the images "
                                         "(--mask-path).")
        exclude = self.mask_root if exclude is None else Path(exclude)
        images = list_images(self.root, exclude=exclude)
        if not images:
            raise DatasetError(f"no images found under {self.root} (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.without_masks = 0
        if self.mask_root is not None:
            with_masks = [path for path in images if self.mask_path(path).is_file()]
            if not with_masks:
                raise DatasetError(f"none of the {len(images)} images under {self.root} has a mask PNG in "
                                   f"{self.mask_root} (expected e.g. {self.mask_path(images[0])})")
            self.without_masks = len(images) - len(with_masks)
            images = with_masks
        self.relative_paths = images
        if train:
            self.image_transform = train_transform(image_size, random_crop, center_crop)
            self.read_train_image = train_image_reader(decode, image_size, random_crop, center_crop,
                                                       self.image_transform)
        else:
            self.image_transform = eval_image_transform(image_size, center_crop)
            self.mask_transform = eval_mask_transform(mask_size, center_crop)

    @property
    def has_masks(self) -> bool:
        return self.mask_root is not None and not self.train

    def mask_path(self, relative: Path) -> Path:
        return self.mask_root / relative.with_suffix(".png")

    def image_path(self, index: int) -> Path:
        return self.root / self.relative_paths[index]

    def __len__(self) -> int:
        return len(self.relative_paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.train:
            return {"image": self.read_train_image(self.image_path(index))}
        image = load_rgb(self.image_path(index))
        if not self.has_masks:
            return {"image": self.image_transform(image)}
        mask_file = self.mask_path(self.relative_paths[index])
        instance = load_label_png(mask_file)  # [H, W] int64
        if instance.shape != (image.size[1], image.size[0]):
            raise DatasetError(f"mask {mask_file} is {instance.shape[1]}x{instance.shape[0]} but its image "
                               f"{self.image_path(index)} is {image.size[0]}x{image.size[1]}; masks must "
                               "have their image's size")
        size = self.mask_transform.mask_size
        return {
            "image": self.image_transform(image),
            "instance_mask": self.mask_transform(instance),
            "ignore_mask": torch.zeros((size, size), dtype=torch.bool),
        }
