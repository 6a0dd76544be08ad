"""The training loop: Adam with a staged learning rate, mixed precision, checkpoints, exact resume.

:class:`Trainer` is model-agnostic: it trains any ``nn.Module`` that maps a batch's inputs to
predictions, against any loss callable, on any map-style dataset whose items are either dicts
(``TrainConfig.input_key`` and ``target_key`` pick the tensors) or ``(input, target)`` pairs.
It runs the same on CUDA, Apple MPS and the CPU, in one process or in many under ``torchrun``
(DistributedDataParallel), and a run killed at any moment resumes from its last checkpoint as
if it had never stopped (to the same weights bit for bit in deterministic mode; Ctrl-C or
SIGTERM stop it cleanly after the current step, with a checkpoint). :mod:`facegcn_lib.train.build` builds the face
model, loss and datasets of a preset (:data:`PRESETS`) for it.

The paper trains with Adam at a learning rate of 1e-3, halved every 20 of 80 epochs, batch 50;
here the halving happens every quarter of the *planned* steps, which also holds when a time
budget (``max_minutes``) plans fewer steps than the epochs ask for.

See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facegcn_lib.config import EncoderConfig, LossConfig, MeshConfig, ModelConfig
from facegcn_lib.train import distributed as ddp
from facegcn_lib.train.device import (
    derive_seed,
    deterministic_mode,
    pick_device,
    pick_precision,
    seed_everything,
)
from facegcn_lib.train.ema import WeightAverage
from facegcn_lib.train.metrics_writer import MetricsWriter
from facegcn_lib.train.train_state import (
    STATE_FORMAT,
    STATE_VERSION,
    atomic_torch_save,
    load_train_state,
    rng_state,
    set_rng_state,
)

log = logging.getLogger(__name__)

#: Loss callables return a scalar tensor, a ``NamedTuple`` whose first field is the total
#: (e.g. :class:`facegcn_lib.train.losses.LossTerms`), or a mapping with a ``"total"`` entry;
#: every field of the latter two is logged.
LossFn = Callable[[torch.Tensor, torch.Tensor], Any]
#: Per-sample validation errors ``(B,)`` from the predictions and the batch as loaded.
MetricFn = Callable[[torch.Tensor, Any], torch.Tensor]
Callback = Callable[["Trainer"], None]

LAST_CHECKPOINT = "last.pt"
BEST_CHECKPOINT = "best.pt"
CHECKPOINT_DIR = "checkpoints"
#: Settings a resumed run must share with the checkpoint (they fix the data order and schedule).
RESUME_MUST_MATCH = ("batch_size", "seed", "epochs", "max_steps", "lr", "lr_decay", "lr_stages",
                     "lr_schedule", "lr_final", "ema_decay")
#: The learning-rate schedules of :attr:`TrainConfig.lr_schedule`.
LR_SCHEDULES = ("staged", "cosine")


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step, the batch and the checkpoint."""


class TrainConfigError(ValueError):
    """A training setting is invalid or does not fit the data or the checkpoint being resumed."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the optimiser, schedule, precision, data loading and bookkeeping).

    Attributes:
        epochs: passes over the training set (the paper: 80).
        batch_size: the global batch size, summed over processes (the paper: 50).
        lr: Adam's initial learning rate (the paper: 1e-3).
        lr_decay: factor applied to the learning rate at each stage (the paper: halved).
        lr_schedule: ``"staged"`` (the paper: the rate is multiplied by ``lr_decay`` at each
            of ``lr_stages`` equal stages, :class:`StagedDecayLR`) or ``"cosine"`` (it falls
            smoothly from ``lr`` to ``lr * lr_final`` over the planned steps,
            :class:`CosineDecayLR`).
        lr_final: the cosine schedule's last rate, a fraction of ``lr``.
        lr_stages: the planned steps are cut into this many equal stages (the paper: 80
            epochs halved every 20, i.e. 4), the learning rate decaying between them.
        betas: Adam's moment coefficients.
        weight_decay: Adam's L2 penalty (the paper: none).
        grad_clip_norm: rescale gradients whose global norm exceeds this (``None``: never).
        max_steps: stop after this many optimiser steps (``None``: ``epochs`` full epochs).
        max_minutes: wall-clock budget of the training steps; after ``calibration_steps`` the
            run plans as many steps as fit (at most the epochs') and stops at the deadline.
        calibration_steps: steps timed to plan a time-bounded run.
        time_reserve: fraction of the budget kept for validation and checkpoints.
        device: ``auto``, ``cuda``, ``mps`` or ``cpu``.
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16`` (see
            :func:`facegcn_lib.train.device.pick_precision`).
        num_workers: data-loader worker processes per training process.
        channels_last: keep the model's 4-D weights and the image batches in the channels-last
            memory layout (NHWC), which the CPU's and recent GPUs' convolution kernels run
            faster; the arithmetic is the same (``benchmarks/training.py`` measures the gain).
        sync_batchnorm: with several GPUs, batch normalisation uses the statistics of the
            whole global batch (as one GPU would) rather than of each GPU's share.
        seed: seeds the data order, the loop's random generators and the model's
            initialisation (in :func:`facegcn_lib.train.build.build_from_preset`).
        deterministic: use deterministic kernels (bitwise repeatable runs; slower on GPUs).
        checkpoint_every: write the training checkpoint every this many steps (and at the end).
        log_every: log the training loss every this many steps.
        val_batch_size: batch size of the validation passes (global).
        progress: show progress bars (on the main process).
        tensorboard: write TensorBoard events next to ``metrics.csv``.
        input_key: the model's input in dict-shaped batches.
        target_key: the loss's target in dict-shaped batches.
        ema_decay: keep an exponential moving average of the weights with this decay
            (:class:`~facegcn_lib.train.ema.WeightAverage`; its horizon is about
            ``1 / (1 - ema_decay)`` steps): validation, ``best.pt``'s choice and the exported
            model files then use the averaged weights. ``None``: no average (the paper, and
            the presets: on the ``cpu`` preset's run, whose cosine rate ends at 0, 0.998 changed
            neither the held-out error nor the photographs' beyond round-off, step "v10" of the
            book's results page; mid-run the average was well ahead of the weights).
    """

    epochs: int = 80
    batch_size: int = 50
    lr: float = 1e-3
    lr_decay: float = 0.5
    lr_stages: int = 4
    lr_schedule: str = "staged"
    lr_final: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    grad_clip_norm: float | None = 5.0
    max_steps: int | None = None
    max_minutes: float | None = None
    calibration_steps: int = 10
    time_reserve: float = 0.1
    device: str = "auto"
    precision: str = "auto"
    num_workers: int = 2
    channels_last: bool = True
    sync_batchnorm: bool = True
    seed: int = 0
    deterministic: bool = False
    checkpoint_every: int = 500
    log_every: int = 20
    val_batch_size: int = 50
    progress: bool = True
    tensorboard: bool = True
    input_key: str = "image"
    target_key: str = "verts"
    ema_decay: float | None = None

    def __post_init__(self) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr,
                    "lr_stages": self.lr_stages, "checkpoint_every": self.checkpoint_every,
                    "log_every": self.log_every, "val_batch_size": self.val_batch_size,
                    "calibration_steps": self.calibration_steps}
        for name, value in positive.items():
            if value <= 0:
                raise TrainConfigError(f"TrainConfig.{name} must be positive, got {value}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise TrainConfigError(f"TrainConfig.max_steps must be positive, got {self.max_steps}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise TrainConfigError(f"TrainConfig.max_minutes must be positive, got {self.max_minutes}")
        if not 0 < self.lr_decay <= 1:
            raise TrainConfigError(f"TrainConfig.lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise TrainConfigError(f"TrainConfig.lr_schedule must be one of {LR_SCHEDULES}, "
                                   f"got {self.lr_schedule!r}")
        if not 0 <= self.lr_final <= 1:
            raise TrainConfigError(f"TrainConfig.lr_final must be in [0, 1], got {self.lr_final}")
        if not 0 <= self.time_reserve < 1:
            raise TrainConfigError(f"TrainConfig.time_reserve must be in [0, 1), got {self.time_reserve}")
        if self.num_workers < 0:
            raise TrainConfigError(f"TrainConfig.num_workers must be >= 0, got {self.num_workers}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise TrainConfigError(f"TrainConfig.ema_decay must be in (0, 1) or None, got "
                                   f"{self.ema_decay}: pass a decay such as 0.998 (--ema 0.998), "
                                   "or None (--ema 0) for no weight average")


@dataclass(frozen=True)
class Preset:
    """A named recipe: the training settings, the model and the size of the synthetic data.

    Attributes:
        name: the preset's name (``facegcn train --preset NAME``).
        description: one line for ``--help``.
        train: the training settings.
        model: the model's architecture.
        train_samples: synthetic training faces (one epoch).
        val_samples: held-out synthetic faces for the per-epoch validation NME.
        loss: the loss's weights (default: the paper's loss).
        glasses_prob: probability that a synthetic training face gets eyeglasses drawn on its
            crop (:mod:`facegcn_lib.data.glasses`); 0: none.
        loose_hair_prob: probability that a synthetic training face gets loose hair (a fringe,
            curtains) drawn over its crop (:mod:`facegcn_lib.data.loose_hair`); 0: none.
    """

    name: str
    description: str
    train: TrainConfig
    model: ModelConfig
    train_samples: int
    val_samples: int
    loss: LossConfig = field(default_factory=LossConfig)
    glasses_prob: float = 0.0
    loose_hair_prob: float = 0.0


#: The ``cpu`` preset's landmark-term weight (:class:`~facegcn_lib.config.LossConfig`): the 68
#: points weigh as much as the whole dense L1 (see the results page's programme).
CPU_LANDMARK_WEIGHT = 1.0

#: The ``cpu`` preset's probability of glasses on a training face
#: (:mod:`facegcn_lib.data.glasses`): with two seeds each, they lowered every real development
#: set on average (step "v8, glasses" of the book's results page).
CPU_GLASSES_PROB = 0.3

#: The presets of ``facegcn train``.
#:
#: * ``paper``: the paper's recipe for a GPU: ResNet-50 at 256 x 256, batch 50, 80 epochs, Adam
#:   1e-3 halved every 20 epochs, the ICT face mesh (the BFM mesh with ``--data 300w-lp``);
#:   50,000 new synthetic faces per epoch. Rendering them on the CPU (about 85 faces per second
#:   on 2 cores at 256 x 256, ``benchmarks/render.py``) bounds a GPU run: give it many
#:   data-loader workers, or render a cache first (``facegcn data synth``, ``--synth-cache``).
#: * ``cpu``: a model trained in at most 60 minutes on 2 CPU cores: MobileNetV3-Large at
#:   128 x 128 and the five-level ResGCN on the ICT face mesh, batch 32, float32, one data-loader worker
#:   rendering new faces (2,000 per epoch) while the main process trains. The run times its
#:   first steps and plans as many as fit 55 minutes, the learning rate falling along half a
#:   cosine over them to 0 (:class:`CosineDecayLR`: on the shipped model's cached faces it
#:   reached a held-out dense NME of 10.1 % where the paper's staircase reached 10.8 %, step
#:   "v7" of the book's results page), and validates on 256 held-out faces after each epoch. On the project's 2-core
#:   machine, quiet, ``benchmarks/training.py`` measured 23.8 samples/s with two torch threads
#:   and 24.2 with one (on a machine shared with other jobs one thread, ``OMP_NUM_THREADS=1``,
#:   has been up to 2.6 times faster): about 78,000 faces in 55 minutes. On cached faces
#:   (``facegcn data synth``, ``--synth-cache``; the shipped model's recipe) both cores train:
#:   3,485 steps of 32 in 49 minutes with the channels-last layout (``TrainConfig.channels_last``).
#:   Its loss adds the image-plane L1 term of the 68 landmarks (:data:`CPU_LANDMARK_WEIGHT`), and
#:   30 % of its training faces wear glasses (:data:`CPU_GLASSES_PROB`).
PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        description="the paper's recipe (ResNet-50, 256x256, batch 50, 80 epochs); for a GPU",
        train=TrainConfig(epochs=80, batch_size=50, num_workers=8, checkpoint_every=1000,
                          log_every=50, val_batch_size=100),
        model=ModelConfig(encoder=EncoderConfig(arch="resnet50", image_size=256)),
        train_samples=50_000,
        val_samples=500,
    ),
    "cpu": Preset(
        name="cpu",
        description="a useful model in at most 60 minutes on 2 CPU cores (MobileNetV3-Large, 128x128)",
        train=TrainConfig(epochs=100, batch_size=32, max_minutes=55.0, num_workers=1,
                          checkpoint_every=50, log_every=10, val_batch_size=32,
                          precision="fp32", lr_schedule="cosine"),
        model=ModelConfig(encoder=EncoderConfig(arch="mobilenet_v3_large", image_size=128),
                          mesh=MeshConfig(topology="ict-face", n_levels=5)),
        train_samples=2_000,
        val_samples=256,
        loss=LossConfig(landmark_weight=CPU_LANDMARK_WEIGHT),
        glasses_prob=CPU_GLASSES_PROB,
    ),
}


@dataclass(frozen=True)
class FitResult:
    """What :meth:`Trainer.fit` did.

    Attributes:
        steps: optimiser steps completed (over all resumed segments of the run).
        planned_steps: the steps the schedule was planned over.
        epochs_completed: whole epochs completed.
        train_loss: the mean training loss over the last logging interval.
        best_metric: the lowest validation metric seen (``None`` without validation).
        best_step: the step at which it was reached.
        last_checkpoint: the training checkpoint to resume from.
        best_checkpoint: the training checkpoint with the best validation metric.
        train_seconds: wall-clock seconds spent in the loop, resumed segments included.
        stopped_by_time: the time budget ended the run before the planned steps.
    """

    steps: int
    planned_steps: int
    epochs_completed: int
    train_loss: float
    best_metric: float | None
    best_step: int | None
    last_checkpoint: Path
    best_checkpoint: Path | None
    train_seconds: float
    stopped_by_time: bool


class StagedDecayLR(torch.optim.lr_scheduler.StepLR):
    """``lr = base_lr * gamma ** (step // step_size)``, in closed form.

    The same schedule as :class:`torch.optim.lr_scheduler.StepLR`, but computed from the step
    rather than from the previous learning rate, so ``step_size`` may be re-planned during the
    run (by a time budget) and a resumed run gets exactly the same rates.
    """

    def get_lr(self) -> list[float]:  # type: ignore[override]
        return [float(base) * self.gamma ** (self.last_epoch // self.step_size)
                for base in self.base_lrs]


class CosineDecayLR(torch.optim.lr_scheduler.LRScheduler):
    """``lr = base_lr * (f + (1 - f) * (1 + cos(pi * t / T)) / 2)``, ``t`` the step, ``T`` the plan.

    Half a cosine from the base rate down to ``final * base_lr`` (``f``) at step ``total_steps``,
    then flat (Loshchilov and Hutter, *SGDR: Stochastic Gradient Descent with Warm Restarts*,
    ICLR 2017, without the restarts). See :doc:`chapter 5 </chapters/05_training>`, which
    compares it with the staircase.
    Computed in closed form from the step, like :class:`StagedDecayLR`: ``total_steps`` may be
    re-planned during the run (by a time budget) and a resumed run gets exactly the same rates.

    Args:
        optimizer: the optimiser whose rates it sets.
        total_steps: ``T``, the planned optimiser steps.
        final: ``f``, the last rate as a fraction of the base rate, in [0, 1].
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total_steps: int,
                 final: float = 0.0) -> None:
        self.total_steps = total_steps
        self.final = final
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:  # type: ignore[override]
        t = min(self.last_epoch, self.total_steps) / max(1, self.total_steps)
        factor = self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * t))
        return [float(base) * factor for base in self.base_lrs]


def loss_terms(out: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The total loss of a loss callable's output, and every named term in it (see ``LossFn``)."""
    if isinstance(out, torch.Tensor):
        return out, {"loss": out}
    if hasattr(out, "_asdict"):  # a term that is None is absent (e.g. an unused optional one)
        terms = dict(out._asdict())
        total = out[0]
        return total, {"loss": total, **{k: v for k, v in terms.items()
                                         if v is not total and v is not None}}
    if isinstance(out, Mapping) and "total" in out:
        return out["total"], {"loss": out["total"],
                              **{k: v for k, v in out.items() if k != "total"}}
    raise TypeError(f"a loss callable must return a tensor, a NamedTuple or a mapping with "
                    f"'total'; got {type(out).__name__}")


def mean_vertex_error(pred: torch.Tensor, batch: Any, target_key: str = "verts") -> torch.Tensor:
    """Per-sample mean Euclidean distance between predicted and target points: (B,).

    The default validation metric when no normalised one is given.
    """
    target = batch[target_key] if isinstance(batch, Mapping) else batch[1]
    err: torch.Tensor = torch.linalg.vector_norm(pred - target.to(pred), dim=-1)
    return err.reshape(err.shape[0], -1).mean(dim=1)


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and Python in a data-loader worker from its PyTorch seed."""
    import random

    seed = torch.initial_seed()
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator is the one to seed
    random.seed(seed)


class Trainer:
    """Trains a model with Adam, a staged learning rate, mixed precision and exact resume.

    Under ``torchrun`` the trainer joins the process group itself (from the environment),
    wraps the model in DistributedDataParallel and gives each process its share of every
    global batch; only the main process writes files, and every process reads the checkpoint
    it resumes from, so ``out_dir`` must be on a file system all machines share.

    Files in ``out_dir``: ``checkpoints/last.pt`` (the latest training checkpoint, written
    atomically every ``checkpoint_every`` steps and at the end),
    ``checkpoints/best.pt`` (the one with the lowest validation metric), ``metrics.csv`` and
    ``tb/`` (TensorBoard).

    Args:
        model: maps a batch of inputs to predictions; moved to the chosen device.
        loss_fn: ``loss_fn(pred, target)`` (see ``LossFn``), computed in float32.
        train_set: a map-style dataset of dicts or ``(input, target)`` pairs. Its items should
            depend only on their index (randomness seeded by it) for a resumed run to see the
            same samples when data-loader workers are used. A dataset with an ``epoch_length``
            attribute smaller than its length (generated data) gives each epoch its own
            ``epoch_length`` samples (see :class:`~facegcn_lib.train.distributed.ShardedEpochSampler`).
        cfg: the training settings.
        out_dir: the run's folder (created).
        val_set: held-out samples, evaluated after every epoch; ``None`` skips validation.
        metric_fn: per-sample validation errors (default: :func:`mean_vertex_error`).
        metric_name: the validation metric's name in the logs (``val/<name>``).
        run_info: JSON-able facts stored in every checkpoint (e.g. the model config).
        callbacks: called with the trainer after every optimiser step (and its checkpoint).
    """

    def __init__(self, model: nn.Module, loss_fn: LossFn, train_set: Dataset[Any],
                 cfg: TrainConfig, out_dir: str | Path, *, val_set: Dataset[Any] | None = None,
                 metric_fn: MetricFn | None = None, metric_name: str = "error",
                 run_info: Mapping[str, Any] | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.cfg = cfg
        self.out_dir = Path(out_dir)
        self.device = pick_device(cfg.device, ddp.env_dist_info().local_rank)
        self.dist = ddp.init_from_env(self.device)
        self.precision = pick_precision(self.device, cfg.precision)
        if self.dist.is_distributed and self.device.type == "cuda" and cfg.sync_batchnorm:
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        self.model = model.to(self.device)
        self._layout = torch.channels_last if cfg.channels_last else torch.contiguous_format
        if cfg.channels_last:
            self.model.to(memory_format=torch.channels_last)  # only 4-D weights change layout
        self.net: nn.Module = self.model
        if self.dist.is_distributed:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if isinstance(loss_fn, nn.Module):  # e.g. a loss holding a sparse Laplacian buffer
            loss_fn.to(self.device)
        self.loss_fn = loss_fn
        self.train_set = train_set
        self.val_set = val_set
        self.metric_fn: MetricFn = metric_fn or (
            lambda pred, batch: mean_vertex_error(pred, batch, cfg.target_key))
        self.metric_name = metric_name
        self.run_info = dict(run_info or {})
        self.callbacks = list(callbacks)

        pool = len(train_set)  # type: ignore[arg-type]
        per_epoch = getattr(train_set, "epoch_length", None) or pool
        self.sampler = ddp.ShardedEpochSampler(per_epoch, cfg.batch_size, self.dist, cfg.seed,
                                               pool=pool)
        self.steps_per_epoch = self.sampler.batches_per_epoch
        self.planned_steps = self._initial_plan()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=cfg.betas,
                                          weight_decay=cfg.weight_decay)
        self.scheduler: StagedDecayLR | CosineDecayLR = (
            StagedDecayLR(self.optimizer, step_size=self._stage_length(), gamma=cfg.lr_decay)
            if cfg.lr_schedule == "staged"
            else CosineDecayLR(self.optimizer, self.planned_steps, cfg.lr_final))
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.precision.use_grad_scaler)
        self.ema = WeightAverage(self.model, cfg.ema_decay) if cfg.ema_decay is not None else None

        self.step = 0
        self.plan_fixed = cfg.max_minutes is None
        self.best_metric: float | None = None
        self.best_step: int | None = None
        self.validated_epochs = 0
        self.train_seconds = 0.0
        self.last_loss = math.nan
        self._stop_signal: int | None = None
        self.checkpoint_dir = self.out_dir / CHECKPOINT_DIR

    # --- planning ----------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        """The epoch the next step belongs to."""
        return self.step // self.steps_per_epoch

    @property
    def last_checkpoint(self) -> Path:
        """The path of the latest training checkpoint."""
        return self.checkpoint_dir / LAST_CHECKPOINT

    @property
    def best_checkpoint(self) -> Path:
        """The path of the training checkpoint with the best validation metric."""
        return self.checkpoint_dir / BEST_CHECKPOINT

    def _initial_plan(self) -> int:
        full = self.cfg.epochs * self.steps_per_epoch
        return min(full, self.cfg.max_steps) if self.cfg.max_steps is not None else full

    def _stage_length(self) -> int:
        return max(1, math.ceil(self.planned_steps / self.cfg.lr_stages))

    def _replan_for_time(self, seconds_per_step: float) -> None:
        """Plan as many steps as fit the time budget, and stretch the schedule over them."""
        assert self.cfg.max_minutes is not None
        budget = self.cfg.max_minutes * 60.0 * (1.0 - self.cfg.time_reserve)
        fit = self.step + int(max(0.0, budget - self.train_seconds) / max(seconds_per_step, 1e-9))
        planned = ddp.broadcast_object(max(self.step + 1, min(self.planned_steps, fit)), self.dist)
        if planned < self.planned_steps:
            log.info("time budget of %.1f min: %.3f s/step, planning %d steps instead of %d",
                     self.cfg.max_minutes, seconds_per_step, planned, self.planned_steps)
        self.planned_steps = int(planned)
        if isinstance(self.scheduler, CosineDecayLR):
            self.scheduler.total_steps = self.planned_steps
        else:
            self.scheduler.step_size = self._stage_length()
        self.plan_fixed = True

    # --- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The complete training state (call on every process: it gathers their RNG states)."""
        rngs = ddp.gather_objects(rng_state(), self.dist)
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.step % self.steps_per_epoch,
            "steps_per_epoch": self.steps_per_epoch,
            "planned_steps": self.planned_steps,
            "plan_fixed": self.plan_fixed,
            "world_size": self.dist.world_size,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": rngs,
            "best_metric": self.best_metric,
            "best_step": self.best_step,
            "validated_epochs": self.validated_epochs,
            "train_seconds": self.train_seconds,
            "train_config": asdict(self.cfg),
            "run_info": self.run_info,
        }

    def save_checkpoint(self, path: Path | None = None) -> Path:
        """Write the training state to ``path`` (default: ``last.pt``) from the main process."""
        path = path or self.last_checkpoint
        state = self.state_dict()
        if self.dist.is_main:
            atomic_torch_save(state, path)
            log.debug("saved %s at step %d", path, self.step)
        ddp.barrier(self.dist)
        return path

    def load_checkpoint(self, path: Path) -> None:
        """Continue from a training checkpoint (written by a run with the same settings)."""
        state = load_train_state(path)
        mine = asdict(self.cfg)
        before = asdict(TrainConfig())  # what a checkpoint older than a setting ran with
        for key in RESUME_MUST_MATCH:
            old = state["train_config"].get(key, before[key])
            if old != mine[key]:
                raise TrainConfigError(
                    f"cannot resume {path}: it was written with {key}={old!r}, this run has "
                    f"{key}={mine[key]!r}. Resume with the same settings, or train into a new --out.")
        if state["steps_per_epoch"] != self.steps_per_epoch:
            raise TrainConfigError(
                f"cannot resume {path}: it had {state['steps_per_epoch']} steps per epoch, this "
                f"dataset gives {self.steps_per_epoch}. Resume with the same data.")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])
        self.planned_steps = int(state["planned_steps"])
        self.plan_fixed = bool(state["plan_fixed"])
        self.best_metric = state["best_metric"]
        self.best_step = state["best_step"]
        self.validated_epochs = int(state["validated_epochs"])
        self.train_seconds = float(state["train_seconds"])
        rngs = state["rng"]
        if len(rngs) != self.dist.world_size:
            log.warning("the checkpoint was written by %d processes, this run has %d: the data "
                        "order is kept but random augmentations in the loop will differ",
                        len(rngs), self.dist.world_size)
        set_rng_state(rngs[self.dist.rank % len(rngs)])
        log.info("resumed %s at step %d (epoch %d, batch %d)", path, self.step, self.epoch,
                 self.step % self.steps_per_epoch)

    # --- data --------------------------------------------------------------------------------
    def _loader(self, dataset: Dataset[Any], sampler: Any, batch_size: int,
                generator: torch.Generator | None) -> DataLoader[Any]:
        workers = self.cfg.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=self.device.type == "cuda", drop_last=False,
                          worker_init_fn=_seed_worker if workers else None, generator=generator,
                          persistent_workers=False)

    def _split(self, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(batch, Mapping):
            x, y = batch[self.cfg.input_key], batch[self.cfg.target_key]
        else:
            x, y = batch[0], batch[1]
        nb = self.device.type == "cuda"
        x = x.to(self.device, non_blocking=nb)
        if x.ndim == 4:  # image batches
            x = x.contiguous(memory_format=self._layout)
        return x, y.to(self.device, non_blocking=nb)

    def _epoch_batches(self, epoch: int, start_batch: int) -> Iterator[Any]:
        self.sampler.set_position(epoch, start_batch)
        gen = torch.Generator().manual_seed(derive_seed(self.cfg.seed, epoch, 1))
        loader = self._loader(self.train_set, self.sampler, self.sampler.local_batch, gen)
        yield from loader

    # --- the loop ----------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> FitResult:
        """Train until the planned steps are done (or the time budget ends).

        Args:
            resume: continue from ``checkpoints/last.pt`` if it exists (a fresh run otherwise).

        Raises:
            NonFiniteLossError: the loss became NaN or infinite (after saving a checkpoint).
            TrainConfigError: the checkpoint was written with other settings.
        """
        with deterministic_mode(self.cfg.deterministic):
            seen = ddp.gather_objects(resume and self.last_checkpoint.exists(), self.dist)
            if any(seen) and not all(seen):
                raise TrainConfigError(
                    f"--resume: {self.last_checkpoint} exists for processes "
                    f"{[r for r, s in enumerate(seen) if s]} only: put --out on a file system "
                    "that every machine of the run shares.")
            resumed = all(seen)
            if resume and not resumed:
                log.warning("--resume: no checkpoint at %s, starting a new run", self.last_checkpoint)
            if resumed:
                self.load_checkpoint(self.last_checkpoint)
            else:
                seed_everything(derive_seed(self.cfg.seed, self.dist.rank, 2))
            writer = (MetricsWriter(self.out_dir, self.step if resumed else None,
                                    self.cfg.tensorboard) if self.dist.is_main else None)
            try:
                with self._stop_between_steps():
                    stopped = self._run(writer)
            finally:
                if writer is not None:
                    writer.close()
        return FitResult(
            steps=self.step, planned_steps=self.planned_steps,
            epochs_completed=self.step // self.steps_per_epoch, train_loss=self.last_loss,
            best_metric=self.best_metric, best_step=self.best_step,
            last_checkpoint=self.last_checkpoint,
            best_checkpoint=self.best_checkpoint if self.best_metric is not None else None,
            train_seconds=self.train_seconds, stopped_by_time=stopped)

    @contextlib.contextmanager
    def _stop_between_steps(self) -> Iterator[None]:
        """Turn Ctrl-C and SIGTERM into a clean stop after the current step (one process only).

        The run saves its checkpoint and raises :class:`KeyboardInterrupt`; a second signal stops
        at once. Under ``torchrun`` the processes could not agree on the step, so signals keep
        their usual effect there (the periodic checkpoints remain).
        """
        self._stop_signal = None
        if self.dist.is_distributed or threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: object) -> None:
            if self._stop_signal is not None:
                raise KeyboardInterrupt
            self._stop_signal = signum
            log.warning("signal %d: stopping after this step (send it again to stop at once)",
                        signum)

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _run(self, writer: MetricsWriter | None) -> bool:
        from tqdm.auto import tqdm

        cfg = self.cfg
        bar = tqdm(total=self.planned_steps, initial=self.step, unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and self.dist.is_main), desc="train")
        # An interrupted run may have ended an epoch without validating it.
        if self.validated_epochs < self.step // self.steps_per_epoch:
            self._validate_and_keep_best(writer)
        calib_start: tuple[int, float] | None = None
        interval_loss: list[torch.Tensor] = []
        interval_terms: dict[str, list[torch.Tensor]] = {}
        interval_start = (self.step, time.perf_counter())
        stopped_by_time = False
        seg_start = time.perf_counter()
        seconds_before = self.train_seconds
        self.net.train()
        while self.step < self.planned_steps and not stopped_by_time:
            epoch, start = self.epoch, self.step % self.steps_per_epoch
            for batch_idx, batch in enumerate(self._epoch_batches(epoch, start), start=start):
                terms = self._train_step(batch, epoch, batch_idx)
                interval_loss.append(terms["loss"])
                for k, v in terms.items():
                    interval_terms.setdefault(k, []).append(v)
                self.step += 1
                self.train_seconds = seconds_before + time.perf_counter() - seg_start
                bar.update(1)

                if not self.plan_fixed:
                    if calib_start is None:  # the first step (warm-up) is not timed
                        calib_start = (self.step, time.perf_counter())
                    elif self.step - calib_start[0] >= cfg.calibration_steps:
                        per_step = (time.perf_counter() - calib_start[1]) / (self.step - calib_start[0])
                        self._replan_for_time(per_step)
                        bar.total = self.planned_steps
                        bar.refresh()
                if self.step % cfg.log_every == 0 or self.step == self.planned_steps:
                    self.last_loss = float(torch.stack(interval_loss).mean())
                    n, t = self.step - interval_start[0], time.perf_counter() - interval_start[1]
                    values = {f"train/{k}": float(torch.stack(v).mean())
                              for k, v in interval_terms.items()}
                    values["train/lr"] = float(self.scheduler.get_last_lr()[0])
                    values["train/samples_per_second"] = n * cfg.batch_size / max(t, 1e-9)
                    if writer is not None:
                        writer.scalars(self.step, epoch, values)
                    bar.set_postfix(loss=f"{self.last_loss:.4g}", lr=f"{values['train/lr']:.2g}")
                    interval_loss, interval_terms = [], {}
                    interval_start = (self.step, time.perf_counter())
                epoch_done = self.step % self.steps_per_epoch == 0
                if cfg.max_minutes is not None and self.step % cfg.log_every == 0:
                    stopped_by_time = bool(ddp.broadcast_object(
                        self.train_seconds >= cfg.max_minutes * 60.0, self.dist))
                finished = self.step >= self.planned_steps or stopped_by_time
                if finished or epoch_done:
                    self._validate_and_keep_best(writer, final=finished and not epoch_done)
                if self.step % cfg.checkpoint_every == 0 or finished:
                    self.save_checkpoint()
                for callback in self.callbacks:
                    callback(self)
                if self._stop_signal is not None and not finished:
                    bar.close()
                    path = self.save_checkpoint()
                    log.warning("stopped by signal %d after step %d; the state is saved in %s: "
                                "continue with --resume", self._stop_signal, self.step, path)
                    raise KeyboardInterrupt
                if finished:
                    break
        bar.close()
        if stopped_by_time:
            log.info("time budget of %.1f min reached at step %d of %d", cfg.max_minutes,
                     self.step, self.planned_steps)
        return stopped_by_time

    def _train_step(self, batch: Any, epoch: int, batch_idx: int) -> dict[str, torch.Tensor]:
        """One optimiser step; returns the detached loss terms (averaged over processes)."""
        x, y = self._split(batch)
        with self.precision.autocast(self.device):
            pred = self.net(x)
        total, terms = loss_terms(self.loss_fn(pred.float(), y))
        detached = torch.stack([t.detach().float() for t in terms.values()])
        detached = ddp.all_reduce_sum(detached, self.dist) / self.dist.world_size
        if not bool(torch.isfinite(detached[0])):
            self._non_finite(float(detached[0]), epoch, batch_idx)
        self.scaler.scale(total).backward()
        if self.cfg.grad_clip_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return dict(zip(terms, detached.cpu(), strict=True))

    def _non_finite(self, value: float, epoch: int, batch_idx: int) -> None:
        """Save the state before the failing step and raise a :class:`NonFiniteLossError`."""
        order = self.sampler.epoch_order(epoch)
        g = self.cfg.batch_size
        samples = order[batch_idx * g:(batch_idx + 1) * g].tolist()
        shown = ", ".join(map(str, samples[:8])) + (", ..." if len(samples) > 8 else "")
        path = self.save_checkpoint()
        raise NonFiniteLossError(
            f"the loss is {value} at step {self.step} (epoch {epoch}, batch {batch_idx} of "
            f"{self.steps_per_epoch} in the epoch; dataset indices [{shown}]). The state before "
            f"this step is saved in {path}. Check those samples, lower the learning rate or use "
            "--precision fp32, then continue with --resume.")

    # --- validation --------------------------------------------------------------------------
    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and exported: the average if there is one."""
        return self.ema.module if self.ema is not None else self.model

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """The validation loss and metric (of :attr:`eval_model`), averaged over every held-out sample."""
        assert self.val_set is not None
        n = len(self.val_set)  # type: ignore[arg-type]
        sampler = ddp.ShardSampler(n, self.dist)
        per_process = max(1, self.cfg.val_batch_size // self.dist.world_size)
        loader = self._loader(self.val_set, sampler, per_process, None)
        sums = torch.zeros(3, dtype=torch.float64)  # loss * count, metric sum, count
        was_training = self.net.training
        self.net.eval()
        from tqdm.auto import tqdm

        for batch in tqdm(loader, desc="validate", leave=False, unit="batch",
                          disable=not (self.cfg.progress and self.dist.is_main)):
            x, y = self._split(batch)
            with self.precision.autocast(self.device):
                pred = self.eval_model(x)
            pred = pred.float()
            total, _ = loss_terms(self.loss_fn(pred, y))
            errors = self.metric_fn(pred, batch).detach().double().cpu()
            sums += torch.stack([total.detach().double().cpu() * len(errors), errors.sum(),
                                 torch.tensor(float(len(errors)), dtype=torch.float64)])
        self.net.train(was_training)
        sums = ddp.all_reduce_sum(sums.to(self.device) if self.device.type == "cuda" else sums,
                                  self.dist).cpu()
        count = max(float(sums[2]), 1.0)
        return {"loss": float(sums[0]) / count, self.metric_name: float(sums[1]) / count}

    def _validate_and_keep_best(self, writer: MetricsWriter | None, final: bool = False) -> None:
        """Validate (if there is a validation set) and save ``best.pt`` on improvement."""
        if not final:
            self.validated_epochs = self.step // self.steps_per_epoch
        if self.val_set is None:
            return
        result = self.evaluate()
        metric = result[self.metric_name]
        if writer is not None:
            writer.scalars(self.step, max(0, self.epoch - (0 if final else 1)),
                           {f"val/{k}": v for k, v in result.items()})
        log.info("step %d: validation %s %.5g, loss %.5g", self.step, self.metric_name, metric,
                 result["loss"])
        if self.best_metric is None or metric < self.best_metric:
            self.best_metric, self.best_step = metric, self.step
            self.save_checkpoint(self.best_checkpoint)
