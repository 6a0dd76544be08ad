"""A tiny model and dataset for the trainer's tests, and a training run for subprocesses.

The model has no batch normalisation (its statistics would be per process under DDP, so two
processes with half batches would not equal one process with the whole batch) and has dropout,
so that exact resume depends on restoring the random generators.

Run as ``python -m tests.train.tiny OUT --steps N ...`` (also under ``torchrun``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from facegcn_lib.train.trainer import TrainConfig, Trainer

IMAGE = 8
POINTS = 5
MARKER = "killed_here"


class TinyNet(nn.Module):
    """(B, 3, 8, 8) images -> (B, 5, 3) points: a conv, dropout and a linear layer."""

    def __init__(self, dropout: float = 0.1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(4 * IMAGE * IMAGE, POINTS * 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.drop(torch.relu(self.conv(x)).flatten(1))
        return self.fc(h).view(-1, POINTS, 3)


class DictFaces(Dataset):
    """``n`` random (image, points) pairs as dicts, like the synthetic face dataset's items."""

    def __init__(self, n: int, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.images = torch.rand(n, 3, IMAGE, IMAGE, generator=g)
        self.points = torch.randn(n, POINTS, 3, generator=g)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return {"image": self.images[i], "verts": self.points[i], "index": i}


def l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (pred - target).abs().mean()


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).mean()


LOSSES = {"l1": l1, "mse": mse}


def make_model(seed: int = 0, dropout: float = 0.1) -> TinyNet:
    torch.manual_seed(seed)
    return TinyNet(dropout)


def config(**kw: Any) -> TrainConfig:
    base: dict[str, Any] = {"epochs": 2, "batch_size": 4, "num_workers": 0, "progress": False,
                            "tensorboard": False, "device": "cpu", "deterministic": True,
                            "checkpoint_every": 4, "log_every": 2, "val_batch_size": 8}
    base.update(kw)
    return TrainConfig(**base)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--loss", choices=sorted(LOSSES), default="l1")
    p.add_argument("--hang-after", type=int, default=0, help="sleep after this step")
    p.add_argument("--resume", action="store_true")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    hang = a.hang_after

    def stall(trainer: Trainer) -> None:
        if hang and trainer.step == hang:
            (Path(a.out) / MARKER).write_text(str(trainer.step))
            while True:  # until the test kills this process
                time.sleep(3600)

    cfg = config(epochs=a.epochs, batch_size=a.batch)
    trainer = Trainer(make_model(dropout=a.dropout), LOSSES[a.loss], DictFaces(a.samples), cfg, a.out,
                      val_set=DictFaces(8, seed=1), callbacks=[stall])
    trainer.fit(resume=a.resume)
    if trainer.dist.is_main:
        torch.save(trainer.model.state_dict(), Path(a.out) / "final_weights.pt")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        from facegcn_lib.train.distributed import cleanup

        cleanup()


if __name__ == "__main__":
    main()
