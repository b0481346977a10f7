"""Tests of spot_tutorial.data.registry: held-out training images for model selection.

Each dataset is written in its real folder layout, small; the held-out part must come from the
training split (never the evaluation split), carry masks, and be left out of training.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spot_tutorial import get_preset
from spot_tutorial.data import COCO2017, build_datasets
from spot_tutorial.data.registry import holdout_split, last_keys

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools under numpy 2


def _image(path, width=20, height=16, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def test_last_keys_takes_whole_groups_from_the_end():
    assert last_keys(["a", "b", "c", "d"], 2) == {"c", "d"}
    assert last_keys(["v1", "v1", "v2", "v2", "v3", "v3"], 3) == {"v2", "v3"}  # >= 3 frames, whole videos
    with pytest.raises(ValueError, match="hold out fewer"):
        last_keys(["a", "b"], 2)
    with pytest.raises(ValueError, match="every training image"):
        last_keys(["v1", "v1", "v2", "v2"], 3)


def test_synthetic_holdout_is_training_scenes_with_masks():
    config = get_preset("tiny", train_images=20, eval_images=4, selection_images=5)
    train_set, eval_set = build_datasets(config)
    kept, held = holdout_split(config, train_set)
    assert len(kept) == 15 and len(held) == 5
    assert torch.equal(held[0]["image"], train_set[15]["image"])         # training seed, index 15
    assert held[0]["instance_mask"].shape == (config.gt_mask_size,) * 2
    assert torch.equal(kept[14]["image"], train_set[14]["image"])
    assert not any(torch.equal(held[i]["image"], eval_set[j]["image"]) for i in range(5) for j in range(4))


def test_coco_holdout_comes_from_train2017_with_its_annotations(tmp_path):
    images = [{"id": i, "file_name": f"{i:012d}.jpg", "width": 20, "height": 16} for i in (5, 1, 3, 2)]
    (tmp_path / "annotations").mkdir()
    for split in ("train", "val"):
        (tmp_path / f"{split}2017").mkdir()
        for info in images:
            _image(tmp_path / f"{split}2017" / info["file_name"], seed=info["id"])
    annotations = [{"id": 100 + i, "image_id": i, "category_id": 7, "iscrowd": 0, "area": 1.0,
                    "bbox": [0, 0, 1, 1], "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]} for i in (1, 2, 3,
                                                                                                    5)]
    content = {"images": images, "annotations": annotations, "categories": [{"id": 7, "name": "cup"}]}
    (tmp_path / "annotations" / "instances_train2017.json").write_text(json.dumps(content))
    config = get_preset("coco", selection_images=2, gt_mask_size=16, image_size=16)
    train_set = COCO2017(tmp_path, "train", train=True, image_size=16)
    kept, held = holdout_split(config, train_set, tmp_path)
    kept_files = [train_set.image_files[i] for i in kept.indices]
    held_files = [held.dataset.image_path(i).name for i in held.indices]
    assert kept_files == ["000000000001.jpg", "000000000002.jpg"]
    assert held_files == ["000000000003.jpg", "000000000005.jpg"]   # the last two by file name
    item = held[0]
    assert set(item) == {"image", "instance_mask", "class_mask", "ignore_mask"}
    assert int(item["instance_mask"].max()) == 1 and int(item["class_mask"].max()) == 1


def test_voc_holdout_comes_from_the_train_list_and_leaves_trainaug(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("ImageSets/Segmentation", "JPEGImages", "SegmentationObject", "SegmentationClass"):
        (root / folder).mkdir(parents=True)
    train_names, extra = ["a1", "a2", "a3"], ["b1", "b2"]
    labels = np.zeros((16, 20), dtype=np.uint8)
    labels[2:8, 3:9] = 1
    for index, name in enumerate(train_names + extra):
        _image(root / "JPEGImages" / f"{name}.jpg", seed=index)
    for name in train_names:
        Image.fromarray(labels, mode="L").save(root / "SegmentationObject" / f"{name}.png")
        Image.fromarray(labels * 5, mode="L").save(root / "SegmentationClass" / f"{name}.png")
    lists = root / "ImageSets" / "Segmentation"
    (lists / "train.txt").write_text("\n".join(train_names) + "\n")
    (lists / "val.txt").write_text("a1\n")
    (lists / "trainaug.txt").write_text("\n".join(["b1", "a1", "a2", "b2", "a3"]) + "\n")
    config = get_preset("voc", selection_images=1, gt_mask_size=16, image_size=16)
    train_set, _ = build_datasets(config, root)
    kept, held = holdout_split(config, train_set, root)
    assert [train_set.names[i] for i in kept.indices] == ["b1", "a1", "a2", "b2"]
    assert [held.dataset.names[i] for i in held.indices] == ["a3"]
    assert int(held[0]["instance_mask"].max()) == 1


def test_movi_holdout_keeps_whole_videos_out_of_training(tmp_path):
    for split in ("train", "validation"):
        for video in ("v0", "v1", "v2"):
            folder = tmp_path / split / video
            folder.mkdir(parents=True)
            for frame in range(4):
                prefix = folder / f"{frame:08d}"
                _image(f"{prefix}_image.png", 16, 16, seed=frame)
                on = np.zeros((16, 16), dtype=np.uint8)
                on[2:6, 2:6] = 255
                Image.fromarray(255 - on, mode="L").save(f"{prefix}_mask_00.png")
                Image.fromarray(on, mode="L").save(f"{prefix}_mask_01.png")
    config = get_preset("movi_c", selection_images=3, image_size=16, gt_mask_size=16)
    train_set, _ = build_datasets(config, tmp_path)
    kept, held = holdout_split(config, train_set, tmp_path)
    kept_videos = {train_set.frames[i][0] for i in kept.indices}
    held_videos = {held.dataset.frames[i][0] for i in held.indices}
    assert held_videos == {"v2"} and kept_videos == {"v0", "v1"}
    assert len(held) == 4 and int(held[0]["instance_mask"].max()) == 1
