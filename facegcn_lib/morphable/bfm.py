"""The paper's mesh: the Basel Face Model mean (53,215 vertices) as distributed by 3DDFA."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facegcn_lib.paths import require

BFM_DIR = "bfm-mean-3ddfa"
MICROMETRES_PER_MM = 1000.0


@dataclass(frozen=True)
class TemplateMesh:
    """A mesh topology with its mean shape and landmark vertices.

    Attributes:
        verts: (V, 3) float64 mean shape in millimetres (x right, y up, z towards the viewer).
        faces: (F, 3) int64 triangles, 0-based.
        lmks68: (68,) int64 vertex indices of the 68 landmarks.
        name: a short name for logs and cache keys.
    """

    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    lmks68: NDArray[np.int64]
    name: str


def load_bfm_mean(root: Path | None = None) -> TemplateMesh:
    """Load the BFM mean shape + mean expression, triangles and 68 keypoints.

    Reads ``u_shp.npy``, ``u_exp.npy`` (micrometres, interleaved x, y, z), ``tri.mat``
    (3 x F, 1-based) and ``keypoints_sim.npy`` (indices into the flat vector) from
    ``<data>/bfm-mean-3ddfa/``.

    Returns:
        A :class:`TemplateMesh` with 53,215 vertices and 105,840 triangles, in millimetres.
    """
    from scipy.io import loadmat

    shp = np.load(require(f"{BFM_DIR}/u_shp.npy", root)).astype(np.float64)
    exp = np.load(require(f"{BFM_DIR}/u_exp.npy", root)).astype(np.float64)
    verts = (shp + exp).reshape(-1, 3) / MICROMETRES_PER_MM
    tri = loadmat(require(f"{BFM_DIR}/tri.mat", root))["tri"]
    faces = np.ascontiguousarray(tri.T.astype(np.int64) - 1)
    flat_idx = np.load(require(f"{BFM_DIR}/keypoints_sim.npy", root))
    lmks68 = (flat_idx[0::3] // 3).astype(np.int64)
    return TemplateMesh(verts, faces, lmks68, "bfm-mean")
