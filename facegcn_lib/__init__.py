"""facegcn: 3D dense face alignment with graph convolutions over a mesh pyramid.

The public API is re-exported here and imported lazily, so that ``import facegcn_lib`` stays
fast (torch and friends load on first use).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from facegcn_lib._version import __version__

#: public name -> module that defines it
_LAZY: dict[str, str] = {
    "data_dir": "facegcn_lib.paths",
    "cache_dir": "facegcn_lib.paths",
    "require": "facegcn_lib.paths",
    "DataMissingError": "facegcn_lib.paths",
    "load_bfm_mean": "facegcn_lib.morphable.bfm",
    "load_ict_neutral": "facegcn_lib.morphable.ict",
    "TemplateMesh": "facegcn_lib.morphable.bfm",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.morphable.bfm import TemplateMesh, load_bfm_mean
    from facegcn_lib.morphable.ict import load_ict_neutral
    from facegcn_lib.paths import DataMissingError, cache_dir, data_dir, require


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facegcn_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
