"""A tiny face-like mesh with its pyramid, and tiny model configs, for the network tests."""

from __future__ import annotations

import numpy as np

from facegcn_lib.config import DecoderConfig, EncoderConfig, MeshConfig, ModelConfig
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.target_mesh import TargetMesh, load_target_mesh, register_topology

TINY = "tiny-test-grid"
GRID = 12  # vertices per side of the finest grid
N_LEVELS = 3


def grid_mesh(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An n x n grid over [-1, 1]^2 bent like a face (mm), its triangles and grid coordinates."""
    t = np.linspace(-1.0, 1.0, n)
    gx, gy = np.meshgrid(t, t)
    uv = np.stack([gx.ravel(), gy.ravel()], axis=1)
    z = 30.0 * (1.0 - 0.5 * (uv**2).sum(axis=1))
    verts = np.column_stack([uv * 60.0, z])
    idx = np.arange(n * n).reshape(n, n)
    a, b, c, d = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel(), idx[1:, 1:].ravel()
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)]).astype(np.int64)
    return verts, faces, (uv + 1.0) / 2.0


def tiny_morphable() -> MorphableModel:
    """A grid 'face' with 4 identity and 3 expression modes, 68 landmarks and UVs."""
    verts, faces, uv = grid_mesh(GRID)
    rng = np.random.default_rng(0)
    v = len(verts)
    return MorphableModel(
        name=TINY, faces=faces, mean=verts,
        id_basis=rng.normal(0, 2.0, (4, v, 3)).astype(np.float32),
        exp_basis=rng.normal(0, 1.0, (3, v, 3)).astype(np.float32),
        lmks68=np.linspace(0, v - 1, 68).astype(np.int64), uvs=uv, face_uvs=faces.copy())


def tiny_mesh_config() -> MeshConfig:
    return MeshConfig(topology=TINY, factor=4, n_levels=N_LEVELS)


def tiny_config(decoder: str = "gcn", arch: str = "mobilenet_v3_small", **kw: object) -> ModelConfig:
    """A small model: 64 x 64 crops, a 16-d code, a three-level decoder."""
    from facegcn_lib.config import MMRegressionConfig, UVMapConfig

    return ModelConfig(
        encoder=EncoderConfig(arch=arch, code_dim=16, image_size=64),
        mesh=tiny_mesh_config(), decoder=decoder,
        gcn=DecoderConfig(channels=(16, 8, 8), **kw),  # type: ignore[arg-type]
        uvmap=UVMapConfig(size=16, seed_size=4, max_channels=16, min_channels=8),
        mm=MMRegressionConfig(n_id=4, n_exp=3))


def make_tiny_target() -> TargetMesh:
    """The tiny mesh (144 vertices) with its real pyramid (144, 36, 9), registered by name."""
    register_topology(TINY, tiny_morphable)
    return load_target_mesh(tiny_mesh_config())
