"""The mesh a network regresses: its morphable model, mesh pyramid, per-vertex UVs and hashes.

A :class:`TargetMesh` bundles what every decoder needs to know about its output mesh. It is
rebuilt from a :class:`~facegcn_lib.config.MeshConfig` by name (``ict-face``, ``bfm``, or a
name added with :func:`register_topology`), so a checkpoint stores the name, not the arrays,
and the topology hash (of the triangles) guards against loading weights onto another mesh.

Frames. The template (the model's mean) is in the model frame: x right, y up, z towards the
viewer, millimetres. Networks output vertices in the *normalised crop frame*: the image frame
of the crop (x right, y down, z towards the viewer, see :mod:`facegcn_lib.geometry.projection`)
scaled so that ``[-1, 1]`` spans the crop. :meth:`TargetMesh.template_in_crop` places the
template there as the crops of :mod:`facegcn_lib.data.crop` frame a frontal face.

See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from facegcn_lib.config import ConfigError, MeshConfig
from facegcn_lib.mesh.graph import topology_key
from facegcn_lib.mesh.pyramid import MeshPyramid
from facegcn_lib.morphable.model import MorphableModel

#: y is flipped from the model frame (y up) to the crop frame (y down).
MODEL_TO_CROP_FLIP = np.array([1.0, -1.0, 1.0])
#: Hex characters kept of the topology and pyramid hashes.
HASH_CHARS = 16


class UnknownTopologyError(ConfigError):
    """A topology name that no loader is registered for."""


def _ict_face() -> MorphableModel:
    from facegcn_lib.morphable.ict import load_ict_model

    return load_ict_model(region="face")


def _bfm() -> MorphableModel:
    from facegcn_lib.morphable.bfm import load_bfm_mean
    from facegcn_lib.morphable.model import mean_only_model

    return mean_only_model(load_bfm_mean())


_TOPOLOGIES: dict[str, Callable[[], MorphableModel]] = {"ict-face": _ict_face, "bfm": _bfm}


def register_topology(name: str, loader: Callable[[], MorphableModel]) -> None:
    """Make ``MeshConfig(topology=name)`` load ``loader()`` (e.g. a small mesh for tests).

    The loader must return the same mesh every time: its triangles' hash is stored in
    checkpoints. Registering a name again replaces the loader and clears the cache.
    """
    _TOPOLOGIES[name] = loader
    load_target_mesh.cache_clear()


def topology_names() -> tuple[str, ...]:
    """The registered topology names."""
    return tuple(sorted(_TOPOLOGIES))


def _csr_hash(h: hashlib._Hash, m: sp.spmatrix | sp.sparray) -> None:
    c = sp.csr_matrix(m)
    c.sort_indices()
    h.update(np.asarray(c.shape, dtype=np.int64).tobytes())
    h.update(c.indptr.astype(np.int64).tobytes())
    h.update(c.indices.astype(np.int64).tobytes())
    h.update(np.round(c.data.astype(np.float64), 6).tobytes())


def per_vertex_uvs(model: MorphableModel) -> NDArray[np.float64]:
    """Texture coordinates per vertex, rescaled to fill ``[0, 1]^2`` (for position maps).

    Uses the model's per-corner UVs (``uvs``/``face_uvs``): a vertex on a seam, which has
    several, gets the median of its corners' (so the ICT face's one stray triangle in another
    UV tile does not drag its vertices off the face's chart). A model without UVs (the BFM mean) gets a cylindrical unwrap about the vertical
    axis through the mesh's centre: ``u`` from the angle ``atan2(x, z)``, ``v`` from the height,
    scaled by the mean radius so that areas near the front are not distorted.

    Returns:
        (V, 2) float64, ``u`` right, ``v`` up, within ``[0, 1]`` with the aspect ratio kept.
    """
    v = model.num_verts
    has_uv = len(model.uvs) > 0 and bool((model.face_uvs >= 0).all())
    if has_uv:
        corner_vert = model.faces.reshape(-1)
        corner_uv = model.uvs[model.face_uvs.reshape(-1)]
        counts = np.bincount(corner_vert, minlength=v)
        if (counts == 0).any():
            raise ValueError(f"{model.name}: some vertices are in no triangle, so have no UV")
        middle = np.cumsum(counts) - counts + counts // 2
        uv = np.empty((v, 2))
        for axis in range(2):
            order = np.lexsort((corner_uv[:, axis], corner_vert))
            uv[:, axis] = corner_uv[order[middle], axis]
    else:
        p = model.mean - model.mean.mean(axis=0)
        radius = float(np.hypot(p[:, 0], p[:, 2]).mean())
        uv = np.stack([np.arctan2(p[:, 0], p[:, 2]) * radius, p[:, 1]], axis=1)
    lo, hi = uv.min(axis=0), uv.max(axis=0)
    extent = float((hi - lo).max())
    out: NDArray[np.float64] = (uv - lo) / extent + (1.0 - (hi - lo) / extent) / 2.0
    return out


@dataclass(frozen=True, eq=False)
class TargetMesh:
    """The regressed mesh with its pyramid (see the module docstring for the frames).

    Attributes:
        cfg: the configuration it was built from.
        model: the morphable model of the mesh (mean, faces, 68 landmark vertices, UVs; its
            bases may be empty, e.g. for the BFM mean).
        pyramid: the down-sampling pyramid (level 0 is the full mesh).
    """

    cfg: MeshConfig
    model: MorphableModel
    pyramid: MeshPyramid

    @property
    def name(self) -> str:
        """The topology's registered name."""
        return self.cfg.topology

    @property
    def n_verts(self) -> int:
        """V, the number of vertices of the full mesh."""
        return self.model.num_verts

    @property
    def faces(self) -> NDArray[np.int64]:
        """(F, 3) triangles of the full mesh."""
        return self.model.faces

    @property
    def lmks68(self) -> NDArray[np.int64]:
        """(68,) vertex indices of the 68 landmarks."""
        return self.model.lmks68

    @property
    def level_sizes(self) -> tuple[int, ...]:
        """Vertex counts of the pyramid's levels, finest first."""
        return tuple(len(v) for v in self.pyramid.verts)

    def topology_hash(self) -> str:
        """Hash of the full mesh's triangles (what a checkpoint's weights are tied to)."""
        return topology_key(self.model.faces, self.n_verts)[:HASH_CHARS]

    def pyramid_hash(self) -> str:
        """Hash of every level's triangles and of the down/up-sampling matrices."""
        h = hashlib.sha256()
        for verts, faces in zip(self.pyramid.verts, self.pyramid.faces, strict=True):
            h.update(topology_key(faces, len(verts)).encode())
        for m in (*self.pyramid.down, *self.pyramid.up):
            _csr_hash(h, m)
        return h.hexdigest()[:HASH_CHARS]

    def placement(self) -> tuple[float, NDArray[np.float64]]:
        """``(scale, centre)`` that put the template in the crop: ``(p - centre) * scale * flip``.

        Where a crop of :mod:`facegcn_lib.data.crop` (with the default
        :class:`~facegcn_lib.data.crop.CropConfig`) puts the frontal mean face: the crop's side
        is ``margin`` times the larger side of the 68 landmarks' box and spans 2 units, and its
        centre is the box's centre moved by ``shift_y`` times the side (z: the middle of the
        landmarks' depths). Returns the scale (crop units per mm) and the centre (mm, model
        frame).
        """
        from facegcn_lib.data.crop import CropConfig

        crop = CropConfig()
        lmks = self.model.mean[self.model.lmks68] if self.model.has_landmarks else self.model.mean
        lo, hi = lmks.min(axis=0), lmks.max(axis=0)
        side = crop.margin * float(max(hi[0] - lo[0], hi[1] - lo[1]))
        centre = (lo + hi) / 2.0
        centre[1] -= crop.shift_y * side  # the image's y is the model's -y
        return 2.0 / side, centre

    def template_in_crop(self) -> NDArray[np.float64]:
        """(V, 3) the template in the normalised crop frame (y down), framed as a crop frames it."""
        scale, centre = self.placement()
        out: NDArray[np.float64] = (self.model.mean - centre) * scale * MODEL_TO_CROP_FLIP
        return out

    def vertex_uvs(self) -> NDArray[np.float64]:
        """(V, 2) per-vertex UVs in ``[0, 1]`` (see :func:`per_vertex_uvs`)."""
        return per_vertex_uvs(self.model)


@lru_cache(maxsize=8)
def load_target_mesh(cfg: MeshConfig) -> TargetMesh:
    """The mesh ``cfg`` names with its pyramid (cached on disk by the pyramid, in memory here).

    Raises:
        UnknownTopologyError: ``cfg.topology`` is not registered.
    """
    loader = _TOPOLOGIES.get(cfg.topology)
    if loader is None:
        raise UnknownTopologyError(f"unknown topology {cfg.topology!r}; registered: "
                                   f"{topology_names()} (add one with register_topology)")
    model = loader()
    pyramid = MeshPyramid.cached(model.mean, model.faces, factor=cfg.factor, n_levels=cfg.n_levels)
    return TargetMesh(cfg, model, pyramid)


def target_mesh_with_pyramid(cfg: MeshConfig, pyramid: MeshPyramid) -> TargetMesh:
    """The mesh ``cfg`` names, with a given pyramid (e.g. the one stored in a checkpoint).

    Raises:
        UnknownTopologyError: ``cfg.topology`` is not registered.
    """
    base = load_target_mesh(cfg)
    return TargetMesh(cfg, base.model, pyramid)
