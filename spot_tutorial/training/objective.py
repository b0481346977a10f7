"""What each stage of SPOT minimises, and the frozen teacher of stage 2.

Stage 1 (the teacher): the reconstruction MSE of the frozen ViT's patch features, each batch
decoded in a random patch order (paper, section 3.2). Stage 2 (the student): the same MSE plus
w * CE, where CE distils the frozen teacher's decoder attention masks into the student's
slot-attention masks (section 3.1; the distillation math is in `spot_tutorial.training.self_training`).

    batch_loss(model, images, teacher, w)   the loss of one batch and the values to log
    load_teacher(path, device)              a stage-1 checkpoint, frozen, in eval mode
    check_teacher(teacher, config)          the student sees the same images, grid and slots
    copy_encoder_from_teacher(student, t)   both stages start from the same pretrained ViT
    teacher_sees_student_targets(t, s)      whether the teacher's encoder pass can be skipped
"""

from __future__ import annotations

import os

import torch
from torch import nn

from spot_tutorial.config import SPOTConfig
from spot_tutorial.errors import ConfigError
from spot_tutorial.io.checkpoint_file import load_model
from spot_tutorial.model.spot import SPOT
from spot_tutorial.training.self_training import distillation_loss, teacher_target_orders


def batch_loss(train_model: nn.Module, images: torch.Tensor, teacher: SPOT | None = None,
               weight: float = 0.0, teacher_on_targets: bool = False,
               targets: str = "trained-orders",
               features: torch.Tensor | None = None) -> tuple[torch.Tensor, dict]:
    """Stage 1: the reconstruction MSE. Stage 2: MSE + weight * distillation CE from the teacher.

    The teacher runs frozen, in eval mode, with its Gaussian slot noise. By default (the paper)
    it decodes in the patch orders it was trained with: one random order per batch for SPOT's
    teacher (a raster-only teacher never learned the other orders, so it decodes in raster
    order); `targets` picks other orders (see `self_training.teacher_target_orders`).
    `features`: the frozen encoder's output for `images`, computed once (`training.feature_cache`).
    """
    output = train_model(images) if features is None else train_model(images, features=features)
    record = {"mse": output.loss.detach()}
    if teacher is None:
        return output.loss, record
    teacher_orders = teacher_target_orders(targets, teacher.train_orders)
    with torch.inference_mode():
        if teacher_on_targets:  # its encoder would recompute output.target exactly
            teacher_output = teacher.forward_features(output.target, output.target, teacher_orders)
        else:
            teacher_output = teacher(images, orders=teacher_orders)
    distill = distillation_loss(output.slot_logits, teacher_output.decoder_masks)
    record.update(ce=distill.loss.detach(), ce_weight=torch.tensor(weight))
    return output.loss + weight * distill.loss, record


def load_teacher(path: str | os.PathLike, device: torch.device) -> SPOT:
    """A stage-1 checkpoint as a frozen teacher (eval mode, no gradients)."""
    teacher = load_model(path, map_location="cpu").to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def check_teacher(teacher: SPOT, config: SPOTConfig) -> None:
    """The student must see the same images, token grid and number of slots as its teacher."""
    differences = [f"{name}: teacher {getattr(teacher.config, name)!r}, student {getattr(config, name)!r}"
                   for name in ("num_slots", "image_size", "which_encoder", "encoder_final_norm")
                   if getattr(teacher.config, name) != getattr(config, name)]
    if differences:
        raise ConfigError("the teacher checkpoint does not fit the student configuration:\n  "
                          + "\n  ".join(differences) + "\nuse the same preset/overrides as in stage 1")


def copy_encoder_from_teacher(student: SPOT, teacher: SPOT) -> None:
    """Start the student from the teacher's (frozen, pretrained) encoder weights.

    In the paper both stages start from the same pretrained ViT; copying it from the teacher's
    checkpoint makes that exact (also for the randomly initialised 'tiny' encoder) and needs no
    download. The student's trainable encoder and its frozen target copy both get it.
    """
    source = teacher.target_encoder if teacher.target_encoder is not None else teacher.encoder
    weights = source.vit.state_dict()
    student.encoder.vit.load_state_dict(weights)
    if student.target_encoder is not None:
        student.target_encoder.vit.load_state_dict(weights)


def teacher_sees_student_targets(teacher: SPOT, student: SPOT) -> bool:
    """True when the teacher's encoder is the frozen ViT that makes the student's targets.

    Then the teacher's features equal the student's reconstruction targets (same weights,
    same images, eval mode), and stage 2 skips the teacher's encoder pass: same math.
    """
    target_source = student.target_encoder or (student.encoder if student.encoder.is_frozen else None)
    teacher_encoder = teacher.target_encoder or teacher.encoder
    if target_source is None or teacher_encoder.final_norm != target_source.final_norm:
        return False
    mine, theirs = teacher_encoder.vit.state_dict(), target_source.vit.state_dict()
    return mine.keys() == theirs.keys() and all(torch.equal(mine[k], theirs[k].to(mine[k].device))
                                                for k in mine)
