"""Shared pytest fixtures: the data directory and a private cache directory."""

from __future__ import annotations

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
