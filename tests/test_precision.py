"""Precision follows the hardware: bf16 only on GPUs with native bf16, fp16 + GradScaler otherwise.
The CUDA capability checks are mocked, so these run on a CPU."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from spot_tutorial import get_preset
from spot_tutorial import runtime as precision
from spot_tutorial.training.loop import Trainer, apply_gradients


def fake_gpu(monkeypatch, native_bf16: bool, emulated_bf16: bool = True):
    """A CUDA device whose is_bf16_supported answers like torch>=2.3 does (emulation counts)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    def is_bf16_supported(including_emulation: bool = True):
        return native_bf16 or (including_emulation and emulated_bf16)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp16")])
def test_cuda_precision_follows_native_bf16_support(monkeypatch, native, expected):
    fake_gpu(monkeypatch, native_bf16=native)
    assert precision.cuda_has_native_bf16() is native   # a T4's emulated bf16 does not count
    assert precision.choose_precision("cuda") == expected
    assert precision.choose_precision("cuda", want_bf16=False) == "fp32"
    assert precision.choose_precision("cpu") == "fp32"


def test_trainer_uses_fp16_with_a_scaler_on_a_gpu_without_bf16(monkeypatch):
    cuda = SimpleNamespace(device=torch.device("cuda"), config=get_preset("coco"))
    fake_gpu(monkeypatch, native_bf16=False)
    assert Trainer.precision.fget(cuda) == "fp16"
    fake_gpu(monkeypatch, native_bf16=True)
    assert Trainer.precision.fget(cuda) == "bf16"
    cpu = SimpleNamespace(device=torch.device("cpu"), config=get_preset("tiny"))
    assert Trainer.precision.fget(cpu) == "fp32"


def test_training_evaluation_does_not_use_bf16_on_a_gpu_without_it(monkeypatch):
    fake_gpu(monkeypatch, native_bf16=False)
    assert precision.evaluation_precision(torch.device("cuda"), amp=True) == "fp32"
    fake_gpu(monkeypatch, native_bf16=True)
    assert precision.evaluation_precision(torch.device("cuda"), amp=True) == "bf16"
    assert precision.evaluation_precision("cuda") == "fp32"            # fp32 unless asked
    assert precision.evaluation_precision("cpu", amp=True) == "fp32"   # amp is CUDA only
    assert precision.evaluation_precision("cpu", "bf16") == "bf16"     # asked for: on any device


def _model_and_loss(scale: float = 1.0):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    loss = (model(torch.randn(8, 4)) ** 2).mean() * scale
    return model, loss


def test_apply_gradients_with_a_scaler_unscales_before_clipping():
    plain, loss = _model_and_loss()
    apply_gradients(plain, torch.optim.SGD(plain.parameters(), lr=0.1), loss, clip=0.01)
    scaled, loss = _model_and_loss()
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    norms = []
    apply_gradients(scaled, torch.optim.SGD(scaled.parameters(), lr=0.1), loss, clip=0.01,
                    check=norms.append, scaler=scaler)
    for a, b in zip(plain.parameters(), scaled.parameters(), strict=True):
        torch.testing.assert_close(a, b)
    assert len(norms) == 1 and float(norms[0]) < 1e3   # the unscaled norm reached the check


def test_an_overflowing_fp16_step_is_skipped_not_reported():
    model, loss = _model_and_loss(scale=float("inf"))
    before = [p.detach().clone() for p in model.parameters()]
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    checked = []
    apply_gradients(model, torch.optim.SGD(model.parameters(), lr=0.1), loss, clip=0.3,
                    check=checked.append, scaler=scaler)
    assert not checked and scaler.get_scale() < 1024.0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
