"""The tiny encoder's self-supervised pretraining (DINO) on a few steps: it learns, resumes exactly
and exports safetensors with their recipe and checksum."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from spot_tutorial.training.pretrain_encoder import (
    PretrainRecipe,
    build_vit,
    colour_jitter,
    dino_loss,
    masked_patch_loss,
    pretrain_encoder,
    random_crops,
    random_patch_masks,
)

SMALL = PretrainRecipe(embed_dim=32, depth=1, num_heads=2, scenes=16, steps=4, batch_size=8,
                       local_crops=2, out_dim=64, warmup_steps=2, patch_loss_weight=0.0)  # DINO alone


def test_crops_have_the_asked_size_and_come_from_their_own_image():
    images = torch.zeros(3, 3, 64, 64)
    images[1] = 1.0  # only image 1 is white: its crops must be white, the others black
    crops = random_crops(images, 2, 32, (0.1, 0.4), torch.Generator().manual_seed(0))
    assert crops.shape == (6, 3, 32, 32)
    means = crops.mean(dim=(1, 2, 3))
    assert torch.allclose(means, torch.tensor([0.0, 1.0, 0.0] * 2), atol=1e-6)
    jittered = colour_jitter(torch.rand(5, 3, 8, 8), torch.Generator().manual_seed(1))
    assert jittered.shape == (5, 3, 8, 8) and 0 <= jittered.min() and jittered.max() <= 1


def test_dino_loss_pairs_each_teacher_view_with_the_other_views_only():
    batch, dim = 2, 8
    teacher = torch.randn(2 * batch, dim)
    student = torch.randn(3 * batch, dim)
    loss = dino_loss(student, teacher, torch.zeros(dim), SMALL, batch)
    p_t = torch.softmax(teacher / SMALL.teacher_temp, -1).chunk(2)
    logp_s = torch.log_softmax(student / SMALL.student_temp, -1).split(batch)
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    expected = torch.stack([-(p_t[i] * logp_s[j]).sum(-1).mean() for i, j in pairs]).mean()
    assert torch.allclose(loss, expected)


def test_pretraining_resumes_exactly_and_exports_weights_with_recipe_and_checksum(tmp_path):
    torch.set_num_threads(1)
    whole = pretrain_encoder(SMALL, tmp_path / "whole", checkpoint_every=2)
    pretrain_encoder(SMALL, tmp_path / "split", checkpoint_every=2, max_steps=2)  # "killed" at 2
    resumed = pretrain_encoder(SMALL, tmp_path / "split", checkpoint_every=2)
    with safe_open(str(whole), "pt") as a, safe_open(str(resumed), "pt") as b:
        assert json.loads(a.metadata()["recipe"])["steps"] == SMALL.steps
        assert set(a.keys()) == set(b.keys())
        for key in a.keys():
            assert torch.equal(a.get_tensor(key), b.get_tensor(key)), key
    digest = whole.with_suffix(".sha256").read_text().split()[0]
    assert digest == hashlib.sha256(whole.read_bytes()).hexdigest()
    steps = [json.loads(line)["step"] for line in (tmp_path / "whole" / "pretrain_log.jsonl").open()]
    assert steps[-1] == SMALL.steps
    with pytest.raises(ValueError, match="another recipe"):
        pretrain_encoder(PretrainRecipe(**{**SMALL.__dict__, "steps": 5}), tmp_path / "whole")


def test_masked_patch_loss_reads_only_the_masked_patches():
    student, teacher = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    masked = torch.zeros(2, 6, dtype=torch.bool)
    masked[0, 1] = masked[1, 4] = True
    loss = masked_patch_loss(student, teacher, torch.zeros(8), masked, SMALL)
    changed = student.clone()
    changed[~masked] = torch.randn(int((~masked).sum()), 8)  # the visible patches do not count
    assert torch.allclose(loss, masked_patch_loss(changed, teacher, torch.zeros(8), masked, SMALL))
    p_t = torch.softmax(teacher[0, 1] / SMALL.teacher_temp, -1)
    term = -(p_t * torch.log_softmax(student[0, 1] / SMALL.student_temp, -1)).sum()
    p_t = torch.softmax(teacher[1, 4] / SMALL.teacher_temp, -1)
    term = term - (p_t * torch.log_softmax(student[1, 4] / SMALL.student_temp, -1)).sum()
    assert torch.allclose(loss, term / 2)
    shares = random_patch_masks(4000, 64, (0.1, 0.5), torch.Generator().manual_seed(0)).float().mean(1)
    assert abs(shares.mean() - 0.3) < 0.01 and shares.std() > 0.09  # the share varies per crop


def test_ibot_pretraining_trains_the_patch_head_and_resumes_exactly(tmp_path):
    torch.set_num_threads(1)
    ibot = PretrainRecipe(**{**SMALL.__dict__, "patch_loss_weight": 1.0})
    whole = pretrain_encoder(ibot, tmp_path / "whole", checkpoint_every=2)
    pretrain_encoder(ibot, tmp_path / "split", checkpoint_every=2, max_steps=2)
    resumed = pretrain_encoder(ibot, tmp_path / "split", checkpoint_every=2)
    dino = pretrain_encoder(SMALL, tmp_path / "dino", checkpoint_every=4)
    with safe_open(str(whole), "pt") as a, safe_open(str(resumed), "pt") as b, \
            safe_open(str(dino), "pt") as c:
        assert set(a.keys()) == set(c.keys())  # the exported backbone: no head, no mask token
        assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
        assert not all(torch.equal(a.get_tensor(k), c.get_tensor(k)) for k in a.keys())
    state = torch.load(tmp_path / "whole" / "pretrain_state.pt", weights_only=True)
    assert state["model"]["patch_center"].abs().sum() > 0  # the teacher's patch outputs were centred
    assert state["model"]["mask_token"].abs().sum() > 0    # and the mask token learned


def test_the_default_recipe_is_the_one_stored_in_the_shipped_weights():
    import dataclasses

    from spot_tutorial.model.encoder import TINY_DINO_WEIGHTS

    with safe_open(str(TINY_DINO_WEIGHTS), "pt") as weights:
        stored = json.loads(weights.metadata()["recipe"])
    expected = json.loads(json.dumps(dataclasses.asdict(PretrainRecipe())))
    # a field added to the recipe after the weights were made must default to what made them
    added_since: dict[str, object] = {}
    assert {**added_since, **stored} == expected


def test_a_fixed_position_code_is_never_trained():
    recipe = PretrainRecipe(image_size=32, patch_size=8, embed_dim=32, depth=1, num_heads=2,
                            position_code=1.0)
    vit = build_vit(recipe)
    assert not vit.pos_embed.requires_grad
    assert vit.pos_embed[0, 0].abs().sum() == 0                    # none for the class token
    assert vit.pos_embed[0, 1:].pow(2).mean().sqrt() > 0.5          # sin-cos: rms 1/sqrt(2)
    assert build_vit(PretrainRecipe(image_size=32, patch_size=8, embed_dim=32, depth=1,
                                    num_heads=2, position_code=0.0)).pos_embed.requires_grad
