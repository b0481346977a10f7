"""The book's code-drawn figures: the architecture diagram and the training curves."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

from matplotlib.patches import FancyBboxPatch  # noqa: E402
from PIL import Image  # noqa: E402

from spot_tutorial import viz  # noqa: E402
from spot_tutorial.errors import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGE1_LABELS = ("image", "frozen ViT encoder", "patch features", "slot attention", "slots\n",
                 "slot masks", "[BOS", "causal\nself-attention", "cross-attention\nto the slots", "MLP",
                 "reconstruction", "MSE loss", "decoder masks", "target")
STAGE2_LABELS = ("stage 2, self-training", "teacher's decoder masks", "student's slot masks",
                 "Hungarian matching", "cross-entropy")


def labels_and_extents(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    axis = fig.axes[0]
    texts = [text for text in axis.texts if text.get_gid() == "label"]
    boxes = [patch.get_window_extent(renderer) for patch in axis.patches if isinstance(patch, FancyBboxPatch)]
    return [(text.get_text(), text.get_window_extent(renderer)) for text in texts], boxes


@pytest.mark.parametrize("stage2", [True, False])
def test_architecture_figure_has_every_part_and_no_label_overlaps(stage2):
    fig = viz.architecture_figure(stage2=stage2)
    labels, boxes = labels_and_extents(fig)
    text = "\n".join(label for label, _ in labels) + "\n"
    for expected in STAGE1_LABELS:
        assert expected in text, f"{expected!r} missing from the architecture figure"
    for expected in STAGE2_LABELS:
        assert (expected in text) == stage2, f"{expected!r} with stage2={stage2}"
    for i, (first, extent) in enumerate(labels):
        for second, other in labels[i + 1:]:
            assert not extent.overlaps(other), f"labels overlap: {first!r} and {second!r}"
    axis = fig.axes[0]
    for arrow in (text for text in axis.texts if text.get_gid() != "label"):   # the arrows
        start, end = axis.transData.transform([arrow.xyann, arrow.xy])
        for t in [i / 50 for i in range(51)]:
            point = start + t * (end - start)
            for label, extent in labels:
                assert not extent.shrunk(0.98, 0.9).contains(*point), f"an arrow crosses {label!r}"
    canvas = fig.bbox
    for label, extent in labels:
        assert canvas.x0 <= extent.x0 and extent.x1 <= canvas.x1, f"{label!r} leaves the figure"
        assert canvas.y0 <= extent.y0 and extent.y1 <= canvas.y1, f"{label!r} leaves the figure"
        centre = ((extent.x0 + extent.x1) / 2, (extent.y0 + extent.y1) / 2)
        around = [box for box in boxes if box.contains(*centre)]
        if around:   # a box label stays inside the smallest box around it, with a margin
            box = min(around, key=lambda box: box.width * box.height)
            assert box.x0 + 3 <= extent.x0 and extent.x1 <= box.x1 - 3, f"{label!r} spills out of its box"
            assert box.y0 + 2 <= extent.y0 and extent.y1 <= box.y1 - 2, f"{label!r} spills out of its box"


def test_the_book_shows_the_architecture_figure_the_function_draws():
    """book/_static/architecture.png is `architecture_figure().savefig(path, dpi=130)`: same size."""
    stored = Image.open(ROOT / "book" / "_static" / "architecture.png")
    fig = viz.architecture_figure()
    width, height = fig.get_size_inches() * 130
    assert stored.size == (round(width), round(height))
    assert "architecture.png" in (ROOT / "book" / "paper.md").read_text()


# ---------------------------------------------------------------------------------------------
# training curves from the log.jsonl a real Trainer run writes
@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """A real tiny stage-1 run: 12 steps, logged every 2, evaluated at the end of each epoch of 4."""
    from spot_tutorial import get_preset
    from spot_tutorial.training.loop import Trainer

    out = tmp_path_factory.mktemp("run")
    config = get_preset("tiny", train_images=32, eval_images=8, batch_size=8, max_steps=12, log_every=2,
                        lr_warmup_steps=2, checkpoint_every=0, eval_every=1, seed=0)
    Trainer(config, output_dir=out, progress=False).fit()
    return out


@pytest.mark.slow
def test_read_training_log_holds_the_steps_losses_and_evaluations_of_a_run(short_run):
    log = viz.read_training_log(short_run)
    assert log.train_steps == [1, 2, 4, 6, 8, 10, 12]            # step 1, then every log_every
    assert len(log.train["mse"]) == len(log.train_steps) and all(v > 0 for v in log.train["mse"])
    assert log.train["mse"] == log.train["loss"]                 # stage 1: the loss is the MSE
    assert log.eval_steps == [4, 8, 12]                          # one evaluation per epoch
    for masks in ("slot", "decoder"):
        assert len(log.evaluations[masks]["mbo_i"]) == 3
        assert all(0 <= value <= 100 for value in log.evaluations[masks]["mbo_i"])
    assert viz.read_training_log(short_run / "log.jsonl") == log   # the folder or the file


@pytest.mark.slow
def test_a_resumed_log_keeps_the_later_record_of_a_step(short_run, tmp_path):
    lines = (short_run / "log.jsonl").read_text().splitlines()
    repeated = json.loads(next(line for line in lines if '"step": 4,' in line and '"train"' in line))
    repeated["mse"] = 123.0
    (tmp_path / "log.jsonl").write_text("\n".join(lines + [json.dumps(repeated)]) + "\n")
    log = viz.read_training_log(tmp_path)
    assert log.train_steps == [1, 2, 4, 6, 8, 10, 12]
    assert log.train["mse"][2] == 123.0


def test_training_curves_plot_the_loss_and_both_kinds_of_masks(short_run):
    fig = viz.training_curves({"teacher": short_run, "again": viz.read_training_log(short_run)})
    loss_axis, metric_axis = fig.axes
    assert len(loss_axis.get_lines()) == 2
    assert list(loss_axis.get_lines()[0].get_xdata()) == [1, 2, 4, 6, 8, 10, 12]
    labels = [line.get_label() for line in metric_axis.get_lines()]
    assert labels == ["teacher, slot masks", "teacher, decoder masks",
                      "again, slot masks", "again, decoder masks"]
    assert list(metric_axis.get_lines()[1].get_xdata()) == [4, 8, 12]
    assert "mbo_i" in metric_axis.get_ylabel()


def test_training_curves_without_evaluations_draw_the_loss_only(short_run, tmp_path):
    lines = (short_run / "log.jsonl").read_text().splitlines()
    (tmp_path / "log.jsonl").write_text("\n".join(line for line in lines if '"train"' in line) + "\n")
    fig = viz.training_curves({"run": tmp_path})
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 1


def test_training_log_errors_say_what_to_pass(tmp_path):
    with pytest.raises(InputError, match="log.jsonl"):
        viz.read_training_log(tmp_path)
    (tmp_path / "log.jsonl").write_text("not json\n")
    with pytest.raises(InputError, match="line 1"):
        viz.read_training_log(tmp_path)
    (tmp_path / "log.jsonl").write_text(json.dumps({"kind": "eval", "step": 1, "slot": {}}) + "\n")
    with pytest.raises(InputError, match="no training records"):
        viz.read_training_log(tmp_path)


def test_feature_pca_colours_patches_by_their_features():
    import torch

    from spot_tutorial.viz.features import feature_pca, feature_pca_figure

    # two kinds of patches whose features differ along one direction: two clearly distinct colours
    features = torch.zeros(2, 16, 8)
    features[:, :8, 0] = 1.0
    features += 0.01 * torch.randn(2, 16, 8, generator=torch.Generator().manual_seed(0))
    colours = feature_pca(features)
    assert colours.shape == (2, 16, 3) and colours.min() >= 0 and colours.max() <= 1
    first, second = colours[:, :8, 0], colours[:, 8:, 0]
    assert abs(first.mean() - second.mean()) > 0.8
    fig = feature_pca_figure(torch.zeros(2, 3, 16, 16), {"a": features}, normalized=False)
    assert len(fig.axes) == 4


def test_overlays_draw_segment_boundaries_in_white_and_keep_each_slots_colour():
    import numpy as np

    from spot_tutorial.viz.masks import PALETTE, boundaries, overlay

    labels = np.zeros((6, 6), dtype=int)
    labels[:, 3:] = 2
    edge = boundaries(labels)
    assert edge[:, 2].all() and edge.sum() == 6  # one column: the pixels left of the change
    image = np.zeros((6, 6, 3))
    drawn = overlay(image, labels, alpha=1.0, contours=True)
    assert (drawn[:, 2] == 1.0).all()
    np.testing.assert_allclose(drawn[0, 0], PALETTE[0])
    np.testing.assert_allclose(drawn[0, 5], PALETTE[2])
    np.testing.assert_allclose(overlay(image, labels, alpha=1.0)[:, 2], PALETTE[[0] * 6])  # default: none


def test_the_patch_order_figure_prints_step_numbers_at_body_text_size():
    import matplotlib

    matplotlib.use("Agg")
    from spot_tutorial import viz

    figure = viz.orders_figure(8, numbers=True)
    numbers = [text for axis in figure.axes for text in axis.texts]
    assert len(numbers) == 9 * 64
    width_px = 720  # the book's text column
    scale = width_px / (figure.get_figwidth() * figure.dpi)
    shown_px = min(text.get_fontsize() for text in numbers) * figure.dpi / 72 * scale
    assert shown_px >= 16, shown_px
