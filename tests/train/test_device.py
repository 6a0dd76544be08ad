"""Device and precision choice, seeding, deterministic mode."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from facegcn_lib.train.device import (
    DeviceUnavailableError,
    derive_seed,
    deterministic_mode,
    pick_device,
    pick_precision,
    seed_everything,
)


def test_cpu_is_always_available_and_missing_devices_fail_clearly() -> None:
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="--device cpu"):
            pick_device("cuda")
    with pytest.raises(DeviceUnavailableError, match="unknown device"):
        pick_device("tpu")


def test_precision_plans() -> None:
    cpu = torch.device("cpu")
    assert pick_precision(cpu).autocast_dtype is None  # auto: float32 on CPUs
    bf16 = pick_precision(cpu, "bf16")
    assert bf16.autocast_dtype == torch.bfloat16 and not bf16.use_grad_scaler
    with bf16.autocast(cpu):
        assert torch.nn.Linear(4, 4)(torch.ones(1, 4)).dtype == torch.bfloat16
    assert pick_precision(torch.device("cuda", 0), "fp16").use_grad_scaler
    with pytest.raises(DeviceUnavailableError, match="unknown precision"):
        pick_precision(cpu, "fp8")


def test_seeding_and_derived_seeds() -> None:
    seed_everything(7)
    a = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    seed_everything(7)
    assert a == (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    assert derive_seed(1, 2) == derive_seed(1, 2) != derive_seed(2, 1)
    assert 0 <= derive_seed(123, 456) < 2**63


def test_deterministic_mode_restores_the_previous_settings() -> None:
    before = torch.are_deterministic_algorithms_enabled()
    with deterministic_mode(True):
        assert torch.are_deterministic_algorithms_enabled()
    assert torch.are_deterministic_algorithms_enabled() == before
