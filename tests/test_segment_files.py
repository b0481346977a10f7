"""Tests of `spot segment` (spot_tutorial.inference): own images, any size and mode, bad files."""

import json

import numpy as np
import pytest
import torch
from own_images import write_image_folder
from PIL import Image

from spot_tutorial import SPOT, get_preset, save_model
from spot_tutorial.apps.cli import main
from spot_tutorial.inference import find_images, segment_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "model.pt"
    save_model(SPOT.from_config(get_preset("tiny", init_method="embedding")), path)
    return path


def test_segment_a_folder_writes_overlays_label_maps_sheet_and_index(tmp_path, checkpoint, capsys):
    files = write_image_folder(tmp_path / "photos", count=6)
    out = tmp_path / "out"
    code = main(["segment", str(checkpoint), str(tmp_path / "photos"), "--out", str(out), "--device", "cpu",
                 "--batch-size", "4", "--no-progress"])
    assert code == 0
    assert "segmented 6 image(s)" in capsys.readouterr().out
    index = json.loads((out / "index.json").read_text())
    assert len(index["images"]) == 6 and index["failed"] == [] and index["masks"] == ["slot", "decoder"]
    assert index["order_ids"] == [0] and index["num_slots"] == 5 and index["seconds_per_image"] > 0
    for entry, path in zip(index["images"], sorted(files), strict=True):
        assert entry["file"] == str(path)
        width, height = Image.open(path).size
        assert entry["size"] == [width, height]
        for kind in ("slot", "decoder"):
            overlay = Image.open(out / entry["masks"][kind]["overlay"])
            labels = Image.open(out / entry["masks"][kind]["labels"])
            assert overlay.size == labels.size == (width, height) and overlay.mode == "RGB"
            assert labels.mode == "P" and np.asarray(labels).max() < 5  # pixel values are slot ids
    assert {entry["mode"] for entry in index["images"]} >= {"RGB", "L", "RGBA", "P"}
    assert (out / "street" / "photo_01_slot_overlay.png").is_file()  # sub-folders are mirrored
    assert Image.open(out / "contact_sheet.png").size[0] > 100


def test_segmenting_the_same_files_twice_writes_identical_masks(tmp_path):
    path = tmp_path / "gaussian.pt"  # shared-Gaussian slots: random unless seeded
    save_model(SPOT.from_config(get_preset("tiny")), path)
    write_image_folder(tmp_path / "photos", count=3)
    runs = [segment_files(path, [tmp_path / "photos"], tmp_path / f"out{i}", device="cpu",
                          batch_size=2, progress=False) for i in range(2)]
    assert json.loads(runs[0].index_path.read_text())["seed"] == 0
    for first, second in zip(runs[0].images, runs[1].images, strict=True):
        for kind in ("slot", "decoder"):
            a = np.asarray(Image.open(tmp_path / "out0" / first.masks[kind]["labels"]))
            b = np.asarray(Image.open(tmp_path / "out1" / second.masks[kind]["labels"]))
            assert np.array_equal(a, b)


def test_a_non_empty_out_folder_is_refused_unless_overwrite_replaces_a_previous_run(tmp_path, checkpoint,
                                                                                    capsys):
    write_image_folder(tmp_path / "photos", count=2)
    out = tmp_path / "out"
    args = ["segment", str(checkpoint), str(tmp_path / "photos"), "--out", str(out), "--device", "cpu",
            "--no-progress"]
    assert main(args) == 0
    (out / "stale.png").write_bytes(b"old")
    assert main(args) == 1
    error = capsys.readouterr().err
    assert str(out) in error and "--overwrite" in error and "Traceback" not in error
    assert (out / "stale.png").exists()
    assert main([*args, "--overwrite"]) == 0
    assert not (out / "stale.png").exists() and (out / "index.json").is_file()
    own = tmp_path / "mine"  # a folder of the user's own files is never deleted
    own.mkdir()
    (own / "keep.txt").write_text("mine")
    assert main([*args[:4], str(own), *args[5:], "--overwrite"]) == 1
    assert "no index.json" in capsys.readouterr().err and (own / "keep.txt").exists()
    (tmp_path / "file").write_text("x")
    assert main([*args[:4], str(tmp_path / "file"), *args[5:]]) == 1
    assert "is a file" in capsys.readouterr().err


def test_bad_files_are_reported_by_name_and_skipped(tmp_path, checkpoint, capsys):
    write_image_folder(tmp_path / "photos", count=3)
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"this is not a jpeg")
    good = Image.new("RGB", (40, 30), (10, 200, 30))
    good.save(tmp_path / "whole.png")
    data = (tmp_path / "whole.png").read_bytes()
    (tmp_path / "photos" / "truncated.png").write_bytes(data[: len(data) // 2])
    (tmp_path / "notes.txt").write_text("named explicitly, so it is tried")
    out = tmp_path / "out"
    code = main(["segment", str(checkpoint), str(tmp_path / "photos"), str(tmp_path / "notes.txt"),
                 str(tmp_path / "missing.jpg"), "--out", str(out), "--device", "cpu", "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert "segmented 3 image(s)" in err and "4 failed" in err
    for name in ("broken.jpg", "truncated.png", "notes.txt", "missing.jpg"):
        assert name in err
    index = json.loads((out / "index.json").read_text())
    assert len(index["images"]) == 3
    assert sorted(f["file"].rsplit("/", 1)[-1] for f in index["failed"]) == [
        "broken.jpg", "missing.jpg", "notes.txt", "truncated.png"]


def test_authors_checkpoint_glob_all_orders_decoder_masks_and_odd_modes(tmp_path):
    from test_checkpoints import to_official

    model = SPOT.from_config(get_preset("tiny", num_slots=4))
    torch.save({"model": to_official(model.state_dict())}, tmp_path / "authors.pt")
    (tmp_path / "photos").mkdir()
    depth = (np.arange(50 * 30).reshape(30, 50) * 40).astype(np.uint16)
    Image.fromarray(depth).save(tmp_path / "photos" / "depth.png")
    Image.new("RGBA", (33, 65), (200, 0, 0, 128)).save(tmp_path / "photos" / "alpha.png")
    Image.new("CMYK", (20, 20), (0, 255, 0, 0)).save(tmp_path / "photos" / "print.jpg")
    run = segment_files(tmp_path / "authors.pt", [str(tmp_path / "photos" / "*.*")], tmp_path / "out",
                        orders="all", masks="decoder", device="cpu", batch_size=2, encoder="tiny",
                        preset="synthetic", num_slots=4, progress=False)
    assert not run.failed and len(run.images) == 3
    assert run.settings["order_ids"] == list(range(9)) and run.settings["num_slots"] == 4
    for image in run.images:
        assert list(image.masks) == ["decoder"]
        assert Image.open(run.out_dir / image.masks["decoder"]["labels"]).size == tuple(image.size)
    assert {image.mode for image in run.images} == {"I;16", "RGBA", "CMYK"}


def test_find_images_names_are_unique_and_nothing_found_is_one_clear_error(tmp_path, checkpoint, capsys):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "same.png")
    found, missing = find_images([str(tmp_path / "*" / "same.png"), str(tmp_path / "a" / "same.png")])
    assert [item.name for item in found] == ["same", "same_2"] and not missing  # each file once
    code = main(["segment", str(checkpoint), str(tmp_path / "nothing_*.jpg"), "--out", str(tmp_path / "o")])
    assert code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no images to segment" in err[0] and "nothing_*.jpg" in err[0]


def test_a_corrupt_photo_of_the_user_is_not_called_a_download(tmp_path, checkpoint):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "broken.jpg").write_bytes(b"\xff\xd8\xff" + b"0" * 50)
    Image.new("RGB", (20, 20)).save(tmp_path / "photos" / "fine.png")
    run = segment_files(checkpoint, [tmp_path / "photos"], tmp_path / "out", device="cpu", progress=False)
    [failed] = run.failed
    assert failed.file.endswith("broken.jpg") and "cannot read this image" in failed.error
    assert "download" not in failed.error and "export it again" in failed.error


def test_an_image_whose_masks_cannot_be_written_leaves_no_files_and_is_listed(tmp_path, checkpoint,
                                                                              monkeypatch):
    import spot_tutorial.viz.masks as masks

    (tmp_path / "photos").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (20, 20), (10, 200, 30)).save(tmp_path / "photos" / f"{name}.png")
    real, calls = masks.label_png, []

    def failing_second_image(labels):
        calls.append(1)
        if len(calls) == 4:  # image b's decoder label map: after b's slot PNGs were written
            raise OSError(28, "No space left on device")
        return real(labels)

    monkeypatch.setattr(masks, "label_png", failing_second_image)
    out = tmp_path / "out"
    run = segment_files(checkpoint, [tmp_path / "photos"], out, device="cpu", progress=False)
    assert [image.file for image in run.images] == [str(tmp_path / "photos" / "a.png")]
    [failed] = run.failed
    assert failed.file.endswith("b.png") and "No space left" in failed.error
    assert sorted(p.name for p in out.glob("b_*")) == [] and not list(out.rglob("*.partial"))
    assert len(list(out.glob("a_*.png"))) == 4
    assert json.loads((out / "index.json").read_text())["failed"][0]["file"].endswith("b.png")
