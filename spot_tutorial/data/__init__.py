"""Datasets and transforms of SPOT's training and evaluation protocol.

Readers for the paper's datasets (COCO 2017 with its panoptic ground truth, PASCAL VOC 2012,
MOVi-C/E), any folder of your own images (``ImageFolder``) and a built-in procedural dataset
(``SyntheticShapes``) for CPU-sized experiments, and ``write_coco_like_folder``, which writes a
COCO-like JPEG folder with its instances JSON for benchmarks and tests. None imports a model.

Item format (shared by every dataset)
-------------------------------------
``dataset[i]`` is a dict of tensors, so the default ``torch.utils.data.DataLoader`` collate
stacks a batch into the same keys with a leading batch dimension:

``"image"``
    float32 [3, H, W], normalised with the ImageNet mean/std (``transforms.IMAGENET_MEAN`` /
    ``IMAGENET_STD``; ``transforms.denormalize`` undoes it for plotting). ``SyntheticShapes``
    returns [0, 1] images instead when ``normalize=False``.

Evaluation items (``train=False``; ``SyntheticShapes`` always) also hold:

``"instance_mask"``
    int64 [Hm, Wm]: 0 = background, 1..n = objects.
``"class_mask"``
    int64 [Hm, Wm]: 0 = background, 1..C = semantic class (COCO: contiguous 1..80; MOVi has no
    classes and repeats the instance mask).
``"ignore_mask"``
    bool [Hm, Wm]: True where the ground truth is ambiguous (COCO pixels covered by two or more
    annotations) and must be left out of every metric.

Training items (``train=True``) hold only ``"image"`` (augmented).

Defaults follow the paper: images 224 (shorter side resize + centre crop; MOVi: resized without
cropping), masks 320 (COCO, VOC) or 128 (MOVi) with nearest-neighbour resizing.
"""

from spot_tutorial.data._common import CorruptImageError
from spot_tutorial.data.coco import COCO2017
from spot_tutorial.data.coco_like import write_coco_like_folder
from spot_tutorial.data.folder import ImageFolder
from spot_tutorial.data.movi import MOVi
from spot_tutorial.data.registry import DATASETS, build_datasets
from spot_tutorial.data.synthetic import DIFFICULTIES, SHAPES, RenderedScenes, SyntheticShapes
from spot_tutorial.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_image_transform,
    eval_mask_transform,
    train_transform,
)
from spot_tutorial.data.voc import PascalVOC

__all__ = [
    "DATASETS",
    "build_datasets",
    "COCO2017",
    "CorruptImageError",
    "DIFFICULTIES",
    "ImageFolder",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MOVi",
    "PascalVOC",
    "RenderedScenes",
    "SHAPES",
    "SyntheticShapes",
    "denormalize",
    "eval_image_transform",
    "eval_mask_transform",
    "train_transform",
    "write_coco_like_folder",
]
