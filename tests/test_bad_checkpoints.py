"""Every way a checkpoint file can be wrong gets one clear message, from every command and loader."""

import os
import pickle
import re

import pytest
import torch
from PIL import Image

from spot_tutorial import load_model, load_official_checkpoint
from spot_tutorial.apps.cli import main
from spot_tutorial.errors import CheckpointError


class NotATensor:
    pass


def _write(kind: str, path):
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random-bytes":
        path.write_bytes(bytes(range(7, 250)) * 4)
    elif kind == "a-list":
        torch.save([1, 2, 3], path)
    elif kind == "truncated":
        torch.save({"model": torch.nn.Linear(4, 4).state_dict()}, path)
        path.write_bytes(path.read_bytes()[: os.path.getsize(path) // 2])
    elif kind == "python-objects":
        path.write_bytes(pickle.dumps({"model": NotATensor()}, protocol=2))
    return path


CASES = {"empty": "is empty", "random-bytes": "not a PyTorch checkpoint", "a-list": "holds a list",
         "truncated": "truncated or damaged", "python-objects": "safe (weights-only) load refuses"}


@pytest.mark.parametrize("kind", CASES)
@pytest.mark.parametrize("command", ["segment", "evaluate"])
def test_commands_name_the_file_and_what_is_wrong_without_a_traceback(tmp_path, capsys, kind, command):
    checkpoint = _write(kind, tmp_path / f"{kind}.pt")
    Image.new("RGB", (20, 16), (90, 20, 200)).save(tmp_path / "photo.png")
    out = tmp_path / "out"
    args = (["segment", str(checkpoint), str(tmp_path / "photo.png"), "--out", str(out)]
            if command == "segment" else ["evaluate", str(checkpoint), "--output-dir", str(out)])
    assert main([*args, "--device", "cpu", "--no-progress"]) == 1
    error = capsys.readouterr().err
    assert str(checkpoint.name) in error and CASES[kind] in error
    assert "Traceback" not in error and len(error.strip().splitlines()) == 1
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("kind", CASES)
def test_loaders_raise_checkpoint_errors(tmp_path, kind):
    checkpoint = _write(kind, tmp_path / f"{kind}.pt")
    with pytest.raises(CheckpointError, match=re.escape(CASES[kind])):
        load_model(checkpoint)
    with pytest.raises(CheckpointError, match=re.escape(CASES[kind])):
        load_official_checkpoint(checkpoint, "tiny")
