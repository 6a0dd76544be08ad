"""Frozen dataclass configurations shared across the library (no magic numbers elsewhere).

Each subsystem's config lives in its own section below; a config is saved inside every
checkpoint and cache key, so it must stay a plain frozen dataclass of simple values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config as a plain dict (for JSON, checkpoints and cache keys)."""
    return asdict(cfg)


@dataclass(frozen=True)
class DownloadConfig:
    """How ``facegcn data download`` talks to the network."""

    retries: int = 4
    timeout_s: float = 60.0


# --- mesh (graph, decimation, pyramid) ---------------------------------------------------

# --- morphable models and synthetic data ---------------------------------------------------

# --- networks -------------------------------------------------------------------------------

# --- training ------------------------------------------------------------------------------
