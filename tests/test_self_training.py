"""Tests for spot_tutorial.training.self_training: teacher labels, Hungarian matching, distillation CE.

The masks are made by hand, so the right matching and the loss are known in advance.
"""

import itertools

import pytest
import torch
import torch.nn.functional as F
from conftest import tiny_model

from spot_tutorial.training.self_training import (
    EMPTY_TEACHER_SLOT_COST,
    distillation_loss,
    hungarian_matching,
    matching_cost,
    pairwise_iou,
    reorder_slots,
    teacher_labels,
)


def quadrant_labels(batch: int = 1) -> torch.Tensor:
    """[B, 4, 4] label map: four 2x2 quadrants with labels 0, 1, 2, 3."""
    grid = torch.tensor([[0, 0, 1, 1],
                         [0, 0, 1, 1],
                         [2, 2, 3, 3],
                         [2, 2, 3, 3]])
    return grid.expand(batch, 4, 4).clone()


def logits_from_labels(labels: torch.Tensor, num_slots: int, scale: float = 5.0) -> torch.Tensor:
    """Peaked logits [B, K, h, w] whose argmax is `labels`."""
    return scale * F.one_hot(labels, num_slots).permute(0, 3, 1, 2).float()


def test_teacher_labels_are_argmax_over_slots():
    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 2, 0, 0] = masks[0, 1, 0, 1] = masks[0, 0, 1, :] = 1.0
    assert teacher_labels(masks).tolist() == [[[2, 1], [0, 0]]]


def test_pairwise_iou_by_hand():
    teacher = torch.tensor([[[0, 0, 1, 1]]])   # [1, 1, 4]
    student = torch.tensor([[[0, 1, 1, 1]]])
    iou = pairwise_iou(teacher, student, num_slots=2)[0]
    # teacher 0 = {0,1}, teacher 1 = {2,3}; student 0 = {0}, student 1 = {1,2,3}
    expected = torch.tensor([[1 / 2, 1 / 4],
                             [0.0, 2 / 3]])
    torch.testing.assert_close(iou, expected)


def test_matching_recovers_a_known_permutation_and_the_loss_equals_direct_ce():
    num_slots = 4
    teacher = quadrant_labels(batch=2)                              # [2, 4, 4]
    teacher_masks = logits_from_labels(teacher, num_slots).softmax(1)
    # student slot perm[b, t] shows teacher slot t's region
    perms = torch.tensor([[2, 0, 3, 1], [1, 2, 3, 0]])
    student_logits = torch.randn(2, num_slots, 4, 4) * 0.1
    for b in range(2):
        for t in range(num_slots):
            student_logits[b, perms[b, t]] += 3.0 * (teacher[b] == t).float()

    out = distillation_loss(student_logits, teacher_masks)
    assert out.matching.tolist() == perms.tolist()
    assert torch.equal(out.teacher_labels, teacher)
    # CE computed directly with the known permutation
    reordered = torch.stack([student_logits[b, perms[b]] for b in range(2)])
    torch.testing.assert_close(out.loss, F.cross_entropy(reordered, teacher))
    torch.testing.assert_close(out.reordered_logits, reordered)


def test_matching_is_optimal_against_brute_force():
    torch.manual_seed(1)
    num_slots = 4
    teacher = torch.randint(num_slots, (3, 6, 6))
    student = torch.randint(num_slots, (3, 6, 6))
    cost = matching_cost(teacher, student, num_slots)
    matching = hungarian_matching(cost)
    for b in range(3):
        best = min(sum(cost[b, t, p[t]].item() for t in range(num_slots))
                   for p in itertools.permutations(range(num_slots)))
        found = sum(cost[b, t, matching[b, t]].item() for t in range(num_slots))
        assert found == pytest.approx(best)
        assert sorted(matching[b].tolist()) == list(range(num_slots))


def test_empty_teacher_slot_costs_1e3_and_takes_the_leftover_student_slot():
    num_slots = 3
    # the teacher uses slots 0 and 2 only; slot 1 is empty
    teacher = torch.tensor([[[0, 0, 2, 2],
                             [0, 0, 2, 2]]])
    # the student shows teacher region 0 with slot 1, teacher region 2 with slot 0
    student = torch.tensor([[[1, 1, 0, 0],
                             [1, 1, 0, 0]]])
    cost = matching_cost(teacher, student, num_slots)
    assert torch.all(cost[0, 1] == EMPTY_TEACHER_SLOT_COST)
    matching = hungarian_matching(cost)
    assert matching.tolist() == [[1, 2, 0]]  # teacher 1 (empty) gets the unused student slot 2

    student_logits = logits_from_labels(student, num_slots)
    teacher_masks = logits_from_labels(teacher, num_slots).softmax(1)
    out = distillation_loss(student_logits, teacher_masks)
    assert out.matching.tolist() == [[1, 2, 0]]
    # every token's reordered student logit peaks at the teacher label -> small CE
    expected = F.cross_entropy(reorder_slots(student_logits, matching), teacher)
    torch.testing.assert_close(out.loss, expected)
    assert out.loss < 0.05


def test_loss_decreases_when_student_logits_move_toward_the_teacher():
    torch.manual_seed(2)
    num_slots = 4
    teacher_masks = logits_from_labels(quadrant_labels(2), num_slots).softmax(1)
    student_logits = torch.randn(2, num_slots, 4, 4, requires_grad=True)
    optimizer = torch.optim.SGD([student_logits], lr=20.0)  # the CE is a mean over 32 tokens
    losses = []
    for _ in range(20):
        out = distillation_loss(student_logits, teacher_masks)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.5 * losses[0]
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:], strict=False))


def test_gradient_reaches_the_student_only_through_the_logits():
    student_logits = torch.randn(1, 3, 2, 2, requires_grad=True)
    teacher_masks = torch.rand(1, 3, 2, 2, requires_grad=True)
    distillation_loss(student_logits, teacher_masks).loss.backward()
    assert student_logits.grad is not None and student_logits.grad.abs().sum() > 0
    assert teacher_masks.grad is None


def test_shape_mismatch_says_what_to_do():
    with pytest.raises(ValueError, match="as many slots as the teacher"):
        distillation_loss(torch.randn(1, 4, 2, 2), torch.rand(1, 5, 2, 2))


def test_works_on_real_model_outputs():
    model = tiny_model()
    images = torch.randn(2, 3, 64, 64)
    out = model(images)
    distill = distillation_loss(out.slot_logits, out.decoder_masks.detach())
    assert distill.matching.shape == (2, model.config.num_slots)
    assert distill.teacher_labels.shape == (2, 8, 8)
    assert torch.isfinite(distill.loss)


# ---------------------------------------------------------------------------------------------
# which teacher masks are distilled (stage 2's targets)
def test_teacher_target_orders_choices():
    from spot_tutorial.training.self_training import teacher_target_orders

    assert teacher_target_orders("trained-orders", "random") == "random"      # the paper
    assert teacher_target_orders("trained-orders", "standard") == "standard"  # a raster teacher
    assert teacher_target_orders("all-orders", "random") == "all"
    assert teacher_target_orders("raster", "random") == "standard"
    with pytest.raises(ValueError, match="choose one of"):
        teacher_target_orders("best", "random")


def _distilled_teacher_masks(monkeypatch, targets, teacher, student, images, seed=3):
    """The teacher decoder masks that `batch_loss` hands to `distillation_loss`, and its loss."""
    import spot_tutorial.training.objective as objective

    seen = []
    real = objective.distillation_loss
    monkeypatch.setattr(objective, "distillation_loss",
                        lambda logits, masks: seen.append(masks.clone()) or real(logits, masks))
    torch.manual_seed(seed)
    loss, _ = objective.batch_loss(student, images, teacher, 0.5, targets=targets)
    return seen[0], loss


def test_all_orders_targets_are_the_mean_of_the_nine_single_order_masks(monkeypatch):
    teacher = tiny_model(init_method="embedding").eval()   # no slot noise: every call sees the same slots
    student = tiny_model(init_method="embedding", truncate="bi-level")
    images = torch.randn(2, 3, 64, 64)
    averaged, _ = _distilled_teacher_masks(monkeypatch, "all-orders", teacher, student, images)
    with torch.no_grad():
        singles = torch.stack([teacher(images, orders=[p]).decoder_masks for p in range(9)])
    torch.testing.assert_close(averaged, singles.mean(0), rtol=0, atol=1e-6)
    raster, _ = _distilled_teacher_masks(monkeypatch, "raster", teacher, student, images)
    torch.testing.assert_close(raster, singles[0], rtol=0, atol=1e-6)


def test_default_targets_are_the_papers_one_random_order_bit_for_bit(monkeypatch):
    from spot_tutorial.training.self_training import distillation_loss as paper_loss

    teacher = tiny_model().eval()            # the paper's teacher: Gaussian slots, random orders
    student = tiny_model(init_method="embedding", truncate="bi-level")
    images = torch.randn(2, 3, 64, 64)
    masks, loss = _distilled_teacher_masks(monkeypatch, "trained-orders", teacher, student, images)
    torch.manual_seed(3)                    # the same draws, written out as the paper does it
    output = student(images)
    with torch.inference_mode():
        teacher_output = teacher(images, orders="random")
    expected = output.loss + 0.5 * paper_loss(output.slot_logits, teacher_output.decoder_masks).loss
    assert torch.equal(masks, teacher_output.decoder_masks)
    assert torch.equal(loss.detach(), expected.detach())


def test_the_teacher_must_match_the_student_in_slots_image_size_and_encoder_only():
    from spot_tutorial import SPOT, get_preset
    from spot_tutorial.errors import ConfigError
    from spot_tutorial.training.objective import check_teacher

    teacher = SPOT.from_config(get_preset("tiny", slot_size=32))
    check_teacher(teacher, get_preset("tiny", slot_size=64, num_dec_blocks=1))  # masks only: fine
    for mismatch in (dict(num_slots=6), dict(image_size=96), dict(encoder_final_norm=True)):
        with pytest.raises(ConfigError, match=f"{next(iter(mismatch))}: teacher"):
            check_teacher(teacher, get_preset("tiny", **mismatch))
