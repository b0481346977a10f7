"""Self-training by attention distillation: SPOT's stage 2 (paper, section 3.1, Fig. 3).

After stage 1 the teacher's *decoder* masks segment objects better than its *slot-attention*
masks. Stage 2 trains a new model, the student, whose slot attention learns from the teacher's
decoder masks, while it also learns to reconstruct the features as in stage 1.

For one batch, with K slots on an h x w token grid::

    teacher labels     y[b, p]    = argmax_k  D_teacher[b, k, p]                # [B, h, w]
    student labels     s[b, p]    = argmax_k  A_student[b, k, p]                # [B, h, w]
    IoU                I[b, t, j] = |{y = t} & {s = j}| / |{y = t} | {s = j}|   # [B, K, K]
    cost               C[b, t, j] = 1 - I[b, t, j]     (= 1e3 if teacher slot t is empty)
    matching           m[b]       = Hungarian(C[b]):  teacher slot t <-> student slot m[b, t]
    reordered logits   L'[b, t]   = L_student[b, m[b, t]]                        # [B, K, h, w]
    distillation loss  CE         = mean_{b,p}  -log softmax_t(L'[b, :, p])[y[b, p]]

and the stage-2 loss is ``MSE + w * CE`` (w = ``ce_weight``, 0.005 in the paper).

Which decoder masks D_teacher are: in the paper the teacher decodes each batch in the orders it
was trained with, i.e. one random order per batch. ``teacher_target_orders`` also offers two
choices beyond the paper: the average of the nine orders' masks (what the final evaluation
reports, and at small scale better than any single order) and the raster order alone. Slots have no
fixed identity, so the matching is needed: the student's slot j may well play the role of the
teacher's slot t. Matching uses hard (argmax) masks; the gradient flows only through the CE
on the student's slot-attention logits. Nothing here is differentiated through the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from spot_tutorial.config import TEACHER_TARGETS, OrderSpec

EMPTY_TEACHER_SLOT_COST = 1e3  # cost of every student slot for a teacher slot with no pixel


@dataclass
class DistillationOutput:
    loss: torch.Tensor               # []  cross-entropy of the reordered student logits
    matching: torch.Tensor           # [B, K] int64: student slot matched to teacher slot t
    teacher_labels: torch.Tensor     # [B, h, w] int64: argmax of the teacher's decoder masks
    reordered_logits: torch.Tensor   # [B, K, h, w]  student logits, channel t = its match of t


def teacher_target_orders(targets: str, teacher_train_orders: OrderSpec) -> OrderSpec:
    """The patch orders the teacher decodes in to make the distillation targets.

    'trained-orders' (the paper): the orders it was trained with, one random order per batch for
    SPOT's teacher, raster for a raster-only teacher; 'all-orders': all nine, masks averaged (one
    batched decoder call); 'raster': order 0.
    """
    if targets not in TEACHER_TARGETS:
        raise ValueError(f"teacher targets {targets!r}; choose one of {TEACHER_TARGETS}")
    return {"trained-orders": teacher_train_orders, "all-orders": "all", "raster": "standard"}[targets]


def teacher_labels(teacher_decoder_masks: torch.Tensor) -> torch.Tensor:
    """Hard pseudo-labels: the teacher slot that wins each token.  [B, K, h, w] -> [B, h, w]"""
    if teacher_decoder_masks.ndim != 4:
        raise ValueError(f"teacher decoder masks must be [B, K, h, w], got shape "
                         f"{tuple(teacher_decoder_masks.shape)}")
    return teacher_decoder_masks.argmax(dim=1)


def one_hot_masks(labels: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Label map [B, h, w] -> binary masks [B, K, h*w] (float)."""
    batch = labels.shape[0]
    return F.one_hot(labels.reshape(batch, -1), num_slots).transpose(1, 2).float()


def pairwise_iou(teacher_labels: torch.Tensor, student_labels: torch.Tensor,
                 num_slots: int) -> torch.Tensor:
    """IoU of every teacher slot's hard mask with every student slot's.  -> [B, K_t, K_s]"""
    teacher = one_hot_masks(teacher_labels, num_slots)             # [B, K, N]
    student = one_hot_masks(student_labels, num_slots)             # [B, K, N]
    intersection = teacher @ student.transpose(1, 2)               # [B, K_t, K_s]
    union = teacher.sum(-1, keepdim=True) + student.sum(-1).unsqueeze(1) - intersection
    return intersection / union.clamp(min=1.0)                     # 0 where both are empty


def matching_cost(teacher_labels: torch.Tensor, student_labels: torch.Tensor,
                  num_slots: int) -> torch.Tensor:
    """Hungarian cost 1 - IoU, with rows of empty teacher slots set to 1e3.  [B, K_t, K_s]"""
    cost = 1.0 - pairwise_iou(teacher_labels, student_labels, num_slots)
    teacher_area = one_hot_masks(teacher_labels, num_slots).sum(-1)  # [B, K]
    cost[teacher_area == 0] = EMPTY_TEACHER_SLOT_COST
    return cost


def hungarian_matching(cost: torch.Tensor) -> torch.Tensor:
    """Per image, the assignment teacher slot t -> student slot m[t] of least total cost.

    cost [B, K, K] -> matching [B, K] int64 (a permutation of 0..K-1 in each row).
    """
    rows = []
    for image_cost in cost.detach().cpu().double().numpy():
        teacher_ids, student_ids = linear_sum_assignment(image_cost)
        rows.append(student_ids[np.argsort(teacher_ids)])
    return torch.as_tensor(np.stack(rows), dtype=torch.long, device=cost.device)


def reorder_slots(student_logits: torch.Tensor, matching: torch.Tensor) -> torch.Tensor:
    """Channel t of the result is the student's channel matching[b, t].  [B, K, h, w]"""
    index = matching[:, :, None, None].expand_as(student_logits)
    return student_logits.gather(1, index)


def distillation_loss(student_logits: torch.Tensor,
                      teacher_decoder_masks: torch.Tensor) -> DistillationOutput:
    """SPOT's self-training loss for one batch (the CE term of ``MSE + w * CE``).

    student_logits: [B, K, h, w] the student's last slot-attention logits
        (``SPOTOutput.slot_logits``).
    teacher_decoder_masks: [B, K, h, w] the teacher's decoder masks
        (``SPOTOutput.decoder_masks``).
    """
    if student_logits.shape != teacher_decoder_masks.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher decoder masks "
            f"{tuple(teacher_decoder_masks.shape)} differ: the student must have as "
            "many slots as the teacher and the same token grid (same image_size and "
            "encoder patch size)")
    num_slots = student_logits.shape[1]
    with torch.no_grad():
        labels = teacher_labels(teacher_decoder_masks)                  # [B, h, w]
        student_labels = student_logits.argmax(dim=1)                  # [B, h, w]
        matching = hungarian_matching(matching_cost(labels, student_labels, num_slots))
    reordered = reorder_slots(student_logits, matching)                # [B, K, h, w]
    loss = F.cross_entropy(reordered.float(), labels)
    return DistillationOutput(loss=loss, matching=matching, teacher_labels=labels,
                              reordered_logits=reordered)
