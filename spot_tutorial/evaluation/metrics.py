"""Evaluation metrics for unsupervised object discovery (SPOT paper, section 4, "Evaluation").

This module implements the evaluation protocol that SPOT shares with DINOSAUR:

* FG-ARI  - adjusted Rand index over foreground, non-ignored pixels;
* mBO^i   - mean best overlap against instance masks;
* mBO^c   - mean best overlap against class (semantic) masks;
* mIoU    - mean IoU after Hungarian matching of predicted to ground-truth masks.

and, beside it, the newer protocol of FT-DINOSAUR (ICLR 2025), which scores COCO against the
panoptic ground truth, where every thing instance and every stuff region is a segment:

* P-ARI   - adjusted Rand index over every labelled pixel (target 0 = unlabelled, left out);
* PQ      - class-agnostic panoptic quality: predicted masks matched to segments at IoU > 0.5,
            PQ = sum of matched IoUs / (TP + FP / 2 + FN / 2), counted over the whole data set.

All metrics take label maps: ``pred`` [B, H, W] holds the predicted slot index of every
pixel, ``target`` [B, H, W] the ground-truth object id (0 = background) and ``ignore``
[B, H, W] marks pixels that are excluded everywhere. The conventions follow the authors'
metric code (OCLF's ARIMetric and UnsupervisedMaskIoUMetric with ignore_background and
ignore_overlaps):

* ignored pixels are removed from predictions and targets before anything is counted;
* FG-ARI counts foreground pixels only;
* mBO / mIoU drop the background as a ground-truth *object*, but a predicted segment keeps
  its background pixels: they count in its area, hence in the union of every IoU. (Cutting
  the predictions down to the foreground would let a fixed grid of masks look like objects.)

Per-image results are float64 tensors [B]; the
:class:`SegmentationMetrics` accumulator averages them over a data set and reports x100.

Everything is computed from one batched contingency table (a ``bincount`` over
(image, object, segment) triples), so no Python loop runs over pixels; the only
per-image loop is the Hungarian matching of mIoU, on small [objects, segments] matrices.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

__all__ = [
    "contingency_table",
    "fg_ari",
    "mbo",
    "miou",
    "panoptic_ari",
    "panoptic_quality",
    "PanopticCounts",
    "masks_to_labels",
    "SegmentationMetrics",
]

# Label ids below this bound index the contingency table directly; larger (or negative
# predicted) ids are first renumbered with torch.unique, which needs a sort.
_MAX_DIRECT_ID = 4096


# --------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------


def _check_label_map(name: str, labels: torch.Tensor) -> None:
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 3:
        raise ValueError(
            f"{name} must be a label map of shape [B, H, W], got shape {tuple(labels.shape)}"
        )
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            f"{name} must hold integer labels (e.g. torch.long), got dtype {labels.dtype}; "
            "use masks_to_labels() to turn soft masks [B, K, h, w] into a label map"
        )
    if labels.shape[1] == 0 or labels.shape[2] == 0:
        raise ValueError(f"{name} has an empty spatial size {tuple(labels.shape[1:])}")


def _check_like_target(name: str, tensor: torch.Tensor, target: torch.Tensor) -> None:
    """`tensor` (pred or ignore) must have the shape [B, H, W] and the device of `target`."""
    if tensor.shape != target.shape:
        raise ValueError(f"{name} must have the shape of target (the same shape [B, H, W]), got {name} "
                         f"{tuple(tensor.shape)} and target {tuple(target.shape)}")
    if tensor.device != target.device:
        raise ValueError(f"{name} is on {tensor.device} but target is on {target.device}")


def _check_inputs(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor]
) -> None:
    _check_label_map("pred", pred)
    _check_label_map("target", target)
    _check_like_target("pred", pred, target)
    if ignore is not None:
        if not isinstance(ignore, torch.Tensor) or ignore.dtype != torch.bool:
            got = ignore.dtype if isinstance(ignore, torch.Tensor) else type(ignore).__name__
            raise ValueError(f"ignore must be a torch.bool tensor or None, got {got}")
        _check_like_target("ignore", ignore, target)
    if target.numel() > 0 and int(target.min()) < 0:
        raise ValueError("target ids must be >= 0 (0 = background, 1.. = objects)")


# --------------------------------------------------------------------------------------
# Batched contingency table
# --------------------------------------------------------------------------------------


def _compact_ids(labels: torch.Tensor, keep_zero: bool = False) -> tuple[torch.Tensor, int]:
    """Map label values to 0..num_ids-1 (identity when they are small and non-negative).

    With keep_zero, id 0 (background) always maps to 0, present or not.
    """
    if labels.numel() == 0:
        return labels.long(), 1
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high < _MAX_DIRECT_ID:
        return labels.long(), high + 1
    values = labels.flatten()
    if keep_zero:
        values = torch.cat([values.new_zeros(1), values])
    unique_ids, compact = torch.unique(values, return_inverse=True)
    compact = compact[1:] if keep_zero else compact
    return compact.view_as(labels).long(), unique_ids.numel()


def contingency_table(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Pixel counts per (image, ground-truth id, predicted segment).

    Every non-ignored pixel is counted. Row 0 holds the background (target == 0); rows 1..
    are objects. Rows and columns are indexed by (renumbered) ids shared across the batch,
    so an image may have empty rows (objects it does not contain) and empty columns
    (segments it does not use).

    Returns an int64 tensor [B, 1 + M, P].
    """
    _check_inputs(pred, target, ignore)
    batch_size = pred.shape[0]
    counted = torch.ones_like(target, dtype=torch.bool) if ignore is None else ~ignore  # [B, H, W]

    object_ids, num_objects = _compact_ids(target, keep_zero=True)  # [B, H, W], 1 + M
    segment_ids, num_segments = _compact_ids(pred)  # [B, H, W], P
    image_ids = torch.arange(batch_size, device=pred.device).view(-1, 1, 1)  # [B, 1, 1]

    num_cells = batch_size * num_objects * num_segments
    cell = (image_ids * num_objects + object_ids) * num_segments + segment_ids  # [B, H, W]
    cell = torch.where(counted, cell, torch.full_like(cell, num_cells))  # extra bin: dropped
    counts = torch.bincount(cell.flatten(), minlength=num_cells + 1)[:num_cells]
    return counts.view(batch_size, num_objects, num_segments)  # [B, 1 + M, P]


def _num_pairs(counts: torch.Tensor) -> torch.Tensor:
    """C(n, 2) element-wise, exact in int64."""
    return counts * (counts - 1) // 2


def _ari_from_table(table: torch.Tensor) -> torch.Tensor:
    """Foreground adjusted Rand index per image from int64 counts [B, 1 + M, P] -> float64 [B].

    ARI = (index - expected) / (max_index - expected) with pair counts
    index = sum_ij C(n_ij, 2), a = sum_i C(a_i, 2), b = sum_j C(b_j, 2),
    expected = a * b / C(n, 2), max_index = (a + b) / 2.
    The denominator vanishes exactly when a == b and (a == 0 or a == C(n, 2)): one object
    and one segment, all singletons, or fewer than two pixels. Those images score 1.0, as in
    the SPOT / DINOSAUR metric code. The check runs on exact integers, not on floats.
    """
    counts = table[:, 1:]  # foreground rows only  # [B, M, P]
    object_sizes = counts.sum(dim=2)  # [B, M]
    segment_sizes = counts.sum(dim=1)  # [B, P]
    num_pixels = object_sizes.sum(dim=1)  # [B]

    index = _num_pairs(counts).sum(dim=(1, 2))  # [B]
    object_pairs = _num_pairs(object_sizes).sum(dim=1)  # [B]
    segment_pairs = _num_pairs(segment_sizes).sum(dim=1)  # [B]
    all_pairs = _num_pairs(num_pixels)  # [B]

    degenerate = (object_pairs == segment_pairs) & (
        (object_pairs == 0) | (object_pairs == all_pairs)
    )
    index, object_pairs, segment_pairs = index.double(), object_pairs.double(), segment_pairs.double()
    expected = object_pairs * segment_pairs / all_pairs.clamp(min=1).double()
    max_index = (object_pairs + segment_pairs) / 2
    denominator = torch.where(degenerate, torch.ones_like(max_index), max_index - expected)
    ari = (index - expected) / denominator
    return torch.where(degenerate, torch.ones_like(ari), ari)


def _iou_from_table(table: torch.Tensor) -> torch.Tensor:
    """IoU of every (object, segment) pair from counts [B, 1 + M, P] -> float64 [B, M, P].

    A segment's area includes its background pixels (row 0).
    """
    intersection = table[:, 1:].double()  # [B, M, P]
    object_area = intersection.sum(dim=2, keepdim=True)  # [B, M, 1]
    segment_area = table.sum(dim=1, keepdim=True).double()  # [B, 1, P]  background included
    union = object_area + segment_area - intersection  # [B, M, P]
    return intersection / union.clamp(min=1)  # union == 0 implies intersection == 0


def _objects_present(table: torch.Tensor) -> torch.Tensor:
    """Which object rows occur (with non-ignored pixels) in each image -> bool [B, M]."""
    return table[:, 1:].sum(dim=2) > 0


def _mbo_from_table(counts: torch.Tensor) -> torch.Tensor:
    iou = _iou_from_table(counts)  # [B, M, P]
    present = _objects_present(counts)  # [B, M]
    best_overlap = iou.max(dim=2).values  # [B, M]
    total = torch.where(present, best_overlap, torch.zeros_like(best_overlap)).sum(dim=1)
    return total / present.sum(dim=1).double()  # [B]; 0 / 0 = NaN without objects


def _miou_from_table(counts: torch.Tensor) -> torch.Tensor:
    iou = _iou_from_table(counts).cpu().numpy()  # [B, M, P]
    present = _objects_present(counts).cpu().numpy()  # [B, M]
    per_image = np.full(iou.shape[0], np.nan, dtype=np.float64)  # [B]
    for b in range(iou.shape[0]):
        object_iou = iou[b][present[b]]  # [objects in image, P]
        if object_iou.shape[0] == 0:
            continue
        rows, cols = linear_sum_assignment(object_iou, maximize=True)
        # Objects left without a segment (more objects than segments) add IoU 0.
        per_image[b] = object_iou[rows, cols].sum() / object_iou.shape[0]
    return torch.from_numpy(per_image).to(counts.device)


# --------------------------------------------------------------------------------------
# Public per-image metrics
# --------------------------------------------------------------------------------------


def fg_ari(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Foreground adjusted Rand index per image -> float64 [B].

    Pixels with target == 0 or ignore == True are left out. Images where the ARI formula is
    degenerate (no or one foreground pixel, one object predicted as one segment, ...) score 1.0.
    """
    return _ari_from_table(contingency_table(pred, target, ignore))


def mbo(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Mean best overlap per image -> float64 [B].

    For every ground-truth object the best IoU with any predicted segment, averaged over the
    objects of the image. Ignored pixels are removed first; background pixels count in the
    predicted segments' areas (authors' convention). NaN for images without objects.
    """
    return _mbo_from_table(contingency_table(pred, target, ignore))


def miou(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Mean IoU after Hungarian matching per image -> float64 [B].

    Segments and objects are matched one-to-one maximising the total IoU; the matched IoUs
    are averaged over the ground-truth objects (objects left unmatched count as 0).
    Ignored pixels are removed first; background pixels count in the predicted segments'
    areas (authors' convention). NaN for images without objects.
    """
    return _miou_from_table(contingency_table(pred, target, ignore))


# --------------------------------------------------------------------------------------
# Panoptic protocol (FT-DINOSAUR, ICLR 2025): P-ARI and class-agnostic PQ
# --------------------------------------------------------------------------------------


def panoptic_ari(
    pred: torch.Tensor, target: torch.Tensor, ignore: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """P-ARI per image -> float64 [B]: the adjusted Rand index over every labelled pixel.

    ``target`` holds panoptic segment ids (things and stuff alike), 0 = unlabelled. Unlabelled
    and ignored pixels are left out; nothing else is (stuff counts like any object). The same
    formula and degenerate-case convention (1.0) as :func:`fg_ari`, which it is with the
    panoptic segments as the "foreground".
    """
    return _ari_from_table(contingency_table(pred, target, ignore))


@dataclass
class PanopticCounts:
    """Class-agnostic panoptic-quality counts per image (float64 [B] each).

    Sum them over a data set and call :meth:`pq` for the data-set PQ (as COCO's panoptic
    evaluation accumulates); ``pq()`` of one image's counts is that image's PQ.
    """

    iou_sum: torch.Tensor        # [B] sum of the IoUs of the matched (TP) pairs
    true_positives: torch.Tensor  # [B] segments matched by a prediction at IoU > 0.5
    false_positives: torch.Tensor  # [B] unmatched predictions (not mostly on void / crowd)
    false_negatives: torch.Tensor  # [B] unmatched segments (crowd regions excluded)

    def pq(self) -> torch.Tensor:
        """sum IoU / (TP + FP / 2 + FN / 2); NaN where there is nothing to score."""
        denominator = self.true_positives + 0.5 * (self.false_positives + self.false_negatives)
        return self.iou_sum / denominator  # 0 / 0 = NaN

    def sq(self) -> torch.Tensor:
        """Segmentation quality: mean IoU of the matched pairs."""
        return self.iou_sum / self.true_positives

    def rq(self) -> torch.Tensor:
        """Recognition quality: TP / (TP + FP / 2 + FN / 2) (an F1 score)."""
        errors = self.false_positives + self.false_negatives
        return self.true_positives / (self.true_positives + 0.5 * errors)


PQ_MATCH_IOU = 0.5       # a prediction matches a segment above this IoU (then the match is unique)
PQ_VOID_FRACTION = 0.5   # an unmatched prediction with more void + crowd than this is not a FP


def panoptic_quality(
    pred: torch.Tensor,
    target: torch.Tensor,
    ignore: Optional[torch.Tensor] = None,
    crowd: Optional[torch.Tensor] = None,
) -> PanopticCounts:
    """Class-agnostic panoptic-quality counts per image (Kirillov et al., CVPR 2019, without classes).

    ``target`` [B, H, W]: segment ids, 0 = unlabelled (void). ``ignore`` [B, H, W]: more void
    pixels. ``crowd`` [B, H, W]: pixels of crowd regions (COCO ``iscrowd``), whose segments are
    neither matched nor missed.

    * IoU of a prediction and a segment: void pixels are removed from the prediction first
      (they do not make the union larger); crowd pixels are not.
    * A match is a (prediction, segment) pair with IoU > 0.5; no segment or prediction can be in
      two such pairs, so no assignment step is needed.
    * FN: segments without a match. FP: predictions without a match, unless more than half of
      their pixels are void or crowd.
    """
    _check_inputs(pred, target, ignore)
    void = target == 0
    if ignore is not None:
        void = void | ignore
    if crowd is not None:
        if not isinstance(crowd, torch.Tensor) or crowd.dtype != torch.bool or crowd.shape != target.shape:
            raise ValueError(f"crowd must be a torch.bool tensor of the target's shape {tuple(target.shape)}")
        crowd = crowd & ~void
    # Rows of the table: 0 void, 1 crowd, 2.. segments (ids renumbered; all pixels counted).
    regions, _ = _compact_ids(target, keep_zero=True)
    regions = torch.where(void, torch.zeros_like(regions), regions + 1)
    if crowd is not None:
        regions = torch.where(crowd, torch.ones_like(regions), regions)
    table = contingency_table(pred, regions)  # [B, 2 + M, P]
    return _panoptic_counts_from_table(table)


def _panoptic_counts_from_table(table: torch.Tensor) -> PanopticCounts:
    """Counts [B, 2 + M, P] with rows void, crowd, segments -> PanopticCounts."""
    table = table.double()
    void, crowd, segments = table[:, 0], table[:, 1], table[:, 2:]  # [B, P], [B, P], [B, M, P]
    segment_area = segments.sum(dim=2, keepdim=True)  # [B, M, 1]
    pred_area = (table.sum(dim=1) - void).unsqueeze(1)  # [B, 1, P]  void removed, crowd kept
    union = segment_area + pred_area - segments  # [B, M, P]
    iou = segments / union.clamp(min=1)  # [B, M, P]
    matched = iou > PQ_MATCH_IOU  # [B, M, P], at most one True per row and per column
    pred_total = table.sum(dim=1)  # [B, P]
    pred_present = pred_total > 0
    mostly_void = (void + crowd) > PQ_VOID_FRACTION * pred_total  # [B, P]
    false_positive = pred_present & ~matched.any(dim=1) & ~mostly_void  # [B, P]
    segment_present = segment_area[..., 0] > 0  # [B, M]
    true_positives = matched.sum(dim=(1, 2)).double()  # [B]
    return PanopticCounts(
        iou_sum=torch.where(matched, iou, torch.zeros_like(iou)).sum(dim=(1, 2)),
        true_positives=true_positives,
        false_positives=false_positive.sum(dim=1).double(),
        false_negatives=segment_present.sum(dim=1).double() - true_positives,
    )


def masks_to_labels(
    masks: torch.Tensor, size: Union[int, Sequence[int]]
) -> torch.Tensor:
    """Soft masks [B, K, h, w] -> bilinear upsample to ``size`` -> argmax over K -> [B, H, W]."""
    if not isinstance(masks, torch.Tensor) or masks.dim() != 4:
        shape = tuple(masks.shape) if isinstance(masks, torch.Tensor) else type(masks).__name__
        raise ValueError(f"masks must be a tensor of shape [B, K, h, w], got {shape}")
    if not masks.is_floating_point():
        raise ValueError(f"masks must be floating point (soft masks), got dtype {masks.dtype}")
    if isinstance(size, int):
        size = (size, size)
    size = tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"size must be an int or a pair (H, W), got {size}")
    # Upsampling in channels-last memory leaves the K values of each pixel side by side, so
    # the argmax over slots reads contiguous memory (several times faster on a CPU).
    masks = masks.contiguous(memory_format=torch.channels_last)
    upsampled = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)  # [B, K, H, W]
    return upsampled.permute(0, 2, 3, 1).argmax(dim=-1)  # [B, H, W]


# --------------------------------------------------------------------------------------
# Accumulator
# --------------------------------------------------------------------------------------

# Order of the running sums in SegmentationMetrics._totals.
_TOTALS = (
    "fg_ari_sum",
    "num_images",
    "mbo_i_sum",
    "mbo_i_count",
    "mbo_c_sum",
    "mbo_c_count",
    "miou_sum",
    "miou_count",
    "p_ari_sum",
    "p_ari_count",
    "pq_iou_sum",
    "pq_tp",
    "pq_fp",
    "pq_fn",
)


def _sum_and_count(per_image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum and number of the non-NaN entries of a float64 [B] tensor."""
    valid = ~torch.isnan(per_image)
    return torch.where(valid, per_image, torch.zeros_like(per_image)).sum(), valid.sum().double()


class SegmentationMetrics:
    """Running FG-ARI, mBO^i, mBO^c and mIoU over a data set (SPOT / DINOSAUR protocol).

    >>> metrics = SegmentationMetrics()
    >>> for batch in loader:                                      # doctest: +SKIP
    ...     metrics.update(slot_masks, instance_masks, class_masks, ignore_mask)
    >>> metrics.compute()                                         # doctest: +SKIP
    {'fg_ari': ..., 'mbo_i': ..., 'mbo_c': ..., 'miou': ..., 'num_images': ...}

    Every metric is the mean over images, x100. Images without objects are skipped by
    mBO and mIoU; FG-ARI counts every image. Given panoptic targets, ``p_ari`` (mean over
    images) and ``pq`` (class-agnostic, from TP / FP / FN / IoU summed over the data set) are
    reported too. Sums stay on the device of the inputs and are
    all-reduced across ranks in :meth:`compute` when torch.distributed is initialised.
    """

    def __init__(self) -> None:
        self._totals: Optional[torch.Tensor] = None  # float64 [len(_TOTALS)]

    def reset(self) -> None:
        self._totals = None

    @torch.no_grad()
    def update(
        self,
        pred_masks: torch.Tensor,
        instance_target: torch.Tensor,
        class_target: Optional[torch.Tensor] = None,
        ignore: Optional[torch.Tensor] = None,
        panoptic_target: Optional[torch.Tensor] = None,
        panoptic_crowd: Optional[torch.Tensor] = None,
    ) -> None:
        """Add a batch.

        pred_masks: soft masks [B, K, h, w] (float, upsampled to the target size and argmaxed)
            or a predicted label map [B, H, W] (integer).
        instance_target: [B, H, W] instance ids, 0 = background.
        class_target: optional [B, H, W] class ids, 0 = background (gives mBO^c).
        ignore: optional bool [B, H, W], True = pixel excluded (instance and class targets).
        panoptic_target: optional [B, H, W] panoptic segment ids, 0 = unlabelled (P-ARI, PQ).
        panoptic_crowd: optional bool [B, H, W], pixels of crowd segments (PQ only).
        """
        _check_label_map("instance_target", instance_target)
        pred = self._to_label_map(pred_masks, tuple(instance_target.shape[-2:]))

        instance_counts = contingency_table(pred, instance_target, ignore)  # [B, M, P]
        ari = _ari_from_table(instance_counts)  # [B]
        batch = {
            "fg_ari_sum": ari.sum(),
            "num_images": torch.tensor(float(ari.numel()), dtype=torch.float64),
        }
        batch["mbo_i_sum"], batch["mbo_i_count"] = _sum_and_count(_mbo_from_table(instance_counts))
        batch["miou_sum"], batch["miou_count"] = _sum_and_count(_miou_from_table(instance_counts))
        if class_target is not None:
            class_counts = contingency_table(pred, class_target, ignore)
            batch["mbo_c_sum"], batch["mbo_c_count"] = _sum_and_count(_mbo_from_table(class_counts))
        if panoptic_target is not None:
            batch.update(self._panoptic_sums(pred, panoptic_target, panoptic_crowd))

        device = instance_target.device
        totals = torch.stack(
            [batch.get(name, torch.zeros((), dtype=torch.float64)).to(device) for name in _TOTALS]
        )
        self._totals = totals if self._totals is None else self._totals + totals

    @staticmethod
    def _panoptic_sums(pred: torch.Tensor, target: torch.Tensor,
                       crowd: Optional[torch.Tensor]) -> dict[str, torch.Tensor]:
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(f"panoptic_target {tuple(target.shape)} must have the instance target's "
                             f"shape {tuple(pred.shape)}")
        p_ari = panoptic_ari(pred, target)  # [B]
        counts = panoptic_quality(pred, target, crowd=crowd)
        return {
            "p_ari_sum": p_ari.sum(),
            "p_ari_count": torch.tensor(float(p_ari.numel()), dtype=torch.float64),
            "pq_iou_sum": counts.iou_sum.sum(),
            "pq_tp": counts.true_positives.sum(),
            "pq_fp": counts.false_positives.sum(),
            "pq_fn": counts.false_negatives.sum(),
        }

    @staticmethod
    def _to_label_map(pred_masks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if not isinstance(pred_masks, torch.Tensor):
            raise ValueError(f"pred_masks must be a torch.Tensor, got {type(pred_masks).__name__}")
        if pred_masks.is_floating_point():
            if pred_masks.dim() != 4:
                raise ValueError(
                    "floating-point pred_masks must be soft masks [B, K, h, w], got shape "
                    f"{tuple(pred_masks.shape)}"
                )
            return masks_to_labels(pred_masks, size)  # [B, H, W]
        if pred_masks.dim() != 3:
            raise ValueError(
                "integer pred_masks must be a label map [B, H, W], got shape "
                f"{tuple(pred_masks.shape)}"
            )
        return pred_masks

    def _reduced_totals(self) -> torch.Tensor:
        totals = self._totals
        if dist.is_available() and dist.is_initialized():
            if totals is None:  # this rank saw no data; still join the collective
                device = torch.device("cpu")
                if dist.get_backend() == "nccl":
                    device = torch.device("cuda", torch.cuda.current_device())
                totals = torch.zeros(len(_TOTALS), dtype=torch.float64, device=device)
            else:
                totals = totals.clone()  # keep local state un-reduced for later updates
            dist.all_reduce(totals, op=dist.ReduceOp.SUM)
        if totals is None:
            return torch.zeros(len(_TOTALS), dtype=torch.float64)
        return totals

    def compute(self) -> dict:
        """Means over images x100 as Python floats, plus ``num_images``."""
        totals = dict(zip(_TOTALS, self._reduced_totals().cpu().tolist(), strict=True))

        def mean_x100(sum_name: str, count_name: str) -> float:
            count = totals[count_name]
            return 100.0 * totals[sum_name] / count if count > 0 else math.nan

        results = {
            "fg_ari": mean_x100("fg_ari_sum", "num_images"),
            "mbo_i": mean_x100("mbo_i_sum", "mbo_i_count"),
            "mbo_c": mean_x100("mbo_c_sum", "mbo_c_count"),
            "miou": mean_x100("miou_sum", "miou_count"),
            "num_images": int(round(totals["num_images"])),
        }
        if totals["p_ari_count"] > 0:  # panoptic targets were given
            counts = PanopticCounts(*(torch.tensor(totals[name], dtype=torch.float64)
                                      for name in ("pq_iou_sum", "pq_tp", "pq_fp", "pq_fn")))
            results["p_ari"] = mean_x100("p_ari_sum", "p_ari_count")
            results["pq"] = 100.0 * float(counts.pq())
        return results
