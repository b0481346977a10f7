"""The GPU check's end-to-end section, rehearsed without a GPU (benchmarks/gpu_check.py,
benchmarks/end_to_end.py): the Trainer reads a generated COCO-like JPEG folder through the 'pil'
and the 'gpu' decode paths for a stage-1 and a stage-2 run, and the report has what the lent
machine's run records. Structure only: no timing is asserted."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def gpu_check():
    return _load("gpu_check")


@pytest.fixture(scope="module")
def end_to_end():
    return _load("end_to_end")


def test_end_to_end_trains_both_stages_through_each_decoder(end_to_end, tmp_path):
    report = end_to_end.end_to_end(torch.device("cpu"), "tiny", decoders=("pil", "gpu"), workers=0,
                                   steps=30, images=12, work_dir=tmp_path)
    assert report["workers"] == 0 and report["config"] == "tiny"
    for decode in ("pil", "gpu"):
        for stage in ("stage1", "stage2"):
            run = report[decode][stage]
            assert run["steps"] == 30
            assert run["steady_images_per_s"] > 0 and run["fit_images_per_s"] > 0
            assert run["gpu_utilisation_pct"] is None and run["why_none"] == "not a CUDA device"
            assert (tmp_path / decode / stage / "last.pt").is_file()
        hours = report[decode]["projected_50_plus_50_hours"]
        assert hours == pytest.approx(report[decode]["stage1_hours"] + report[decode]["stage2_hours"])
        stage1_images_per_s = report[decode]["stage1"]["steady_images_per_s"]
        assert report[decode]["stage1_hours"] == pytest.approx(50 * 118_287 / stage1_images_per_s / 3600)


def test_without_cuda_the_cuda_sections_are_skipped_with_the_reason(gpu_check, tmp_path, monkeypatch,
                                                                    capsys):
    monkeypatch.setattr(gpu_check, "RESULTS", tmp_path)
    status = gpu_check.main(["--device", "cpu", "--sections", "agreement", "train", "eval"])
    assert status == 2
    said = capsys.readouterr().out
    assert "no CUDA device: --device cpu is not a CUDA device" in said
    report = json.loads((tmp_path / "gpu_check_no_cuda.json").read_text())
    assert report["skipped"]["sections"] == ["agreement", "train", "eval"]
    assert not (tmp_path / "gpu_check.json").exists()  # a rehearsal never overwrites the GPU figures
