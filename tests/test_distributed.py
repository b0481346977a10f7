"""Tests for spot_tutorial.training.distributed in one process: the data order of an epoch, sharding, and
the shared decisions (several processes: tests/test_train.py, the gloo DDP test)."""

import pytest
import torch

from spot_tutorial.training.distributed import (
    Distributed,
    EpochSampler,
    ShardSampler,
    all_finite,
    init_distributed,
)


def test_epoch_sampler_is_seeded_by_epoch_resumable_and_sharded():
    sampler = EpochSampler(dataset_size=50, batch_size=4, seed=3)
    assert sampler.steps_per_epoch == 12
    sampler.set_epoch(2)
    full = list(sampler)
    assert len(full) == 48 and len(set(full)) == 48
    assert list(EpochSampler(50, 4, seed=3).__class__(50, 4, 3).epoch_indices()) != full  # epoch 0 differs
    sampler.set_epoch(2, start_batch=5)
    assert list(sampler) == full[20:]                     # resumes after 5 batches
    assert len(sampler) == 28
    shards = [EpochSampler(50, 4, seed=3, rank=r, world_size=2) for r in range(2)]
    for shard in shards:
        shard.set_epoch(2)
    first, second = list(shards[0]), list(shards[1])
    assert len(first) == len(second) == 24 and not set(first) & set(second)
    with pytest.raises(ValueError, match="fewer than one batch"):
        EpochSampler(dataset_size=3, batch_size=4, seed=0)


def test_shard_sampler_splits_without_padding_or_duplicates():
    shards = [list(ShardSampler(10, rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert sorted(sum(shards, [])) == list(range(10))


def test_one_process_decides_alone(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    single = init_distributed(torch.device("cpu"))
    assert single == Distributed() and not single.enabled and single.is_main
    assert single.gather({"a": 1}) == [{"a": 1}]
    assert single.agree(3.5, op=None, device=torch.device("cpu")) == 3.5
    single.barrier()  # a no-op without a process group
    assert all_finite([torch.tensor(1.0), torch.tensor([2.0, 3.0])], single)
    assert not single.all_finite([torch.tensor(1.0), torch.tensor(float("nan"))])
    assert not single.all_finite([torch.tensor(float("inf"))])
