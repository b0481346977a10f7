"""The bad-input matrix: every command and public entry point against the inputs a new user gets
wrong. Each CLI case asserts the exit status, that the one-line message names the argument or
file, that no traceback is printed and that nothing was written; each API case the error type
and message. (Checkpoint files: tests/test_bad_checkpoints.py; output paths:
tests/test_bad_output_paths.py; corrupt images: tests/test_segment_files.py.)"""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spot_tutorial import load_model, segment
from spot_tutorial.apps.cli import main
from spot_tutorial.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "notebooks" / "checkpoints" / "tiny_teacher.pt"  # a shipped tutorial model


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    Image.fromarray((np.random.default_rng(0).random((48, 40, 3)) * 255).astype("uint8")).save(path)
    return path


# (command line with {ck}, {photo}, {out} placeholders; expected exit status; words the message holds)
CLI_CASES = {
    "train batch 0": ("train --preset synthetic --batch-size 0 --output-dir {out}", 1, "batch_size"),
    "train 300 slots": ("train --preset synthetic --num-slots 300 --output-dir {out}", 1, "num_slots"),
    "train missing teacher": ("train --preset synthetic --stage 2 --teacher {missing} --output-dir {out}",
                              1, "missing.pt"),
    "train teacher that does not fit": ("train --preset synthetic --stage 2 --teacher {ck} --num-slots 3 "
                                        "--output-dir {out}", 1, "does not fit"),
    "evaluate 300 slots": ("evaluate {ck} --num-slots 300 --output-dir {out}", 1, "num_slots"),
    "evaluate -5 images": ("evaluate {ck} --max-images -5 --output-dir {out}", 2, "--max-images"),
    "evaluate batch 0": ("evaluate {ck} --batch-size 0 --output-dir {out}", 2, "--batch-size"),
    "evaluate missing checkpoint": ("evaluate {missing} --output-dir {out}", 1, "missing.pt"),
    "segment 300 slots": ("segment {ck} {photo} --num-slots 300 --out {out}", 1, "num_slots"),
    "segment batch 0": ("segment {ck} {photo} --batch-size 0 --out {out}", 2, "--batch-size"),
    "segment missing image": ("segment {ck} {missing_image} --out {out}", 1, "missing.png"),
    "segment missing checkpoint": ("segment {missing} {photo} --out {out}", 1, "missing.pt"),
    "quickstart 0 minutes": ("quickstart --minutes 0 --output-dir {out}", 1, "minutes"),
    "quickstart negative minutes": ("quickstart --minutes -1 --output-dir {out}", 1, "minutes"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_every_command_refuses_bad_input_with_one_line_naming_it(case, tmp_path, photo, capsys):
    line, status, named = CLI_CASES[case]
    out = tmp_path / "out"
    argv = line.format(ck=CHECKPOINT, photo=photo, out=out, missing=tmp_path / "missing.pt",
                       missing_image=tmp_path / "missing.png").split()
    try:
        code = main([*argv, "--no-progress"])
    except SystemExit as stop:  # argparse's own refusals exit with 2
        code = stop.code
    error = capsys.readouterr().err
    assert code == status, error
    assert named in error and "Traceback" not in error
    assert len([line for line in error.splitlines() if line.startswith("spot")]) == 1
    assert not out.exists() or not any(out.iterdir()), "nothing may be written for refused input"


def test_segment_twice_writes_identical_files(tmp_path, photo):
    for run in ("first", "second"):
        assert main(["segment", str(CHECKPOINT), str(photo), "--out", str(tmp_path / run),
                     "--device", "cpu", "--no-progress"]) == 0
    first = sorted((tmp_path / "first").iterdir())
    assert first and [p.name for p in first] == sorted(p.name for p in (tmp_path / "second").iterdir())
    for path in first:
        if path.suffix == ".png":
            assert path.read_bytes() == (tmp_path / "second" / path.name).read_bytes(), path.name


@pytest.fixture(scope="module")
def model():
    return load_model(CHECKPOINT)


@pytest.mark.parametrize("form", ["tensor", "batch", "pil", "numpy", "path", "list"])
def test_segment_takes_one_image_in_every_supported_form_and_leaves_the_mode_alone(model, photo, form):
    image = Image.open(photo).convert("RGB")
    inputs = {"tensor": torch.rand(3, 48, 40), "batch": torch.rand(2, 3, 48, 40), "pil": image,
              "numpy": np.asarray(image), "path": str(photo), "list": [image, str(photo)]}[form]
    model.train()
    result = segment(model, inputs)
    assert model.training, "segment() must hand the model back in the mode it came in"
    model.eval()
    expected = {"batch": 2, "list": 2}.get(form, 1)
    assert len(result.slot_labels) == expected


def test_segment_refuses_nan_pixels_and_says_how_many(model):
    image = torch.rand(3, 48, 40)
    image[:, :10, :10] = float("nan")
    with pytest.raises(InputError, match="300 NaN"):
        segment(model, image)


@pytest.mark.parametrize("bad, message", [(torch.rand(4, 48, 40), "3"), (42, "image")])
def test_segment_names_the_accepted_forms_for_anything_else(model, bad, message):
    with pytest.raises((InputError, TypeError, ConfigError), match=message):
        segment(model, bad)


# --- evaluate_model: what a loader may hand it -------------------------------------------------
def _batch(images=None, with_mask=True):
    images = torch.randn(2, 3, 64, 64) if images is None else images
    mask = torch.zeros(images.shape[0], 64, 64, dtype=torch.long)
    mask[:, :32] = 1
    return {"image": images, "instance_mask": mask} if with_mask else {"image": images}


def _nan_images():
    images = torch.randn(2, 3, 64, 64)
    images[0, :, :10, :10] = float("nan")
    return images


EVALUATE_CASES = {  # loader, error, words of the message
    "no batches": ([], InputError, "zero images"),
    "no ground truth": ([_batch(with_mask=False)], InputError, "instance_mask"),
    "tuples, not dicts": ([(torch.randn(2, 3, 64, 64), torch.zeros(2, 64, 64))], InputError, "dict"),
    "NaN pixels": ([_batch(_nan_images())], InputError, "300 NaN"),
    "wrong image size": ([_batch(torch.randn(2, 3, 48, 48))], InputError, "48x48"),
    "raw uint8 pixels": ([_batch(torch.randint(0, 255, (2, 3, 64, 64), dtype=torch.uint8))], InputError,
                         "float"),
}


@pytest.mark.parametrize("case", EVALUATE_CASES)
def test_evaluate_model_refuses_bad_batches_and_leaves_the_mode_alone(model, case):
    from spot_tutorial import evaluate_model

    loader, error, words = EVALUATE_CASES[case]
    model.train()
    with pytest.raises(error, match=words):
        evaluate_model(model, loader, progress=False)
    assert model.training  # the caller's mode is restored after the error
    model.eval()


# --- the dataset builders: missing folders and files name what is missing and where to get it --
def _dataset_cases(tmp_path):
    from spot_tutorial.data import COCO2017, ImageFolder, MOVi, SyntheticShapes, build_datasets
    from spot_tutorial.data.voc import PascalVOC
    from spot_tutorial.errors import DatasetError
    from spot_tutorial.recipes import get_preset

    (tmp_path / "empty").mkdir()
    (tmp_path / "coco" / "val2017").mkdir(parents=True)
    missing = tmp_path / "missing"
    return {
        "COCO without its folder": (lambda: COCO2017(missing, split="val"), FileNotFoundError, "val2017"),
        "COCO without annotations": (lambda: COCO2017(tmp_path / "coco", split="val"), FileNotFoundError,
                                     "instances_val2017.json"),
        "VOC without its lists": (lambda: PascalVOC(tmp_path / "empty"), FileNotFoundError, "val.txt"),
        "MOVi without its folder": (lambda: MOVi(missing), FileNotFoundError, "validation"),
        "folder missing": (lambda: ImageFolder(missing), FileNotFoundError, "missing"),
        "folder without images": (lambda: ImageFolder(tmp_path / "empty"), DatasetError, "no images"),
        "scenes of another difficulty": (lambda: SyntheticShapes(4, difficulty="hard"), DatasetError,
                                         "camouflage"),
        "scenes too small": (lambda: SyntheticShapes(4, image_size=10), DatasetError, "16 pixels"),
        "a preset without its data path": (lambda: build_datasets(get_preset("coco"), None), DatasetError,
                                           "--data-path"),
    }


DATASET_CASES = ["COCO without its folder", "COCO without annotations", "VOC without its lists",
                 "MOVi without its folder", "folder missing", "folder without images",
                 "scenes of another difficulty", "scenes too small", "a preset without its data path"]


@pytest.mark.parametrize("case", DATASET_CASES)
def test_dataset_builders_say_what_is_missing(tmp_path, case):
    build, error, words = _dataset_cases(tmp_path)[case]
    with pytest.raises(error, match=words):
        build()
