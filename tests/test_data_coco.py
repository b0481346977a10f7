"""Tests of spot_tutorial.data.coco on a tiny dataset written in the real COCO format."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from spot_tutorial.data import COCO2017, CorruptImageError

# pycocotools' mask decoding triggers a numpy 2 DeprecationWarning that is not ours to fix.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Image 1 is 40 wide x 30 high; with mask_size=30 the centre crop drops 5 columns on each side.
W1, H1 = 40, 30
CROP = 5
CATEGORIES = [{"id": 90, "name": "toothbrush"}, {"id": 1, "name": "person"},
              {"id": 18, "name": "dog"}]  # unsorted on purpose; labels: 1->1, 18->2, 90->3


def _rectangle(x0, y0, x1, y1):
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def _uncompressed_rle(mask):
    """COCO uncompressed RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.flatten(order="F").astype(np.uint8)
    counts, value, run = [], 0, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def _crowd_mask():
    mask = np.zeros((H1, W1), dtype=bool)
    mask[20:28, 30:35] = True
    return mask


def _annotations():
    def ann(ann_id, image_id, cat, segmentation, crowd=0):
        return {"id": ann_id, "image_id": image_id, "category_id": cat, "iscrowd": crowd,
                "segmentation": segmentation, "area": 1.0, "bbox": [0, 0, 1, 1]}

    return [
        ann(10, 1, 18, _rectangle(8, 2, 22, 15)),            # instance 1, dog
        ann(20, 2, 1, _rectangle(0, 0, 10, 10)),             # other image, interleaved
        ann(11, 1, 1, _rectangle(16, 8, 28, 25)),            # instance 2, person, overlaps 1
        ann(12, 1, 90, _uncompressed_rle(_crowd_mask()), crowd=1),  # instance 3, crowd RLE
    ]


def _write_image(path, width, height, seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


@pytest.fixture()
def coco_root(tmp_path):
    images = [
        {"id": 1, "file_name": "000000000001.jpg", "width": W1, "height": H1},
        {"id": 2, "file_name": "000000000002.jpg", "width": 24, "height": 32},
        {"id": 3, "file_name": "000000000003.jpg", "width": 30, "height": 30},  # no objects
    ]
    (tmp_path / "annotations").mkdir()
    for split in ("val", "train"):
        (tmp_path / f"{split}2017").mkdir()
        for info in images:
            _write_image(tmp_path / f"{split}2017" / info["file_name"], info["width"], info["height"])
    content = {"images": images, "annotations": _annotations(), "categories": CATEGORIES}
    (tmp_path / "annotations" / "instances_val2017.json").write_text(json.dumps(content))
    return tmp_path


def test_item_format(coco_root):
    ds = COCO2017(coco_root, split="val", image_size=32, mask_size=30)
    assert len(ds) == 3 and ds.num_classes == 3
    assert ds.class_names == ["background", "person", "dog", "toothbrush"]
    item = ds[0]
    assert set(item) == {"image", "instance_mask", "class_mask", "ignore_mask"}
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    for key, dtype in [("instance_mask", torch.int64), ("class_mask", torch.int64),
                       ("ignore_mask", torch.bool)]:
        assert item[key].shape == (30, 30) and item[key].dtype == dtype


def test_ground_truth_values(coco_root):
    item = COCO2017(coco_root, mask_size=30)[0]
    inst, cls, ign = item["instance_mask"], item["class_mask"], item["ignore_mask"]

    def at(mask, x, y):  # (x, y) in original image pixels
        return mask[y, x - CROP].item()

    # only annotation 1: instance 1, dog -> label 2
    assert (at(inst, 10, 5), at(cls, 10, 5), at(ign, 10, 5)) == (1, 2, False)
    # overlap of 1 and 2: the first annotation keeps the pixel, and the pixel is ignored
    assert (at(inst, 19, 12), at(cls, 19, 12), at(ign, 19, 12)) == (1, 2, True)
    # only annotation 2: instance 2, person -> label 1
    assert (at(inst, 25, 20), at(cls, 25, 20), at(ign, 25, 20)) == (2, 1, False)
    # crowd RLE: instance 3, toothbrush -> label 3, exactly the written pixels
    crowd = _crowd_mask()[:, CROP:W1 - CROP]
    assert torch.equal(inst == 3, torch.from_numpy(crowd))
    assert torch.equal(cls == 3, torch.from_numpy(crowd))
    # background
    assert (at(inst, 6, 28), at(cls, 6, 28), at(ign, 6, 28)) == (0, 0, False)
    assert set(inst.unique().tolist()) == {0, 1, 2, 3}
    # ignored pixels are exactly those inside both rectangles
    assert ign.sum() > 0 and bool(((inst == 1) | ~ign).all())


def test_second_image_and_empty_image(coco_root):
    ds = COCO2017(coco_root, mask_size=32)
    second = ds[1]  # 24 x 32: resized to 32 x 42, centre crop 32
    assert second["instance_mask"].shape == (32, 32)
    assert set(second["instance_mask"].unique().tolist()) == {0, 1}
    assert set(second["class_mask"].unique().tolist()) == {0, 1}
    empty = ds[2]
    assert empty["instance_mask"].sum() == 0 and not empty["ignore_mask"].any()


def test_resized_masks_keep_ids(coco_root):
    item = COCO2017(coco_root, mask_size=64)[0]
    assert item["instance_mask"].shape == (64, 64)
    assert set(item["instance_mask"].unique().tolist()) == {0, 1, 2, 3}


def test_dataloader_collate(coco_root):
    batch = next(iter(DataLoader(COCO2017(coco_root, image_size=16, mask_size=20), batch_size=3)))
    assert batch["image"].shape == (3, 3, 16, 16)
    assert batch["instance_mask"].shape == (3, 20, 20)


def test_train_mode_needs_images_only(coco_root):
    ds = COCO2017(coco_root, split="train", image_size=16, train=True)
    assert len(ds) == 3
    item = ds[0]
    assert list(item) == ["image"] and item["image"].shape == (3, 16, 16)


def test_unknown_split(coco_root):
    with pytest.raises(ValueError, match="'train', 'val'"):
        COCO2017(coco_root, split="test")


def test_missing_annotation_file(coco_root):
    (coco_root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(FileNotFoundError, match="instances_val2017.json") as info:
        COCO2017(coco_root)
    assert "cocodataset.org" in str(info.value)


def test_missing_image_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="val2017"):
        COCO2017(tmp_path)


def test_corrupt_image(coco_root):
    (coco_root / "val2017" / "000000000002.jpg").write_bytes(b"this is not a jpeg" * 10)
    ds = COCO2017(coco_root)
    with pytest.raises(CorruptImageError, match="000000000002.jpg") as info:
        ds[1]
    assert isinstance(info.value, ValueError) and "re-download" in str(info.value)
