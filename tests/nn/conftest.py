"""Fixtures for the network tests (see :mod:`tests.nn.tiny_mesh`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from facegcn_lib.nn.target_mesh import TargetMesh
from tests.nn.tiny_mesh import make_tiny_target


@pytest.fixture(scope="session")
def tiny_target() -> TargetMesh:
    """The tiny mesh with its pyramid, registered as a topology (so checkpoints rebuild it)."""
    return make_tiny_target()


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared machine two threads wait on each other far too often."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
