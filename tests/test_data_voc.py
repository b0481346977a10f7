"""Tests of spot_tutorial.data.voc on a tiny dataset written in the real VOC format."""

import numpy as np
import pytest
import torch
from PIL import Image

from spot_tutorial.data import CorruptImageError, PascalVOC

H, W = 30, 40  # mask_size=30 keeps the height and centre-crops 5 columns on each side
CROP = 5


def _voc_palette():
    """The standard VOC colour map (bit-interleaved), 256 RGB entries."""
    palette = []
    for index in range(256):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        palette += [r, g, b]
    return palette


def _save_palette_png(labels, path):
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette(_voc_palette())
    image.save(path)


def _label_maps():
    """Object 1 (a person, class 15) with a 255 border, object 2 (a dog, class 12)."""
    objects = np.zeros((H, W), dtype=np.uint8)
    objects[4:16, 8:20] = 255          # border ring of object 1
    objects[5:15, 9:19] = 1
    objects[18:28, 22:34] = 2
    classes = np.where(objects == 1, 15, objects).astype(np.uint8)
    classes[objects == 2] = 12
    return objects, classes


@pytest.fixture()
def voc_root(tmp_path):
    root = tmp_path / "VOCdevkit" / "VOC2012"
    for folder in ("ImageSets/Segmentation", "JPEGImages", "SegmentationObject", "SegmentationClass"):
        (root / folder).mkdir(parents=True)
    rng = np.random.default_rng(0)
    names = ["2007_000032", "2007_000039"]
    objects, classes = _label_maps()
    for name in names + ["2008_000001"]:  # the last one is a trainaug-only image (no masks)
        Image.fromarray(rng.integers(0, 256, (H, W, 3),
                                     dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
    for name in names:
        _save_palette_png(objects, root / "SegmentationObject" / f"{name}.png")
        _save_palette_png(classes, root / "SegmentationClass" / f"{name}.png")
    (root / "ImageSets/Segmentation/val.txt").write_text("\n".join(names) + "\n")
    (root / "ImageSets/Segmentation/train.txt").write_text(names[0] + "\n")
    (root / "ImageSets/Segmentation/trainaug.txt").write_text("\n".join(names + ["2008_000001"]) + "\n")
    return root


def test_item_format_and_values(voc_root):
    ds = PascalVOC(voc_root, split="val", image_size=32, mask_size=30)
    assert len(ds) == 2 and ds.num_classes == 20
    item = ds[0]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    for key, dtype in [("instance_mask", torch.int64), ("class_mask", torch.int64),
                       ("ignore_mask", torch.bool)]:
        assert item[key].shape == (30, 30) and item[key].dtype == dtype
    objects, classes = _label_maps()
    expected_objects = np.where(objects == 255, 0, objects)[:, CROP:W - CROP]
    expected_classes = np.where(classes == 255, 0, classes)[:, CROP:W - CROP]
    assert torch.equal(item["instance_mask"], torch.from_numpy(expected_objects.astype(np.int64)))
    assert torch.equal(item["class_mask"], torch.from_numpy(expected_classes.astype(np.int64)))
    # 255 borders become background, never ignored
    assert item["instance_mask"][4, 8 - CROP] == 0 and not item["ignore_mask"].any()
    assert set(item["class_mask"].unique().tolist()) == {0, 12, 15}


def test_root_can_be_the_folder_above_vocdevkit(voc_root):
    ds = PascalVOC(voc_root.parent.parent, mask_size=60)
    assert ds[1]["instance_mask"].shape == (60, 60)
    assert set(ds[1]["instance_mask"].unique().tolist()) == {0, 1, 2}


def test_train_mode_trainaug(voc_root):
    ds = PascalVOC(voc_root, split="trainaug", image_size=24, train=True)
    assert len(ds) == 3
    item = ds[2]
    assert list(item) == ["image"] and item["image"].shape == (3, 24, 24)


def test_trainaug_images_have_no_masks(voc_root):
    ds = PascalVOC(voc_root, split="trainaug")
    with pytest.raises(FileNotFoundError, match="2008_000001.png"):
        ds[2]


def test_unknown_split(voc_root):
    with pytest.raises(ValueError, match="'trainaug', 'train', 'val'"):
        PascalVOC(voc_root, split="test")


def test_missing_list_and_folders(voc_root):
    (voc_root / "ImageSets/Segmentation/train.txt").unlink()
    with pytest.raises(FileNotFoundError, match="train.txt"):
        PascalVOC(voc_root, split="train")
    (voc_root / "SegmentationObject").rename(voc_root / "moved")
    with pytest.raises(FileNotFoundError, match="SegmentationObject"):
        PascalVOC(voc_root)
    (voc_root / "JPEGImages").rename(voc_root / "moved_images")
    with pytest.raises(FileNotFoundError, match="JPEGImages"):
        PascalVOC(voc_root, train=True)


def test_corrupt_image(voc_root):
    (voc_root / "JPEGImages" / "2007_000039.jpg").write_bytes(b"\x00garbage" * 50)
    with pytest.raises(CorruptImageError, match="2007_000039.jpg"):
        PascalVOC(voc_root)[1]


def test_rgb_label_png_is_rejected(voc_root):
    objects, _ = _label_maps()
    Image.fromarray(np.stack([objects] * 3,
                             axis=-1)).save(voc_root / "SegmentationObject" / "2007_000032.png")
    with pytest.raises(ValueError, match="palette"):
        PascalVOC(voc_root)[0]
