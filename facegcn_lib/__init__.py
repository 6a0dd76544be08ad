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
    # morphable models and geometry (issue 6)
    "MorphableModel": "facegcn_lib.morphable.model",
    "load_ict_model": "facegcn_lib.morphable.ict",
    "load_bfm2009": "facegcn_lib.morphable.bfm",
    "load_bfm_mean_model": "facegcn_lib.morphable.bfm",
    "euler_to_rotation": "facegcn_lib.geometry.rotations",
    "rotation_to_euler": "facegcn_lib.geometry.rotations",
    "umeyama": "facegcn_lib.geometry.umeyama",
    "pose_from_mesh": "facegcn_lib.geometry.umeyama",
    # real datasets, image loading, crop and augmentation (issue 6)
    "AFLW2000": "facegcn_lib.data.aflw2000",
    "W300LP": "facegcn_lib.data.w300lp",
    "Faces68": "facegcn_lib.data.faces68",
    "load_image": "facegcn_lib.data.images",
    "CropAndAugment": "facegcn_lib.data.crop",
    # synthetic faces and the renderer (issue 6)
    "SyntheticFaces": "facegcn_lib.data.synth",
    "SynthConfig": "facegcn_lib.data.synth",
    "SynthCache": "facegcn_lib.data.synth_cache",
    "rasterize": "facegcn_lib.render.raster",
    # the networks: encoders, ResGCN decoder, baselines, checkpoints, export (issue 7)
    "ModelConfig": "facegcn_lib.config",
    "FaceGCN": "facegcn_lib.nn.model",
    "build_model": "facegcn_lib.nn.model",
    "save_checkpoint": "facegcn_lib.train.checkpoint",
    "load_checkpoint": "facegcn_lib.train.checkpoint",
    "export_onnx": "facegcn_lib.nn.export",
    # photo in, 3D faces out (issue 10)
    "reconstruct": "facegcn_lib.pipeline",
    "Reconstructor": "facegcn_lib.pipeline",
    "load_pretrained": "facegcn_lib.pipeline",
    "Face": "facegcn_lib.face",
}

__all__ = ["__version__", *sorted(_LAZY)]

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.config import ModelConfig
    from facegcn_lib.data.aflw2000 import AFLW2000
    from facegcn_lib.data.crop import CropAndAugment
    from facegcn_lib.data.faces68 import Faces68
    from facegcn_lib.data.images import load_image
    from facegcn_lib.data.synth import SynthConfig, SyntheticFaces
    from facegcn_lib.data.synth_cache import SynthCache
    from facegcn_lib.data.w300lp import W300LP
    from facegcn_lib.face import Face
    from facegcn_lib.geometry.rotations import euler_to_rotation, rotation_to_euler
    from facegcn_lib.geometry.umeyama import pose_from_mesh, umeyama
    from facegcn_lib.morphable.bfm import (
        TemplateMesh,
        load_bfm2009,
        load_bfm_mean,
        load_bfm_mean_model,
    )
    from facegcn_lib.morphable.ict import load_ict_model, load_ict_neutral
    from facegcn_lib.morphable.model import MorphableModel
    from facegcn_lib.nn.export import export_onnx
    from facegcn_lib.nn.model import FaceGCN, build_model
    from facegcn_lib.paths import DataMissingError, cache_dir, data_dir, require
    from facegcn_lib.pipeline import Reconstructor, load_pretrained, reconstruct
    from facegcn_lib.render.raster import rasterize
    from facegcn_lib.train.checkpoint import load_checkpoint, save_checkpoint


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'facegcn_lib' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
