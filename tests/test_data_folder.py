"""Tests of spot_tutorial.data.folder: training and evaluation on a folder of your own images."""

import numpy as np
import pytest
import torch
from own_images import write_image_folder
from PIL import Image

from spot_tutorial.data import CorruptImageError, ImageFolder, build_datasets
from spot_tutorial.data.registry import holdout_split
from spot_tutorial.errors import ConfigError, DatasetError
from spot_tutorial.recipes import get_preset


def test_training_items_from_a_folder_of_any_sizes_and_modes(tmp_path):
    files = write_image_folder(tmp_path / "photos", count=6)
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    (tmp_path / "photos" / ".hidden.png").write_bytes(b"")
    dataset = ImageFolder(tmp_path / "photos", train=True, image_size=32)
    assert len(dataset) == len(files)  # recursive; text and hidden files skipped
    expected = sorted(str(f.relative_to(tmp_path / "photos")) for f in files)
    assert [str(p) for p in dataset.relative_paths] == expected
    for index in range(len(dataset)):
        item = dataset[index]
        assert set(item) == {"image"} and item["image"].shape == (3, 32, 32)


def test_evaluation_items_read_the_parallel_masks(tmp_path):
    write_image_folder(tmp_path / "photos", count=4, masks=tmp_path / "masks")
    (tmp_path / "masks" / "photo_00.png").unlink()  # an image without a mask is not evaluated
    dataset = ImageFolder(tmp_path / "photos", masks=tmp_path / "masks", image_size=32, mask_size=40)
    assert len(dataset) == 3 and dataset.without_masks == 1
    item = dataset[0]
    assert item["instance_mask"].shape == (40, 40) and item["instance_mask"].dtype == torch.int64
    assert item["instance_mask"].max() >= 1 and not item["ignore_mask"].any()
    path = dataset.relative_paths[0]
    raw = np.asarray(Image.open(tmp_path / "masks" / path.with_suffix(".png")))
    assert set(item["instance_mask"].unique().tolist()) <= set(np.unique(raw).tolist())
    assert "instance_mask" not in ImageFolder(tmp_path / "photos", image_size=32)[0]  # no masks: images only


def test_a_mask_folder_inside_the_image_folder_is_not_read_as_images(tmp_path):
    write_image_folder(tmp_path / "photos", count=4, masks=tmp_path / "photos" / "masks")
    assert len(ImageFolder(tmp_path / "photos", train=True, exclude=tmp_path / "photos" / "masks")) == 4
    assert len(ImageFolder(tmp_path / "photos", masks=tmp_path / "photos" / "masks")) == 4


def test_folder_mistakes_are_reported_clearly(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no images found"):
        ImageFolder(tmp_path / "empty", train=True)
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        ImageFolder(tmp_path / "missing")
    write_image_folder(tmp_path / "photos", count=2, masks=tmp_path / "masks")
    (tmp_path / "other").mkdir()
    with pytest.raises(DatasetError, match="has a mask PNG"):
        ImageFolder(tmp_path / "photos", masks=tmp_path / "other")
    Image.new("L", (5, 5)).save(tmp_path / "masks" / "photo_00.png")  # wrong size
    with pytest.raises(DatasetError, match="must have their image's size"):
        ImageFolder(tmp_path / "photos", masks=tmp_path / "masks")[0]
    (tmp_path / "photos" / "photo_00.jpg").write_bytes(b"garbage")
    with pytest.raises(CorruptImageError, match="photo_00.jpg"):
        ImageFolder(tmp_path / "photos", train=True)[0]


def test_build_datasets_and_model_selection_on_a_folder(tmp_path):
    write_image_folder(tmp_path / "photos", count=8, masks=tmp_path / "masks")
    config = get_preset("tiny", dataset="folder", selection_images=2)
    train_set, eval_set = build_datasets(config, tmp_path / "photos", mask_path=tmp_path / "masks")
    assert len(train_set) == 8 and "instance_mask" in eval_set[0]
    assert eval_set[0]["instance_mask"].shape == (config.gt_mask_size,) * 2
    kept, held = holdout_split(config, train_set, tmp_path / "photos", tmp_path / "masks")
    assert len(kept) == 6 and len(held) == 2 and "instance_mask" in held[0]
    with pytest.raises(ConfigError, match="--mask-path"):
        holdout_split(config, train_set, tmp_path / "photos")
    with pytest.raises(DatasetError, match="--dataset folder"):
        build_datasets(get_preset("tiny"), mask_path=tmp_path / "masks")
