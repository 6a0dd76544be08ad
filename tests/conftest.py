"""Shared pytest fixtures: the data directory and a private cache directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from facegcn_lib.paths import DATA_ENV, data_dir


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data directory (``$FACEGCN_DATA``); fails loudly when it is not set up."""
    root = data_dir()
    if not (root / "bfm-mean-3ddfa").is_dir():
        pytest.fail(f"the data directory {root} is empty: set {DATA_ENV} (CI uses ../shared/data) "
                    "or run `facegcn data download`")
    return root


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One intra-op thread: on a shared machine two threads wait on each other far too often.

    Use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained model checkpoint (see ``tests/tiny_reconstructor.py``), made once."""
    from tests.tiny_reconstructor import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("model"))
