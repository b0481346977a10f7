"""Several processes (torchrun + DistributedDataParallel), and the data order that makes resume exact.

With ``torchrun --nproc-per-node P`` every process trains on its own shard of each batch; the
gradients are averaged by DistributedDataParallel, so all processes keep the same weights. What
the training loop needs on top of that lives here::

    init_distributed(device)   join the process group torchrun describes, or stay one process
    Distributed                rank / world size, and the decisions all processes must share:
                               all_finite (stop together on a NaN), agree (time budget),
                               gather (random states for the checkpoint), barrier
    EpochSampler               the epoch's shuffled order, a function of (seed, epoch) only,
                               sharded by rank and able to start in the middle of an epoch
    ShardSampler               evaluation images split across processes without duplicates

With one process every helper is a no-op, so the training loop reads the same either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from spot_tutorial.errors import ConfigError


@dataclass
class Distributed:
    """This process's place among the training processes (rank 0 of 1 without torchrun)."""
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def all_finite(self, values: list[torch.Tensor]) -> bool:
        """True when every value is finite on every process (all processes then stop together)."""
        return all_finite(values, self)

    def agree(self, value: float, op: "dist.ReduceOp", device: torch.device) -> float:
        """The same decision in every process (clocks differ a little between processes)."""
        if not self.enabled:
            return value
        tensor = torch.tensor([float(value)], dtype=torch.float64,
                              device=device if device.type == "cuda" else "cpu")
        dist.all_reduce(tensor, op=op)
        return float(tensor.item())

    def gather(self, value: Any) -> list[Any]:
        """`value` of every process, in rank order (on every process)."""
        if not self.enabled:
            return [value]
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def shutdown(self) -> None:
        """Leave the process group at the end of a run."""
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK); else one process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_finite(values: list[torch.Tensor], distributed: Distributed) -> bool:
    """True when every value is finite on every process (all processes then stop together)."""
    flag = torch.stack([torch.isfinite(v.detach().float()).all() for v in values]).all().float()
    if distributed.enabled:
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


class EpochSampler(Sampler[int]):
    """Shuffled indices for one epoch, seeded by (seed, epoch), one shard per process.

    The epoch's order is a function of (seed, epoch) only, so a resumed run sees the same data
    in the same order; `set_epoch(epoch, start_batch)` skips the batches already trained on.
    Each process gets `steps_per_epoch * batch_size` indices (the tail that does not fill a
    batch on every process is dropped, as with drop_last=True).
    """

    def __init__(self, dataset_size: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1):
        self.steps_per_epoch = dataset_size // (batch_size * world_size)
        if self.steps_per_epoch < 1:
            raise ConfigError(f"the training set has {dataset_size} images, fewer than one batch "
                              f"(batch_size {batch_size} x {world_size} process(es)); lower batch_size "
                              "or use more training images")
        self.dataset_size, self.batch_size, self.seed = dataset_size, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def epoch_indices(self) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.dataset_size, generator=generator)
        used = order[: self.steps_per_epoch * self.batch_size * self.world_size]
        return used[self.rank::self.world_size].tolist()

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.start_batch * self.batch_size:])

    def __len__(self) -> int:
        return (self.steps_per_epoch - self.start_batch) * self.batch_size


class ShardSampler(Sampler[int]):
    """Evaluation: process r takes images r, r + P, r + 2P, ... (no padding, no duplicates)."""

    def __init__(self, dataset_size: int, rank: int = 0, world_size: int = 1):
        self.indices = list(range(rank, dataset_size, world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)
