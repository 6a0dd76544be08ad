"""Pick the compute device and its mixed-precision mode; seed and make runs deterministic.

One training loop runs unchanged on CUDA, Apple MPS and the CPU: :func:`pick_device` chooses
the device, :func:`pick_precision` the autocast dtype (bfloat16 where the hardware has it,
float16 with a gradient scaler otherwise, float32 on the CPU unless asked), and
:func:`deterministic_mode` switches PyTorch to its deterministic kernels for the duration of
a run. See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

DeviceName = Literal["auto", "cuda", "mps", "cpu"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]

_CUBLAS_ENV = "CUBLAS_WORKSPACE_CONFIG"
_CUBLAS_DETERMINISTIC = ":4096:8"


class DeviceUnavailableError(ValueError):
    """The requested device or precision does not exist on this machine."""


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """The device to train on.

    Args:
        name: ``"auto"`` (CUDA, else Apple MPS, else CPU), ``"cuda"``, ``"mps"`` or ``"cpu"``.
        local_rank: this process's GPU index on its machine (from ``torchrun``; 0 otherwise).

    Raises:
        DeviceUnavailableError: the device named is not available here.
    """
    mps_ok = torch.backends.mps.is_available()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if mps_ok else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailableError("CUDA was requested but no CUDA GPU is visible: "
                                         "use --device cpu (or auto).")
        if local_rank >= torch.cuda.device_count():
            raise DeviceUnavailableError(
                f"local rank {local_rank} has no GPU ({torch.cuda.device_count()} visible): "
                "launch at most one process per GPU (torchrun --nproc_per_node).")
        return torch.device("cuda", local_rank)
    if name == "mps":
        if not mps_ok:
            raise DeviceUnavailableError("Apple MPS was requested but is not available: "
                                         "use --device cpu (or auto).")
        return torch.device("mps")
    if name == "cpu":
        return torch.device("cpu")
    raise DeviceUnavailableError(f"unknown device '{name}': use auto, cuda, mps or cpu.")


@dataclass(frozen=True)
class PrecisionPlan:
    """How one device runs the forward pass: the autocast dtype and whether to scale gradients.

    Attributes:
        name: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        autocast_dtype: the dtype of autocast regions, or ``None`` for plain float32.
        use_grad_scaler: float16 needs a dynamic loss scale so small gradients do not underflow.
    """

    name: Literal["fp32", "bf16", "fp16"]
    autocast_dtype: torch.dtype | None
    use_grad_scaler: bool

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """The autocast context of this plan on ``device`` (a no-op for float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def pick_precision(device: torch.device, precision: str = "auto") -> PrecisionPlan:
    """The mixed-precision plan for ``device``.

    ``"auto"`` gives bfloat16 on GPUs that support it (Ampere and later), float16 with a
    gradient scaler on older GPUs and on MPS, and float32 on the CPU (most CPUs have no fast
    bfloat16 and would run slower). An explicit ``"bf16"``/``"fp16"``/``"fp32"`` is obeyed.

    Raises:
        DeviceUnavailableError: the precision is unknown or bfloat16 is unsupported here.
    """
    if precision == "auto":
        if device.type == "cuda":
            precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        elif device.type == "mps":
            precision = "fp16"
        else:
            precision = "fp32"
    if precision == "fp32":
        return PrecisionPlan("fp32", None, False)
    if precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise DeviceUnavailableError("this GPU has no bfloat16: use --precision fp16.")
        return PrecisionPlan("bf16", torch.bfloat16, False)
    if precision == "fp16":
        return PrecisionPlan("fp16", torch.float16, device.type != "cpu")
    raise DeviceUnavailableError(f"unknown precision '{precision}': use auto, fp32, bf16 or fp16.")


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's (all devices) global random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - the global generator is the one to seed
    torch.manual_seed(seed)


def derive_seed(*parts: int) -> int:
    """A 63-bit seed that depends on every integer in ``parts`` (e.g. ``(seed, epoch)``)."""
    state = np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1, np.uint64)
    return int(state[0]) & (2**63 - 1)


@contextlib.contextmanager
def deterministic_mode(enabled: bool) -> Iterator[None]:
    """Use deterministic kernels inside the block (and restore the previous settings after).

    Deterministic mode makes a run repeat bit for bit on the same machine, software and number
    of threads, at some cost in speed on GPUs. It sets ``torch.use_deterministic_algorithms``,
    disables the cuDNN autotuner and sets ``CUBLAS_WORKSPACE_CONFIG`` as cuBLAS requires.
    """
    if not enabled:
        yield
        return
    prev_alg = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    prev_bench = torch.backends.cudnn.benchmark
    prev_cudnn = torch.backends.cudnn.deterministic
    prev_env = os.environ.get(_CUBLAS_ENV)
    os.environ.setdefault(_CUBLAS_ENV, _CUBLAS_DETERMINISTIC)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev_alg, warn_only=prev_warn)
        torch.backends.cudnn.benchmark = prev_bench
        torch.backends.cudnn.deterministic = prev_cudnn
        if prev_env is None:
            os.environ.pop(_CUBLAS_ENV, None)
