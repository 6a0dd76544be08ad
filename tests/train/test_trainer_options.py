"""Trainer options the loop tests leave alone: clipping, loader workers, layout, TensorBoard.

Gradient clipping, data-loader worker processes, the channels-last memory layout, and the
TensorBoard log next to ``metrics.csv`` (both kept consistent across a resume).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from facegcn_lib.train.metrics_writer import MetricsWriter, read_metrics
from facegcn_lib.train.trainer import Trainer
from tests.train.tiny import DictFaces, config, l1, make_model

pytestmark = pytest.mark.usefixtures("one_thread")


def _grad_norm(params: Any) -> float:
    grads = [p.grad.detach().flatten() for p in params if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.cat(grads)))


@pytest.mark.parametrize("max_norm", [1e-3, None])
def test_gradients_are_clipped_to_the_configured_norm(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, max_norm: float | None) -> None:
    original = torch.nn.utils.clip_grad_norm_
    seen: list[tuple[float, float, float]] = []  # (max_norm, norm before, norm after)

    def recording(params: Any, max_norm: float, *args: Any, **kwargs: Any) -> torch.Tensor:
        params = list(params)
        before = original(params, max_norm, *args, **kwargs)
        seen.append((max_norm, float(before), _grad_norm(params)))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording)
    Trainer(make_model(), l1, DictFaces(24), config(epochs=1, grad_clip_norm=max_norm),
            tmp_path).fit()
    if max_norm is None:
        assert seen == []
        return
    assert len(seen) == 6  # every step (24 samples, batch 4)
    assert all(m == max_norm for m, _, _ in seen)
    assert all(before > max_norm for _, before, _ in seen)  # the threshold was binding
    assert all(after == pytest.approx(max_norm, rel=1e-4) for _, _, after in seen)


def test_data_loader_workers_change_nothing_but_the_speed(tmp_path: Path) -> None:
    """Samples depend on their index only, so a worker process loads the same batches."""
    weights = []
    for workers in (0, 1):
        trainer = Trainer(make_model(), l1, DictFaces(24), config(num_workers=workers),
                          tmp_path / f"w{workers}", val_set=DictFaces(8, seed=1))
        trainer.fit()
        weights.append(trainer.model.state_dict())
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_channels_last_reaches_the_convolutions_and_changes_only_the_layout(
        tmp_path: Path) -> None:
    """The 4-D weights and the image batches are NHWC; the trained weights match NCHW's."""
    seen: list[torch.Tensor] = []
    weights = []
    for channels_last in (False, True):
        model = make_model(dropout=0.0)
        hook = model.conv.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
        trainer = Trainer(model, l1, DictFaces(24), config(epochs=1, channels_last=channels_last),
                          tmp_path / str(channels_last))
        trainer.fit()
        hook.remove()
        layout = torch.channels_last if channels_last else torch.contiguous_format
        assert model.conv.weight.is_contiguous(memory_format=layout)
        assert seen[-1].is_contiguous(memory_format=layout) and seen[-1].ndim == 4
        weights.append(model.state_dict())
    assert not seen[0].is_contiguous(memory_format=torch.channels_last)  # NCHW differs
    for k in weights[0]:  # the same arithmetic, summed in another order
        torch.testing.assert_close(weights[1][k], weights[0][k], rtol=1e-4, atol=1e-5)


def test_tensorboard_and_csv_logs_drop_the_steps_after_the_resumed_checkpoint(
        tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    with MetricsWriter(tmp_path) as w:  # the interrupted run logged steps 1-5
        for step in range(1, 6):
            w.scalars(step, 0, {"train/loss": float(step)})
    with MetricsWriter(tmp_path, resume_step=3) as w:  # resumed from its step-3 checkpoint
        w.scalars(4, 0, {"train/loss": 40.0})
    assert read_metrics(tmp_path / "metrics.csv")["train/loss"] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
        (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_the_trainer_writes_tensorboard_events(tmp_path: Path) -> None:
    Trainer(make_model(), l1, DictFaces(24), config(epochs=1, tensorboard=True), tmp_path,
            val_set=DictFaces(8, seed=1)).fit()
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert set(read_metrics(tmp_path / "metrics.csv")) >= {"train/loss", "train/lr", "val/error"}
