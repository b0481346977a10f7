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
