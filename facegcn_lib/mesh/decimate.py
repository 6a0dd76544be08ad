"""Mesh decimation by edge collapse onto an endpoint, keeping the outline.

Every collapse ``u -> v`` moves ``u`` onto ``v`` (no new positions), as in CoMA (Ranjan et
al. 2018) and the paper, so every coarse vertex is a vertex of the input and down-sampling is a
selection. The collapses come from a priority queue with lazy updates, cheapest first, in two
stages:

1. Garland & Heckbert's (1997) quadric error metric: every vertex carries a quadric, the sum
   of the squared distances to the planes of its triangles, and a collapse costs the summed
   quadric at ``v``. Cheap, and all the fine levels need.
2. Once few vertices are left (:attr:`DecimationConfig.measured_below`), the cost is measured
   on the surface itself: every removed input vertex (a deterministic sample of them, a few per
   triangle) is tracked on the triangle it is closest to, and a collapse costs the increase of
   their summed distance to the surface (the mean distance that
   :func:`facegcn_lib.mesh.fidelity.fidelity` reports), plus the square root of the quadric
   cost, plus a penalty on the outline's largest deviation. After each collapse, the edges
   around ``v`` are flipped where that brings the tracked vertices closer (coarse vertices
   interpolate the input, so which diagonal a quad takes matters).

The boundary is preserved: Garland & Heckbert's constraint planes (through each boundary edge,
perpendicular to its triangle, heavily weighted), a hard rule (a boundary vertex only slides
along a boundary edge onto its boundary neighbour, so the outline is simplified along itself and
never torn inwards), and the whole original outline is kept while it holds at most
:attr:`DecimationConfig.keep_outline_fraction` of the vertices.

A collapse or flip is carried out only if the mesh stays a manifold of the same topology (the
link condition, with the boundary closed by a virtual vertex), no vertex is left with too few
triangles, and no triangle flips over or becomes degenerate. The loop runs in numba.

See :doc:`chapter 2 </chapters/02_decimation>`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from facegcn_lib.mesh.proximity import closest_points
from facegcn_lib.mesh.topology import (
    boundary_edges,
    boundary_loops,
    connected_components,
    face_normals,
    half_edges,
)
from facegcn_lib.mesh.validate import InvalidMeshError, validate_mesh

log = logging.getLogger(__name__)

#: Quadric layout: the 10 distinct entries of the symmetric 4x4 matrix, row by row.
N_QUADRIC = 10
#: Room for vertex-to-face references, as a multiple of 3F, before they are compacted.
REFS_SLACK = 3
#: Room in the priority queue, as a multiple of the number of directed edges, before a rebuild.
HEAP_SLACK = 2
#: Smallest number of vertices of a closed component (a tetrahedron) and per boundary loop.
MIN_CLOSED_VERTS = 4
MIN_LOOP_VERTS = 3
#: Removed input vertices tracked per live triangle in the measured stage (the sample halves
#: whenever there are more): enough to rank collapses, few enough to stay fast.
PROBES_PER_TRIANGLE = 8
#: At most this many tracked vertices are measured to price one collapse (evenly spaced).
COST_SAMPLES = 8
#: Seed of the order in which the tracked sample is thinned.
PROBE_SEED = 0
#: Outline vertices measured against all boundary edges at once, when the measured stage starts.
SEGMENT_BLOCK = 512
#: An edge flip must lower the tracked vertices' summed distance by at least this fraction.
FLIP_MIN_GAIN = 1e-9

# Return codes of the numba loop.
_REACHED = 0
_STUCK = 1
# Entries of the numba loop's parameter vector.
_PRESERVE, _MIN_DOT, _MIN_QUALITY, _LENGTH_W, _REFRESH, _MEASURED, _QUADRIC_W, _OUTLINE_W, \
    _FLIP, _STEP, _KEEP_OUTLINE, _OUTLINE_SCALE = range(12)
_N_PARAMS = 12
# Entries of the numba loop's state vector.
_ALIVE, _REFS_END, _SIZE, _DONE, _TAG, _SINCE, _FLIPS, _PROBES, _N_BOUNDARY = range(9)
_N_STATE = 9


class DecimationError(ValueError):
    """The decimation cannot produce the requested mesh; the message says why."""


class TargetUnreachableError(DecimationError):
    """No valid collapse is left before the target vertex count is reached."""


@dataclass(frozen=True)
class DecimationConfig:
    """Parameters of :func:`decimate`.

    Attributes:
        preserve_boundary: keep the outline: boundary constraint planes, boundary vertices
            only collapse along a boundary edge onto a boundary vertex, and the outline terms
            below. ``False`` treats the boundary like the interior (CoMA's behaviour).
        boundary_weight: weight of a boundary constraint plane relative to a triangle's plane
            (with ``area_weighted``, relative to the triangle areas: it is then multiplied by
            the edge's length squared, so the weight has no unit either way). Higher keeps the
            outline closer (and more boundary vertices) at the expense of the surface.
        area_weighted: weight each triangle's plane by its area; by default each plane counts
            once, as in CoMA, which spreads the error over the vertices (where a network's
            features live) rather than over the area.
        min_normal_dot: a collapse or flip is refused if it turns a triangle's normal by more
            than ``acos(min_normal_dot)`` (a negative dot is a flip).
        min_quality: a collapse or flip is refused if it creates a triangle of quality below
            this, with quality ``4 sqrt(3) area / (sum of squared edge lengths)`` (1 for
            equilateral).
        length_weight: adds ``length_weight * |u - v|^2`` (``|u - v|^4`` with area weighting,
            to match the quadrics' unit) to each quadric cost, so that on flat regions (zero
            quadric error) short edges go first and the vertices stay spread.
        refresh: after a collapse ``u -> v``, re-queue the collapses of the edges at ``v``
            (1), and also (2, the default) those at each neighbour of ``v`` whose last popped
            collapse was refused (link condition, flip or quality): its triangles changed, so
            the refused collapse may now be valid. (In the measured stage the collapses at
            every neighbour of ``v`` are re-priced: their tracked vertices changed.)
        measured_below: the measured stage (see the module) starts once at most this fraction
            of the input's vertices is left; 0 uses the quadrics alone (Garland & Heckbert),
            1 measures from the start (slower, no better at fine levels).
        quadric_weight: in the measured stage, the weight of the square root of the quadric
            cost (the distance it stands for, and the boundary planes with it), added to the
            measured increase of the summed distance.
        outline_weight: in the measured stage, a collapse along the outline also costs
            ``outline_weight * h**2 / l``, with ``h`` the largest distance from the outline
            vertices it removes to the new outline edge and ``l`` the input's mean boundary
            edge length (so the weight has no unit).
        keep_outline_fraction: with ``preserve_boundary``, no boundary vertex is removed while
            the vertices left number at least ``boundary vertices / keep_outline_fraction``
            (the outline is then exactly the original), unless nothing else can collapse; 0
            turns this off.
        flip_edges: in the measured stage, flip the edges around each kept vertex where that
            brings the tracked input vertices closer to the surface.
        validate: check the input with :func:`~facegcn_lib.mesh.validate.validate_mesh`.
    """

    preserve_boundary: bool = True
    boundary_weight: float = 100.0
    area_weighted: bool = False
    min_normal_dot: float = 0.2
    min_quality: float = 0.02
    length_weight: float = 0.0
    refresh: int = 2
    measured_below: float = 0.1
    quadric_weight: float = 1.0
    outline_weight: float = 20.0
    keep_outline_fraction: float = 0.2
    flip_edges: bool = True
    validate: bool = True

    def __post_init__(self) -> None:
        problems = []
        for name in ("boundary_weight", "length_weight", "quadric_weight", "outline_weight"):
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)}")
        if not -1.0 <= self.min_normal_dot <= 1.0:
            problems.append(f"min_normal_dot is a cosine in [-1, 1], got {self.min_normal_dot}")
        if not 0.0 <= self.min_quality < 1.0:
            problems.append(f"min_quality must be in [0, 1), got {self.min_quality}")
        if self.refresh not in (1, 2):
            problems.append(f"refresh must be 1 or 2, got {self.refresh}")
        for name in ("measured_below", "keep_outline_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} is a fraction in [0, 1], got {getattr(self, name)}")
        if problems:
            raise DecimationError("bad DecimationConfig: " + "; ".join(problems))


@dataclass(frozen=True)
class DecimationResult:
    """One decimated mesh.

    Attributes:
        verts: (n, 3) float64 positions, a subset of the input's: ``verts == input[kept]``.
        faces: (m, 3) int64 triangles over the ``n`` kept vertices, orientation preserved.
        kept: (n,) int64 increasing indices of the kept vertices in the input.
        collapses: (V - n, 2) int64 input indices ``(removed, onto)`` of each collapse, in order.
    """

    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    kept: NDArray[np.int64]
    collapses: NDArray[np.int64]


# --- quadrics ---------------------------------------------------------------------------------

def _plane_quadrics(normals: NDArray[np.float64], points: NDArray[np.float64],
                    weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """(N, 10) quadrics ``w p p^T`` of planes ``n . x + d = 0`` through ``points``."""
    d = -np.einsum("ij,ij->i", normals, points)
    p = np.concatenate([normals, d[:, None]], axis=1)
    iu = np.triu_indices(4)
    out: NDArray[np.float64] = weights[:, None] * (p[:, iu[0]] * p[:, iu[1]])
    return out


def vertex_quadrics(verts: NDArray[np.float64], faces: NDArray[np.int64],
                    config: DecimationConfig) -> NDArray[np.float64]:
    """(V, 10) initial quadric of each vertex: its triangles' planes plus boundary constraints.

    Each triangle's plane is weighted by 1 (or its area); with ``config.preserve_boundary`` each
    boundary edge adds, to both its ends, the plane through the edge perpendicular to its
    triangle, weighted by ``config.boundary_weight`` (times the edge's length squared when area
    weighted). The 10 columns are the upper triangle of the symmetric 4x4 matrix, row by row.

    Args:
        verts: (V, 3) float64 positions.
        faces: (F, 3) int64 triangles.
        config: whether to weight by area and to add boundary planes, and their weight.
    """
    v0, v1, v2 = (verts[faces[:, k]] for k in range(3))
    cross = np.cross(v1 - v0, v2 - v0)
    dbl_area = np.linalg.norm(cross, axis=1)
    normals = np.divide(cross, dbl_area[:, None], out=np.zeros_like(cross),
                        where=dbl_area[:, None] > 0)
    w = 0.5 * dbl_area if config.area_weighted else np.ones(len(faces))
    fq = _plane_quadrics(normals, v0, w)
    nv = len(verts)
    q = np.zeros((nv, N_QUADRIC))
    idx = faces.ravel()
    rep = np.repeat(fq, 3, axis=0)
    for c in range(N_QUADRIC):
        q[:, c] = np.bincount(idx, weights=rep[:, c], minlength=nv)
    if config.preserve_boundary:
        be = boundary_edges(faces)
        if len(be):
            owner = _boundary_owner(faces, be)
            e = verts[be[:, 1]] - verts[be[:, 0]]
            cn = np.cross(e, normals[owner])
            length = np.linalg.norm(cn, axis=1, keepdims=True)
            cn = np.divide(cn, length, out=np.zeros_like(cn), where=length > 0)
            bw = config.boundary_weight * np.sum(e * e, axis=1)
            if not config.area_weighted:
                bw = np.full(len(be), config.boundary_weight)
            bq = _plane_quadrics(cn, verts[be[:, 0]], bw)
            for c in range(N_QUADRIC):
                q[:, c] += np.bincount(be[:, 0], weights=bq[:, c], minlength=nv)
                q[:, c] += np.bincount(be[:, 1], weights=bq[:, c], minlength=nv)
    return q


def _boundary_owner(faces: NDArray[np.int64], be: NDArray[np.int64]) -> NDArray[np.int64]:
    """(B,) int64 the triangle of each directed boundary edge."""
    he = half_edges(faces)
    nv = int(faces.max()) + 1
    key_he = he[:, 0] * nv + he[:, 1]
    key_be = be[:, 0] * nv + be[:, 1]
    order = np.argsort(key_he, kind="stable")
    pos = np.searchsorted(key_he[order], key_be)
    return (order[pos] // 3).astype(np.int64)


# --- the numba core: costs and the priority queue ---------------------------------------------
#
# The loop's arrays travel in two tuples: ``mesh`` = (pos, faces, ref, face_alive, alive, is_b,
# tstart, tcount, refs), the working mesh (``refs[tstart[x]:tstart[x] + tcount[x]]`` lists the
# triangles of vertex ``x``, dead ones included until compacted; ``ref`` holds each triangle's
# reference normal), and ``track`` = (head, nxt, pdist, rank, bnext, bprev, bhead, bnxt, bdist),
# the measured stage's tracked input vertices: a linked list per triangle (``head``/``nxt``) with
# each one's distance to it (``pdist``) and its place in the thinning order (``rank``), and per
# directed boundary edge ``s -> bnext[s]`` the removed outline vertices closest to it
# (``bhead``/``bnxt``, distance ``bdist``).

@njit(cache=True)
def _qeval(q: NDArray[np.float64], i: int, j: int, p: NDArray[np.float64], k: int) -> float:
    """``x^T (Q_i + Q_j) x`` with ``x = (p[k], 1)``."""
    x, y, z = p[k, 0], p[k, 1], p[k, 2]
    a = q[i] + q[j]
    return float(a[0] * x * x + 2.0 * a[1] * x * y + 2.0 * a[2] * x * z + 2.0 * a[3] * x
            + a[4] * y * y + 2.0 * a[5] * y * z + 2.0 * a[6] * y
            + a[7] * z * z + 2.0 * a[8] * z + a[9])


@njit(cache=True)
def _quadric_cost(q: NDArray[np.float64], pos: NDArray[np.float64], u: int, v: int,
                  length_weight: float) -> float:
    """Quadric cost of collapsing ``u`` onto ``v``; a negative ``length_weight`` means ``|u - v|^4``."""
    c = max(_qeval(q, u, v, pos, v), 0.0)
    if length_weight == 0.0:
        return c
    dx = pos[u, 0] - pos[v, 0]
    dy = pos[u, 1] - pos[v, 1]
    dz = pos[u, 2] - pos[v, 2]
    l2 = dx * dx + dy * dy + dz * dz
    return float(c + (length_weight * l2 if length_weight > 0.0 else -length_weight * l2 * l2))


@njit(cache=True)
def _point_tri(pos: NDArray[np.float64], p: int, a: int, b: int, c: int) -> float:
    """Distance from vertex ``p`` to triangle ``(a, b, c)``."""
    return math.sqrt(_tri_dist2(
        pos[p, 0] - pos[a, 0], pos[p, 1] - pos[a, 1], pos[p, 2] - pos[a, 2],
        pos[b, 0] - pos[a, 0], pos[b, 1] - pos[a, 1], pos[b, 2] - pos[a, 2],
        pos[c, 0] - pos[a, 0], pos[c, 1] - pos[a, 1], pos[c, 2] - pos[a, 2]))


@njit(cache=True)
def _point_segment(pos: NDArray[np.float64], p: int, a: int, b: int) -> float:
    """Distance from vertex ``p`` to the segment from ``a`` to ``b``."""
    ex, ey, ez = pos[b, 0] - pos[a, 0], pos[b, 1] - pos[a, 1], pos[b, 2] - pos[a, 2]
    px, py, pz = pos[p, 0] - pos[a, 0], pos[p, 1] - pos[a, 1], pos[p, 2] - pos[a, 2]
    ee = ex * ex + ey * ey + ez * ez
    t = min(1.0, max(0.0, (px * ex + py * ey + pz * ez) / ee)) if ee > 0.0 else 0.0
    dx, dy, dz = px - t * ex, py - t * ey, pz - t * ez
    return math.sqrt(dx * dx + dy * dy + dz * dz)


@njit(cache=True)
def _tri_dist2(apx: float, apy: float, apz: float, abx: float, aby: float, abz: float,
               acx: float, acy: float, acz: float) -> float:
    """Squared distance from a point to a triangle ``(a, b, c)``, given ``p - a, b - a, c - a``.

    Ericson's closest point (Real-Time Collision Detection, 5.1.5), as
    :func:`facegcn_lib.mesh.proximity.closest_points` uses, without the barycentric output.
    """
    d1 = abx * apx + aby * apy + abz * apz
    d2 = acx * apx + acy * apy + acz * apz
    qx, qy, qz = apx, apy, apz  # p - closest point, for the vertex-a region
    if not (d1 <= 0.0 and d2 <= 0.0):
        bpx, bpy, bpz = apx - abx, apy - aby, apz - abz
        d3 = abx * bpx + aby * bpy + abz * bpz
        d4 = acx * bpx + acy * bpy + acz * bpz
        cpx, cpy, cpz = apx - acx, apy - acy, apz - acz
        d5 = abx * cpx + aby * cpy + abz * cpz
        d6 = acx * cpx + acy * cpy + acz * cpz
        vc = d1 * d4 - d3 * d2
        vb = d5 * d2 - d1 * d6
        va = d3 * d6 - d5 * d4
        if d3 >= 0.0 and d4 <= d3:
            qx, qy, qz = bpx, bpy, bpz
        elif vc <= 0.0 and d1 >= 0.0 and d3 <= 0.0 and d1 - d3 > 0.0:
            t = d1 / (d1 - d3)
            qx, qy, qz = apx - t * abx, apy - t * aby, apz - t * abz
        elif d6 >= 0.0 and d5 <= d6:
            qx, qy, qz = cpx, cpy, cpz
        elif vb <= 0.0 and d2 >= 0.0 and d6 <= 0.0 and d2 - d6 > 0.0:
            t = d2 / (d2 - d6)
            qx, qy, qz = apx - t * acx, apy - t * acy, apz - t * acz
        elif va <= 0.0 and d4 - d3 >= 0.0 and d5 - d6 >= 0.0 and (d4 - d3) + (d5 - d6) > 0.0:
            t = (d4 - d3) / ((d4 - d3) + (d5 - d6))
            qx, qy, qz = bpx - t * (acx - abx), bpy - t * (acy - aby), bpz - t * (acz - abz)
        elif va + vb + vc > 0.0:
            den = 1.0 / (va + vb + vc)
            sv, sw = vb * den, vc * den
            qx = apx - sv * abx - sw * acx
            qy = apy - sv * aby - sw * acy
            qz = apz - sv * abz - sw * acz
    return float(qx * qx + qy * qy + qz * qz)


@njit(cache=True)
def _fan_geometry(pos: NDArray[np.float64], fan: NDArray[np.int64], n_fan: int,
                  geo: NDArray[np.float64]) -> None:
    """Per triangle of ``fan[:n_fan]``: corner a, b - a, c - a, centroid, bounding radius."""
    for j in range(n_fan):
        a, b, c = fan[j, 0], fan[j, 1], fan[j, 2]
        r2 = 0.0
        for d in range(3):
            geo[j, d] = pos[a, d]
            geo[j, 3 + d] = pos[b, d] - pos[a, d]
            geo[j, 6 + d] = pos[c, d] - pos[a, d]
            geo[j, 9 + d] = (pos[a, d] + pos[b, d] + pos[c, d]) / 3.0
        for x in (a, b, c):
            dx = pos[x, 0] - geo[j, 9]
            dy = pos[x, 1] - geo[j, 10]
            dz = pos[x, 2] - geo[j, 11]
            r2 = max(r2, dx * dx + dy * dy + dz * dz)
        geo[j, 12] = math.sqrt(r2)


@njit(cache=True)
def _fan_distance(pos: NDArray[np.float64], p: int, geo: NDArray[np.float64], n_fan: int,
                  dc: NDArray[np.float64]) -> float:
    """Distance from vertex ``p`` to the closest triangle of a fan (see :func:`_fan_geometry`).

    The triangle with the nearest centroid first, then only those whose bounding sphere could
    hold something closer.
    """
    px, py, pz = pos[p, 0], pos[p, 1], pos[p, 2]
    first = 0
    for j in range(n_fan):
        dx, dy, dz = px - geo[j, 9], py - geo[j, 10], pz - geo[j, 11]
        dc[j] = dx * dx + dy * dy + dz * dz
        if dc[j] < dc[first]:
            first = j
    best = np.inf
    for i in range(n_fan):
        j = first if i == 0 else (0 if i == first else i)  # the nearest centroid's first
        reach = best + geo[j, 12]
        if dc[j] >= reach * reach:
            continue
        d2 = _tri_dist2(px - geo[j, 0], py - geo[j, 1], pz - geo[j, 2], geo[j, 3], geo[j, 4],
                        geo[j, 5], geo[j, 6], geo[j, 7], geo[j, 8])
        best = min(best, math.sqrt(d2))
    return float(best)


@njit(cache=True)
def _measured_cost(u: int, v: int, mesh: tuple, track: tuple, step: int) -> float:
    """Increase of the tracked vertices' summed distance to the surface if ``u`` moves onto ``v``.

    The vertices tracked on ``u``'s triangles and ``u`` itself (when in the sample) are measured
    against ``v``'s triangles after the collapse; at most :data:`COST_SAMPLES` of them, evenly
    spaced, the sum scaled up. Each tracked vertex stands for ``step`` input vertices.
    """
    pos, faces, _, face_alive, _, _, tstart, tcount, refs = mesh
    head, nxt, pdist, rank = track[0], track[1], track[2], track[3]
    n_max = tcount[u] + tcount[v]
    fan = np.empty((n_max, 3), dtype=np.int64)
    n_fan = 0
    for x, y in ((u, v), (v, u)):
        for k in range(tstart[x], tstart[x] + tcount[x]):
            f = refs[k]
            if not face_alive[f] or faces[f, 0] == y or faces[f, 1] == y or faces[f, 2] == y:
                continue
            for c in range(3):
                fan[n_fan, c] = v if faces[f, c] == u else faces[f, c]
            n_fan += 1
    if n_fan == 0:
        return np.inf
    n_pts = 1 if rank[u] % step == 0 else 0
    for k in range(tstart[u], tstart[u] + tcount[u]):
        f = refs[k]
        if face_alive[f]:
            p = head[f]
            while p >= 0:
                n_pts += 1
                p = nxt[p]
    if n_pts == 0:
        return 0.0
    geo = np.empty((n_fan, 13), dtype=np.float64)
    dc = np.empty(n_fan, dtype=np.float64)
    _fan_geometry(pos, fan, n_fan, geo)
    every = max(1, n_pts // COST_SAMPLES)
    total = 0.0
    n_done = 0
    i = 0
    p = u if rank[u] % step == 0 else -1
    k = tstart[u]
    end = tstart[u] + tcount[u]
    while True:
        if p < 0:  # the next tracked vertex: along the current list, else the next triangle's
            while k < end and (not face_alive[refs[k]] or head[refs[k]] < 0):
                k += 1
            if k == end:
                break
            p = head[refs[k]]
            k += 1
        if i % every == 0:
            total += _fan_distance(pos, p, geo, n_fan, dc) - (pdist[p] if p != u else 0.0)
            n_done += 1
        i += 1
        p = nxt[p] if p != u else -1
    return step * total * n_pts / n_done


@njit(cache=True)
def _outline_step(u: int, v: int, pos: NDArray[np.float64], track: tuple, apply: bool) -> float:
    """Largest distance of the outline vertices near ``u`` to the outline after ``u -> v``.

    For a collapse along the boundary edge ``u - v``: the outline vertices tracked on ``u``'s two
    boundary edges, and ``u``, measured against the edge that replaces them. With ``apply`` they
    are moved to it and the boundary links updated. Returns 0 for any other collapse.
    """
    bnext, bprev, bhead, bnxt, bdist = track[4], track[5], track[6], track[7], track[8]
    if bnext[u] == v:  # w -> u -> v becomes w -> v
        s0, s1 = bprev[u], v
    elif bprev[u] == v:  # v -> u -> w becomes v -> w
        s0, s1 = v, bnext[u]
    else:
        return 0.0
    worst = _point_segment(pos, u, s0, s1)
    for lst in (s0, u):  # the vertices tracked on s0 -> u (or on v -> u) and on u -> ...
        p = bhead[lst]
        while p >= 0:
            worst = max(worst, _point_segment(pos, p, s0, s1))
            p = bnxt[p]
    if apply:  # u's list and u join s0's list, now the edge s0 -> s1
        p = bhead[u]
        bhead[u] = -1
        while p >= 0:
            after = bnxt[p]
            bnxt[p] = bhead[s0]
            bhead[s0] = p
            p = after
        bnxt[u] = bhead[s0]
        bhead[s0] = u
        p = u
        while p >= 0:
            bdist[p] = _point_segment(pos, p, s0, s1)
            p = bnxt[p]
        bnext[s0] = s1
        bprev[s1] = s0
        bnext[u] = -1
        bprev[u] = -1
    return worst


@njit(cache=True)
def _cost(u: int, v: int, mesh: tuple, q: NDArray[np.float64], track: tuple,
          params: NDArray[np.float64]) -> float:
    """Cost of collapsing ``u`` onto ``v``: quadric, or measured (see the module)."""
    pos, is_b = mesh[0], mesh[5]
    c = _quadric_cost(q, pos, u, v, params[_LENGTH_W])
    if params[_MEASURED] == 0.0:
        return c
    out = params[_QUADRIC_W] * math.sqrt(c)
    out += _measured_cost(u, v, mesh, track, int(params[_STEP]))
    if params[_PRESERVE] > 0.0 and params[_OUTLINE_W] > 0.0 and is_b[u]:
        dev = _outline_step(u, v, pos, track, False)
        out += params[_OUTLINE_W] * dev * dev / params[_OUTLINE_SCALE]
    return float(out)


@njit(cache=True)
def _heap_push(hc: NDArray[np.float64], hi: NDArray[np.int64], size: int, cost: float,
               u: int, v: int, su: int, sv: int) -> int:
    i = size
    hc[i] = cost
    hi[i, 0] = u
    hi[i, 1] = v
    hi[i, 2] = su
    hi[i, 3] = sv
    while i > 0:
        p = (i - 1) // 2
        if hc[p] <= hc[i]:
            break
        hc[p], hc[i] = hc[i], hc[p]
        for k in range(4):
            hi[p, k], hi[i, k] = hi[i, k], hi[p, k]
        i = p
    return size + 1


@njit(cache=True)
def _heap_pop(hc: NDArray[np.float64], hi: NDArray[np.int64], size: int,
              out: NDArray[np.int64]) -> int:
    """Pop the smallest entry into ``out`` (u, v, su, sv); returns the new size."""
    for k in range(4):
        out[k] = hi[0, k]
    size -= 1
    hc[0] = hc[size]
    for k in range(4):
        hi[0, k] = hi[size, k]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        m = left
        if left + 1 < size and hc[left + 1] < hc[left]:
            m = left + 1
        if hc[i] <= hc[m]:
            break
        hc[m], hc[i] = hc[i], hc[m]
        for k in range(4):
            hi[m, k], hi[i, k] = hi[i, k], hi[m, k]
        i = m
    return size


@njit(cache=True)
def _push_pair(x: int, w: int, mesh: tuple, q: NDArray[np.float64], ver: NDArray[np.int64],
               track: tuple, params: NDArray[np.float64], hc: NDArray[np.float64],
               hi: NDArray[np.int64], size: int, both: bool) -> int:
    """Push the collapse ``x -> w`` (and ``w -> x`` when ``both``) where allowed.

    When preserving, a boundary vertex never moves onto an interior one, and no boundary vertex
    moves at all while the whole outline is kept.
    """
    is_b = mesh[5]
    preserve = params[_PRESERVE] > 0.0
    frozen = preserve and params[_KEEP_OUTLINE] > 0.0
    if not (preserve and is_b[x] and (frozen or not is_b[w])):
        size = _heap_push(hc, hi, size, _cost(x, w, mesh, q, track, params), x, w, ver[x],
                          ver[w])
    if both and not (preserve and is_b[w] and (frozen or not is_b[x])):
        size = _heap_push(hc, hi, size, _cost(w, x, mesh, q, track, params), w, x, ver[w],
                          ver[x])
    return size


#: ``skip_tag`` of :func:`_push_vertex_edges` that no vertex carries: skip no neighbour.
_SKIP_NONE = -1


@njit(cache=True)
def _push_vertex_edges(x: int, mesh: tuple, mark: NDArray[np.int64], tag: int,
                       q: NDArray[np.float64], ver: NDArray[np.int64], track: tuple,
                       params: NDArray[np.float64], hc: NDArray[np.float64],
                       hi: NDArray[np.int64], size: int, both: bool,
                       skip: NDArray[np.int64], skip_tag: int) -> int:
    """Push the collapses ``x -> w`` (and ``w -> x`` when ``both``) for each neighbour ``w``,
    except the neighbours with ``skip[w] == skip_tag`` (their edges were pushed already)."""
    faces, face_alive, tstart, tcount, refs = mesh[1], mesh[3], mesh[6], mesh[7], mesh[8]
    mark[x] = tag
    for k in range(tstart[x], tstart[x] + tcount[x]):
        f = refs[k]
        if not face_alive[f]:
            continue
        for c in range(3):
            w = faces[f, c]
            if mark[w] == tag or skip[w] == skip_tag:
                continue
            mark[w] = tag
            size = _push_pair(x, w, mesh, q, ver, track, params, hc, hi, size, both)
    return size


@njit(cache=True)
def _rebuild_heap(mesh: tuple, mark: NDArray[np.int64], tag: int, q: NDArray[np.float64],
                  ver: NDArray[np.int64], track: tuple, params: NDArray[np.float64],
                  hc: NDArray[np.float64], hi: NDArray[np.int64]) -> tuple[int, int]:
    """Empty the queue and push every directed collapse of the current mesh once."""
    alive = mesh[4]
    size = 0
    for x in range(len(alive)):
        if alive[x]:
            tag += 1
            size = _push_vertex_edges(x, mesh, mark, tag, q, ver, track, params, hc, hi, size,
                                      False, mark, _SKIP_NONE)
    return size, tag


# --- the numba core: mesh updates ----------------------------------------------------------------

@njit(cache=True)
def _compact_refs(mesh: tuple) -> int:
    """Rewrite the vertex-to-face references without dead triangles; returns their end."""
    face_alive, alive, tstart, tcount, refs = mesh[3], mesh[4], mesh[6], mesh[7], mesh[8]
    tmp = np.empty(len(refs), dtype=np.int64)
    end = 0
    for x in range(len(alive)):
        if not alive[x]:
            tcount[x] = 0
            continue
        s = tstart[x]
        start = end
        for k in range(s, s + tcount[x]):
            f = refs[k]
            if face_alive[f]:
                tmp[end] = f
                end += 1
        tstart[x] = start
        tcount[x] = end - start
    refs[:end] = tmp[:end]
    return end


@njit(cache=True)
def _rewrite_refs(x: int, drop: int, add: int, mesh: tuple, refs_end: int) -> int:
    """Copy ``x``'s live triangles but ``drop``, plus ``add``, to ``refs[refs_end:]``."""
    face_alive, tstart, tcount, refs = mesh[3], mesh[6], mesh[7], mesh[8]
    start = refs_end
    for k in range(tstart[x], tstart[x] + tcount[x]):
        f = refs[k]
        if face_alive[f] and f != drop:
            refs[refs_end] = f
            refs_end += 1
    if add >= 0:
        refs[refs_end] = add
        refs_end += 1
    tstart[x] = start
    tcount[x] = refs_end - start
    return refs_end


@njit(cache=True)
def _n_faces(x: int, mesh: tuple) -> int:
    """Number of live triangles at vertex ``x``."""
    face_alive, tstart, tcount, refs = mesh[3], mesh[6], mesh[7], mesh[8]
    n = 0
    for k in range(tstart[x], tstart[x] + tcount[x]):
        if face_alive[refs[k]]:
            n += 1
    return n


@njit(cache=True)
def _face_with_edge(a: int, b: int, mesh: tuple) -> int:
    """The live triangle with the directed edge ``a -> b``, or -1."""
    faces, face_alive, tstart, tcount, refs = mesh[1], mesh[3], mesh[6], mesh[7], mesh[8]
    for k in range(tstart[a], tstart[a] + tcount[a]):
        f = refs[k]
        if not face_alive[f]:
            continue
        for c in range(3):
            if faces[f, c] == a and faces[f, (c + 1) % 3] == b:
                return int(f)
    return -1


@njit(cache=True)
def _tri_normal(pos: NDArray[np.float64], j0: int, j1: int, j2: int,
                out: NDArray[np.float64]) -> float:
    """Write triangle (j0, j1, j2)'s area-weighted normal to ``out``; returns its quality.

    Quality is ``4 sqrt(3) area / (sum of squared edge lengths)``: 1 when equilateral, 0 when
    degenerate.
    """
    ax, ay, az = pos[j1, 0] - pos[j0, 0], pos[j1, 1] - pos[j0, 1], pos[j1, 2] - pos[j0, 2]
    bx, by, bz = pos[j2, 0] - pos[j0, 0], pos[j2, 1] - pos[j0, 1], pos[j2, 2] - pos[j0, 2]
    cx, cy, cz = bx - ax, by - ay, bz - az
    out[0], out[1], out[2] = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    nlen = math.sqrt(out[0] * out[0] + out[1] * out[1] + out[2] * out[2])
    ssq = ax * ax + ay * ay + az * az + bx * bx + by * by + bz * bz + cx * cx + cy * cy + cz * cz
    return 2.0 * math.sqrt(3.0) * nlen / ssq if ssq > 0.0 else 0.0


@njit(cache=True)
def _normal_ok(n: NDArray[np.float64], quality: float, prev: NDArray[np.float64],
               ref: NDArray[np.float64], min_normal_dot: float, min_quality: float) -> bool:
    """Whether a new triangle of normal ``n`` and ``quality`` may replace one of normal ``prev``.

    Acceptable: quality at least ``min_quality`` (and above 0), normal turned from ``prev`` by
    less than ``acos(min_normal_dot)``, and on the same side as ``ref``, the summed
    area-weighted normals of the original triangles it stands for (so that small turns cannot
    add up to a flip).
    """
    if quality <= 0.0 or quality < min_quality:
        return False
    if n[0] * ref[0] + n[1] * ref[1] + n[2] * ref[2] <= 0.0:
        return False
    nlen = math.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2])
    plen = math.sqrt(prev[0] * prev[0] + prev[1] * prev[1] + prev[2] * prev[2])
    return plen == 0.0 or n[0] * prev[0] + n[1] * prev[1] + n[2] * prev[2] >= (
        min_normal_dot * nlen * plen)


@njit(cache=True)
def _tri_ok(pos: NDArray[np.float64], i0: int, i1: int, i2: int, u: int, v: int,
            ref: NDArray[np.float64], min_normal_dot: float, min_quality: float,
            tmp: NDArray[np.float64]) -> bool:
    """Whether triangle (i0, i1, i2) stays acceptable when its corner ``u`` moves onto ``v``.

    See :func:`_normal_ok`; ``tmp`` is (2, 3) scratch space.
    """
    _tri_normal(pos, i0, i1, i2, tmp[0])
    quality = _tri_normal(pos, v if i0 == u else i0, v if i1 == u else i1,
                          v if i2 == u else i2, tmp[1])
    return _normal_ok(tmp[1], quality, tmp[0], ref, min_normal_dot, min_quality)


@njit(cache=True)
def _take_points(f: int, head: NDArray[np.int64], nxt: NDArray[np.int64],
                 buf: NDArray[np.int64], n: int) -> int:
    """Move the vertices tracked on triangle ``f`` into ``buf[n:]``; returns the new count."""
    p = head[f]
    while p >= 0:
        buf[n] = p
        n += 1
        p = nxt[p]
    head[f] = -1
    return n


@njit(cache=True)
def _assign_points(buf: NDArray[np.int64], n: int, cand: NDArray[np.int64], n_cand: int,
                   mesh: tuple, track: tuple) -> None:
    """Track each vertex ``buf[:n]`` on the closest of the triangles ``cand[:n_cand]``."""
    pos, faces = mesh[0], mesh[1]
    head, nxt, pdist = track[0], track[1], track[2]
    for i in range(n):
        p = buf[i]
        best = np.inf
        best_f = cand[0]
        for j in range(n_cand):
            f = cand[j]
            d = _point_tri(pos, p, faces[f, 0], faces[f, 1], faces[f, 2])
            if d < best:
                best = d
                best_f = f
        nxt[p] = head[best_f]
        head[best_f] = p
        pdist[p] = best


@njit(cache=True)
def _thin(mesh: tuple, track: tuple, step: int) -> int:
    """Keep tracking only the vertices with ``rank % step == 0``; returns how many are left."""
    face_alive = mesh[3]
    head, nxt, rank = track[0], track[1], track[3]
    n = 0
    for f in range(len(face_alive)):
        if not face_alive[f]:
            continue
        p = head[f]
        head[f] = -1
        while p >= 0:
            after = nxt[p]
            if rank[p] % step == 0:
                nxt[p] = head[f]
                head[f] = p
                n += 1
            p = after
    return n


@njit(cache=True)
def _try_flip(a: int, b: int, mesh: tuple, track: tuple, refs_end: int,
              min_normal_dot: float, min_quality: float, buf: NDArray[np.int64],
              tmp: NDArray[np.float64], out: NDArray[np.int64]) -> int:
    """Flip the edge ``a -> b`` if that brings the tracked vertices closer to the surface.

    Triangles ``(a, b, c)`` and ``(b, a, d)`` become ``(c, a, d)`` and ``(d, b, c)`` when the
    edge ``c - d`` does not exist yet, ``a`` and ``b`` keep enough triangles, the new triangles
    pass :func:`_normal_ok` against the pair's summed normals, and the summed distance of the
    vertices tracked on the pair drops by :data:`FLIP_MIN_GAIN`. Returns the new end of
    ``refs``; ``out`` gets ``(c, d)`` after a flip, else ``(-1, -1)``. ``tmp`` is (3, 3).
    """
    pos, faces, ref, is_b = mesh[0], mesh[1], mesh[2], mesh[5]
    head, nxt, pdist = track[0], track[1], track[2]
    out[0], out[1] = -1, -1
    f1 = _face_with_edge(a, b, mesh)
    if f1 < 0:
        return refs_end
    f2 = _face_with_edge(b, a, mesh)
    if f2 < 0 or (head[f1] < 0 and head[f2] < 0):
        return refs_end
    c = faces[f1, 0] + faces[f1, 1] + faces[f1, 2] - a - b
    d = faces[f2, 0] + faces[f2, 1] + faces[f2, 2] - a - b
    if c == d or _face_with_edge(c, d, mesh) >= 0 or _face_with_edge(d, c, mesh) >= 0:
        return refs_end
    for x in (a, b):  # an interior vertex keeps >= 3 triangles, a boundary one >= 1
        if _n_faces(x, mesh) <= (1 if is_b[x] else 3):
            return refs_end
    _tri_normal(pos, faces[f1, 0], faces[f1, 1], faces[f1, 2], tmp[0])
    _tri_normal(pos, faces[f2, 0], faces[f2, 1], faces[f2, 2], tmp[1])
    for k in range(3):
        tmp[0, k] += tmp[1, k]
        tmp[2, k] = ref[f1, k] + ref[f2, k]
    for g0, g1, g2 in ((c, a, d), (d, b, c)):
        quality = _tri_normal(pos, g0, g1, g2, tmp[1])
        if not _normal_ok(tmp[1], quality, tmp[0], tmp[2], min_normal_dot, min_quality):
            return refs_end
    before = 0.0
    after = 0.0
    for f in (f1, f2):
        p = head[f]
        while p >= 0:
            before += pdist[p]
            after += min(_point_tri(pos, p, c, a, d), _point_tri(pos, p, d, b, c))
            p = nxt[p]
    if not after < before * (1.0 - FLIP_MIN_GAIN):
        return refs_end
    n = _take_points(f1, head, nxt, buf, 0)
    n = _take_points(f2, head, nxt, buf, n)
    faces[f1, 0], faces[f1, 1], faces[f1, 2] = c, a, d
    faces[f2, 0], faces[f2, 1], faces[f2, 2] = d, b, c
    for k in range(3):
        ref[f1, k] = 0.5 * tmp[2, k]
        ref[f2, k] = 0.5 * tmp[2, k]
    pair = np.array([f1, f2], dtype=np.int64)
    _assign_points(buf, n, pair, 2, mesh, track)
    tcount = mesh[7]
    if refs_end + tcount[a] + tcount[b] + tcount[c] + tcount[d] + 2 > len(mesh[8]):
        refs_end = _compact_refs(mesh)
    refs_end = _rewrite_refs(a, f2, -1, mesh, refs_end)
    refs_end = _rewrite_refs(b, f1, -1, mesh, refs_end)
    refs_end = _rewrite_refs(c, -1, f2, mesh, refs_end)
    refs_end = _rewrite_refs(d, -1, f1, mesh, refs_end)
    out[0], out[1] = c, d
    return refs_end


# --- the numba core: the loop --------------------------------------------------------------------

@njit(cache=True)
def _collapse_loop(mesh: tuple, q: NDArray[np.float64], ver: NDArray[np.int64],
                   mark: NDArray[np.int64], blocked: NDArray[np.int64], track: tuple,
                   hc: NDArray[np.float64], hi: NDArray[np.int64], state: NDArray[np.int64],
                   history: NDArray[np.int64], params: NDArray[np.float64], target: int) -> int:
    """Collapse edges until ``target`` vertices are alive (``_REACHED``) or none can go (``_STUCK``).

    ``state`` (see ``_ALIVE`` ...) and ``params`` (``_PRESERVE`` ...) are updated in place so a
    later call continues where this one stopped.
    """
    pos, faces, ref, face_alive, alive, is_b, tstart, tcount, refs = mesh
    head, nxt, rank = track[0], track[1], track[3]
    preserve = params[_PRESERVE] > 0.0
    min_normal_dot = params[_MIN_DOT]
    min_quality = params[_MIN_QUALITY]
    refresh = int(params[_REFRESH])
    measured = params[_MEASURED] > 0.0
    flip = measured and params[_FLIP] > 0.0
    n_alive, refs_end, size, n_done = state[_ALIVE], state[_REFS_END], state[_SIZE], state[_DONE]
    tag, since, n_flips, n_probes = state[_TAG], state[_SINCE], state[_FLIPS], state[_PROBES]
    n_boundary = state[_N_BOUNDARY]
    top = np.empty(4, dtype=np.int64)
    shared = np.empty(2, dtype=np.int64)
    opp = np.empty(2, dtype=np.int64)
    tmp = np.empty((3, 3), dtype=np.float64)
    flipped = np.empty(2, dtype=np.int64)
    buf = np.empty(len(alive), dtype=np.int64)
    cand = np.empty(16, dtype=np.int64)
    spokes = np.empty((16, 2), dtype=np.int64)
    seen = np.zeros(len(alive), dtype=np.int64)
    ring = np.empty(len(alive), dtype=np.int64)
    rounds = 0
    cap = len(hc)
    code = _REACHED
    while n_alive > target:
        # The whole outline is kept until it holds more than the set fraction of the vertices:
        # then the collapses of the boundary vertices join the queue.
        if params[_KEEP_OUTLINE] > 0.0 and n_boundary > params[_KEEP_OUTLINE] * n_alive:
            params[_KEEP_OUTLINE] = 0.0
            room = 0
            for x in range(len(alive)):
                if alive[x] and is_b[x]:
                    room += tcount[x] + 1
            if size + room <= cap:
                for x in range(len(alive)):
                    if alive[x] and is_b[x]:
                        tag += 1
                        size = _push_vertex_edges(x, mesh, mark, tag, q, ver, track, params,
                                                  hc, hi, size, False, mark, _SKIP_NONE)
            else:
                size = 0
        if size == 0:
            if since == 0:
                if params[_KEEP_OUTLINE] > 0.0:  # stuck with the outline frozen: free it
                    params[_KEEP_OUTLINE] = 0.0
                else:
                    code = _STUCK
                    break
            tag += 1
            size, tag = _rebuild_heap(mesh, mark, tag, q, ver, track, params, hc, hi)
            blocked[:] = 0
            since = 0
            continue
        size = _heap_pop(hc, hi, size, top)
        u, v = top[0], top[1]
        if not alive[u] or not alive[v] or ver[u] != top[2] or ver[v] != top[3]:
            continue
        # Triangles on the edge, and the neighbours of u.
        tag += 1
        tag_u = tag
        n_shared = 0
        bad = False
        for k in range(tstart[u], tstart[u] + tcount[u]):
            f = refs[k]
            if not face_alive[f]:
                continue
            has_v = False
            other = -1
            for c in range(3):
                w = faces[f, c]
                if w == v:
                    has_v = True
                elif w != u:
                    other = w
                if w != u:
                    mark[w] = tag_u
            if has_v:
                if n_shared == 2:
                    bad = True
                    break
                shared[n_shared] = f
                opp[n_shared] = other
                n_shared += 1
        if bad or n_shared == 0:
            continue
        edge_on_boundary = n_shared == 1
        # Link condition with the boundary closed by a virtual vertex.
        if is_b[u] and is_b[v] and not edge_on_boundary:
            continue
        if preserve and is_b[u] and not edge_on_boundary:
            continue
        tag += 1
        common = 0
        for k in range(tstart[v], tstart[v] + tcount[v]):
            f = refs[k]
            if not face_alive[f]:
                continue
            for c in range(3):
                w = faces[f, c]
                if w != v and w != u and mark[w] == tag_u:
                    mark[w] = tag
                    common += 1
        if common != n_shared:
            blocked[u] = 1  # blocked: retried when its neighbourhood changes (refresh 2)
            continue
        # The opposite vertices must keep enough triangles.
        for s in range(n_shared):
            o = opp[s]
            nfo = _n_faces(o, mesh)
            if (is_b[o] and nfo <= 1) or (not is_b[o] and nfo <= 3):
                bad = True
        if bad:
            blocked[u] = 1
            continue
        # No triangle of u may flip or degenerate when u moves onto v.
        for k in range(tstart[u], tstart[u] + tcount[u]):
            f = refs[k]
            if not face_alive[f] or f == shared[0] or (n_shared == 2 and f == shared[1]):
                continue
            if not _tri_ok(pos, faces[f, 0], faces[f, 1], faces[f, 2], u, v, ref[f],
                           min_normal_dot, min_quality, tmp):
                bad = True
                break
        if bad:
            blocked[u] = 1
            continue
        # Collapse u onto v: the tracked vertices of u's triangles (and u) are re-tracked below.
        moved = -1  # the outline vertex whose next boundary collapse now spans a new edge
        if measured and preserve and is_b[u]:
            bnext, bprev = track[4], track[5]
            moved = bprev[u] if bnext[u] == v else (bnext[u] if bprev[u] == v else -1)
            _outline_step(u, v, pos, track, True)
        need = tcount[u] + tcount[v]
        if refs_end + need > len(refs):
            refs_end = _compact_refs(mesh)
        n_mod = 0
        n_pts = 0
        for k in range(tstart[u], tstart[u] + tcount[u]):
            f = refs[k]
            if face_alive[f]:
                if measured:
                    n_pts = _take_points(f, head, nxt, buf, n_pts)
                if f != shared[0] and (n_shared == 1 or f != shared[1]):
                    n_mod += 1
        if measured and rank[u] % int(params[_STEP]) == 0:
            buf[n_pts] = u
            n_pts += 1
            n_probes += 1
        for s in range(n_shared):
            face_alive[shared[s]] = False
        if n_mod > 0:
            for k in range(tstart[u], tstart[u] + tcount[u]):
                f = refs[k]
                if face_alive[f]:
                    for s in range(n_shared):
                        for d in range(3):
                            ref[f, d] += ref[shared[s], d] / n_mod
        start = refs_end
        for k in range(tstart[v], tstart[v] + tcount[v]):
            f = refs[k]
            if face_alive[f]:
                refs[refs_end] = f
                refs_end += 1
        for k in range(tstart[u], tstart[u] + tcount[u]):
            f = refs[k]
            if face_alive[f]:
                for c in range(3):
                    if faces[f, c] == u:
                        faces[f, c] = v
                refs[refs_end] = f
                refs_end += 1
        tstart[v] = start
        tcount[v] = refs_end - start
        for c in range(N_QUADRIC):
            q[v, c] += q[u, c]
        alive[u] = False
        if is_b[u] and is_b[v]:
            n_boundary -= 1
        is_b[v] = is_b[v] or is_b[u]
        ver[v] += 1
        history[n_done, 0] = u
        history[n_done, 1] = v
        n_done += 1
        n_alive -= 1
        since += 1
        if measured:
            # Re-track on v's triangles; halve the sample when it outgrows the triangles.
            if tcount[v] > len(cand):
                cand = np.empty(2 * tcount[v], dtype=np.int64)
            for k in range(tcount[v]):
                cand[k] = refs[tstart[v] + k]
            _assign_points(buf, n_pts, cand, tcount[v], mesh, track)
            if n_probes > PROBES_PER_TRIANGLE * 2 * n_alive:
                params[_STEP] *= 2
                n_probes = _thin(mesh, track, int(params[_STEP]))
        if flip:
            # Flip the edges around v (each spoke, then the edge opposite v) where it pays.
            n_spokes = 0
            if 2 * tcount[v] > len(spokes):
                spokes = np.empty((4 * tcount[v], 2), dtype=np.int64)
            for k in range(tstart[v], tstart[v] + tcount[v]):
                f = refs[k]
                c = 0 if faces[f, 0] == v else (1 if faces[f, 1] == v else 2)
                w1, w2 = faces[f, (c + 1) % 3], faces[f, (c + 2) % 3]
                spokes[n_spokes, 0], spokes[n_spokes, 1] = v, w1
                spokes[n_spokes + 1, 0], spokes[n_spokes + 1, 1] = w1, w2
                n_spokes += 2
            for e in range(n_spokes):
                refs_end = _try_flip(spokes[e, 0], spokes[e, 1], mesh, track, refs_end,
                                     min_normal_dot, min_quality, buf, tmp, flipped)
                if flipped[0] >= 0:
                    n_flips += 1
                    if size + 2 <= cap:
                        size = _push_pair(flipped[0], flipped[1], mesh, q, ver, track, params,
                                          hc, hi, size, True)
                    else:
                        size = 0  # no room: the queue is rebuilt below
        # Re-queue the collapses of the edges around v with the new quadric, and (refresh 2)
        # those of the neighbours whose last collapse was refused: their triangles changed.
        # Re-price the collapses around v: those of v's edges, and those of the edges at each
        # vertex in `ring`: in the measured stage every neighbour of v (its triangles or tracked
        # vertices changed) and `moved`; with refresh 2 the neighbours whose last collapse was
        # refused (their triangles changed, so it may now be valid).
        rounds += 2
        seen[v] = rounds
        ring[0] = v
        n_ring = 1
        room = 2 * tcount[v] + 4
        for k in range(tstart[v], tstart[v] + tcount[v] + 1):
            w = moved if k == tstart[v] + tcount[v] else -1
            if k < tstart[v] + tcount[v]:
                f = refs[k]
                for c in range(3):
                    x = faces[f, c]
                    if x != v and seen[x] != rounds and (measured or (refresh > 1 and blocked[x])):
                        seen[x] = rounds
                        ring[n_ring] = x
                        n_ring += 1
                        room += 2 * tcount[x]
            elif w >= 0 and alive[w] and seen[w] != rounds:
                seen[w] = rounds
                ring[n_ring] = w
                n_ring += 1
                room += 2 * tcount[w]
        if size == 0 or size + room > cap:
            tag += 1
            size, tag = _rebuild_heap(mesh, mark, tag, q, ver, track, params, hc, hi)
            blocked[:] = 0
            continue
        for i in range(1, n_ring):
            blocked[ring[i]] = 0
            ver[ring[i]] += 1
        for i in range(n_ring):  # each edge once, both ways
            x = ring[i]
            tag += 1
            size = _push_vertex_edges(x, mesh, mark, tag, q, ver, track, params, hc, hi, size,
                                      True, seen, rounds + 1)
            seen[x] = rounds + 1
    state[_ALIVE], state[_REFS_END], state[_SIZE], state[_DONE] = n_alive, refs_end, size, n_done
    state[_TAG], state[_SINCE], state[_FLIPS], state[_PROBES] = tag, since, n_flips, n_probes
    state[_N_BOUNDARY] = n_boundary
    return code


# --- the Python driver ------------------------------------------------------------------------

def min_vertex_count(verts: NDArray, faces: NDArray) -> int:
    """A lower bound on the vertex count any topology-preserving decimation can reach.

    Each closed component needs at least 4 vertices (a tetrahedron) and each boundary loop
    at least 3 (one triangle's worth of outline).
    """
    f = np.asarray(faces, dtype=np.int64)
    nv = len(verts)
    n_comp, labels = connected_components(f, nv)
    loops = boundary_loops(f)
    per_comp = np.zeros(n_comp, dtype=np.int64)
    for lp in loops:
        per_comp[labels[lp[0]]] += MIN_LOOP_VERTS
    per_comp[per_comp == 0] = MIN_CLOSED_VERTS
    return int(per_comp.sum())


def _start_measuring(mesh: tuple, track: tuple, n_alive: int) -> tuple[int, int]:
    """Track the removed input vertices on their closest triangles: the measured stage's start.

    A sample of them (those with ``rank % step == 0``, ``step`` a power of two chosen so that
    about :data:`PROBES_PER_TRIANGLE` per triangle are left) on the closest live triangle, and
    every removed outline vertex on the closest boundary edge of the outline as it is now.
    Returns ``(step, tracked)``.
    """
    pos, faces, face_alive, alive = mesh[0], mesh[1], mesh[3], mesh[4]
    head, nxt, pdist, rank = track[0], track[1], track[2], track[3]
    bnext, bprev, bhead, bnxt, bdist = track[4], track[5], track[6], track[7], track[8]
    removed = int(len(alive) - n_alive)
    step = 1
    while removed / step > PROBES_PER_TRIANGLE * 2 * n_alive:
        step *= 2
    live = np.flatnonzero(face_alive)
    probes = np.flatnonzero(~alive & (rank % step == 0))
    if len(probes):
        cp = closest_points(pos[probes], pos, faces[live])
        on = live[cp.faces]
        pdist[probes] = cp.distances
        order = np.argsort(on, kind="stable")  # one linked list per triangle, in index order
        on, linked = on[order], probes[order]
        first = np.ones(len(on), dtype=bool)
        first[1:] = on[1:] != on[:-1]
        head[on[first]] = linked[first]
        nxt[linked[:-1][~first[1:]]] = linked[1:][~first[1:]]
    be = boundary_edges(faces[live])  # the outline as it is now
    bnext[:], bprev[:] = -1, -1
    bnext[be[:, 0]] = be[:, 1]
    bprev[be[:, 1]] = be[:, 0]
    starts = be[:, 0]
    lost = np.flatnonzero(~alive & (bdist < 0))  # removed outline vertices (marked -1)
    if len(lost) and len(starts):
        seg = np.stack([pos[starts], pos[bnext[starts]]], axis=1)
        for i in range(0, len(lost), SEGMENT_BLOCK):
            block = lost[i:i + SEGMENT_BLOCK]
            dist = _segment_distances(pos[block], seg)
            best = np.argmin(dist, axis=1)
            bdist[block] = dist[np.arange(len(block)), best]
            for p, s0 in zip(block.tolist(), starts[best].tolist(), strict=True):
                bnxt[p] = bhead[s0]
                bhead[s0] = p
    bdist[bdist < 0] = 0.0
    return step, len(probes)


def _segment_distances(points: NDArray[np.float64], seg: NDArray[np.float64]
                       ) -> NDArray[np.float64]:
    """(P, S) float64 distance from each point to each of the (S, 2, 3) segments."""
    a = seg[:, 0]
    ab = seg[:, 1] - a
    ab2 = np.maximum(np.einsum("sd,sd->s", ab, ab), np.finfo(np.float64).tiny)
    rel = points[:, None, :] - a[None]
    t = np.clip(np.einsum("psd,sd->ps", rel, ab) / ab2, 0.0, 1.0)
    d = rel - t[..., None] * ab[None]
    out: NDArray[np.float64] = np.sqrt(np.einsum("psd,psd->ps", d, d))
    return out


def decimate_levels(verts: NDArray, faces: NDArray, targets: Sequence[int],
                    config: DecimationConfig | None = None) -> list[DecimationResult]:
    """Decimate one mesh to several decreasing vertex counts in one pass.

    Decimating to ``targets[0]`` and then on to ``targets[1]`` continues the same collapse
    sequence (the quadrics remember the original surface), so each level's vertices are a
    subset of the previous level's.

    Args:
        verts: (V, 3) float positions (any unit; millimetres for faces).
        faces: (F, 3) int triangles of a clean oriented manifold (see
            :func:`~facegcn_lib.mesh.validate.validate_mesh`; repair with
            :func:`~facegcn_lib.mesh.validate.repair_mesh`).
        targets: strictly decreasing vertex counts, each at most V.
        config: decimation parameters; defaults to :class:`DecimationConfig`.

    Returns:
        One :class:`DecimationResult` per target, with ``kept`` indexing the input vertices.

    Raises:
        InvalidMeshError: the input is not a clean manifold (and ``config.validate``).
        DecimationError: a target is out of range or below :func:`min_vertex_count`.
        TargetUnreachableError: the collapses ran out before a target (the message says
            how far they got).
    """
    cfg = config or DecimationConfig()
    v_in = np.asarray(verts, dtype=np.float64)
    f_in = np.asarray(faces, dtype=np.int64)
    if cfg.validate:
        validate_mesh(v_in, f_in)
    elif v_in.ndim != 2 or v_in.shape[1] != 3 or f_in.ndim != 2 or f_in.shape[1] != 3:
        raise InvalidMeshError("verts must be (V, 3) and faces (F, 3)")
    nv = len(v_in)
    tg = [int(t) for t in targets]
    if not tg:
        return []
    if any(b >= a for a, b in itertools.pairwise(tg)):
        raise DecimationError(f"targets must be strictly decreasing, got {tg}")
    if tg[0] > nv:
        raise DecimationError(f"cannot decimate {nv} vertices up to {tg[0]}: a target must be at "
                              f"most the input's vertex count")
    lower = min_vertex_count(v_in, f_in)
    if tg[-1] < lower:
        raise DecimationError(
            f"target {tg[-1]} is below {lower}, the fewest vertices a mesh of this topology can "
            f"have ({MIN_LOOP_VERTS} per boundary loop, {MIN_CLOSED_VERTS} per closed component)")

    pos = np.ascontiguousarray(v_in)
    fw = f_in.copy()
    nf = len(fw)
    q = vertex_quadrics(pos, fw, cfg)
    be = boundary_edges(fw)
    is_b = np.zeros(nv, dtype=bool)
    is_b[be.ravel()] = True
    flat = fw.ravel()
    counts = np.bincount(flat, minlength=nv).astype(np.int64)
    refs = np.empty(REFS_SLACK * 3 * nf + 16, dtype=np.int64)
    refs[: 3 * nf] = np.argsort(flat, kind="stable") // 3
    tstart = np.zeros(nv, dtype=np.int64)
    tstart[1:] = np.cumsum(counts)[:-1]
    mesh = (pos, fw, face_normals(pos, fw, unit=False), np.ones(nf, dtype=bool),
            np.ones(nv, dtype=bool), is_b, tstart, counts, refs)
    bdist = np.zeros(nv)
    bdist[is_b] = -1.0  # outline vertices, not yet tracked
    none = np.full(nv, -1, dtype=np.int64)  # the measured stage fills in the tracking
    track = (np.full(nf, -1, dtype=np.int64), none.copy(), np.zeros(nv),
             np.random.default_rng(PROBE_SEED).permutation(nv).astype(np.int64), none.copy(),
             none.copy(), none.copy(), none.copy(), bdist)
    ver = np.zeros(nv, dtype=np.int64)
    mark = np.zeros(nv, dtype=np.int64)
    blocked = np.zeros(nv, dtype=np.int64)
    cap = HEAP_SLACK * 2 * 3 * nf + 64
    hc = np.empty(cap, dtype=np.float64)
    hi = np.empty((cap, 4), dtype=np.int64)
    history = np.empty((nv, 2), dtype=np.int64)
    params = np.zeros(_N_PARAMS)
    params[_PRESERVE] = float(cfg.preserve_boundary)
    params[_MIN_DOT], params[_MIN_QUALITY] = cfg.min_normal_dot, cfg.min_quality
    params[_LENGTH_W] = -cfg.length_weight if cfg.area_weighted else cfg.length_weight
    params[_REFRESH] = float(cfg.refresh)
    params[_QUADRIC_W], params[_OUTLINE_W] = cfg.quadric_weight, cfg.outline_weight
    params[_FLIP], params[_STEP] = float(cfg.flip_edges), 1.0
    params[_KEEP_OUTLINE] = cfg.keep_outline_fraction if cfg.preserve_boundary else 0.0
    if len(be):
        params[_OUTLINE_SCALE] = max(float(np.linalg.norm(pos[be[:, 1]] - pos[be[:, 0]],
                                                          axis=1).mean()), np.finfo(float).tiny)
    else:
        params[_OUTLINE_SCALE] = 1.0
    state = np.zeros(_N_STATE, dtype=np.int64)
    state[_ALIVE], state[_REFS_END], state[_N_BOUNDARY] = nv, 3 * nf, int(is_b.sum())
    size, tag = _rebuild_heap(mesh, mark, 1, q, ver, track, params, hc, hi)
    state[_SIZE], state[_TAG], state[_SINCE] = size, tag, 1

    measure_at = math.floor(cfg.measured_below * nv) if cfg.measured_below > 0 else -1
    stages = sorted(set(tg) | ({measure_at} if tg[-1] < measure_at < nv else set()), reverse=True)
    results: list[DecimationResult] = []
    for t in stages:
        if measure_at >= int(state[_ALIVE]) and params[_MEASURED] == 0.0:
            step, state[_PROBES] = _start_measuring(mesh, track, int(state[_ALIVE]))
            params[_MEASURED], params[_STEP] = 1.0, float(step)
            state[_SIZE], state[_SINCE] = 0, 1  # costs changed: rebuild the queue
        code = _collapse_loop(mesh, q, ver, mark, blocked, track, hc, hi, state, history, params,
                              t)
        if code != _REACHED:
            raise TargetUnreachableError(
                f"no valid edge collapse is left at {int(state[_ALIVE])} vertices, above the "
                f"target {t}: the remaining collapses would break the manifold or flip "
                f"triangles. Ask for at least {int(state[_ALIVE])} vertices, or relax "
                "DecimationConfig.min_quality / min_normal_dot")
        if t not in tg:
            continue
        alive, face_alive = mesh[4], mesh[3]
        kept = np.flatnonzero(alive).astype(np.int64)
        new_index = np.full(nv, -1, dtype=np.int64)
        new_index[kept] = np.arange(len(kept))
        out_f = new_index[fw[face_alive]]
        results.append(DecimationResult(v_in[kept].copy(), out_f, kept,
                                        history[: int(state[_DONE])].copy()))
        log.debug("decimated %d -> %d vertices, %d triangles (%d edge flips so far)", nv,
                  len(kept), len(out_f), int(state[_FLIPS]))
    return results


def decimate(verts: NDArray, faces: NDArray, n_target: int,
             config: DecimationConfig | None = None) -> DecimationResult:
    """Decimate a mesh to exactly ``n_target`` vertices, a subset of the input's.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles of a clean oriented manifold.
        n_target: the number of vertices to keep, ``min_vertex_count <= n_target <= V``.
        config: decimation parameters; defaults to :class:`DecimationConfig`.

    Returns:
        The decimated mesh; see :func:`decimate_levels` for the errors raised.
    """
    return decimate_levels(verts, faces, [n_target], config)[0]
