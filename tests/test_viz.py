"""Tests for the figure writer shared by training, evaluation and the quickstart (spot_tutorial.viz.masks)."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from spot_tutorial.data import SyntheticShapes  # noqa: E402
from spot_tutorial.viz.masks import figure_images, save_mask_figure  # noqa: E402


def test_figure_images_with_and_without_ground_truth():
    scenes = SyntheticShapes(5, 64, seed=0, mask_size=64)
    images, truth = figure_images(scenes, 3)
    assert images.shape == (3, 3, 64, 64) and truth["ground truth"].shape == (3, 64, 64)
    assert torch.equal(images[2], scenes[2]["image"])
    no_masks = [{"image": scenes[i]["image"]} for i in range(2)]
    images, truth = figure_images(no_masks, 4)
    assert images.shape == (2, 3, 64, 64) and truth == {}


def test_save_mask_figure_writes_one_row_per_image_and_a_column_per_mask_kind(tmp_path):
    scenes = SyntheticShapes(4, 64, seed=0, mask_size=64)
    images, masks = figure_images(scenes, 2)
    masks["soft masks"] = torch.rand(2, 5, 8, 8)
    path = save_mask_figure(tmp_path / "masks.png", images, masks, dpi=50)
    width, height = Image.open(path).size
    # 3 columns (image, ground truth, soft masks) x 2 rows of 2.2 inch panels at 50 dpi
    assert (width, height) == (round(3 * 2.2 * 50), round(2 * 2.2 * 50))
