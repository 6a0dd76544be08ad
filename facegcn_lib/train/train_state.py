"""The complete state of a training run on disk: atomic saves and the random generators.

A training checkpoint (``<out>/checkpoints/last.pt``) holds everything a resumed run needs to
continue exactly as if it had never stopped: the model, optimiser, scheduler and gradient
scaler, the step and the random generators of every process (PyTorch CPU and GPU, NumPy,
Python). The data order needs no saved state: it is a function of the seed and the epoch
(:class:`facegcn_lib.train.distributed.ShardedEpochSampler`). Files are written to a temporary
name in the same folder, flushed to disk and renamed over the old file, so a run killed at any
moment leaves either the old or the new checkpoint, never a torn one. Everything is stored as
tensors and plain Python values, so it loads with ``torch.load(weights_only=True)``.

This is the *training* state; the model files for inference (weights and model config) are
written by :mod:`facegcn_lib.train.checkpoint`. See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

STATE_FORMAT = "facegcn-train-state"
STATE_VERSION = 1


class TrainStateError(ValueError):
    """A training checkpoint is unreadable or belongs to a different run."""


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save(obj, path)`` so that ``path`` is always either the old or the new file.

    Writes ``<path>.tmp-<pid>`` in the same folder, flushes it to disk, renames it over
    ``path`` (an atomic operation on POSIX and Windows) and flushes the folder entry.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse
        pass
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """This process's random generator states, as tensors and plain Python values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state(legacy=True)  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": (str(kind), [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)),
        "python": _py_state_to_plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    if hasattr(torch, "mps") and torch.backends.mps.is_available():
        state["mps"] = torch.mps.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state(  # noqa: NPY002 - the global generator's state is what we restore
        (kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_py_state_from_plain(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "mps" in state and torch.backends.mps.is_available():
        torch.mps.set_rng_state(state["mps"])


def _py_state_to_plain(state: tuple[Any, ...]) -> list[Any]:
    version, internal, gauss = state
    return [int(version), [int(v) for v in internal], gauss]


def _py_state_from_plain(plain: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = plain
    return (int(version), tuple(int(v) for v in internal), gauss)


def load_train_state(path: Path) -> dict[str, Any]:
    """Read a training checkpoint written by the trainer.

    Raises:
        TrainStateError: the file is not a facegcn training checkpoint of a known version.
    """
    try:
        state = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as err:
        raise TrainStateError(f"cannot read the training checkpoint {path}: {err}. Delete it "
                              "(and resume from an older copy) or start without --resume.") from err
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise TrainStateError(f"{path} is not a facegcn training checkpoint (a model file for "
                              "inference cannot be resumed; start without --resume).")
    if state.get("version") != STATE_VERSION:
        raise TrainStateError(f"{path} has training-state version {state.get('version')}; "
                              f"this facegcn reads version {STATE_VERSION}.")
    return state
