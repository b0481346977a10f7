"""The tiny encoder's self-supervised pretraining (DINO) on a few steps: it learns, resumes exactly
and exports safetensors with their recipe and checksum."""

import hashlib
import json

import pytest
import torch
from safetensors import safe_open

from spot_tutorial.training.pretrain_encoder import (
    PretrainRecipe,
    colour_jitter,
    dino_loss,
    pretrain_encoder,
    random_crops,
)

SMALL = PretrainRecipe(embed_dim=32, depth=1, num_heads=2, scenes=16, steps=4, batch_size=8,
                       local_crops=2, out_dim=64, warmup_steps=2)


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
