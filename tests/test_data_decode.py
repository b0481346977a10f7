"""The training decoders (spot_tutorial.data.decode): 'pil-draft', 'torchvision' and 'gpu' (here on
the CPU device) give the augmentation of the PIL path: same shapes and value range, the same crops
and flips under one seed (so the same distribution), nearly the same pixels; evaluation stays PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader
from torch.utils.data._utils.pin_memory import pin_memory

from spot_tutorial.data import COCO2017, ImageFolder, build_datasets
from spot_tutorial.data.coco_like import write_coco_like_folder
from spot_tutorial.data.decode import (
    EncodedImages,
    TrainGeometry,
    collate_training,
    draw_placement,
    images_on_device,
)
from spot_tutorial.data.transforms import IMAGENET_STD
from spot_tutorial.errors import ConfigError
from spot_tutorial.recipes import get_preset

SIZES = ((640, 480, 0.5), (480, 640, 0.3), (500, 375, 0.2))  # COCO's; decoding scales depend on them
LEVEL = 1 / 255 / min(IMAGENET_STD)  # one pixel level of 0..255, in normalised units (upper bound)


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    return write_coco_like_folder(tmp_path_factory.mktemp("coco"), 4, seed=0, sizes=SIZES)


def _items(root, decode, random_crop=False, seed=0, image_size=224):
    """The training images of the folder through `decode`, drawn under `seed`; [N, 3, S, S]."""
    dataset = COCO2017(root, "train", train=True, image_size=image_size, random_crop=random_crop,
                       decode=decode)
    torch.manual_seed(seed)
    items = [dataset[i] for i in range(len(dataset))]
    batch = collate_training(items)["image"]
    return images_on_device(batch, torch.device("cpu"))


@pytest.mark.parametrize("random_crop", [False, True])
@pytest.mark.parametrize("decode, tolerance", [("torchvision", 0.05), ("gpu", 0.5), ("pil-draft", 3.0)])
def test_each_decoder_gives_the_pil_augmentation(coco, decode, tolerance, random_crop):
    reference = _items(coco, "pil", random_crop)
    images = _items(coco, decode, random_crop)
    assert images.shape == reference.shape == (4, 3, 224, 224) and images.dtype == torch.float32
    assert images.min() >= reference.min() - 3 * LEVEL and images.max() <= reference.max() + 3 * LEVEL
    mean_levels = float((images - reference).abs().mean() / LEVEL)  # same crop and flip: small
    assert mean_levels < tolerance, (decode, mean_levels)
    other_draws = _items(coco, "pil", random_crop, seed=1)  # a wrong crop or flip would look like this
    assert float((other_draws - reference).abs().mean() / LEVEL) > 5 * tolerance


def test_the_draws_are_torchvisions_own():
    crop, flip = T.RandomCrop(224), T.RandomHorizontalFlip()
    geometry = TrainGeometry(224, random_crop=True)
    flips = []
    for seed in range(300):
        torch.manual_seed(seed)
        top, left, _, _ = crop.get_params(torch.empty(3, 224, 298), (224, 224))
        flipped = bool(torch.rand(1) < flip.p)
        torch.manual_seed(seed)
        placement = draw_placement(480, 640, geometry)
        assert (placement.resized, placement.top, placement.left, placement.flip) == (
            (224, 298), top, left, flipped)
        flips.append(flipped)
    assert 0.42 < np.mean(flips) < 0.58  # flip rate ~0.5
    centre = draw_placement(480, 640, TrainGeometry(224))
    assert (centre.top, centre.left) == (0, 37)  # CenterCrop's rounding
    assert draw_placement(480, 640, TrainGeometry(32, center_crop=False)).resized == (32, 32)


def test_crop_offsets_cover_the_range_uniformly():
    torch.manual_seed(0)
    lefts = [draw_placement(480, 640, TrainGeometry(224, random_crop=True)).left for _ in range(2000)]
    assert min(lefts) == 0 and max(lefts) == 74  # 298 - 224
    assert abs(np.mean(lefts) - 37) < 2.5


def test_gpu_batches_mix_sizes_and_non_jpeg_files_through_the_dataloader(tmp_path):
    rng = np.random.default_rng(0)
    for name, size in (("a.jpg", (640, 480)), ("b.jpg", (480, 640)), ("c.png", (300, 200)),
                       ("d.jpg", (640, 480))):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / name)
    Image.open(tmp_path / "a.jpg").convert("L").save(tmp_path / "e.jpg")  # a grayscale JPEG
    batches = {}
    for decode in ("torchvision", "gpu"):
        dataset = ImageFolder(tmp_path, train=True, image_size=64, decode=decode)
        loader = DataLoader(dataset, batch_size=5, collate_fn=collate_training,
                            generator=torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        batch = next(iter(loader))["image"]
        assert isinstance(batch, EncodedImages) == (decode == "gpu")
        batches[decode] = images_on_device(batch, torch.device("cpu"))
    assert batches["gpu"].shape == (5, 3, 64, 64)
    assert pin_memory({"image": batch})["image"] is batch  # pin_memory=True keeps the bytes as they are
    assert float((batches["gpu"] - batches["torchvision"]).abs().mean() / LEVEL) < 0.5


def test_evaluation_reads_with_pil_whatever_the_decoder(coco):
    write_coco_like_folder(coco, 2, seed=1, split="val", sizes=SIZES)
    pytest.importorskip("pycocotools")
    plain = COCO2017(coco, "val", image_size=224)[0]
    config = get_preset("coco", decode="gpu")
    train_set, eval_set = build_datasets(config, coco)
    item = eval_set[0]
    assert torch.equal(item["image"], plain["image"]) and torch.equal(item["instance_mask"],
                                                                      plain["instance_mask"])
    assert train_set.read_train_image.decode == "gpu"


def test_decoders_are_checked(coco):
    with pytest.raises(ConfigError, match="decode='nvjpeg'; choose one of"):
        get_preset("coco", decode="nvjpeg")
    with pytest.raises(ConfigError, match="use decode='pil'"):
        build_datasets(get_preset("tiny", decode="gpu"))


def test_training_runs_on_gpu_decoded_batches_on_the_cpu(coco, tmp_path):
    from spot_tutorial.training.loop import Trainer

    config = get_preset("tiny", dataset="folder", decode="gpu", batch_size=2, max_steps=2, num_workers=0,
                        eval_every=10**6, checkpoint_every=0)
    result = Trainer(config, output_dir=tmp_path / "run", data_path=coco / "train2017",
                     progress=False).fit()
    assert result.steps == 2
