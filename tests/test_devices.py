"""Tests for spot_tutorial.runtime: one meaning of 'auto' for training, evaluation and segmentation."""

import pytest
import torch

from spot_tutorial.errors import ConfigError
from spot_tutorial.runtime import resolve_device


def test_auto_is_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_asking_for_a_missing_gpu_fails_with_what_to_do(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="--device cpu"):
        resolve_device("cuda")


def test_a_gpu_without_index_is_this_process_local_rank(monkeypatch):
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    assert resolve_device("cuda", local_rank=3) == torch.device("cuda", 3)
    assert resolve_device("auto", local_rank=1) == torch.device("cuda", 1)
    assert resolve_device("cuda:2", local_rank=1) == torch.device("cuda", 2)
    assert chosen == [torch.device("cuda", 3), torch.device("cuda", 1), torch.device("cuda", 2)]
