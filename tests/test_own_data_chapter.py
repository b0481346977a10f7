"""The commands of the book's "Your own data" chapter (book/own_data.md) run as printed.

Every ``bash`` block of the chapter is parsed and each `spot ...` command is run, in order, in
a folder holding a small generated `my_photos/` (with `my_masks/`), through `spot_tutorial.apps.cli.main`.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
from own_images import write_image_folder

from spot_tutorial.apps.cli import main

CHAPTER = Path(__file__).resolve().parents[1] / "book" / "own_data.md"

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def chapter_commands(text: str) -> list[list[str]]:
    """The `spot` commands of the ```bash blocks, continuation lines joined, as argv lists."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(shlex.split(line))
    return commands


def test_the_chapter_has_the_commands_it_describes():
    commands = chapter_commands(CHAPTER.read_text())
    assert all(argv[0] == "spot" for argv in commands)
    assert [argv[1] for argv in commands] == ["train", "segment", "train", "evaluate", "train"]
    flat = [" ".join(argv) for argv in commands]
    assert "--dataset folder" in flat[0] and "--init-from" in flat[4] and "--mask-path" in flat[3]


@pytest.mark.slow
def test_the_chapters_commands_run_on_a_generated_folder(tmp_path, monkeypatch, capsys):
    write_image_folder(tmp_path / "my_photos", count=12, masks=tmp_path / "my_masks")
    monkeypatch.chdir(tmp_path)
    for argv in chapter_commands(CHAPTER.read_text()):
        assert main(argv[1:] + ["--no-progress"]) == 0, " ".join(argv)
    printed = capsys.readouterr().out
    assert "initialised from runs/photos_teacher/last.pt (spot-tutorial checkpoint)" in printed
    index = json.loads((tmp_path / "segmented" / "index.json").read_text())
    assert len(index["images"]) == 12 and index["order_ids"] == list(range(9))
    assert (tmp_path / "segmented" / "contact_sheet.png").is_file()
    assert list((tmp_path / "runs" / "photos_teacher" / "figures").glob("*.png"))
    results = json.loads((tmp_path / "runs" / "photos_eval" / "results.json").read_text())
    assert results["num_images"] == 12 and results["protocol"]["mask_size"] == 64
    assert 0 <= results["results"]["decoder"]["mbo_i"] <= 100
    finetuned = (tmp_path / "runs" / "photos_finetuned" / "eval.csv").read_text()
    assert "decoder" in finetuned  # with --mask-path, training evaluates on the masked images
