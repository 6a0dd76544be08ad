"""Fixtures for the network tests (see :mod:`tests.nn.tiny_mesh`)."""

from __future__ import annotations

import pytest

from facegcn_lib.nn.target_mesh import TargetMesh
from tests.nn.tiny_mesh import make_tiny_target


@pytest.fixture(scope="session")
def tiny_target() -> TargetMesh:
    """The tiny mesh with its pyramid, registered as a topology (so checkpoints rebuild it)."""
    return make_tiny_target()


@pytest.fixture(autouse=True)
def _nn_one_thread(one_thread: None) -> None:
    """Every test of tests/nn runs with the shared ``one_thread`` fixture (tests/conftest.py)."""
