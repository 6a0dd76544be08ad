"""How faithful a simplified mesh is to its original: surface distances and outline distance.

Two measures, both in the meshes' unit (millimetres for faces):

* the *surface error*: the distance from each original vertex to the simplified surface
  (mean and max), which says how well the coarse mesh covers the fine one;
* the *outline error*: the symmetric Hausdorff distance between the boundary curves (the
  boundary edges as line segments, sampled densely), which says whether the outline was kept.

See :doc:`chapter 2 </chapters/02_decimation>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facegcn_lib.mesh.proximity import point_to_surface_distance
from facegcn_lib.mesh.topology import edges

#: Points sampled on each boundary segment for the Hausdorff distance.
SAMPLES_PER_SEGMENT = 16
#: Points per block when measuring point-to-segment distances (bounds memory).
BLOCK = 2048


@dataclass(frozen=True)
class Fidelity:
    """How far a simplified mesh is from its original.

    Attributes:
        n_verts: vertices of the simplified mesh.
        surface_mean: mean distance from the original vertices to the simplified surface.
        surface_max: the largest such distance.
        outline_hausdorff: symmetric Hausdorff distance between the two outlines (``inf`` if
            exactly one of the meshes has a boundary, 0 if neither has).
    """

    n_verts: int
    surface_mean: float
    surface_max: float
    outline_hausdorff: float


def boundary_segments(verts: NDArray, faces: NDArray) -> NDArray[np.float64]:
    """(B, 2, 3) float64 the boundary edges (used by one triangle) as segments."""
    e, counts = edges(np.asarray(faces, dtype=np.int64))
    v = np.asarray(verts, dtype=np.float64)
    out: NDArray[np.float64] = v[e[counts == 1]]
    return out


def _sample_segments(seg: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    t = np.linspace(0.0, 1.0, n)[None, :, None]
    out: NDArray[np.float64] = (seg[:, None, 0] * (1 - t) + seg[:, None, 1] * t).reshape(-1, 3)
    return out


def point_to_segments_distance(points: NDArray, seg: NDArray) -> NDArray[np.float64]:
    """(P,) float64 distance from each point to the nearest of the (S, 2, 3) segments."""
    p = np.asarray(points, dtype=np.float64)
    a = seg[:, 0]
    ab = seg[:, 1] - a
    ab2 = np.maximum(np.einsum("sd,sd->s", ab, ab), np.finfo(np.float64).tiny)
    out = np.empty(len(p))
    for i in range(0, len(p), BLOCK):
        q = p[i:i + BLOCK, None, :] - a[None]
        t = np.clip(np.einsum("psd,sd->ps", q, ab) / ab2, 0.0, 1.0)
        d = q - t[..., None] * ab[None]
        out[i:i + BLOCK] = np.sqrt(np.einsum("psd,psd->ps", d, d).min(axis=1))
    return out


def outline_hausdorff(verts_a: NDArray, faces_a: NDArray, verts_b: NDArray, faces_b: NDArray,
                      samples: int = SAMPLES_PER_SEGMENT) -> float:
    """Symmetric Hausdorff distance between the boundaries of two meshes.

    Each boundary is sampled at ``samples`` points per edge and measured against the other's
    segments exactly, so the result is exact up to the sampling of the first curve.
    """
    sa = boundary_segments(verts_a, faces_a)
    sb = boundary_segments(verts_b, faces_b)
    if len(sa) == 0 and len(sb) == 0:
        return 0.0
    if len(sa) == 0 or len(sb) == 0:
        return float("inf")
    d_ab = point_to_segments_distance(_sample_segments(sa, samples), sb).max()
    d_ba = point_to_segments_distance(_sample_segments(sb, samples), sa).max()
    return float(max(d_ab, d_ba))


def fidelity(verts: NDArray, faces: NDArray, simple_verts: NDArray, simple_faces: NDArray
             ) -> Fidelity:
    """Surface and outline errors of ``(simple_verts, simple_faces)`` against the original.

    Args:
        verts: (V, 3) float original positions.
        faces: (F, 3) int original triangles.
        simple_verts: (n, 3) float simplified positions (same frame and unit).
        simple_faces: (m, 3) int simplified triangles.
    """
    d = point_to_surface_distance(verts, simple_verts, simple_faces)
    return Fidelity(len(simple_verts), float(d.mean()), float(d.max()),
                    outline_hausdorff(verts, faces, simple_verts, simple_faces))
