"""The COCO-like folder generator (spot_tutorial.data.coco_like): COCO's file formats and sizes, read
by pycocotools and by the library's COCO reader unchanged, the same bytes for the same seed."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from spot_tutorial.data import COCO2017
from spot_tutorial.data.coco_like import (
    COCO_CATEGORY_IDS,
    COCO_IMAGE_SIZES,
    uncompressed_rle,
    write_coco_like_folder,
)
from spot_tutorial.errors import DatasetError

SMALL = ((96, 72, 0.7), (72, 96, 0.3))  # small sizes keep the tests fast


def _json(root, split="val"):
    return json.loads((root / "annotations" / f"instances_{split}2017.json").read_text())


def test_pycocotools_reads_every_annotation(tmp_path):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    root = write_coco_like_folder(tmp_path, 30, seed=3, split="val", sizes=SMALL)
    coco = COCO(str(root / "annotations" / "instances_val2017.json"))
    assert sorted(coco.getImgIds()) == list(range(1, 31))
    assert sorted(coco.getCatIds()) == list(COCO_CATEGORY_IDS) and len(COCO_CATEGORY_IDS) == 80
    crowds = 0
    for annotation in coco.loadAnns(coco.getAnnIds()):
        info = coco.loadImgs(annotation["image_id"])[0]
        mask = coco.annToMask(annotation)
        assert mask.shape == (info["height"], info["width"]) and mask.sum() > 0
        crowds += annotation["iscrowd"]
    assert crowds >= 1  # about one image in ten has an RLE crowd region


def test_images_are_jpegs_of_the_sizes_the_json_states(tmp_path):
    root = write_coco_like_folder(tmp_path, 6, seed=0, split="train")  # COCO's own sizes
    sizes = {(w, h) for w, h, _ in COCO_IMAGE_SIZES}
    for info in _json(root, "train")["images"]:
        with Image.open(root / "train2017" / info["file_name"]) as image:
            assert image.format == "JPEG" and image.mode == "RGB"
            assert image.size == (info["width"], info["height"]) and image.size in sizes
            pixels = np.asarray(image)
        assert pixels.std() > 20  # content, not a flat colour


def test_the_coco_reader_loads_the_folder(tmp_path):
    pytest.importorskip("pycocotools")
    write_coco_like_folder(tmp_path, 4, seed=1, split="val", sizes=SMALL)
    write_coco_like_folder(tmp_path, 5, seed=2, split="train", sizes=SMALL)
    evaluation = COCO2017(tmp_path, "val", image_size=32, mask_size=40)
    assert len(evaluation) == 4 and evaluation.num_classes == 80
    item = evaluation[0]
    assert item["image"].shape == (3, 32, 32) and item["instance_mask"].shape == (40, 40)
    assert item["instance_mask"].max() >= 1
    training = COCO2017(tmp_path, "train", train=True, image_size=32)
    assert len(training) == 5 and training[0]["image"].shape == (3, 32, 32)


def test_same_seed_same_bytes_and_a_longer_run_keeps_the_first_images(tmp_path):
    first = write_coco_like_folder(tmp_path / "a", 3, seed=5, split="val", sizes=SMALL)
    again = write_coco_like_folder(tmp_path / "b", 4, seed=5, split="val", sizes=SMALL)
    other = write_coco_like_folder(tmp_path / "c", 3, seed=6, split="val", sizes=SMALL)
    name = "000000000002.jpg"
    assert (first / "val2017" / name).read_bytes() == (again / "val2017" / name).read_bytes()
    assert (first / "val2017" / name).read_bytes() != (other / "val2017" / name).read_bytes()
    assert _json(first)["annotations"] == [a for a in _json(again)["annotations"] if a["image_id"] <= 3]


def test_uncompressed_rle_runs_column_major_from_zeros():
    mask = np.array([[1, 0], [1, 1]], dtype=bool)  # columns: (1, 1), (0, 1)
    assert uncompressed_rle(mask) == {"size": [2, 2], "counts": [0, 2, 1, 1]}
    assert uncompressed_rle(~mask)["counts"] == [2, 1, 1]


def test_bad_arguments_say_what_is_wrong(tmp_path):
    with pytest.raises(DatasetError, match="count must be a positive integer"):
        write_coco_like_folder(tmp_path, 0)
    with pytest.raises(DatasetError, match="sizes must be"):
        write_coco_like_folder(tmp_path, 1, sizes=((4, 4, 1.0),))


def test_the_test_fakes_use_the_generator(tmp_path):
    from fakes import write_coco_val

    root = write_coco_val(tmp_path, 3)
    data = _json(root)
    assert [info["file_name"] for info in data["images"]] == [f"{i:012d}.jpg" for i in (1, 2, 3)]
    assert torch.tensor([a["category_id"] in COCO_CATEGORY_IDS for a in data["annotations"]]).all()
