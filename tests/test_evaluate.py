import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from spot_tutorial import save_model
from spot_tutorial.data import SyntheticShapes
from spot_tutorial.evaluate import (evaluate_model, load_any_checkpoint, plot_segmentation, results_table,
                                    segment, write_results)
from spot_tutorial.metrics import SegmentationMetrics
from conftest import tiny_model


def test_evaluate_model_scores_both_mask_kinds_like_the_metrics_do():
    model = tiny_model(init_method="embedding").eval()
    loader = DataLoader(SyntheticShapes(12, image_size=64, seed=5), batch_size=4)
    results = evaluate_model(model, loader, progress=False)
    assert set(results) == {"slot", "decoder"}
    # the same numbers by hand from the model outputs
    meter = SegmentationMetrics()
    with torch.no_grad():
        for batch in loader:
            out = model(batch["image"], permutations="standard")
            meter.update(out.decoder_masks, batch["instance_mask"], batch["class_mask"], batch["ignore_mask"])
    by_hand = meter.compute()
    for key in ("fg_ari", "mbo_i", "mbo_c", "miou"):
        assert results["decoder"][key] == pytest.approx(by_hand[key])
    assert results["slot"]["num_images"] == 12
    assert model.training is False


def test_all_orders_change_decoder_masks_but_not_slot_masks():
    model = tiny_model(init_method="embedding").eval()
    loader = DataLoader(SyntheticShapes(8, image_size=64, seed=1), batch_size=8)
    standard = evaluate_model(model, loader, permutations="standard", progress=False)
    every = evaluate_model(model, loader, permutations="all", progress=False)
    assert standard["slot"] == every["slot"]
    assert standard["decoder"] != every["decoder"]


def test_results_are_written_as_json_and_csv(tmp_path):
    results = {"slot": {"fg_ari": 50.0, "mbo_i": 40.0, "mbo_c": 41.0, "miou": 30.0, "num_images": 3},
               "decoder": {"fg_ari": 60.0, "mbo_i": 45.0, "mbo_c": 46.0, "miou": 35.0, "num_images": 3}}
    json_path, csv_path = write_results(results, tmp_path, info={"checkpoint": "x.pt"})
    assert json.loads(json_path.read_text())["results"]["decoder"]["mbo_i"] == 45.0
    assert csv_path.read_text().splitlines()[1].startswith("slot,50.0,40.0")
    table = results_table(results)
    assert "mBO^i" in table and "45.0" in table


def test_segment_images_of_any_size_and_plot():
    model = tiny_model(init_method="embedding")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (50, 90, 3), dtype=np.uint8), torch.rand(3, 128, 64)]
    seg = segment(model, images)
    assert seg.slot_masks[0].shape == (5, 50, 90) and seg.decoder_labels[1].shape == (128, 64)
    torch.testing.assert_close(seg.slot_masks[0].sum(0), torch.ones(50, 90))
    assert seg.slot_labels[0].max() < 5
    fig = plot_segmentation(images, seg)
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="RGB"):
        segment(model, [np.zeros((10, 10), dtype=np.uint8)])


def test_load_any_checkpoint_reads_ours(tmp_path):
    model = tiny_model(init_method="embedding")
    save_model(model, tmp_path / "m.pt")
    loaded = load_any_checkpoint(tmp_path / "m.pt")
    assert loaded.config == model.config


def test_run_evaluation_end_to_end_on_builtin_data(tmp_path):
    from spot_tutorial.evaluate import run_evaluation

    model = tiny_model(init_method="embedding", eval_images=6)
    save_model(model, tmp_path / "teacher.pt")
    report = run_evaluation(tmp_path / "teacher.pt", permutations="all", batch_size=4, device="cpu",
                            num_workers=0, output_dir=tmp_path / "eval", figure_images=2, progress=False)
    assert report.results["decoder"]["num_images"] == 6
    assert "decoder masks" in report.table and "mBO^c" in report.table
    assert report.json_path.exists() and report.csv_path.exists() and report.figure_path.stat().st_size > 1000


def test_build_datasets_needs_a_path_for_real_datasets():
    from spot_tutorial import get_preset
    from spot_tutorial.data import build_datasets

    with pytest.raises(ValueError, match="--data-path"):
        build_datasets(get_preset("coco"))
    with pytest.raises(FileNotFoundError):
        build_datasets(get_preset("voc"), "/nonexistent/voc")
