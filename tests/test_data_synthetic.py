"""Tests of spot_tutorial.data.synthetic: the procedural multi-object dataset."""

import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spot_tutorial.data import DIFFICULTIES, SHAPES, SyntheticShapes
from spot_tutorial.data.synthetic import shape_mask
from spot_tutorial.data.transforms import IMAGENET_MEAN, IMAGENET_STD, denormalize


def _assert_items_equal(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_item_format(difficulty):
    item = SyntheticShapes(4, image_size=64, difficulty=difficulty)[1]
    assert set(item) == {"image", "instance_mask", "class_mask", "ignore_mask"}
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    for key, dtype in [("instance_mask", torch.int64), ("class_mask", torch.int64),
                       ("ignore_mask", torch.bool)]:
        assert item[key].shape == (64, 64) and item[key].dtype == dtype
    assert not item["ignore_mask"].any()


def test_deterministic_per_seed_and_index():
    ds = SyntheticShapes(10, difficulty="textured", seed=3)
    _assert_items_equal(ds[7], ds[7])
    _assert_items_equal(ds[7], SyntheticShapes(10, difficulty="textured", seed=3)[7])
    _assert_items_equal(ds[-3], ds[7])
    assert not torch.equal(ds[7]["image"], SyntheticShapes(10, difficulty="textured", seed=4)[7]["image"])
    assert not torch.equal(ds[7]["image"], ds[8]["image"])
    # item i does not depend on the dataset length or on what was generated before
    _assert_items_equal(SyntheticShapes(100, difficulty="textured", seed=3)[7], ds[7])


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_masks_are_consistent(difficulty):
    ds = SyntheticShapes(40, difficulty=difficulty, seed=1)
    limit = 6 if difficulty in ("occluded", "camouflage") else 4
    for index in range(len(ds)):
        item = ds[index]
        instance, classes = item["instance_mask"], item["class_mask"]
        count = int(instance.max())
        assert 1 <= count <= limit
        # ids are consecutive paint-order ids, every object visible
        assert instance.unique().tolist() == list(range(count + 1))
        assert torch.equal(classes == 0, instance == 0)
        assert set(classes.unique().tolist()) <= set(range(len(SHAPES) + 1))
        for k in range(1, count + 1):  # one shape type per object, big enough for an 8x8 grid
            assert len(classes[instance == k].unique()) == 1
            assert (instance == k).sum() >= 12


def test_image_follows_the_masks():
    ds = SyntheticShapes(5, difficulty="shapes", normalize=False)
    scene = ds.render(2)
    image, instance = scene["image"], scene["instance_mask"]
    for k in range(instance.max() + 1):  # flat colours: one colour per region
        colours = image[instance == k]
        assert np.allclose(colours, colours[0], atol=1e-6)


def test_difficulty_levels_differ():
    def mean_objects(difficulty):
        ds = SyntheticShapes(60, difficulty=difficulty, seed=2)
        return np.mean([ds.render(i)["instance_mask"].max() for i in range(len(ds))])

    def background_std(difficulty):
        scene = SyntheticShapes(1, difficulty=difficulty).render(0)
        return scene["image"][scene["instance_mask"] == 0].std(axis=0).mean()

    assert mean_objects("occluded") > mean_objects("shapes") + 0.5
    assert background_std("shapes") < 1e-4 < 0.03 < background_std("textured")

    def contact(difficulty):  # object-object boundary pixels per object pixel
        ds = SyntheticShapes(30, difficulty=difficulty, seed=5)
        touching = pixels = 0
        for index in range(len(ds)):
            labels = ds.render(index)["instance_mask"]
            left, right = labels[:, :-1], labels[:, 1:]
            touching += int(((left != right) & (left > 0) & (right > 0)).sum())
            pixels += int((labels > 0).sum())
        return touching / pixels

    assert contact("occluded") > 2 * contact("shapes")


def test_normalisation():
    raw = SyntheticShapes(3, normalize=False)[0]["image"]
    normed = SyntheticShapes(3, normalize=True)[0]["image"]
    assert raw.min() >= 0 and raw.max() <= 1
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    assert torch.allclose(normed, (raw - mean) / std, atol=1e-6)
    assert torch.allclose(denormalize(normed), raw, atol=1e-6)


def test_mask_size_and_image_size():
    item = SyntheticShapes(2, image_size=32, mask_size=64)[0]
    assert item["image"].shape == (3, 32, 32)
    assert item["instance_mask"].shape == (64, 64) and item["ignore_mask"].shape == (64, 64)
    small = SyntheticShapes(2, image_size=32)[0]
    assert torch.equal(item["instance_mask"][::2, ::2], small["instance_mask"])


def test_shape_masks():
    coords = np.arange(40) + 0.5
    xs, ys = np.meshgrid(coords, coords)
    areas = {kind: shape_mask(kind, xs, ys, 20, 20, 10, 0.0, 0.6).sum() for kind in SHAPES}
    assert abs(areas["circle"] - np.pi * 100) < 15
    assert all(areas[kind] > 80 for kind in SHAPES)
    circle = shape_mask("circle", xs, ys, 20, 20, 10, 0.0, 1.0)
    assert circle[20, 20] and not circle[20, 31] and not circle[0, 0]
    with pytest.raises(ValueError, match="unknown shape"):
        shape_mask("star", xs, ys, 20, 20, 10, 0.0, 1.0)


def test_dataloader_collate_and_workers_agree():
    ds = SyntheticShapes(8, difficulty="occluded")
    batch = next(iter(DataLoader(ds, batch_size=8, num_workers=2)))
    assert batch["image"].shape == (8, 3, 64, 64) and batch["instance_mask"].shape == (8, 64, 64)
    assert torch.equal(batch["instance_mask"][5], ds[5]["instance_mask"])


def test_fast_enough():
    ds = SyntheticShapes(1000, difficulty="shapes")
    start = time.perf_counter()
    for index in range(len(ds)):
        ds[index]
    assert time.perf_counter() - start < 5.0


def test_errors():
    with pytest.raises(ValueError, match="unknown difficulty 'hard'.*'shapes', 'textured', 'occluded'"):
        SyntheticShapes(difficulty="hard")
    with pytest.raises(ValueError, match="min_objects"):
        SyntheticShapes(min_objects=5, max_objects=3)
    with pytest.raises(ValueError, match="seed"):
        SyntheticShapes(seed=-1)
    with pytest.raises(IndexError):
        SyntheticShapes(3)[3]
    assert len(list(SyntheticShapes(3))) == 3


def test_rendered_scenes_are_the_scenes_to_half_a_grey_level():
    from spot_tutorial.data import RenderedScenes

    scenes = SyntheticShapes(12, 64, difficulty="textured", seed=3)
    rendered = RenderedScenes(scenes)
    assert len(rendered) == 12 and rendered.pixels.dtype == torch.uint8
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    for index in (0, 5, 11):
        difference = (rendered[index]["image"] - scenes[index]["image"]) * std   # back to [0, 1] units
        assert difference.abs().max() <= 0.5 / 255 + 1e-6
    assert not torch.equal(rendered[0]["image"], rendered[1]["image"])


def test_rendered_scenes_in_two_processes_are_the_same_pixels():
    from spot_tutorial.data import RenderedScenes

    scenes = SyntheticShapes(9, 32, difficulty="camouflage", seed=4)
    alone, shared = RenderedScenes(scenes), RenderedScenes(scenes, workers=2)
    assert torch.equal(alone.pixels, shared.pixels) and len(shared) == 9
    with pytest.raises(ValueError, match="workers >= 1"):
        RenderedScenes(scenes, workers=0)


def test_rendering_processes_forked_after_torch_used_its_threads_finish(tmp_path):
    """A second quickstart in one process hung here: the forked renderers waited on torch's thread
    pool, which the parent had used. Run in a child process with a time limit, so a hang fails."""
    import subprocess
    import sys

    script = (
        "import torch\n"
        "from spot_tutorial.data import RenderedScenes, SyntheticShapes\n"
        "torch.set_num_threads(2)\n"
        "big = torch.zeros(64, 3, 256, 256); big.copy_(torch.ones_like(big))  # the pool is up\n"
        "scenes = SyntheticShapes(200, 32, difficulty='camouflage', seed=5)\n"
        "shared, alone = RenderedScenes(scenes, workers=2), RenderedScenes(scenes)\n"
        "print(torch.equal(shared.pixels, alone.pixels), len(shared))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "200"]


def _object_pixels_in_background_colours(difficulty: str, scenes: int = 20) -> float:
    """Share of object pixels whose colour (8 levels per channel) also occurs in the background."""
    ds = SyntheticShapes(scenes, difficulty=difficulty, seed=6, normalize=False)
    shared = total = 0
    for index in range(scenes):
        scene = ds.render(index)
        bins = np.minimum((scene["image"] * 8).astype(int), 7) @ np.array([64, 8, 1])
        objects = scene["instance_mask"] > 0
        shared += int(np.isin(bins[objects], np.unique(bins[~objects])).sum())
        total += int(objects.sum())
    return shared / total


def test_camouflage_objects_share_their_colours_with_the_background():
    assert _object_pixels_in_background_colours("shapes") < 0.05
    assert _object_pixels_in_background_colours("camouflage") > 0.3


def test_camouflage_scenes_hold_three_to_six_objects_with_patterns_of_their_own():
    ds = SyntheticShapes(30, difficulty="camouflage", seed=2, normalize=False)
    counts = [int(ds.render(i)["instance_mask"].max()) for i in range(len(ds))]
    assert min(counts) >= 1 and max(counts) <= 6 and np.mean(counts) >= 3.5
    scene = ds.render(0)
    for k in range(1, int(scene["instance_mask"].max()) + 1):  # textured, not flat
        assert scene["image"][scene["instance_mask"] == k].std(axis=0).mean() > 0.03
