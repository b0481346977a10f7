"""Tests of spot_tutorial.data.transforms: the paper's resize / crop / normalise protocol."""

import numpy as np
import pytest
import torch
from PIL import Image

from spot_tutorial.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    denormalize,
    eval_image_transform,
    eval_mask_transform,
    train_transform,
)


def _image(width=48, height=32):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.mark.parametrize("random_crop,center_crop", [(False, True), (True, True), (False, False)])
def test_train_transform_shape(random_crop, center_crop):
    out = train_transform(24, random_crop=random_crop, center_crop=center_crop)(_image())
    assert out.shape == (3, 24, 24) and out.dtype == torch.float32


def test_eval_image_transform_is_normalised_centre_crop():
    uniform = Image.new("RGB", (60, 40), (124, 116, 104))  # ~ ImageNet mean colour
    out = eval_image_transform(20)(uniform)
    assert out.shape == (3, 20, 20)
    assert out.abs().max() < 0.02
    assert eval_image_transform(20, center_crop=False)(_image()).shape == (3, 20, 20)


def test_eval_mask_transform_keeps_ids_exactly():
    rng = np.random.default_rng(1)
    ids = np.array([0, 3, 255, 1000, 70_000])
    mask = ids[rng.integers(0, len(ids), (30, 44))]
    out = eval_mask_transform(50)(mask)
    assert out.shape == (50, 50) and out.dtype == torch.int64
    assert set(out.unique().tolist()) <= set(ids.tolist())
    # identity size: shorter side unchanged, centre crop of the width only
    same = eval_mask_transform(30)(mask)
    assert torch.equal(same, torch.from_numpy(mask[:, 7:37]))


def test_eval_mask_transform_without_crop_and_bool():
    mask = np.zeros((8, 8), dtype=np.int64)
    mask[:4, :4] = 5
    out = eval_mask_transform(4, center_crop=False)(mask)
    assert torch.equal(out, torch.tensor([[5, 5, 0, 0], [5, 5, 0, 0], [0] * 4, [0] * 4]))
    flags = eval_mask_transform(16, center_crop=False)(mask == 5)
    assert flags.dtype == torch.bool and flags.shape == (16, 16) and flags.sum() == 64
    palette = Image.fromarray(mask.astype(np.uint8), mode="L").convert("P")
    assert torch.equal(eval_mask_transform(8)(palette), torch.from_numpy(mask))


def test_denormalize_inverts_normalisation():
    x = torch.rand(2, 3, 5, 5)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(denormalize((x - mean) / std), x, atol=1e-6)
    with pytest.raises(ValueError, match="3, H, W"):
        denormalize(torch.zeros(4, 5, 5))


def test_bad_sizes():
    with pytest.raises(ValueError, match="image_size"):
        train_transform(0)
    with pytest.raises(ValueError, match="mask_size"):
        eval_mask_transform(-3)
    with pytest.raises(ValueError, match="2-D"):
        eval_mask_transform(4)(np.zeros((2, 3, 3)))
