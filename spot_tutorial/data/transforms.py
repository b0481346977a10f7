"""Image and ground-truth transforms of SPOT's training and evaluation protocol.

Implements the preprocessing stated in the paper and its evaluation section:

* training images: resize the shorter side to ``image_size`` (bilinear), centre crop
  (VOC: random crop), random horizontal flip, ImageNet mean/std normalisation;
* evaluation images: resize the shorter side to ``image_size`` (bilinear) and centre crop;
* evaluation ground truth (integer label maps): resize the shorter side to ``mask_size`` with
  nearest-neighbour interpolation and centre crop, so that label ids are kept exactly. The
  authors apply torchvision's ``Resize(mask_size, NEAREST)`` + ``CenterCrop`` to the PIL mask
  image, i.e. PIL's nearest filter; we resize the label map as a PIL image too, because
  torchvision's tensor NEAREST (and NEAREST_EXACT, when the aspect ratio is not kept exactly)
  picks other source pixels (about 15% of the pixels differ on 128-px maps with small objects);
* MOVi (``center_crop=False``): square frames are resized to ``size x size`` without cropping,
  without horizontal flips and with bicubic interpolation (PIL's default resampling filter,
  which the authors' MOVi pipeline relies on).
"""

from __future__ import annotations

from typing import Callable, Union

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torchvision.transforms import InterpolationMode

from spot_tutorial.errors import DatasetError

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

LabelMap = Union[Image.Image, np.ndarray, torch.Tensor]


def _check_size(name: str, size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise DatasetError(f"{name} must be a positive integer, got {size!r}")


def _geometry(size: int, center_crop: bool, random_crop: bool,
              interpolation: InterpolationMode) -> list:
    """Resize (+ crop) steps shared by all transforms.

    With a crop the shorter side is resized to ``size`` and a ``size x size`` window is cut
    (random or central); without a crop the image is resized to ``size x size`` directly.
    """
    if random_crop:
        return [T.Resize(size, interpolation=interpolation, antialias=True), T.RandomCrop(size)]
    if center_crop:
        return [T.Resize(size, interpolation=interpolation, antialias=True), T.CenterCrop(size)]
    return [T.Resize((size, size), interpolation=interpolation, antialias=True)]


def normalize_transform() -> T.Normalize:
    """ImageNet mean/std normalisation (the DINO encoder was trained with it)."""
    return T.Normalize(IMAGENET_MEAN, IMAGENET_STD)


def train_transform(image_size: int = 224, random_crop: bool = False, center_crop: bool = True,
                    horizontal_flip: bool = True,
                    interpolation: InterpolationMode = InterpolationMode.BILINEAR,
                    ) -> Callable[[Image.Image], torch.Tensor]:
    """Training augmentation: PIL RGB image -> normalised float tensor [3, image_size, image_size].

    ``random_crop=True`` (VOC) takes precedence over ``center_crop``; with both False (MOVi)
    the image is resized to a square without cropping. COCO and VOC flip horizontally at random
    and resize bilinearly; MOVi uses ``horizontal_flip=False`` and ``InterpolationMode.BICUBIC``.
    """
    _check_size("image_size", image_size)
    flip = [T.RandomHorizontalFlip()] if horizontal_flip else []
    return T.Compose([
        *_geometry(image_size, center_crop, random_crop, interpolation),
        *flip,
        T.ToTensor(),
        normalize_transform(),
    ])


def eval_image_transform(image_size: int = 224, center_crop: bool = True,
                         interpolation: InterpolationMode = InterpolationMode.BILINEAR,
                         ) -> Callable[[Image.Image], torch.Tensor]:
    """Evaluation images: PIL RGB image -> normalised float tensor [3, image_size, image_size].

    Bilinear for COCO and VOC; MOVi passes ``InterpolationMode.BICUBIC``.
    """
    _check_size("image_size", image_size)
    return T.Compose([
        *_geometry(image_size, center_crop, False, interpolation),
        T.ToTensor(),
        normalize_transform(),
    ])


def to_label_tensor(mask: LabelMap) -> torch.Tensor:
    """A 2-D label map (PIL 'L'/'P'/'I' image, numpy array or tensor) as an int64 tensor [H, W]."""
    if isinstance(mask, Image.Image):
        mask = np.array(mask)  # a writable copy of the pixel values (palette indices for 'P')
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"expected a PIL image, numpy array or tensor label map, got {type(mask).__name__}")
    if mask.ndim != 2:
        raise DatasetError(f"a label map must be 2-D [H, W], got shape {tuple(mask.shape)}")
    return mask.to(torch.int64)


def resized_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) after resizing the shorter side to ``size``, keeping the aspect ratio.

    The rule of torchvision's ``Resize(size)`` with an int: the shorter side becomes ``size``,
    the longer one ``int(size * long / short)`` (truncated, not rounded).
    """
    if width <= height:
        return int(size * height / width), size
    return size, int(size * width / height)


def center_crop_offsets(height: int, width: int, size: int) -> tuple[int, int]:
    """(top, left) of the central ``size x size`` window, with torchvision CenterCrop's rounding."""
    return int(round((height - size) / 2.0)), int(round((width - size) / 2.0))


def _label_image(labels: np.ndarray) -> Image.Image:
    """A PIL image holding the label ids exactly: mode 'L' for ids 0..255, else 'I' (int32)."""
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high <= 255:
        return Image.fromarray(labels.astype(np.uint8))  # mode 'L'
    int32 = np.iinfo(np.int32)
    if low < int32.min or high > int32.max:
        raise DatasetError(f"label ids must fit in int32 to be resized exactly, got ids from {low} "
                         f"to {high}; renumber the labels (e.g. with np.unique(..., return_inverse=True))")
    return Image.fromarray(labels.astype(np.int32))  # mode 'I'


class EvalMaskTransform:
    """Nearest-neighbour resize (+ centre crop) of an integer label map; ids are kept exactly.

    Pixel for pixel the authors' ground-truth preprocessing: the label map is resized as a PIL
    image with PIL's nearest filter (shorter side to ``mask_size`` with ``center_crop``, else to
    ``mask_size x mask_size``) and then centre cropped. Returns an int64 tensor
    [mask_size, mask_size]. Boolean masks (e.g. ignore masks) come back as bool.
    """

    def __init__(self, mask_size: int = 320, center_crop: bool = True) -> None:
        _check_size("mask_size", mask_size)
        self.mask_size = mask_size
        self.center_crop = center_crop

    def __call__(self, mask: LabelMap) -> torch.Tensor:
        is_bool = (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool) or (
            isinstance(mask, np.ndarray) and mask.dtype == np.bool_)
        labels = to_label_tensor(mask).numpy()  # [H, W] int64
        height, width = labels.shape
        if height == 0 or width == 0:
            raise DatasetError(f"cannot resize an empty label map of shape {(height, width)}")
        size = self.mask_size
        new_height, new_width = resized_shape(height, width, size) if self.center_crop else (size, size)
        resized = _label_image(labels).resize((new_width, new_height), Image.NEAREST)
        labels_out = torch.from_numpy(np.asarray(resized).astype(np.int64))  # [new_height, new_width]
        if self.center_crop:
            top, left = center_crop_offsets(new_height, new_width, size)
            labels_out = labels_out[top:top + size, left:left + size]  # [size, size]
        return labels_out.bool() if is_bool else labels_out.contiguous()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mask_size={self.mask_size}, center_crop={self.center_crop})"


def eval_mask_transform(mask_size: int = 320, center_crop: bool = True) -> EvalMaskTransform:
    """Evaluation ground truth: integer label map -> int64 tensor [mask_size, mask_size]."""
    return EvalMaskTransform(mask_size, center_crop)


def denormalize(images: torch.Tensor) -> torch.Tensor:
    """Undo the ImageNet normalisation for plotting: [..., 3, H, W] -> values in [0, 1]."""
    if images.ndim < 3 or images.shape[-3] != 3:
        raise DatasetError(f"expected images of shape [..., 3, H, W], got {tuple(images.shape)}")
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(3, 1, 1)
    return (images * std + mean).clamp(0.0, 1.0)
