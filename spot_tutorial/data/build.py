"""Build the training and evaluation datasets a `SPOTConfig` names, as the paper does."""

from __future__ import annotations

import os

from torch.utils.data import Dataset, Subset

from ..config import SPOTConfig
from .coco import COCO2017
from .folder import ImageFolder
from .movi import MOVi
from .synthetic import SyntheticShapes
from .voc import PascalVOC
from ..errors import DatasetError

SYNTHETIC_TRAIN_IMAGES = 10_000
SYNTHETIC_EVAL_IMAGES = 256
SYNTHETIC_EVAL_SEED = 999_999  # the held-out synthetic scenes; never a training seed in practice
DATASETS = ("coco", "voc", "movi_c", "movi_e", "synthetic", "folder")


def first_items(dataset: Dataset, count: int) -> Dataset:
    """The first `count` items (all of them when count is 0)."""
    return Subset(dataset, range(min(count, len(dataset)))) if count > 0 else dataset


def build_datasets(config: SPOTConfig, data_path: str | os.PathLike | None = None,
                   mask_path: str | os.PathLike | None = None,
                   panoptic: bool = False) -> tuple[Dataset, Dataset]:
    """(training set, evaluation set with masks) for `config.dataset`.

    `mask_path`: for ``dataset='folder'``, the folder of instance-mask PNGs parallel to the
    images (without it the evaluation set holds images only). `panoptic`: COCO evaluation items
    also carry the panoptic ground truth (P-ARI, PQ).
    """
    name = config.dataset
    if mask_path is not None and name != "folder":
        raise DatasetError(f"a mask folder (--mask-path) is for --dataset folder, not {name!r}")
    if panoptic and name != "coco":
        raise DatasetError(f"panoptic ground truth (--panoptic) exists for COCO only, not {name!r}")
    if name == "synthetic":
        train_set = SyntheticShapes(config.train_images or SYNTHETIC_TRAIN_IMAGES, config.image_size,
                                    seed=config.seed)
        eval_set = SyntheticShapes(config.eval_images or SYNTHETIC_EVAL_IMAGES, config.image_size,
                                   seed=SYNTHETIC_EVAL_SEED, mask_size=config.gt_mask_size)
        return train_set, eval_set
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if data_path is None:
        raise DatasetError(f"dataset '{name}' needs its folder: pass data_path (--data-path) "
                         "or use the built-in synthetic dataset (--preset synthetic)")
    common = dict(image_size=config.image_size, center_crop=config.center_crop)
    if name == "coco":
        train_set = COCO2017(data_path, "train", train=True, random_crop=config.random_crop, **common)
        eval_set = COCO2017(data_path, "val", mask_size=config.gt_mask_size, panoptic=panoptic, **common)
    elif name == "folder":  # your own images, the COCO recipe's transforms
        train_set = ImageFolder(data_path, train=True, random_crop=config.random_crop, exclude=mask_path, **common)
        eval_set = ImageFolder(data_path, masks=mask_path, mask_size=config.gt_mask_size, **common)
    elif name == "voc":
        train_set = PascalVOC(data_path, "trainaug", train=True, random_crop=config.random_crop, **common)
        eval_set = PascalVOC(data_path, "val", mask_size=config.gt_mask_size, **common)
    else:
        train_set = MOVi(data_path, "train", frames_per_video=9, seed=config.seed, train=True, **common)
        eval_set = MOVi(data_path, "validation", mask_size=config.gt_mask_size, **common)
    return first_items(train_set, config.train_images), first_items(eval_set, config.eval_images)
