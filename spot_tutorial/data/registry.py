"""The dataset registry: which datasets a `SPOTConfig` names, built as the paper builds them.

`DATASETS` lists the names; `build_datasets` returns the training and evaluation sets of a
configuration, and the held-out selection split when the run asks for model selection. This is
the one place that turns a dataset name into dataset objects. None of it imports a model.

Training and evaluation sets
----------------------------
Build the training and evaluation datasets a `SPOTConfig` names, as the paper does.


Held-out images for model selection
-----------------------------------
Held-out training images for model selection, so the reported split is never used to choose.

The paper reports the numbers of the *last* checkpoint on COCO val2017 and the VOC val set.
Picking a "best" checkpoint by its score on those same images would tune on the test data.
When a run asks for model selection (``SPOTConfig.selection_images > 0``), the last images of
the training split (with their ground-truth masks) are taken out of training and used to score
the checkpoints instead:

* synthetic scenes: the last N scenes of the training seed;
* COCO: the last N images of train2017 (sorted by file name), masks from instances_train2017.json;
* VOC: the last N images of the ``train`` list (the part of ``trainaug`` that has masks);
* MOVi: whole videos from the end of the ``train`` folder, at least N frames, so no video is
  seen both in training and in selection;
* an image folder (``dataset='folder'``): the last N images (sorted by relative path) that have
  a mask PNG in the mask folder; without a mask folder there is nothing to score, and it is refused.

None of this imports a model.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Hashable, Sequence

from torch.utils.data import Dataset, Subset

from spot_tutorial.config import SPOTConfig
from spot_tutorial.data.coco import COCO2017
from spot_tutorial.data.folder import ImageFolder
from spot_tutorial.data.movi import MOVi
from spot_tutorial.data.synthetic import SyntheticShapes
from spot_tutorial.data.voc import PascalVOC
from spot_tutorial.errors import ConfigError, DatasetError

SYNTHETIC_TRAIN_IMAGES = 10_000
SYNTHETIC_EVAL_IMAGES = 256
SYNTHETIC_EVAL_SEED = 999_999  # the held-out synthetic scenes; never a training seed in practice
# Scenes for choosing a recipe (encoder, block, slots, ...): neither trained on nor the test scenes.
SYNTHETIC_VALIDATION_SEED = 777_777
DATASETS = ("coco", "voc", "movi_c", "movi_e", "synthetic", "folder")


def first_items(dataset: Dataset, count: int) -> Dataset:
    """The first `count` items (all of them when count is 0)."""
    return Subset(dataset, range(min(count, len(dataset)))) if count > 0 else dataset


JPEG_DATASETS = ("coco", "voc", "folder")  # those whose training images SPOTConfig.decode reads


def check_decoder(config: SPOTConfig) -> None:
    """A decoder other than PIL is for datasets of image files (`JPEG_DATASETS`)."""
    if config.decode != "pil" and config.dataset not in JPEG_DATASETS:
        raise ConfigError(f"decode={config.decode!r} is for datasets of image files {JPEG_DATASETS}, not "
                          f"{config.dataset!r}; use decode='pil' (--decode pil) there")


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
    check_decoder(config)
    if name == "synthetic":
        train_set = SyntheticShapes(config.train_images or SYNTHETIC_TRAIN_IMAGES, config.image_size,
                                    difficulty=config.synthetic_difficulty, seed=config.seed)
        eval_set = SyntheticShapes(config.eval_images or SYNTHETIC_EVAL_IMAGES, config.image_size,
                                   difficulty=config.synthetic_difficulty, seed=SYNTHETIC_EVAL_SEED,
                                   mask_size=config.gt_mask_size)
        return train_set, eval_set
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {DATASETS}")
    if data_path is None:
        raise DatasetError(f"dataset '{name}' needs its folder: pass data_path (--data-path) "
                         "or use the built-in synthetic dataset (--preset synthetic)")
    common = dict(image_size=config.image_size, center_crop=config.center_crop)
    reading = dict(random_crop=config.random_crop, decode=config.decode)  # training images
    if name == "coco":
        train_set = COCO2017(data_path, "train", train=True, **reading, **common)
        eval_set = COCO2017(data_path, "val", mask_size=config.gt_mask_size, panoptic=panoptic, **common)
    elif name == "folder":  # your own images, the COCO recipe's transforms
        train_set = ImageFolder(data_path, train=True, exclude=mask_path, **reading, **common)
        eval_set = ImageFolder(data_path, masks=mask_path, mask_size=config.gt_mask_size, **common)
    elif name == "voc":
        train_set = PascalVOC(data_path, "trainaug", train=True, **reading, **common)
        eval_set = PascalVOC(data_path, "val", mask_size=config.gt_mask_size, **common)
    else:
        train_set = MOVi(data_path, "train", frames_per_video=9, seed=config.seed, train=True, **common)
        eval_set = MOVi(data_path, "validation", mask_size=config.gt_mask_size, **common)
    return first_items(train_set, config.train_images), first_items(eval_set, config.eval_images)


def split_off(train_set: Dataset, train_keys: Sequence[Hashable], scored: Dataset,
              scored_keys: Sequence[Hashable], held_out: set) -> tuple[Dataset, Dataset]:
    """(items of `train_set` whose key is not in `held_out`, items of `scored` whose key is).

    A key names what must not be in both parts: an image, or a MOVi video with all its frames.
    """
    keep = [i for i, key in enumerate(train_keys) if key not in held_out]
    chosen = [i for i, key in enumerate(scored_keys) if key in held_out]
    if not keep:
        raise ConfigError(f"holding out {len(chosen)} images leaves no training images; lower "
                          f"selection_images")
    return Subset(train_set, keep), Subset(scored, chosen)


def last_keys(keys: Sequence[Hashable], count: int) -> set:
    """The keys of the last `count` items (whole groups for repeated keys: at least `count` items)."""
    distinct = list(dict.fromkeys(keys))
    if not 0 < count < len(keys):
        raise ConfigError(f"selection_images={count}, but the training split has {len(keys)} images "
                         "with masks; hold out fewer images (or 0 for no model selection)")
    sizes = Counter(keys)
    held: list = []
    covered = 0
    while covered < count:  # whole groups, from the end
        held.append(distinct[-1 - len(held)])
        covered += sizes[held[-1]]
    if len(held) == len(distinct):
        raise ConfigError(f"selection_images={count} would hold out every training image; lower it")
    return set(held)


def holdout_split(config: SPOTConfig, train_set: Dataset, data_path: str | os.PathLike | None = None,
                  mask_path: str | os.PathLike | None = None) -> tuple[Dataset, Dataset]:
    """(training set without the held-out images, held-out images with masks) for `config`.

    `train_set` is the training set that `build_datasets` returned for the same config;
    `mask_path` is the mask folder of an image folder (``dataset='folder'``).
    """
    name = config.dataset
    base = train_set.dataset if isinstance(train_set, Subset) else train_set
    indices = list(train_set.indices) if isinstance(train_set, Subset) else list(range(len(base)))
    common = dict(image_size=config.image_size, center_crop=config.center_crop, mask_size=config.gt_mask_size)
    if name == "synthetic":  # the same scenes (same seed), rendered with their masks
        scored = Subset(SyntheticShapes(len(base), config.image_size, base.difficulty, seed=base.seed,
                                        mask_size=config.gt_mask_size), indices)
        train_keys = scored_keys = indices
    elif name == "coco":
        scored = COCO2017(data_path, "train", **common)
        train_keys = [base.image_files[i] for i in indices]
        scored_keys = [scored.coco.loadImgs(image_id)[0]["file_name"] for image_id in scored.image_ids]
    elif name == "voc":
        scored = PascalVOC(data_path, "train", **common)
        train_keys, scored_keys = [base.names[i] for i in indices], scored.names
    elif name == "folder":
        if mask_path is None:
            raise ConfigError("model selection on an image folder scores held-out images against their "
                              "masks: "
                              "pass --mask-path (a folder of instance-mask PNGs), or drop --selection-images "
                              "and --select-by (the model to report is then last.pt)")
        scored = ImageFolder(data_path, masks=mask_path, **common)
        train_keys = [base.relative_paths[i] for i in indices]
        scored_keys = scored.relative_paths
    elif name in ("movi_c", "movi_e"):  # keys are videos: no video in both parts
        scored = MOVi(data_path, "train", frames_per_video=9, seed=config.seed, **common)
        train_keys = [base.frames[i][0] for i in indices]
        scored_keys = [video for video, _ in scored.frames]
    else:
        raise ConfigError(f"model selection on held-out training images is not available for dataset "
                          f"{name!r}")
    held_out = last_keys(scored_keys, config.selection_images)
    return split_off(Subset(base, indices), train_keys, scored, scored_keys, held_out)
