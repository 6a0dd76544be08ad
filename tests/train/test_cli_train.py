"""``facegcn train``: options reach the trainer, errors become exit codes and clear messages."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from facegcn_lib import cli
from facegcn_lib.train import build
from facegcn_lib.train.build import TrainingSetup
from facegcn_lib.train.trainer import PRESETS
from tests.train.test_trainer import NaNAtStep
from tests.train.tiny import DictFaces, l1, make_model


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Replace the preset glue by the tiny model; record its arguments."""
    seen: list[dict[str, Any]] = []

    def fake_build(preset: str, **kw: Any) -> TrainingSetup:
        from dataclasses import replace

        seen.append({"preset": preset, **kw})
        p = PRESETS[preset]
        cfg = replace(p.train, **kw["train_overrides"])
        loss = NaNAtStep(1) if kw.get("decoder") == "3dmm" else l1  # a hook for the NaN case
        return TrainingSetup(p, cfg, make_model(), loss, DictFaces(16), DictFaces(4, seed=1),
                             lambda pred, batch: (pred - batch["verts"]).abs().mean((1, 2)))

    monkeypatch.setattr(build, "build_from_preset", fake_build)
    monkeypatch.setattr(build, "export_models", lambda setup, result, out: {})
    return seen


def _train(tmp_path: Path, *extra: str) -> int:
    return cli.main(["train", "--preset", "cpu", "--out", str(tmp_path), "--batch-size", "4",
                     "--workers", "0", "--device", "cpu", "--quiet", "--no-tensorboard",
                     "--max-minutes", "0", *extra])


def test_train_passes_the_options_and_writes_a_run(tmp_path: Path, calls: list[dict[str, Any]],
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--epochs", "2", "--lr", "0.01", "--seed", "3") == cli.EXIT_OK
    overrides = calls[0]["train_overrides"]
    assert overrides["epochs"] == 2 and overrides["lr"] == 0.01 and overrides["seed"] == 3
    assert overrides["num_workers"] == 0 and overrides["max_minutes"] is None
    assert overrides["progress"] is False and overrides["tensorboard"] is False
    assert calls[0]["data"] == "synthetic"
    assert (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "metrics.csv").is_file()
    assert "8 steps of 8" in capsys.readouterr().out
    assert "channels_last" not in overrides  # the preset's default (on)
    assert "lr_schedule" not in overrides  # the preset's


def test_train_keeps_freed_memory_before_building(tmp_path: Path, calls: list[dict[str, Any]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from facegcn_lib.train import allocator

    order: list[str] = []
    monkeypatch.setattr(allocator, "keep_freed_memory", lambda: order.append("malloc") or True)
    real_build = build.build_from_preset
    monkeypatch.setattr(build, "build_from_preset",
                        lambda *a, **kw: order.append("build") or real_build(*a, **kw))
    assert _train(tmp_path, "--epochs", "1") == cli.EXIT_OK
    assert order == ["malloc", "build"]


def test_no_channels_last_reaches_the_training_config(tmp_path: Path,
                                                      calls: list[dict[str, Any]]) -> None:
    assert _train(tmp_path, "--epochs", "1", "--no-channels-last") == cli.EXIT_OK
    assert calls[0]["train_overrides"]["channels_last"] is False


def test_lr_schedule_reaches_the_training_config(tmp_path: Path,
                                                calls: list[dict[str, Any]]) -> None:
    assert _train(tmp_path, "--epochs", "1", "--lr-schedule", "cosine") == cli.EXIT_OK
    assert calls[0]["train_overrides"]["lr_schedule"] == "cosine"


def test_glasses_reaches_the_preset_glue(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    assert _train(tmp_path / "a", "--epochs", "1") == cli.EXIT_OK
    assert calls[0]["glasses"] is None  # the preset's
    assert _train(tmp_path / "b", "--epochs", "1", "--glasses", "0.3") == cli.EXIT_OK
    assert calls[1]["glasses"] == 0.3


def test_pooling_reaches_the_preset_glue(tmp_path: Path, calls: list[dict[str, Any]],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "a", "--epochs", "1") == cli.EXIT_OK
    assert calls[0]["pooling"] is None  # the preset's
    assert _train(tmp_path / "b", "--epochs", "1", "--pooling", "moments") == cli.EXIT_OK
    assert calls[1]["pooling"] == "moments"
    with pytest.raises(SystemExit):
        _train(tmp_path / "c", "--pooling", "max")
    assert "invalid choice" in capsys.readouterr().err


def test_loose_hair_reaches_the_preset_glue(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    assert _train(tmp_path / "a", "--epochs", "1") == cli.EXIT_OK
    assert calls[0]["loose_hair"] is None  # the preset's
    assert _train(tmp_path / "b", "--epochs", "1", "--loose-hair", "0.3") == cli.EXIT_OK
    assert calls[1]["loose_hair"] == 0.3


def test_loose_hair_that_is_no_probability_exits_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--loose-hair", "1.5") == cli.EXIT_USAGE
    assert "a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_glasses_that_is_no_probability_exits_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--glasses", "2") == cli.EXIT_USAGE
    assert "a number in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_ema_reaches_the_training_config(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    assert _train(tmp_path / "a", "--epochs", "1") == cli.EXIT_OK
    assert "ema_decay" not in calls[0]["train_overrides"]  # the preset's
    assert _train(tmp_path / "b", "--epochs", "1", "--ema", "0.998") == cli.EXIT_OK
    assert calls[1]["train_overrides"]["ema_decay"] == 0.998
    assert _train(tmp_path / "c", "--epochs", "1", "--ema", "0") == cli.EXIT_OK
    assert calls[2]["train_overrides"]["ema_decay"] is None


@pytest.mark.parametrize("decay", ["1", "1.5", "-0.2"])
def test_ema_that_is_no_decay_exits_with_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], calls: list[dict[str, Any]],
        decay: str) -> None:
    assert _train(tmp_path, "--ema", decay) == cli.EXIT_USAGE
    assert "--ema 0.998" in capsys.readouterr().err
    assert not (tmp_path / "checkpoints").exists()


def test_lr_schedule_choices_are_the_trainers() -> None:
    from facegcn_lib.train.trainer import LR_SCHEDULES

    train = next(a for a in cli.build_parser()._subparsers._group_actions[0].choices["train"]._actions
                 if a.dest == "lr_schedule")
    assert tuple(train.choices) == LR_SCHEDULES  # the CLI lists what the trainer accepts


def test_resume_with_other_settings_fails_clearly(tmp_path: Path, calls: list[dict[str, Any]],
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--epochs", "1") == cli.EXIT_OK
    assert _train(tmp_path, "--epochs", "1", "--resume") == cli.EXIT_OK  # nothing left to do
    assert _train(tmp_path, "--epochs", "3", "--resume") == cli.EXIT_FAILURE
    assert "written with epochs=1" in capsys.readouterr().err


def test_nan_loss_exits_with_the_step(tmp_path: Path, calls: list[dict[str, Any]],
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--decoder", "3dmm") == cli.EXIT_FAILURE
    assert "the loss is nan at step 1 (epoch 0, batch 1 of 4" in capsys.readouterr().err


def test_300w_lp_without_bfm_exits_with_what_to_do(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path, "--data", "300w-lp") == cli.EXIT_FAILURE
    assert "--bfm PATH" in capsys.readouterr().err
