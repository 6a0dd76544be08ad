"""Data-parallel training across GPUs and machines with ``torchrun`` and DistributedDataParallel.

``torchrun --nproc_per_node N -m facegcn_lib.cli train ...`` starts N processes and gives each
the environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_from_env` reads them and joins the process group (NCCL on GPUs,
gloo on CPUs). Each step, every process takes its share of the global batch from
:class:`ShardedEpochSampler`, and DDP averages the gradients, so N processes with batch B/N
each make the same update as one process with batch B.

See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import Sampler

from facegcn_lib.train.device import derive_seed

log = logging.getLogger(__name__)


class DistributedSetupError(ValueError):
    """The ``torchrun`` environment is inconsistent with the run's settings."""


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in a (possibly one-process) data-parallel run.

    Attributes:
        rank: this process's index among all processes, 0 for the main one.
        world_size: the number of processes.
        local_rank: this process's index on its machine (its GPU index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes checkpoints, logs and progress bars."""
        return self.rank == 0


def env_dist_info() -> DistInfo:
    """This process's place in the run, from ``torchrun``'s environment variables (if any)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group described by ``torchrun``'s environment, if there is one.

    Args:
        device: this process's device; CUDA uses the NCCL backend, other devices gloo.

    Returns:
        This process's :class:`DistInfo` (a one-process run when ``WORLD_SIZE`` is unset or 1).
    """
    info = env_dist_info()
    if not info.is_distributed or dist.is_initialized():
        return info
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size,
                            device_id=device if device.type == "cuda" else None)
    log.info("joined process group: rank %d of %d (%s)", info.rank, info.world_size, backend)
    return info


def cleanup() -> None:
    """Leave the process group (a no-op in a one-process run)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(values: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``values`` summed over all processes (returned as is in a one-process run)."""
    if not info.is_distributed:
        return values
    out = values.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out


def gather_objects(obj: Any, info: DistInfo) -> list[Any]:
    """Every process's ``obj``, indexed by rank (``[obj]`` in a one-process run)."""
    if not info.is_distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every process."""
    if not info.is_distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(info: DistInfo) -> None:
    """Wait until every process gets here."""
    if info.is_distributed:
        dist.barrier()


class ShardedEpochSampler(Sampler[int]):
    """Each epoch a fresh permutation seeded by ``(seed, epoch)``, dealt out to the processes.

    The permutation depends only on the seed and the epoch, so a run resumed in the middle of
    an epoch sees the same order; :meth:`set_position` skips the batches already consumed
    without loading them. Process ``r`` of ``W`` takes every ``W``-th index starting at ``r``,
    so the ``s``-th batch of size ``b`` of every process together are exactly the ``s``-th
    global batch of size ``W * b`` that one process would take. Only whole global batches are
    used (the remainder of an epoch is dropped, as the paper's fixed batch size implies).

    With a ``pool`` larger than ``num_samples`` (generated data, e.g. synthetic faces, whose
    every sample costs the same to make), epoch ``e`` draws its own ``num_samples`` indices
    ``(e * num_samples + i) % pool``, so that every epoch sees new samples.

    Args:
        num_samples: samples per epoch (the dataset's length unless ``pool`` is given).
        global_batch: the batch size summed over processes.
        info: this process's place in the run.
        seed: the run's seed.
        shuffle: permute each epoch (training) or keep the dataset's order (validation).
        pool: the dataset's length when it is larger than an epoch (default: ``num_samples``).
    """

    def __init__(self, num_samples: int, global_batch: int, info: DistInfo, seed: int,
                 shuffle: bool = True, pool: int | None = None) -> None:
        if global_batch % info.world_size:
            raise DistributedSetupError(
                f"the batch size {global_batch} does not split evenly over {info.world_size} "
                "processes: choose a batch size divisible by the number of processes.")
        if num_samples < global_batch:
            raise DistributedSetupError(
                f"the dataset has {num_samples} samples, fewer than one batch of {global_batch}: "
                "use a larger dataset or a smaller batch size.")
        if pool is not None and pool < num_samples:
            raise DistributedSetupError(f"an epoch of {num_samples} samples does not fit a "
                                        f"dataset of {pool}")
        self.num_samples = num_samples
        self.pool = pool if pool is not None else num_samples
        self.global_batch = global_batch
        self.info = info
        self.seed = seed
        self.shuffle = shuffle
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        """Global batches (optimiser steps) per epoch."""
        return self.num_samples // self.global_batch

    @property
    def local_batch(self) -> int:
        """This process's share of each global batch."""
        return self.global_batch // self.info.world_size

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        """Iterate epoch ``epoch`` from its batch ``start_batch`` on (the next ``iter`` call)."""
        if not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"start_batch {start_batch} outside [0, {self.batches_per_epoch}]")
        self.epoch = epoch
        self.start_batch = start_batch

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The global sample order of epoch ``epoch``: (batches_per_epoch * global_batch,)."""
        used = self.batches_per_epoch * self.global_batch
        if not self.shuffle:
            order = torch.arange(used)
        else:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, epoch))
            order = torch.randperm(self.num_samples, generator=gen)[:used]
        if self.pool == self.num_samples:
            return order
        return (order + epoch * self.num_samples) % self.pool

    def __iter__(self) -> Iterator[int]:
        order = self.epoch_order(self.epoch)
        start = self.start_batch * self.global_batch
        mine = order[start + self.info.rank::self.info.world_size]
        return iter(mine.tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.local_batch


class ShardSampler(Sampler[int]):
    """Process ``r`` of ``W`` takes indices ``r, r + W, ...`` in order (for evaluation).

    Unlike :class:`torch.utils.data.DistributedSampler` nothing is repeated to even out the
    shards, so sums over processes count every sample exactly once.
    """

    def __init__(self, num_samples: int, info: DistInfo) -> None:
        self.num_samples = num_samples
        self.info = info

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.info.rank, self.num_samples, self.info.world_size))

    def __len__(self) -> int:
        return len(range(self.info.rank, self.num_samples, self.info.world_size))
