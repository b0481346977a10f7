"""Every command checks its output folder before any work: one message for a file in the way or a
folder this user cannot write."""

import os

import pytest
import torch

from spot_tutorial.apps.cli import main

COMMANDS = {
    "train": ["train", "--preset", "synthetic", "--device", "cpu", "--output-dir"],
    "quickstart": ["quickstart", "--device", "cpu", "--output-dir"],
    "evaluate": ["evaluate", "model.pt", "--device", "cpu", "--output-dir"],
    "segment": ["segment", "model.pt", "photo.png", "--device", "cpu", "--out"],
}


@pytest.mark.parametrize("below", [False, True], ids=["the-path-is-a-file", "below-a-file"])
@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_path_that_is_or_is_below_a_file_is_named(tmp_path, capsys, monkeypatch, command, below):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "taken").write_text("a file")
    path = "taken/run" if below else "taken"
    assert main([*COMMANDS[command], path]) == 1
    error = capsys.readouterr().err
    assert f"{COMMANDS[command][-1]} {path}" in error and "file, not a folder" in error
    assert "Traceback" not in error and (tmp_path / "taken").read_text() == "a file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: run as a normal user")
@pytest.mark.parametrize("command", COMMANDS)
def test_an_output_folder_this_user_cannot_write_is_named(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        assert main([*COMMANDS[command], "locked/run"]) == 1
        assert "not writable by this user" in capsys.readouterr().err
    finally:
        locked.chmod(0o700)


def test_the_check_runs_before_any_input_is_read(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save([1], tmp_path / "model.pt")  # would be refused too, but the folder comes first
    (tmp_path / "taken").write_text("x")
    assert main([*COMMANDS["evaluate"], "taken"]) == 1
    assert "--output-dir taken is a file" in capsys.readouterr().err
