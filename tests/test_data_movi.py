"""Tests of spot_tutorial.data.movi on tiny videos written in the exported MOVi PNG layout."""

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from spot_tutorial.data import CorruptImageError, MOVi

SIZE = 32


def _frame_labels(frame):
    """Ground-truth ids of a frame: object 1 moves right with the frame index, object 2 is fixed."""
    labels = np.zeros((SIZE, SIZE), dtype=np.int64)
    labels[4:12, 2 + frame:10 + frame] = 1
    labels[20:30, 16:28] = 2
    return labels


def _write_video(folder, num_frames, num_objects=2):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(folder.name))
    for frame in range(num_frames):
        prefix = folder / f"{frame:08d}"
        Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(f"{prefix}_image.png")
        labels = _frame_labels(frame)
        for index in range(num_objects + 1):  # 00 = background
            Image.fromarray(((labels == index) * 255).astype(np.uint8), mode="L").save(
                f"{prefix}_mask_{index:02d}.png")


@pytest.fixture()
def movi_root(tmp_path):
    for video in ("00000000", "00000001"):
        _write_video(tmp_path / "validation" / video, num_frames=3)
        _write_video(tmp_path / "train" / video, num_frames=12)
    return tmp_path


def test_evaluation_uses_every_frame(movi_root):
    ds = MOVi(movi_root, split="validation", image_size=24, mask_size=SIZE)
    assert len(ds) == 6
    item = ds[4]  # video 1, frame 1
    assert item["image"].shape == (3, 24, 24) and item["image"].dtype == torch.float32
    assert item["instance_mask"].dtype == torch.int64 and item["instance_mask"].shape == (SIZE, SIZE)
    assert torch.equal(item["instance_mask"], torch.from_numpy(_frame_labels(1)))
    assert torch.equal(item["class_mask"], item["instance_mask"])
    assert item["ignore_mask"].dtype == torch.bool and not item["ignore_mask"].any()


def test_masks_resized_without_crop(movi_root):
    item = MOVi(movi_root, image_size=16, mask_size=SIZE // 2)[2]
    expected = _frame_labels(2)[::2, ::2]  # nearest neighbour halving keeps even pixels
    assert torch.equal(item["instance_mask"], torch.from_numpy(expected))


def test_training_frames_fixed_and_seeded(movi_root):
    first = MOVi(movi_root, split="train", frames_per_video=4, seed=0, image_size=16, train=True)
    again = MOVi(movi_root, split="train", frames_per_video=4, seed=0, image_size=16, train=True)
    other = MOVi(movi_root, split="train", frames_per_video=4, seed=1, image_size=16, train=True)
    assert len(first) == 8
    assert first.frames == again.frames
    assert first.frames != other.frames
    per_video = [[f for v, f in first.frames if v == video] for video in ("00000000", "00000001")]
    assert all(len(frames) == 4 and frames == sorted(frames) for frames in per_video)
    item = first[0]
    assert list(item) == ["image"] and item["image"].shape == (3, 16, 16)
    everything = MOVi(movi_root, split="train", frames_per_video=None, train=True)
    assert len(everything) == 24


def test_dataloader_collate(movi_root):
    batch = next(iter(DataLoader(MOVi(movi_root, image_size=16, mask_size=8), batch_size=4)))
    assert batch["image"].shape == (4, 3, 16, 16) and batch["instance_mask"].shape == (4, 8, 8)


def test_unknown_split(movi_root):
    with pytest.raises(ValueError, match="'train', 'validation'"):
        MOVi(movi_root, split="val")


def test_missing_split_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="validation"):
        MOVi(tmp_path)


def test_empty_split_folder(tmp_path):
    (tmp_path / "validation" / "00000000").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="_image.png"):
        MOVi(tmp_path)


def test_missing_masks(movi_root):
    for mask in (movi_root / "validation" / "00000000").glob("00000001_mask_*.png"):
        mask.unlink()
    with pytest.raises(FileNotFoundError, match="1 of the 6 frames") as info:
        MOVi(movi_root)
    assert str(movi_root / "validation" / "00000000" / "00000001_mask_00.png") in str(info.value)


def test_split_without_masks_fails_when_built(tmp_path):
    """A split exported without segmentations fails when the evaluation set is built (not at
    the first evaluation after an epoch of training), naming the missing files; training on it
    needs no masks."""
    for video in ("00000000", "00000001"):
        _write_video(tmp_path / "validation" / video, num_frames=3)
        for mask in (tmp_path / "validation" / video).glob("*_mask_*.png"):
            mask.unlink()
    with pytest.raises(FileNotFoundError) as info:
        MOVi(tmp_path, split="validation")
    message = str(info.value)
    assert "6 of the 6 frames" in message
    assert str(tmp_path / "validation" / "00000000" / "00000000_mask_00.png") in message
    assert "FFFFFFFF_mask_NN.png" in message and "train=True" in message
    assert len(MOVi(tmp_path, split="validation", train=True, frames_per_video=None)) == 6


def _authors_frame(path, size):
    """The authors' MOVi frame: PIL's resize to size x size with its default filter (bicubic),
    no flip, ImageNet normalisation."""
    image = Image.open(path).convert("RGB")
    resized = image.resize((size, size))
    assert np.array_equal(np.asarray(resized), np.asarray(image.resize((size, size), Image.BICUBIC)))
    pixels = torch.from_numpy(np.asarray(resized).astype(np.float32) / 255).permute(2, 0, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    return (pixels - mean) / std


def test_training_frames_bicubic_and_never_flipped(movi_root):
    ds = MOVi(movi_root, split="train", frames_per_video=2, image_size=56, train=True)
    for index in range(len(ds)):
        expected = _authors_frame(ds.image_path(index), 56)
        assert not torch.allclose(expected, expected.flip(-1))  # the noise frames are not symmetric
        for _ in range(12):  # a random flip would show up with probability 1 - 2**-12 per frame
            assert torch.allclose(ds[index]["image"], expected, atol=1e-6)


def test_evaluation_frames_bicubic(movi_root):
    ds = MOVi(movi_root, split="validation", image_size=56, mask_size=SIZE)
    for index in (0, 4):
        assert torch.allclose(ds[index]["image"], _authors_frame(ds.image_path(index), 56), atol=1e-6)


@pytest.mark.parametrize("preset,slots", [("movi_c", 11), ("movi_e", 24)])
def test_movi_stage2_schedule(preset, slots):
    """Stage 1: 65 epochs, lr 2e-4 -> 4e-5; stage 2 (the authors' MOVi command): 30 epochs,
    lr 2e-4 -> 1.5e-4; 128-px ground truth and no crop in both."""
    from spot_tutorial import get_preset
    from spot_tutorial.recipes import student_config

    teacher = get_preset(preset)
    assert (teacher.num_slots, teacher.epochs, teacher.lr_main, teacher.lr_min) == (slots, 65, 2e-4, 4e-5)
    student = student_config(teacher)
    assert (student.num_slots, student.epochs, student.lr_main, student.lr_min) == (slots, 30, 2e-4, 1.5e-4)
    assert student.init_method == "embedding" and student.truncate == "bi-level"
    for config in (teacher, student):
        assert config.gt_mask_size == 128 and config.center_crop is False
    coco_student = student_config(get_preset("coco"))
    assert (coco_student.epochs, coco_student.lr_main, coco_student.lr_min) == (50, 4e-4, 4e-7)


def test_corrupt_image(movi_root):
    (movi_root / "validation" / "00000001" / "00000000_image.png").write_bytes(b"garbage" * 20)
    with pytest.raises(CorruptImageError, match="00000000_image.png"):
        MOVi(movi_root)[3]


def test_bad_frames_per_video(movi_root):
    with pytest.raises(ValueError, match="frames_per_video"):
        MOVi(movi_root, split="train", frames_per_video=0, train=True)
