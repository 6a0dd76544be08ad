"""Data-parallel training: the sampler's shards, and two gloo processes against one process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from facegcn_lib.train.distributed import (
    DistInfo,
    DistributedSetupError,
    ShardedEpochSampler,
    ShardSampler,
)
from facegcn_lib.train.trainer import Trainer
from tests.train.tiny import DictFaces, config, make_model, mse

REPO = Path(__file__).resolve().parents[2]


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(sampler: ShardedEpochSampler) -> list[list[int]]:
    idx = list(sampler)
    b = sampler.local_batch
    return [idx[i:i + b] for i in range(0, len(idx), b)]


def test_shards_of_each_step_make_up_the_global_batch() -> None:
    one = ShardedEpochSampler(50, 8, DistInfo(), seed=3)
    ranks = [ShardedEpochSampler(50, 8, DistInfo(r, 2), seed=3) for r in range(2)]
    for epoch in (0, 1):
        for s in [one, *ranks]:
            s.set_position(epoch)
        glob = _batches(one)
        parts = [_batches(s) for s in ranks]
        assert len(glob) == 50 // 8 and all(len(p) == len(glob) for p in parts)
        for step, batch in enumerate(glob):
            assert sorted(parts[0][step] + parts[1][step]) == sorted(batch)
    one.set_position(0)
    first = list(one)
    one.set_position(1)
    assert list(one) != first  # a new order each epoch


def test_resuming_mid_epoch_skips_the_consumed_batches() -> None:
    s = ShardedEpochSampler(30, 4, DistInfo(1, 2), seed=0)
    s.set_position(2)
    full = list(s)
    s.set_position(2, start_batch=3)
    assert list(s) == full[3 * 2:] and len(s) == len(full) - 6


def test_sampler_rejects_batches_that_do_not_split() -> None:
    with pytest.raises(DistributedSetupError, match="divisible"):
        ShardedEpochSampler(30, 5, DistInfo(0, 2), seed=0)
    with pytest.raises(DistributedSetupError, match="fewer than one batch"):
        ShardedEpochSampler(3, 4, DistInfo(), seed=0)


def test_shard_sampler_counts_every_sample_once() -> None:
    shards = [list(ShardSampler(11, DistInfo(r, 3))) for r in range(3)]
    assert sorted(i for shard in shards for i in shard) == list(range(11))


def test_two_gloo_processes_equal_one_process_on_the_same_global_batch(tmp_path: Path) -> None:
    """Two gloo processes (as ``torchrun`` starts them) of batch 4 each vs. one of batch 8.

    The tiny model has no batch norm: its statistics are per process, which makes DDP differ
    from one big batch by design (SyncBatchNorm would be needed). Dropout is off, as each
    process draws its own masks. The loss is the mean squared error: with L1, a bias gradient
    is a mean of signs that can cancel to exactly 0 in one summation order and to 1e-9 in
    the other, which Adam (dividing by the gradient's own scale) turns into a difference of
    the order of the learning rate; that is float round-off, not a difference in the method.
    """
    out = tmp_path / "ddp"
    # The environment torchrun gives its workers (launched directly: torchrun's agent process
    # would only add another PyTorch start-up to the test's time).
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": str(rank),
               "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2"}
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.train.tiny", str(out), "--batch", "8", "--dropout", "0",
             "--loss", "mse"], cwd=REPO, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True))
    single = Trainer(make_model(dropout=0.0), mse, DictFaces(24), config(batch_size=8),
                     tmp_path / "one", val_set=DictFaces(8, seed=1))
    single.fit()
    for proc in procs:
        log, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, log[-3000:]
    ddp_weights = torch.load(out / "final_weights.pt")
    for name, value in single.model.state_dict().items():
        torch.testing.assert_close(ddp_weights[name], value, rtol=0, atol=1e-6, msg=name)
    # the validation NME, averaged over both processes' shards, matches too
    from facegcn_lib.train.metrics_writer import read_metrics

    a = read_metrics(out / "metrics.csv")["val/error"]
    b = read_metrics(tmp_path / "one" / "metrics.csv")["val/error"]
    assert [s for s, _ in a] == [s for s, _ in b]
    assert [v for _, v in a] == pytest.approx([v for _, v in b], rel=1e-5)
