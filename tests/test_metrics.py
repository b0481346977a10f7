"""Tests for spot_tutorial.evaluation.metrics (FG-ARI, mBO, mIoU, masks_to_labels, accumulator).

Expected values are computed by hand in the comments, or by slow reference
implementations written here (pair enumeration, brute-force matching).
"""

import itertools
import math

import numpy as np
import pytest
import torch

from spot_tutorial.evaluation import metrics
from spot_tutorial.evaluation.metrics import SegmentationMetrics, fg_ari, masks_to_labels, mbo, miou


def labels(rows):
    """A single-image label map [1, H, W] from nested lists."""
    return torch.tensor(rows, dtype=torch.long).unsqueeze(0)


def all_metrics(pred, target, ignore=None):
    return fg_ari(pred, target, ignore), mbo(pred, target, ignore), miou(pred, target, ignore)


# --------------------------------------------------------------------------------------
# Slow references
# --------------------------------------------------------------------------------------


def ari_by_pair_enumeration(true_labels, pred_labels):
    """ARI from explicitly enumerated pixel pairs (1-D sequences); None if degenerate."""
    same_true = same_pred = same_both = num_pairs = 0
    for i, j in itertools.combinations(range(len(true_labels)), 2):
        t, p = true_labels[i] == true_labels[j], pred_labels[i] == pred_labels[j]
        same_true += t
        same_pred += p
        same_both += t and p
        num_pairs += 1
    expected = same_true * same_pred / num_pairs
    max_index = (same_true + same_pred) / 2
    if max_index == expected:
        return None
    return (same_both - expected) / (max_index - expected)


def iou_by_masks(pred, target, counted):
    """Object x segment IoU matrix from boolean masks (numpy, one image).

    `counted`: pixels that are not ignored. Segments keep their background pixels.
    """
    object_ids = [o for o in np.unique(target[counted]) if o != 0]
    segment_ids = np.unique(pred)
    iou = np.zeros((len(object_ids), len(segment_ids)))
    for a, o in enumerate(object_ids):
        for b, s in enumerate(segment_ids):
            obj = (target == o) & counted
            seg = (pred == s) & counted
            iou[a, b] = (obj & seg).sum() / (obj | seg).sum()
    return iou


def brute_force_miou(iou):
    """Best one-to-one assignment by trying every permutation; unmatched objects add 0."""
    num_objects, num_segments = iou.shape
    padded = np.zeros((num_objects, max(num_objects, num_segments)))
    padded[:, :num_segments] = iou
    best = max(
        sum(padded[i, perm[i]] for i in range(num_objects))
        for perm in itertools.permutations(range(padded.shape[1]), num_objects)
    )
    return best / num_objects


# --------------------------------------------------------------------------------------
# Hand-computed cases
# --------------------------------------------------------------------------------------

TARGET = labels([[0, 0, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0]])


def test_perfect_prediction_scores_one():
    pred = TARGET.clone()
    ari, best_overlap, matched_iou = all_metrics(pred, TARGET)
    assert ari.dtype == best_overlap.dtype == matched_iou.dtype == torch.float64
    assert ari.shape == best_overlap.shape == matched_iou.shape == (1,)
    assert ari.item() == pytest.approx(1.0)
    assert best_overlap.item() == pytest.approx(1.0)
    assert matched_iou.item() == pytest.approx(1.0)


def test_permuted_labels_and_background_slot_still_score_one():
    # Slot ids are arbitrary and background may be any slot (here slot 5 covers row 0).
    pred = labels([[5, 5, 5, 5], [2, 2, 0, 0], [2, 2, 0, 0], [6, 6, 5, 5]])
    for value in all_metrics(pred, TARGET):
        assert value.item() == pytest.approx(1.0)


def test_non_contiguous_target_ids():
    target = labels([[0, 0, 0, 0], [7, 7, 40, 40], [7, 7, 40, 40], [9999, 9999, 0, 0]])
    pred = labels([[0, 0, 0, 0], [1, 1, 1, 1], [1, 1, 1, 1], [2, 2, 0, 0]])
    reference = labels([[0, 0, 0, 0], [1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 0, 0]])
    for got, expected in zip(all_metrics(pred, target), all_metrics(pred, reference), strict=True):
        torch.testing.assert_close(got, expected)


def test_merged_pair():
    # Foreground: objects 1, 2, 3 with 2 pixels each; objects 1 and 2 predicted as one.
    target = labels([[0, 1, 1, 2, 2, 3, 3]])
    pred = labels([[4, 0, 0, 0, 0, 1, 1]])
    # Pairs among 6 fg pixels: 15. Same object: 3. Same segment: C(4,2) + 1 = 7. Both: 3.
    # expected = 3 * 7 / 15 = 1.4, max = (3 + 7) / 2 = 5, ARI = (3 - 1.4) / (5 - 1.4) = 4/9.
    assert fg_ari(pred, target).item() == pytest.approx(4 / 9)
    assert ari_by_pair_enumeration([1, 1, 2, 2, 3, 3], [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 9)
    # Best IoU: object 1 -> 2/4, object 2 -> 2/4, object 3 -> 1.
    assert mbo(pred, target).item() == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    # Hungarian: segment 0 takes object 1 or 2 (0.5), segment 1 takes object 3 (1.0),
    # the remaining object is unmatched (0).
    assert miou(pred, target).item() == pytest.approx((0.5 + 1.0 + 0.0) / 3)


def test_split_object():
    # Object 1 (4 pixels) split in two segments, object 2 (2 pixels) correct.
    target = labels([[1, 1, 1, 1], [2, 2, 0, 0]])
    pred = labels([[0, 0, 1, 1], [2, 2, 1, 3]])
    # Pairs: 15; same object: C(4,2) + 1 = 7; same segment: 3; both: 3 -> ARI = 4/9.
    assert fg_ari(pred, target).item() == pytest.approx(4 / 9)
    # Segment 1 keeps its background pixel (area 3): IoU with object 1 is 2/5 < 2/4, so
    # object 1's best overlap is segment 0 with 2/4.
    assert mbo(pred, target).item() == pytest.approx((0.5 + 1.0) / 2)
    assert miou(pred, target).item() == pytest.approx((0.5 + 1.0) / 2)


def test_all_background_image():
    target = torch.zeros(1, 3, 3, dtype=torch.long)
    pred = labels([[0, 1, 2], [0, 1, 2], [3, 3, 3]])
    ari, best_overlap, matched_iou = all_metrics(pred, target)
    assert ari.item() == 1.0
    assert math.isnan(best_overlap.item())
    assert math.isnan(matched_iou.item())


@pytest.mark.parametrize(
    "target, pred",
    [
        ([[1, 1, 1, 0]], [[2, 2, 2, 0]]),  # one object, one segment
        ([[0, 0, 5, 0]], [[0, 1, 2, 3]]),  # a single foreground pixel
    ],
)
def test_degenerate_ari_is_one(target, pred):
    assert fg_ari(labels(pred), labels(target)).item() == 1.0


def test_one_object_split_is_zero_ari():
    # One object covered by two segments: index = 1, expected = 6 * 1 / 6, max = 3.5 -> 0.
    target = labels([[1, 1, 1, 1]])
    pred = labels([[0, 0, 0, 1]])
    assert fg_ari(pred, target).item() == pytest.approx(0.0)
    assert ari_by_pair_enumeration([1, 1, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)


def test_more_objects_than_slots_counts_unmatched_as_zero():
    target = labels([[1, 1, 1, 2, 3, 3]])
    pred = labels([[0, 0, 0, 0, 1, 1]])
    # IoU: object 1 / segment 0 = 3/4, object 2 / segment 0 = 1/4, object 3 / segment 1 = 1.
    assert mbo(pred, target).item() == pytest.approx((0.75 + 0.25 + 1.0) / 3)
    # Hungarian gives segment 0 to object 1; object 2 is unmatched.
    assert miou(pred, target).item() == pytest.approx((0.75 + 1.0 + 0.0) / 3)


def test_miou_prefers_total_iou_over_greedy_matching():
    # Object 1 = 6 px, object 2 = 2 px; segment 0 = 4 px of object 1 + object 2, segment 1 =
    # the other 2 px of object 1. IoU(1,0) = 4/8, IoU(1,1) = 2/6, IoU(2,0) = 2/6, IoU(2,1) = 0.
    target = labels([[1, 1, 1, 1, 1, 1, 2, 2, 0]])
    pred = labels([[0, 0, 0, 0, 1, 1, 0, 0, 1]])
    # Segment 1 also covers the background pixel, so IoU(1,1) = 2/7.
    # Greedy would take (1,0) = 1/2 and leave object 2 with 0 -> 1/4; Hungarian takes
    # (1,1) + (2,0) = 2/7 + 1/3 -> (2/7 + 1/3) / 2.
    assert miou(pred, target).item() == pytest.approx((2 / 7 + 1 / 3) / 2)
    assert mbo(pred, target).item() == pytest.approx((1 / 2 + 1 / 3) / 2)


def test_empty_image_in_batch():
    target = torch.stack([TARGET[0], torch.zeros_like(TARGET[0])])  # [2, 4, 4]
    pred = torch.stack([TARGET[0], TARGET[0]])
    ari, best_overlap, matched_iou = all_metrics(pred, target)
    assert ari.tolist() == [1.0, 1.0]
    assert best_overlap[0].item() == pytest.approx(1.0) and math.isnan(best_overlap[1].item())
    assert matched_iou[0].item() == pytest.approx(1.0) and math.isnan(matched_iou[1].item())


def test_images_in_a_batch_are_independent():
    merged_target = labels([[0, 1, 1, 2, 2, 3, 3]])
    merged_pred = labels([[4, 0, 0, 0, 0, 1, 1]])
    other_target = labels([[5, 5, 6, 6, 6, 0, 0]])
    other_pred = labels([[3, 3, 3, 2, 2, 2, 2]])
    target = torch.cat([merged_target, other_target])
    pred = torch.cat([merged_pred, other_pred])
    for fn in (fg_ari, mbo, miou):
        batched = fn(pred, target)
        single = torch.cat([fn(merged_pred, merged_target), fn(other_pred, other_target)])
        torch.testing.assert_close(batched, single)


# --------------------------------------------------------------------------------------
# Ignore mask
# --------------------------------------------------------------------------------------


def test_ignored_pixels_are_removed():
    target = labels([[1, 1, 2, 2, 2]])
    pred = labels([[0, 0, 1, 1, 0]])
    ignore = torch.tensor([[[False, False, False, False, True]]])
    # Without the last pixel the prediction is perfect.
    for value in all_metrics(pred, target, ignore):
        assert value.item() == pytest.approx(1.0)
    # Without the ignore mask it is not: segment 0 has 3 px, so object 1 has IoU 2/3 with it,
    # and object 2 has IoU 2/3 with segment 1.
    assert mbo(pred, target).item() == pytest.approx((2 / 3 + 2 / 3) / 2)


def test_background_pixels_count_in_predicted_segment_areas():
    # The authors' convention (OCLF): a fixed split of the image must not look like objects.
    target = labels([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 0, 0], [0, 0, 0, 0]])
    pred = labels([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    assert mbo(pred, target).item() == pytest.approx(1.0)  # segment 1 is exactly the object
    halves = labels([[0, 0, 1, 1]] * 4)  # right half: the object + 4 background pixels
    assert mbo(halves, target).item() == pytest.approx(4 / 8)
    assert miou(halves, target).item() == pytest.approx(4 / 8)
    assert fg_ari(halves, target).item() == 1.0  # FG-ARI cannot tell (one object, one segment)


def test_a_segment_spilling_onto_the_background_loses_iou_unless_those_pixels_are_ignored():
    # one 2x2 object in a 4x4 image; the predicted segment covers it and 2 background pixels
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2, :2] = 1
    pred = torch.zeros(1, 4, 4, dtype=torch.long)
    pred[0, :2, :3] = 1
    assert mbo(pred, target).item() == pytest.approx(4 / 6)
    assert miou(pred, target).item() == pytest.approx(4 / 6)
    ignore = torch.zeros(1, 4, 4, dtype=torch.bool)
    ignore[0, :2, 2] = True  # ignored pixels leave predictions and targets
    assert mbo(pred, target, ignore).item() == pytest.approx(1.0)
    assert miou(pred, target, ignore).item() == pytest.approx(1.0)


def test_fully_ignored_object_is_not_counted():
    target = labels([[1, 1, 2, 2]])
    pred = labels([[0, 0, 0, 0]])
    ignore = torch.tensor([[[False, False, True, True]]])
    assert mbo(pred, target, ignore).item() == pytest.approx(1.0)
    assert miou(pred, target, ignore).item() == pytest.approx(1.0)
    assert fg_ari(pred, target, ignore).item() == 1.0


def test_ignore_equals_setting_pixels_to_background_and_predictions_there_do_not_matter():
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (4, 12, 12), generator=generator)
    pred = torch.randint(0, 4, (4, 12, 12), generator=generator)
    ignore = torch.rand(4, 12, 12, generator=generator) < 0.3
    other_pred = torch.where(ignore, torch.randint(0, 7, (4, 12, 12), generator=generator), pred)
    assert not torch.equal(other_pred, pred)
    for fn in (fg_ari, mbo, miou):
        with_ignore = fn(pred, target, ignore)
        torch.testing.assert_close(fn(other_pred, target, ignore), with_ignore)
    # FG-ARI only sees foreground pixels: ignoring equals turning the pixels into background.
    torch.testing.assert_close(fg_ari(pred, target.masked_fill(ignore, 0)), fg_ari(pred, target, ignore))
    # And the ignore mask does change the result here.
    assert not torch.allclose(mbo(pred, target, ignore), mbo(pred, target))


# --------------------------------------------------------------------------------------
# Independent references on random maps
# --------------------------------------------------------------------------------------


def test_random_maps_against_slow_references():
    rng = np.random.default_rng(1)
    for _ in range(60):  # independent per-image definitions must agree to 1e-6
        target = rng.integers(0, 5, size=(5, 6))
        pred = rng.integers(0, rng.integers(1, 5), size=(5, 6)) * 3  # ids need not be contiguous
        ignore = rng.random((5, 6)) < 0.2
        keep = (target > 0) & ~ignore
        counted = ~ignore
        args = (
            torch.from_numpy(pred)[None],
            torch.from_numpy(target)[None],
            torch.from_numpy(ignore)[None],
        )

        expected_ari = ari_by_pair_enumeration(target[keep].tolist(), pred[keep].tolist())
        assert fg_ari(*args).item() == pytest.approx(1.0 if expected_ari is None else expected_ari, abs=1e-6)

        iou = iou_by_masks(pred, target, counted)
        assert mbo(*args).item() == pytest.approx(iou.max(axis=1).mean(), abs=1e-6)
        assert miou(*args).item() == pytest.approx(brute_force_miou(iou), abs=1e-6)


def test_fg_ari_matches_sklearn():
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(2)
    batch = 16
    target = rng.integers(0, 6, size=(batch, 20, 20))
    pred = rng.integers(0, 4, size=(batch, 20, 20))
    # Make some images structured rather than uniform noise.
    half = batch // 2
    pred[:half] = np.where(rng.random((half, 20, 20)) < 0.7, target[:half] % 4, pred[:half])
    ignore = rng.random((batch, 20, 20)) < 0.1
    got = fg_ari(torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(ignore))
    compared = 0
    for b in range(batch):
        keep = (target[b] > 0) & ~ignore[b]
        true_fg, pred_fg = target[b][keep], pred[b][keep]
        if len(np.unique(true_fg)) < 2 and len(np.unique(pred_fg)) < 2:
            continue  # degenerate: conventions may differ
        expected = sklearn_metrics.adjusted_rand_score(true_fg, pred_fg)
        assert got[b].item() == pytest.approx(expected, abs=1e-10)
        compared += 1
    assert compared == batch


# --------------------------------------------------------------------------------------
# masks_to_labels
# --------------------------------------------------------------------------------------


def test_masks_to_labels_bilinear_upsample_and_argmax():
    # Slot 0 is 1 at the top-left cell of a 2x2 grid, slot 1 is 0.3 everywhere.
    masks = torch.zeros(1, 2, 2, 2)
    masks[0, 0, 0, 0] = 1.0
    masks[0, 1] = 0.3
    # Bilinear 2 -> 4 with align_corners=False samples the input at -0.25, 0.25, 0.75, 1.25
    # (clamped to [0, 1]), so the weights of input cell 0 are [1, 0.75, 0.25, 0] per axis and
    # slot 0 becomes their outer product; it wins where that exceeds 0.3.
    expected = torch.tensor([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 1, 1], [1, 1, 1, 1]])
    got = masks_to_labels(masks, 4)
    assert got.dtype == torch.long
    assert torch.equal(got, expected[None])
    assert torch.equal(masks_to_labels(masks, (4, 4)), expected[None])


def test_masks_to_labels_non_square_size():
    masks = torch.zeros(2, 3, 2, 2)
    masks[:, 2, :, 1] = 1.0  # slot 2 owns the right column
    got = masks_to_labels(masks, (3, 8))
    assert got.shape == (2, 3, 8)
    # Columns sample the input at x = (j + 0.5) / 4 - 0.5; slot 2 wins where its weight
    # (x clamped to [0, 1]) is > 0, i.e. x > 0, i.e. j >= 2; elsewhere slots tie at 0 -> slot 0.
    expected_row = torch.tensor([0, 0, 2, 2, 2, 2, 2, 2])
    assert torch.equal(got, expected_row.expand(2, 3, 8))


# --------------------------------------------------------------------------------------
# Accumulator
# --------------------------------------------------------------------------------------

MERGED_TARGET = labels([[0, 1, 1, 2, 2, 3, 3]])  # fg_ari 4/9, mbo 2/3, miou 1/2 (see above)
MERGED_PRED = labels([[4, 0, 0, 0, 0, 1, 1]])


def test_accumulator_averages_over_images_and_skips_nan():
    perfect = labels([[0, 1, 1, 2, 2, 3, 3]])
    empty = torch.zeros_like(perfect)
    metric = SegmentationMetrics()
    metric.update(torch.cat([perfect, perfect]), torch.cat([perfect, empty]))  # 1.0 and empty
    metric.update(MERGED_PRED, MERGED_TARGET)
    result = metric.compute()
    assert result["num_images"] == 3
    assert result["fg_ari"] == pytest.approx(100 * (1.0 + 1.0 + 4 / 9) / 3)
    assert result["mbo_i"] == pytest.approx(100 * (1.0 + 2 / 3) / 2)
    assert result["miou"] == pytest.approx(100 * (1.0 + 1 / 2) / 2)
    assert math.isnan(result["mbo_c"])
    assert all(isinstance(result[k], float) for k in ("fg_ari", "mbo_i", "mbo_c", "miou"))
    # compute() does not change the state.
    assert metric.compute() == pytest.approx(result, nan_ok=True)


def test_accumulator_class_target_and_ignore():
    # Class target: objects 1 and 2 are the same class, so the merged prediction is right.
    class_target = labels([[0, 1, 1, 1, 1, 2, 2]])
    ignore = torch.zeros_like(MERGED_TARGET, dtype=torch.bool)
    metric = SegmentationMetrics()
    metric.update(MERGED_PRED, MERGED_TARGET, class_target, ignore)
    result = metric.compute()
    assert result["mbo_c"] == pytest.approx(100.0)
    assert result["mbo_i"] == pytest.approx(100 * 2 / 3)

    # Ignoring object 2 makes the instance prediction perfect too.
    ignore[0, 0, 3:5] = True
    metric.reset()
    assert metric.compute()["num_images"] == 0
    metric.update(MERGED_PRED, MERGED_TARGET, class_target, ignore)
    result = metric.compute()
    assert result["mbo_i"] == pytest.approx(100.0)
    assert result["miou"] == pytest.approx(100.0)
    assert result["fg_ari"] == pytest.approx(100.0)


def test_accumulator_reset_gives_nan():
    metric = SegmentationMetrics()
    metric.update(MERGED_PRED, MERGED_TARGET)
    metric.reset()
    result = metric.compute()
    assert result["num_images"] == 0
    assert all(math.isnan(result[k]) for k in ("fg_ari", "mbo_i", "mbo_c", "miou"))


def test_accumulator_soft_masks_are_upsampled_to_target_size():
    generator = torch.Generator().manual_seed(3)
    soft_masks = torch.rand(2, 4, 3, 3, generator=generator).softmax(dim=1)  # [B, K, h, w]
    target = torch.randint(0, 4, (2, 12, 12), generator=generator)
    from_masks, from_labels = SegmentationMetrics(), SegmentationMetrics()
    from_masks.update(soft_masks, target)
    from_labels.update(masks_to_labels(soft_masks, 12), target)
    assert from_masks.compute() == pytest.approx(from_labels.compute(), nan_ok=True)
    expected_ari = fg_ari(masks_to_labels(soft_masks, 12), target).mean().item()
    assert from_masks.compute()["fg_ari"] == pytest.approx(100 * expected_ari)


def test_accumulator_all_reduces_when_distributed(monkeypatch):
    # Simulate two ranks that saw identical data: all_reduce doubles every sum and count.
    calls = []

    def fake_all_reduce(tensor, op=None):
        calls.append(tensor)
        tensor.mul_(2)

    monkeypatch.setattr(metrics.dist, "is_available", lambda: True)
    monkeypatch.setattr(metrics.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(metrics.dist, "all_reduce", fake_all_reduce)
    metric = SegmentationMetrics()
    metric.update(MERGED_PRED, MERGED_TARGET)
    first = metric.compute()
    second = metric.compute()
    assert len(calls) == 2
    assert first["num_images"] == second["num_images"] == 2  # local state not mutated
    assert first["fg_ari"] == pytest.approx(100 * 4 / 9)
    assert first["miou"] == pytest.approx(50.0)


# --------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------


def test_bad_inputs_raise_helpful_errors():
    pred = torch.zeros(2, 4, 4, dtype=torch.long)
    target = torch.ones(2, 4, 4, dtype=torch.long)
    with pytest.raises(ValueError, match="same shape"):
        fg_ari(pred, target[:, :3])
    with pytest.raises(ValueError, match=r"\[B, H, W\]"):
        mbo(pred[0], target[0])
    with pytest.raises(ValueError, match="integer labels"):
        miou(pred.float(), target)
    with pytest.raises(ValueError, match="ignore must be a torch.bool"):
        fg_ari(pred, target, ignore=torch.zeros(2, 4, 4))
    with pytest.raises(ValueError, match="ignore must have the shape"):
        fg_ari(pred, target, ignore=torch.zeros(2, 4, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match=">= 0"):
        mbo(pred, -target)
    with pytest.raises(ValueError, match=r"\[B, K, h, w\]"):
        masks_to_labels(torch.rand(2, 4, 4), 8)
    with pytest.raises(ValueError, match="floating point"):
        masks_to_labels(torch.zeros(2, 3, 4, 4, dtype=torch.long), 8)
    metric = SegmentationMetrics()
    with pytest.raises(ValueError, match=r"soft masks \[B, K, h, w\]"):
        metric.update(torch.rand(2, 4, 4), target)
    with pytest.raises(ValueError, match="same shape"):
        metric.update(pred, target, class_target=target[:, :2])


# --------------------------------------------------------------------------------------
# Panoptic protocol: P-ARI and class-agnostic PQ against independent per-image definitions
# --------------------------------------------------------------------------------------


def random_panoptic_batch(seed, batch=12, size=(16, 18)):
    """Segment maps (some ids large, like COCO's R + 256 G + 256^2 B), predictions that follow
    them in part, ignore and crowd masks; image 0 is fully unlabelled, image 1 fully ignored."""
    rng = np.random.default_rng(seed)
    target = rng.integers(0, 6, size=(batch, *size)) * rng.choice([1, 7919], size=(batch, 1, 1))
    blocks = np.kron(rng.integers(0, 4, size=(batch, 4, 3)), np.ones((4, 6), dtype=np.int64))
    target = np.where(rng.random((batch, 1, 1)) < 0.5, target, blocks)  # structured or noise
    pred = np.where(rng.random((batch, *size)) < 0.8, target % 5, rng.integers(0, 5, size=(batch, *size)))
    ignore = rng.random((batch, *size)) < 0.1
    crowd = np.isin(target, [3, 3 * 7919])  # one segment id per image is a crowd region
    target[0] = 0
    ignore[1] = True
    return (torch.from_numpy(pred), torch.from_numpy(target), torch.from_numpy(ignore),
            torch.from_numpy(crowd))


def pq_by_definition(pred, target, void, crowd):
    """(iou_sum, TP, FP, FN) of one image, looping over segments and predictions (numpy)."""
    crowd = crowd & ~void
    scored = ~void & ~crowd
    segments = [s for s in np.unique(target[scored])]
    predictions = np.unique(pred)
    iou_sum, tp, matched_preds = 0.0, 0, set()
    for s in segments:
        segment = (target == s) & scored
        for p in predictions:
            predicted = (pred == p) & ~void  # void pixels do not count in a prediction
            iou = (segment & predicted).sum() / (segment | predicted).sum()
            if iou > 0.5:
                iou_sum, tp = iou_sum + iou, tp + 1
                matched_preds.add(p)
    fp = 0
    for p in predictions:
        whole = pred == p
        if p not in matched_preds and (whole & (void | crowd)).sum() <= 0.5 * whole.sum():
            fp += 1
    return iou_sum, tp, fp, len(segments) - tp


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_panoptic_ari_matches_sklearn_per_image(seed):
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    pred, target, ignore, _ = random_panoptic_batch(seed)
    got = metrics.panoptic_ari(pred, target, ignore)
    for b in range(pred.shape[0]):
        keep = (target[b] > 0) & ~ignore[b]  # every labelled, non-ignored pixel
        expected = sklearn_metrics.adjusted_rand_score(target[b][keep].numpy(), pred[b][keep].numpy())
        assert got[b].item() == pytest.approx(expected, abs=1e-10), b
    assert got[0].item() == got[1].item() == 1.0  # no labelled pixel: sklearn's 1.0 too


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_panoptic_quality_matches_the_definition_per_image(seed):
    pred, target, ignore, crowd = random_panoptic_batch(seed)
    counts = metrics.panoptic_quality(pred, target, ignore, crowd)
    matched_images = 0
    for b in range(pred.shape[0]):
        void = (target[b] == 0) | ignore[b]
        iou_sum, tp, fp, fn = pq_by_definition(pred[b].numpy(), target[b].numpy(), void.numpy(),
                                               crowd[b].numpy())
        assert counts.iou_sum[b].item() == pytest.approx(iou_sum, abs=1e-12)
        assert (counts.true_positives[b].item(), counts.false_positives[b].item(),
                counts.false_negatives[b].item()) == (tp, fp, fn), b
        expected = iou_sum / (tp + 0.5 * (fp + fn)) if tp + fp + fn else math.nan
        assert counts.pq()[b].item() == pytest.approx(expected, nan_ok=True)
        matched_images += tp > 0
    assert matched_images >= 4  # the random maps do produce matches
    assert math.isnan(counts.pq()[0].item()) and math.isnan(counts.pq()[1].item())  # nothing to score


def test_panoptic_quality_by_hand():
    # segments 5 (left half) and 9 (right half); one void pixel row at the bottom
    target = labels([[5, 5, 9, 9], [5, 5, 9, 9], [5, 5, 9, 9], [0, 0, 0, 0]])
    pred = labels([[0, 0, 1, 1], [0, 0, 1, 1], [0, 2, 2, 2], [2, 2, 0, 0]])
    counts = metrics.panoptic_quality(pred, target)
    # pred 0 vs 5: 5/6 (its 2 void pixels are removed, not added to the union); pred 1 vs 9: 4/6;
    # pred 2 matches nothing and has 2 void pixels of 5, not more than half: FP = 1, FN = 0
    assert counts.true_positives.item() == 2 and counts.false_positives.item() == 1
    assert counts.iou_sum.item() == pytest.approx(5 / 6 + 4 / 6)
    assert counts.pq().item() == pytest.approx((9 / 6) / 2.5)
    # the same prediction 2 mostly on void is no false positive
    pred_void = labels([[0, 0, 1, 1], [0, 0, 1, 1], [0, 0, 1, 2], [2, 2, 2, 2]])
    assert metrics.panoptic_quality(pred_void, target).false_positives.item() == 0


def test_accumulator_reports_p_ari_and_dataset_pq_with_panoptic_targets():
    pred, target, ignore, crowd = random_panoptic_batch(3, batch=6)
    meter = SegmentationMetrics()
    meter.update(pred[:3], target[:3] % 4, panoptic_target=target[:3], panoptic_crowd=crowd[:3])
    meter.update(pred[3:], target[3:] % 4, panoptic_target=target[3:], panoptic_crowd=crowd[3:])
    results = meter.compute()
    counts = metrics.panoptic_quality(pred, target, crowd=crowd)
    per_image = (counts.iou_sum, counts.true_positives, counts.false_positives, counts.false_negatives)
    total = metrics.PanopticCounts(*(value.sum() for value in per_image))
    assert results["pq"] == pytest.approx(100 * total.pq().item())  # summed over the data set
    assert results["p_ari"] == pytest.approx(100 * metrics.panoptic_ari(pred, target).mean().item())
    plain = SegmentationMetrics()
    plain.update(pred, target % 4)
    assert "pq" not in plain.compute() and "p_ari" not in plain.compute()
