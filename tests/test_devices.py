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


def test_data_workers_never_exceed_the_available_cores(monkeypatch):
    from spot_tutorial import runtime

    monkeypatch.setattr(runtime, "available_cpus", lambda: 2)
    assert runtime.data_workers(4) == 2 and runtime.data_workers(1) == 1 and runtime.data_workers(0) == 0
    monkeypatch.setattr(runtime, "available_cpus", lambda: 16)
    assert runtime.data_workers(4) == 4


def test_training_with_the_default_workers_on_this_machine_gives_no_worker_warning(tmp_path, recwarn):
    from spot_tutorial.recipes import get_preset
    from spot_tutorial.runtime import available_cpus, data_workers
    from spot_tutorial.training.loop import Trainer

    config = get_preset("tiny", num_workers=4, train_images=8, eval_images=4, batch_size=4, max_steps=1)
    trainer = Trainer(config, output_dir=tmp_path, progress=False)
    assert trainer._train_loader().num_workers == data_workers(4) <= available_cpus()
    assert trainer.eval_loader().num_workers == data_workers(4)
    assert not [w for w in recwarn if "worker" in str(w.message)]
