import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model
from torch.utils.data import DataLoader

from spot_tutorial import save_model
from spot_tutorial.data import SyntheticShapes
from spot_tutorial.errors import InputError
from spot_tutorial.evaluation.evaluate import (
    evaluate_model,
    load_any_checkpoint,
    results_table,
    write_results,
)
from spot_tutorial.inference import plot_segmentation, segment


# ------------------------------------------------------------------------------------------
# the protocol written out independently, one image at a time (sklearn, numpy, scipy)
def iou_matrix(pred, target, keep):
    """IoU of every ground-truth object (id > 0) with every predicted segment, over kept pixels;
    a segment's area includes its background pixels."""
    pred, target = pred[keep], target[keep]
    objects = [i for i in np.unique(target) if i > 0]
    segments = np.unique(pred)
    iou = np.zeros((len(objects), len(segments)))
    for row, obj in enumerate(objects):
        for col, seg in enumerate(segments):
            a, b = target == obj, pred == seg
            iou[row, col] = (a & b).sum() / (a | b).sum()
    return iou


def reference_scores(pred, instance, classes, ignore):
    """Per-image FG-ARI, mBO^i, mBO^c, mIoU (NaN where the image has no object)."""
    from scipy.optimize import linear_sum_assignment
    from sklearn.metrics import adjusted_rand_score

    keep = ~ignore
    foreground = keep & (instance > 0)
    scores = {"fg_ari": adjusted_rand_score(instance[foreground], pred[foreground])}
    iou = iou_matrix(pred, instance, keep)
    scores["mbo_i"] = iou.max(1).mean() if len(iou) else np.nan
    if len(iou):
        rows, cols = linear_sum_assignment(iou, maximize=True)
        scores["miou"] = iou[rows, cols].sum() / len(iou)
    else:
        scores["miou"] = np.nan
    class_iou = iou_matrix(pred, classes, keep)
    scores["mbo_c"] = class_iou.max(1).mean() if len(class_iou) else np.nan
    return scores


class TinyDataset(torch.utils.data.Dataset):
    """Synthetic scenes with a band of ignored pixels across them; one scene without objects."""

    def __init__(self):
        self.items = [SyntheticShapes(7, image_size=64, seed=5)[i] for i in range(7)]
        for index, item in enumerate(self.items):
            item["ignore_mask"] = item["ignore_mask"].clone()
            item["ignore_mask"][20 + index: 26 + index] = True
        empty = self.items[-1]
        empty["instance_mask"], empty["class_mask"] = (torch.zeros_like(empty["instance_mask"]),
                                                       torch.zeros_like(empty["class_mask"]))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def test_evaluate_model_equals_the_protocol_computed_image_by_image():
    model = tiny_model(init_method="embedding").eval()
    dataset = TinyDataset()
    results = evaluate_model(model, DataLoader(dataset, batch_size=3), orders="all", progress=False)
    images = torch.stack([item["image"] for item in dataset])
    with torch.no_grad():
        output = model(images, orders="all")  # a plain fp32 forward pass
    for kind, masks in (("slot", output.slot_masks), ("decoder", output.decoder_masks)):
        labels = F.interpolate(masks, size=(64, 64), mode="bilinear", align_corners=False).argmax(1)
        per_image = [reference_scores(labels[i].numpy(), item["instance_mask"].numpy(),
                                      item["class_mask"].numpy(), item["ignore_mask"].numpy())
                     for i, item in enumerate(dataset)]
        for key in ("fg_ari", "mbo_i", "mbo_c", "miou"):
            expected = 100 * np.nanmean([scores[key] for scores in per_image])
            assert results[kind][key] == pytest.approx(expected, abs=1e-9), (kind, key)
        assert results[kind]["num_images"] == 7
    assert per_image[-1]["fg_ari"] == 1.0 and np.isnan(per_image[-1]["mbo_i"])  # the empty scene
    assert model.training is False


def test_all_orders_change_decoder_masks_but_not_slot_masks():
    model = tiny_model(init_method="embedding").eval()
    loader = DataLoader(SyntheticShapes(8, image_size=64, seed=1), batch_size=8)
    standard = evaluate_model(model, loader, orders="standard", progress=False)
    every = evaluate_model(model, loader, orders="all", progress=False)
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
    from spot_tutorial.evaluation.evaluate import run_evaluation

    model = tiny_model(init_method="embedding", eval_images=6)
    save_model(model, tmp_path / "teacher.pt")
    report = run_evaluation(tmp_path / "teacher.pt", orders="all", batch_size=4, device="cpu",
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


# ------------------------------------------------------------------------------------------
# precision: fp32 by default (the authors' protocol), bf16 autocast only when asked for
def test_default_evaluation_is_plain_fp32_and_bf16_moves_few_labels():
    from spot_tutorial.evaluation.evaluate import predict

    model = tiny_model(init_method="embedding").eval()
    images = torch.stack([SyntheticShapes(16, image_size=64, seed=3)[i]["image"] for i in range(16)])
    default = predict(model, images, "all")
    with torch.no_grad():
        plain = model(images, orders="all")
    for name in ("slot_masks", "decoder_masks"):
        assert getattr(default, name).dtype == torch.float32
        torch.testing.assert_close(getattr(default, name), getattr(plain, name), rtol=0, atol=0)
    bf16 = predict(model, images, "all", precision="bf16")
    for name in ("slot_masks", "decoder_masks"):
        labels = [F.interpolate(getattr(out, name).float(), size=(64, 64), mode="bilinear").argmax(1)
                  for out in (plain, bf16)]
        changed = (labels[0] != labels[1]).float().mean().item()
        print(f"bf16 autocast on the CPU changes {100 * changed:.2f}% of the {name} labels")
        assert changed < 0.1


def test_precision_contexts():
    from spot_tutorial.errors import InputError
    from spot_tutorial.runtime import evaluation_autocast

    assert not isinstance(evaluation_autocast(torch.device("cuda"), "fp32"), torch.autocast)
    context = evaluation_autocast(torch.device("cpu"), "bf16")
    assert isinstance(context, torch.autocast) and context.fast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="choose one of"):
        evaluation_autocast(torch.device("cpu"), "fp16")
    with pytest.raises(InputError, match="CUDA or the CPU, not on 'meta'"):
        evaluation_autocast(torch.device("meta"), "bf16")
    assert not isinstance(evaluation_autocast(torch.device("meta"), "fp32"), torch.autocast)


def test_evaluation_keeps_no_precision_policy_of_its_own():
    from spot_tutorial import runtime
    from spot_tutorial.evaluation import evaluate

    assert evaluate.evaluation_autocast is runtime.evaluation_autocast
    assert evaluate.evaluation_precision is runtime.evaluation_precision
    for name in ("PRECISIONS", "precision_context", "effective_precision"):
        assert not hasattr(evaluate, name)


def test_run_evaluation_records_precision_and_slot_count(tmp_path):
    from spot_tutorial.evaluation.evaluate import run_evaluation

    save_model(tiny_model(eval_images=4), tmp_path / "gaussian.pt")
    common = dict(orders="standard", batch_size=4, device="cpu", num_workers=0, figure_images=0,
                  progress=False)
    report = run_evaluation(tmp_path / "gaussian.pt", output_dir=tmp_path / "a", **common)
    written = json.loads(report.json_path.read_text())
    assert written["precision"] == "fp32" and written["num_slots"] == 5
    assert "num_slots = 5 (from checkpoint config)" in report.notes
    report = run_evaluation(tmp_path / "gaussian.pt", output_dir=tmp_path / "b", num_slots=3, bf16=True,
                            **common)
    written = json.loads(report.json_path.read_text())
    assert written["precision"] == "bf16" and written["num_slots"] == 3
    assert written["config"]["num_slots"] == 3


def test_seeded_evaluation_repeats_its_numbers_and_leaves_the_callers_generator():
    model = tiny_model()
    loader = DataLoader(SyntheticShapes(6, 64, seed=3), batch_size=3)
    torch.manual_seed(123)
    untouched = torch.rand(1)
    torch.manual_seed(123)
    seeded = evaluate_model(model, loader, orders="random", progress=False, seed=0)
    assert torch.equal(torch.rand(1), untouched)  # as if nothing was drawn
    assert evaluate_model(model, loader, orders="random", progress=False, seed=0) == seeded
    torch.manual_seed(123)
    evaluate_model(model, loader, orders="random", progress=False)  # unseeded: the caller's draws
    assert not torch.equal(torch.rand(1), untouched)


def test_run_evaluation_repeats_its_numbers_and_records_its_seed(tmp_path):
    from spot_tutorial.evaluation.evaluate import run_evaluation

    save_model(tiny_model(eval_images=8), tmp_path / "gaussian.pt")
    common = dict(orders="random", batch_size=4, device="cpu", num_workers=0, figure_images=0,
                  progress=False)
    torch.manual_seed(123)
    first = run_evaluation(tmp_path / "gaussian.pt", output_dir=tmp_path / "a", **common)
    torch.manual_seed(7)  # whatever the caller's generator holds
    again = run_evaluation(tmp_path / "gaussian.pt", output_dir=tmp_path / "b", **common)
    assert first.results == again.results and json.loads(first.json_path.read_text())["seed"] == 0
    other = run_evaluation(tmp_path / "gaussian.pt", output_dir=tmp_path / "c", seed=1, **common)
    assert other.results != first.results  # the seed does change the slots' start
    assert json.loads(other.json_path.read_text())["seed"] == 1


# ------------------------------------------------------------------------------------------
def test_segment_scales_uint8_tensors():
    model = tiny_model(init_method="embedding")
    image = torch.randint(0, 256, (3, 40, 70), dtype=torch.uint8)
    as_bytes = segment(model, [image])
    as_floats = segment(model, [image.float() / 255])
    as_batch = segment(model, image[None])
    for labels in (as_bytes.decoder_labels[0], as_batch.decoder_labels[0]):
        assert torch.equal(labels, as_floats.decoder_labels[0])
    torch.testing.assert_close(as_bytes.slot_masks[0], as_floats.slot_masks[0], rtol=0, atol=0)


def test_segment_refuses_images_it_would_misread():
    model = tiny_model(init_method="embedding")
    with pytest.raises(ValueError, match="unnormalised pixels in \\[0, 1\\]"):
        segment(model, [torch.rand(3, 32, 32) * 255])  # 0..255 as floats
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        segment(model, [torch.rand(1, 32, 32)])
    with pytest.raises(ValueError, match="uint8"):
        segment(model, [np.zeros((8, 8, 3), dtype=np.float32)])


def test_segment_is_deterministic_by_default_restores_the_mode_and_leaves_the_callers_rng():
    model = tiny_model()  # shared-Gaussian slots: a random start on every call
    image = torch.randint(0, 256, (3, 48, 48), dtype=torch.uint8)
    model.train()
    torch.manual_seed(123)
    first = segment(model, [image])
    after_first = torch.rand(1)
    torch.manual_seed(123)
    second = segment(model, [image])
    assert torch.equal(torch.rand(1), after_first)  # the caller's generator is where it was
    assert model.training  # train mode given, train mode back
    assert torch.equal(first.slot_labels[0], second.slot_labels[0])
    torch.testing.assert_close(first.slot_masks[0], second.slot_masks[0], rtol=0, atol=0)
    other_seed = segment(model, [image], seed=1)
    fresh = [segment(model, [image], seed=None).slot_masks[0] for _ in range(2)]
    assert not torch.equal(other_seed.slot_masks[0], first.slot_masks[0])
    assert not torch.equal(fresh[0], fresh[1])


def test_segment_refuses_nan_pixels_and_says_how_many():
    model = tiny_model(init_method="embedding")
    image = torch.rand(3, 32, 32)
    image[:, :10, :10] = float("nan")
    with pytest.raises(InputError, match="300 NaN value"):
        segment(model, [image])


def test_evaluate_model_adds_p_ari_and_pq_for_panoptic_items():
    from sklearn.metrics import adjusted_rand_score

    from spot_tutorial.evaluation.metrics import PanopticCounts, masks_to_labels, panoptic_quality

    dataset = TinyDataset()
    for item in dataset.items:  # stand-in panoptic segments: classes, then "stuff" 10 on the background
        item["panoptic_mask"] = torch.where(item["instance_mask"] > 0, item["class_mask"], 10)
        item["panoptic_mask"][:3] = 0  # an unlabelled strip
        item["panoptic_crowd"] = torch.zeros_like(item["ignore_mask"])
    model = tiny_model(init_method="embedding")  # deterministic slots
    results = evaluate_model(model, DataLoader(dataset, batch_size=3), "cpu", progress=False)["slot"]
    batch = next(iter(DataLoader(dataset, batch_size=len(dataset))))
    with torch.no_grad():
        pred = masks_to_labels(model.eval()(batch["image"]).slot_masks.float(), 64)  # [B, 64, 64]
    target = batch["panoptic_mask"]
    p_ari = [adjusted_rand_score(target[b][target[b] > 0], pred[b][target[b] > 0]) for b in range(len(pred))]
    assert results["p_ari"] == pytest.approx(100 * np.mean(p_ari), abs=1e-6)
    counts = panoptic_quality(pred, target)
    total = PanopticCounts(*(c.sum() for c in (counts.iou_sum, counts.true_positives, counts.false_positives,
                                               counts.false_negatives)))
    assert results["pq"] == pytest.approx(100 * total.pq().item(), abs=1e-6)
    assert "P-ARI" in results_table({"slot": results})
    plain = evaluate_model(model, DataLoader(TinyDataset(), batch_size=3), "cpu", progress=False)
    assert "pq" not in plain["slot"]
