"""Closest points on a triangle mesh: exact point-to-surface queries through a uniform grid.

For each query point the nearest triangle is found exactly (not approximately): triangles are
binned into a grid of cubic cells by their bounding boxes, and a query visits rings of cells
around its own until no unvisited cell can hold anything closer than the best triangle so far.
Used by the up-sampling matrix (barycentric weights of the closest point on the coarse mesh) and
by the decimation error measures. See :doc:`chapter 2 </chapters/02_decimation>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

#: At most this many (cell, triangle) entries per triangle on average; the cells grow if needed.
MAX_ENTRIES_PER_TRIANGLE = 27
#: At most this many grid cells per triangle.
MAX_CELLS_PER_TRIANGLE = 8


@dataclass(frozen=True)
class ClosestPoints:
    """The closest point on a mesh to each query point.

    Attributes:
        faces: (P,) int64 the triangle that holds the closest point.
        bary: (P, 3) float64 its barycentric coordinates in that triangle (sum to 1, >= 0).
        points: (P, 3) float64 the closest points.
        distances: (P,) float64 the distances from the query points.
    """

    faces: NDArray[np.int64]
    bary: NDArray[np.float64]
    points: NDArray[np.float64]
    distances: NDArray[np.float64]


@njit(cache=True)
def _closest_on_triangle(p: NDArray[np.float64], a: NDArray[np.float64], b: NDArray[np.float64],
                         c: NDArray[np.float64], out: NDArray[np.float64]) -> float:
    """Barycentric coordinates of the point of triangle abc closest to p (Ericson, 5.1.5).

    Writes them to ``out`` and returns the squared distance.
    """
    abx, aby, abz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    acx, acy, acz = c[0] - a[0], c[1] - a[1], c[2] - a[2]
    apx, apy, apz = p[0] - a[0], p[1] - a[1], p[2] - a[2]
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    bu, bv, bw = 1.0, 0.0, 0.0
    done = False
    if d1 <= 0.0 and d2 <= 0.0:
        done = True
    if not done:
        bpx, bpy, bpz = p[0] - b[0], p[1] - b[1], p[2] - b[2]
        d3 = abx * bpx + aby * bpy + abz * bpz
        d4 = acx * bpx + acy * bpy + acz * bpz
        cpx, cpy, cpz = p[0] - c[0], p[1] - c[1], p[2] - c[2]
        d5 = abx * cpx + aby * cpy + abz * cpz
        d6 = acx * cpx + acy * cpy + acz * cpz
        vc = d1 * d4 - d3 * d2
        vb = d5 * d2 - d1 * d6
        va = d3 * d6 - d5 * d4
        if d3 >= 0.0 and d4 <= d3:
            bu, bv, bw = 0.0, 1.0, 0.0
        elif vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0 and d1 - d3 > 0.0:
            t = d1 / (d1 - d3)
            bu, bv, bw = 1.0 - t, t, 0.0
        elif d6 >= 0.0 and d5 <= d6:
            bu, bv, bw = 0.0, 0.0, 1.0
        elif vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0 and d2 - d6 > 0.0:
            t = d2 / (d2 - d6)
            bu, bv, bw = 1.0 - t, 0.0, t
        elif va <= 0.0 and d4 - d3 >= 0.0 and d5 - d6 >= 0.0 and (d4 - d3) + (d5 - d6) > 0.0:
            t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            bu, bv, bw = 0.0, 1.0 - t, t
        elif va + vb + vc > 0.0:
            den = 1.0 / (va + vb + vc)
            bv = vb * den
            bw = vc * den
            bu = 1.0 - bv - bw
    out[0], out[1], out[2] = bu, bv, bw
    qx = bu * a[0] + bv * b[0] + bw * c[0] - p[0]
    qy = bu * a[1] + bv * b[1] + bw * c[1] - p[1]
    qz = bu * a[2] + bv * b[2] + bw * c[2] - p[2]
    return float(qx * qx + qy * qy + qz * qz)


@njit(cache=True)
def _cell_range(lo: float, hi: float, origin: float, h: float, n: int) -> tuple[int, int]:
    i0 = math.floor((lo - origin) / h)
    i1 = math.floor((hi - origin) / h)
    return max(0, min(n - 1, i0)), max(0, min(n - 1, i1))


@njit(cache=True)
def _build_grid(tri: NDArray[np.float64], origin: NDArray[np.float64], h: float,
                dims: NDArray[np.int64]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """CSR (cell start, triangle ids) of the triangles overlapping each cell."""
    nx, ny, nz = dims[0], dims[1], dims[2]
    counts = np.zeros(nx * ny * nz + 1, dtype=np.int64)
    nt = tri.shape[0]
    rng = np.empty((nt, 6), dtype=np.int64)
    for t in range(nt):
        for ax in range(3):
            lo = min(tri[t, 0, ax], tri[t, 1, ax], tri[t, 2, ax])
            hi = max(tri[t, 0, ax], tri[t, 1, ax], tri[t, 2, ax])
            i0, i1 = _cell_range(lo, hi, origin[ax], h, dims[ax])
            rng[t, 2 * ax] = i0
            rng[t, 2 * ax + 1] = i1
        for i in range(rng[t, 0], rng[t, 1] + 1):
            for j in range(rng[t, 2], rng[t, 3] + 1):
                for k in range(rng[t, 4], rng[t, 5] + 1):
                    counts[(i * ny + j) * nz + k + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    ids = np.empty(start[-1], dtype=np.int64)
    for t in range(nt):
        for i in range(rng[t, 0], rng[t, 1] + 1):
            for j in range(rng[t, 2], rng[t, 3] + 1):
                for k in range(rng[t, 4], rng[t, 5] + 1):
                    c = (i * ny + j) * nz + k
                    ids[fill[c]] = t
                    fill[c] += 1
    return start, ids


@njit(cache=True)
def _query(points: NDArray[np.float64], tri: NDArray[np.float64], origin: NDArray[np.float64],
           h: float, dims: NDArray[np.int64], start: NDArray[np.int64], ids: NDArray[np.int64],
           out_face: NDArray[np.int64], out_bary: NDArray[np.float64],
           out_d2: NDArray[np.float64]) -> None:
    nx, ny, nz = dims[0], dims[1], dims[2]
    rmax = max(nx, ny, nz)
    bary = np.empty(3, dtype=np.float64)
    for p in range(points.shape[0]):
        q = points[p]
        ci = max(0, min(nx - 1, math.floor((q[0] - origin[0]) / h)))
        cj = max(0, min(ny - 1, math.floor((q[1] - origin[1]) / h)))
        ck = max(0, min(nz - 1, math.floor((q[2] - origin[2]) / h)))
        best = np.inf
        best_t = -1
        b0, b1, b2 = 1.0, 0.0, 0.0
        for r in range(rmax + 1):
            for i in range(max(0, ci - r), min(nx - 1, ci + r) + 1):
                for j in range(max(0, cj - r), min(ny - 1, cj + r) + 1):
                    on_i = abs(i - ci) == r
                    on_j = abs(j - cj) == r
                    if on_i or on_j:
                        k_lo, k_hi, k_step = max(0, ck - r), min(nz - 1, ck + r), 1
                    else:  # only the two caps of the ring along k
                        k_lo, k_hi, k_step = ck - r, ck + r, 2 * r if r > 0 else 1
                    k = k_lo
                    while k <= k_hi:
                        if 0 <= k < nz:
                            c = (i * ny + j) * nz + k
                            for s in range(start[c], start[c + 1]):
                                t = ids[s]
                                d2 = _closest_on_triangle(q, tri[t, 0], tri[t, 1], tri[t, 2], bary)
                                if d2 < best or (d2 == best and t < best_t):
                                    best = d2
                                    best_t = t
                                    b0, b1, b2 = bary[0], bary[1], bary[2]
                        k += k_step
            if best_t >= 0 and math.sqrt(best) <= r * h:
                break
        out_face[p] = best_t
        out_bary[p, 0], out_bary[p, 1], out_bary[p, 2] = b0, b1, b2
        out_d2[p] = best


class SurfaceIndex:
    """A triangle mesh prepared for many closest-point queries.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
    """

    def __init__(self, verts: NDArray, faces: NDArray) -> None:
        v = np.asarray(verts, dtype=np.float64)
        f = np.asarray(faces, dtype=np.int64)
        if len(f) == 0:
            raise ValueError("cannot search the surface of a mesh with no triangles")
        self.verts, self.faces = v, f
        self._tri = np.ascontiguousarray(v[f])
        lo = self._tri.min(axis=(0, 1))
        hi = self._tri.max(axis=(0, 1))
        extent = self._tri.max(axis=1) - self._tri.min(axis=1)
        diag = float(np.linalg.norm(hi - lo)) or 1.0
        h = max(float(np.median(extent.max(axis=1))), diag * 1e-6)
        # Grow the cells until the grid and its entries stay proportional to the triangles.
        while True:
            dims = np.maximum(1, np.ceil((hi - lo) / h).astype(np.int64) + 1)
            n_cells = int(np.prod(dims))
            per_tri = np.prod(np.floor(extent / h) + 2, axis=1)
            if (n_cells <= MAX_CELLS_PER_TRIANGLE * len(f) + 64
                    and per_tri.mean() <= MAX_ENTRIES_PER_TRIANGLE):
                break
            h *= 1.5
        self._origin, self._h, self._dims = lo, h, dims
        self._start, self._ids = _build_grid(self._tri, lo, h, dims)

    def query(self, points: NDArray) -> ClosestPoints:
        """The closest point on the surface to each of the (P, 3) ``points``."""
        p = np.ascontiguousarray(np.asarray(points, dtype=np.float64).reshape(-1, 3))
        if not np.isfinite(p).all():
            raise ValueError("query points must be finite")
        n = len(p)
        face = np.empty(n, dtype=np.int64)
        bary = np.empty((n, 3), dtype=np.float64)
        d2 = np.empty(n, dtype=np.float64)
        _query(p, self._tri, self._origin, self._h, self._dims, self._start, self._ids, face,
               bary, d2)
        pts = np.einsum("pk,pkd->pd", bary, self._tri[face])
        return ClosestPoints(face, bary, pts, np.sqrt(d2))


def closest_points(points: NDArray, verts: NDArray, faces: NDArray) -> ClosestPoints:
    """The closest point on the mesh ``(verts, faces)`` to each of ``points``.

    Args:
        points: (P, 3) float query points.
        verts: (V, 3) float mesh positions (same frame and unit).
        faces: (F, 3) int triangles.

    Returns:
        The triangle, barycentric coordinates, point and distance of each closest point.
    """
    return SurfaceIndex(verts, faces).query(points)


def point_to_surface_distance(points: NDArray, verts: NDArray, faces: NDArray) -> NDArray[np.float64]:
    """(P,) float64 distance from each point to the surface ``(verts, faces)``."""
    return closest_points(points, verts, faces).distances
