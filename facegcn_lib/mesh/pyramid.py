"""The mesh pyramid of the decoder: decimated levels, their sampling matrices and Laplacians.

Level 0 is the full mesh; level ``i + 1`` keeps ``ceil(V_i / factor)`` of level ``i``'s vertices
(53,215 -> 13,304 -> 3,326 -> 832 -> 208 -> 52 for the BFM mesh with the paper's factor 4),
decimated in one boundary-preserving pass (:func:`facegcn_lib.mesh.decimate.decimate_levels`).
``down[i]`` (V_{i+1} x V_i) selects and ``up[i]`` (V_i x V_{i+1}) interpolates between levels
``i`` and ``i + 1`` (:mod:`facegcn_lib.mesh.sampling`). A pyramid is saved as an uncompressed
``.npz`` (no pickle) and :meth:`MeshPyramid.cached` keeps one per mesh and parameters in the
cache directory. See :doc:`chapter 2 </chapters/02_decimation>`; ``facegcn pyramid`` builds
one from the command line.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from facegcn_lib.config import to_dict
from facegcn_lib.mesh.decimate import DecimationConfig, decimate_levels
from facegcn_lib.mesh.sampling import down_matrix, up_matrix

if TYPE_CHECKING:  # pragma: no cover
    import torch

log = logging.getLogger(__name__)

#: The paper's reduction factor between levels.
DEFAULT_FACTOR = 4
#: The paper's number of levels, the full mesh included.
DEFAULT_LEVELS = 6
#: The fewest vertices a level may have (one triangle).
MIN_LEVEL_VERTS = 3
#: Version of the saved file's layout: bumped when it changes (files of another version are
#: refused, so checkpoints that store their pyramid keep the layout they were written with).
FORMAT_VERSION = 2
#: Version of the decimation's output, part of the cache key: bumped whenever the same mesh and
#: parameters give another pyramid, so stale cache files are not picked up.
ALGORITHM_VERSION = 2
#: The decimation parameters that files written before they existed were built with: the
#: quadrics alone, without the measured stage or the whole-outline rule.
LEGACY_CONFIG = {"measured_below": 0.0, "keep_outline_fraction": 0.0}


class PyramidError(ValueError):
    """A pyramid cannot be built with these parameters, or a saved one cannot be read."""


def level_sizes(n_verts: int, factor: int = DEFAULT_FACTOR,
                n_levels: int = DEFAULT_LEVELS) -> list[int]:
    """Vertex counts of the levels: ``V_0 = n_verts`` and ``V_{i+1} = ceil(V_i / factor)``.

    Raises:
        PyramidError: ``factor < 2``, ``n_levels < 1``, or a level would have fewer than
            :data:`MIN_LEVEL_VERTS` vertices.
    """
    if int(factor) != factor or factor < 2:
        raise PyramidError(f"factor must be an integer >= 2, got {factor}")
    if n_levels < 1:
        raise PyramidError(f"n_levels counts the full mesh too and must be >= 1, got {n_levels}")
    sizes = [int(n_verts)]
    for _ in range(n_levels - 1):
        sizes.append(math.ceil(sizes[-1] / factor))
    if sizes[-1] < MIN_LEVEL_VERTS:
        raise PyramidError(f"{n_levels} levels with factor {factor} from {n_verts} vertices give "
                           f"{sizes}: the coarsest would have fewer than {MIN_LEVEL_VERTS} "
                           "vertices; use fewer levels")
    return sizes


def _csr_arrays(prefix: str, m: sp.csr_matrix) -> dict[str, NDArray]:
    return {f"{prefix}_data": m.data, f"{prefix}_indices": m.indices,
            f"{prefix}_indptr": m.indptr, f"{prefix}_shape": np.asarray(m.shape, dtype=np.int64)}


def _csr_from(z: Any, prefix: str) -> sp.csr_matrix:
    shape = tuple(int(s) for s in z[f"{prefix}_shape"])
    return sp.csr_matrix((z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]),
                         shape=shape)


@dataclass
class MeshPyramid:
    """Meshes from fine (level 0) to coarse, with the matrices that move features between them.

    Build one with :meth:`build` or :meth:`cached`.

    Attributes:
        verts: per level, (V_i, 3) float64 positions; level ``i + 1``'s are a subset of level
            ``i``'s (``verts[i + 1] == verts[i][down[i].indices]``).
        faces: per level, (F_i, 3) int64 triangles.
        down: per level pair, (V_{i+1}, V_i) CSR float64 selection matrix.
        up: per level pair, (V_i, V_{i+1}) CSR float64 barycentric up-sampling matrix.
        kept: per level, (V_i,) int64 indices of its vertices in level 0.
        lambda_max: per level, the largest eigenvalue of its normalized Laplacian.
        factor: the reduction factor between levels.
        config: the decimation parameters.
        build_seconds: how long :meth:`build` took (0 when unknown).
        build_timings: seconds per stage of :meth:`build`: ``decimation``, ``sampling`` (the
            ``U`` matrices' closest points) and ``lambda_max`` (the Laplacians' eigenvalues).
    """

    verts: list[NDArray[np.float64]]
    faces: list[NDArray[np.int64]]
    down: list[sp.csr_matrix]
    up: list[sp.csr_matrix]
    kept: list[NDArray[np.int64]]
    lambda_max: list[float]
    factor: int = DEFAULT_FACTOR
    config: DecimationConfig = field(default_factory=DecimationConfig)
    build_seconds: float = 0.0
    build_timings: dict[str, float] = field(default_factory=dict)

    # --- construction --------------------------------------------------------------------------

    @classmethod
    def build(cls, verts: NDArray, faces: NDArray, factor: int = DEFAULT_FACTOR,
              n_levels: int = DEFAULT_LEVELS, config: DecimationConfig | None = None
              ) -> MeshPyramid:
        """Decimate a mesh into ``n_levels`` levels and build the sampling matrices.

        Args:
            verts: (V, 3) float positions (millimetres for faces).
            faces: (F, 3) int triangles of a clean oriented manifold.
            factor: each level keeps ``ceil(V_i / factor)`` vertices.
            n_levels: number of levels, the full mesh included.
            config: decimation parameters (default :class:`DecimationConfig`).

        Raises:
            PyramidError: bad ``factor`` or ``n_levels``.
            facegcn_lib.mesh.decimate.DecimationError: a level cannot be reached (e.g. fewer
                vertices than the mesh's boundary loops need); the message says which.
            facegcn_lib.mesh.validate.InvalidMeshError: the input mesh is not clean.
        """
        from facegcn_lib.mesh.graph import mesh_graph

        t0 = time.perf_counter()
        cfg = config or DecimationConfig()
        v0 = np.ascontiguousarray(verts, dtype=np.float64)
        f0 = np.ascontiguousarray(faces, dtype=np.int64)
        sizes = level_sizes(len(v0), factor, n_levels)
        levels = decimate_levels(v0, f0, sizes[1:], cfg)
        t1 = time.perf_counter()
        vs = [v0] + [r.verts for r in levels]
        fs = [f0] + [r.faces for r in levels]
        kept = [np.arange(len(v0), dtype=np.int64)] + [r.kept for r in levels]
        down, up = [], []
        for i in range(len(levels)):
            local = np.searchsorted(kept[i], kept[i + 1])
            down.append(down_matrix(local, len(kept[i])))
            up.append(up_matrix(vs[i], vs[i + 1], fs[i + 1], local))
        t2 = time.perf_counter()
        lmax = [mesh_graph(f, len(v)).lambda_max() for v, f in zip(vs, fs, strict=True)]
        t3 = time.perf_counter()
        timings = {"decimation": t1 - t0, "sampling": t2 - t1, "lambda_max": t3 - t2}
        log.info("built a %d-level pyramid %s in %.2f s", n_levels, sizes, t3 - t0)
        return cls(vs, fs, down, up, kept, lmax, int(factor), cfg, t3 - t0, timings)

    @classmethod
    def cache_path(cls, verts: NDArray, faces: NDArray, factor: int = DEFAULT_FACTOR,
                   n_levels: int = DEFAULT_LEVELS, config: DecimationConfig | None = None
                   ) -> Path:
        """The cache file of a pyramid, keyed by the mesh's bytes and every parameter."""
        from facegcn_lib.paths import cache_file

        v = np.ascontiguousarray(verts, dtype=np.float64)
        f = np.ascontiguousarray(faces, dtype=np.int64)
        cfg = config or DecimationConfig()
        return cache_file(f"pyramid-{len(v)}v-{n_levels}x{factor}", ".npz", FORMAT_VERSION,
                          ALGORITHM_VERSION,
                          v.tobytes(), f.tobytes(), int(factor), int(n_levels),
                          json.dumps(to_dict(cfg), sort_keys=True))

    @classmethod
    def cached(cls, verts: NDArray, faces: NDArray, factor: int = DEFAULT_FACTOR,
               n_levels: int = DEFAULT_LEVELS, config: DecimationConfig | None = None
               ) -> MeshPyramid:
        """The pyramid of this mesh and parameters: loaded from the cache, else built and saved.

        A cache file that cannot be read is rebuilt (with a warning).
        """
        path = cls.cache_path(verts, faces, factor, n_levels, config)
        if path.is_file():
            try:
                return cls.load(path)
            except PyramidError as err:
                log.warning("rebuilding the pyramid cache %s: %s", path, err)
        pyramid = cls.build(verts, faces, factor, n_levels, config)
        pyramid.save(path)
        return pyramid

    # --- persistence -----------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Write the pyramid as an uncompressed ``.npz`` (atomically: a temp file, then rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, NDArray] = {
            "format_version": np.asarray(FORMAT_VERSION),
            "factor": np.asarray(self.factor),
            "lambda_max": np.asarray(self.lambda_max, dtype=np.float64),
            "config_json": np.asarray(json.dumps(to_dict(self.config), sort_keys=True)),
            "build_seconds": np.asarray(self.build_seconds),
            "build_timings_json": np.asarray(json.dumps(self.build_timings, sort_keys=True)),
        }
        for i in range(self.n_levels):
            arrays[f"verts_{i}"] = self.verts[i]
            arrays[f"faces_{i}"] = self.faces[i]
            arrays[f"kept_{i}"] = self.kept[i]
        for i in range(self.n_levels - 1):
            arrays.update(_csr_arrays(f"down_{i}", self.down[i]))
            arrays.update(_csr_arrays(f"up_{i}", self.up[i]))
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, p)
        return p

    @classmethod
    def load(cls, path: str | Path) -> MeshPyramid:
        """Read a pyramid written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            PyramidError: not a pyramid file, or one of another format version.
        """
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"no pyramid file at {p}; build one with `facegcn pyramid`")
        try:
            with np.load(p, allow_pickle=False) as z:
                version = int(z["format_version"])
                if version != FORMAT_VERSION:
                    raise PyramidError(f"{p} has format version {version}, this library reads "
                                       f"{FORMAT_VERSION}; delete it and rebuild")
                lmax = [float(x) for x in z["lambda_max"]]
                n = len(lmax)
                cfg = DecimationConfig(**{**LEGACY_CONFIG, **json.loads(str(z["config_json"]))})
                return cls(
                    verts=[z[f"verts_{i}"] for i in range(n)],
                    faces=[z[f"faces_{i}"] for i in range(n)],
                    down=[_csr_from(z, f"down_{i}") for i in range(n - 1)],
                    up=[_csr_from(z, f"up_{i}") for i in range(n - 1)],
                    kept=[z[f"kept_{i}"] for i in range(n)],
                    lambda_max=lmax, factor=int(z["factor"]), config=cfg,
                    build_seconds=float(z["build_seconds"]),
                    build_timings=json.loads(str(z["build_timings_json"])))
        except (KeyError, ValueError, OSError, TypeError) as err:
            if isinstance(err, PyramidError):
                raise
            raise PyramidError(f"{p} is not a readable pyramid file ({err}); delete it and "
                               "rebuild") from err

    # --- accessors -------------------------------------------------------------------------------

    @property
    def n_levels(self) -> int:
        """Number of levels, the full mesh included."""
        return len(self.verts)

    @property
    def sizes(self) -> list[int]:
        """Vertex count of each level, finest first."""
        return [len(v) for v in self.verts]

    def laplacian(self, i: int) -> sp.csr_matrix:
        """(V_i, V_i) scaled Laplacian ``2 L / lambda_max - I`` of level ``i``'s normalized ``L``.

        Built by :mod:`facegcn_lib.mesh.graph` with the ``lambda_max`` saved in the pyramid.
        """
        from facegcn_lib.mesh.graph import mesh_graph, scaled_laplacian

        g = mesh_graph(self.faces[i], len(self.verts[i]))
        return scaled_laplacian(g.normalized_laplacian, self.lambda_max[i])

    def down_torch(self, i: int, layout: str = "csr") -> torch.Tensor:
        """``down[i]`` as a float32 torch sparse tensor (``"csr"`` or ``"coo"``)."""
        from facegcn_lib.nn.sparse import to_torch_sparse

        return to_torch_sparse(self.down[i], layout=layout, dtype=_float32())  # type: ignore[arg-type]

    def up_torch(self, i: int, layout: str = "csr") -> torch.Tensor:
        """``up[i]`` as a float32 torch sparse tensor (``"csr"`` or ``"coo"``)."""
        from facegcn_lib.nn.sparse import to_torch_sparse

        return to_torch_sparse(self.up[i], layout=layout, dtype=_float32())  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"MeshPyramid(sizes={self.sizes}, factor={self.factor})"


def _float32() -> torch.dtype:
    import torch

    return torch.float32
