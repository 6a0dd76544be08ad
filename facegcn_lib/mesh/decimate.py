"""Quadric-error-metric mesh decimation by edge collapse onto an endpoint, keeping the outline.

The algorithm is Garland & Heckbert's (1997): every vertex carries a quadric, the sum of the
squared distances to the planes of its triangles (weighted by their areas), and the edge whose
collapse costs least under the summed quadric goes first, from a priority queue with lazy
updates. Two choices follow CoMA (Ranjan et al. 2018) and the paper: a collapse ``u -> v``
moves ``u`` onto ``v`` (no new positions), so every coarse vertex is a vertex of the input and
down-sampling is a selection; and the boundary is preserved, with Garland & Heckbert's
constraint planes (through each boundary edge, perpendicular to its triangle, heavily
weighted) plus a hard rule: a boundary vertex only slides along a boundary edge onto its
boundary neighbour, so the outline is simplified along itself and never torn inwards.

A collapse is carried out only if the mesh stays a manifold of the same topology (the link
condition, with the boundary closed by a virtual vertex), no vertex is left with too few
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

# Return codes of the numba loop.
_REACHED = 0
_STUCK = 1


class DecimationError(ValueError):
    """The decimation cannot produce the requested mesh; the message says why."""


class TargetUnreachableError(DecimationError):
    """No valid collapse is left before the target vertex count is reached."""


@dataclass(frozen=True)
class DecimationConfig:
    """Parameters of :func:`decimate`.

    Attributes:
        preserve_boundary: keep the outline: boundary constraint planes, and boundary
            vertices only collapse along a boundary edge onto a boundary vertex. ``False``
            treats the boundary like the interior (CoMA's behaviour).
        boundary_weight: weight of a boundary constraint plane relative to a triangle's plane
            (with ``area_weighted``, relative to the triangle areas: it is then multiplied by
            the edge's length squared, so the weight has no unit either way). Higher keeps the
            outline closer (and more boundary vertices) at the expense of the surface.
        area_weighted: weight each triangle's plane by its area; by default each plane counts
            once, as in CoMA, which spreads the error over the vertices (where a network's
            features live) rather than over the area.
        min_normal_dot: a collapse is refused if it turns a triangle's normal by more than
            ``acos(min_normal_dot)`` (a negative dot is a flip).
        min_quality: a collapse is refused if it creates a triangle of quality below this,
            with quality ``4 sqrt(3) area / (sum of squared edge lengths)`` (1 for equilateral).
        length_weight: adds ``length_weight * |u - v|^2`` (``|u - v|^4`` with area weighting,
            to match the quadrics' unit) to each collapse cost, so that on flat regions (zero
            quadric error) short edges go first and the vertices stay spread.
        refresh: after a collapse ``u -> v``, re-queue the collapses of the edges at ``v``
            (1), and also (2, the default) those at each neighbour of ``v`` whose last popped
            collapse was refused (link condition, flip or quality): its triangles changed, so
            the refused collapse may now be valid.
        validate: check the input with :func:`~facegcn_lib.mesh.validate.validate_mesh`.
    """

    preserve_boundary: bool = True
    boundary_weight: float = 100.0
    area_weighted: bool = False
    min_normal_dot: float = 0.2
    min_quality: float = 0.02
    length_weight: float = 0.0
    refresh: int = 2
    validate: bool = True

    def __post_init__(self) -> None:
        problems = []
        if not self.boundary_weight >= 0:
            problems.append(f"boundary_weight must be >= 0, got {self.boundary_weight}")
        if not -1.0 <= self.min_normal_dot <= 1.0:
            problems.append(f"min_normal_dot is a cosine in [-1, 1], got {self.min_normal_dot}")
        if not 0.0 <= self.min_quality < 1.0:
            problems.append(f"min_quality must be in [0, 1), got {self.min_quality}")
        if not self.length_weight >= 0:
            problems.append(f"length_weight must be >= 0, got {self.length_weight}")
        if self.refresh not in (1, 2):
            problems.append(f"refresh must be 1 or 2, got {self.refresh}")
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


# --- the numba core ---------------------------------------------------------------------------

@njit(cache=True)
def _qeval(q: NDArray[np.float64], i: int, j: int, p: NDArray[np.float64], k: int) -> float:
    """``x^T (Q_i + Q_j) x`` with ``x = (p[k], 1)``."""
    x, y, z = p[k, 0], p[k, 1], p[k, 2]
    a = q[i] + q[j]
    return float(a[0] * x * x + 2.0 * a[1] * x * y + 2.0 * a[2] * x * z + 2.0 * a[3] * x
            + a[4] * y * y + 2.0 * a[5] * y * z + 2.0 * a[6] * y
            + a[7] * z * z + 2.0 * a[8] * z + a[9])


@njit(cache=True)
def _cost(q: NDArray[np.float64], pos: NDArray[np.float64], u: int, v: int,
          length_weight: float) -> float:
    """Cost of collapsing ``u`` onto ``v``; a negative ``length_weight`` means ``|u - v|^4``."""
    c = max(_qeval(q, u, v, pos, v), 0.0)
    if length_weight == 0.0:
        return c
    dx = pos[u, 0] - pos[v, 0]
    dy = pos[u, 1] - pos[v, 1]
    dz = pos[u, 2] - pos[v, 2]
    l2 = dx * dx + dy * dy + dz * dz
    return float(c + (length_weight * l2 if length_weight > 0.0 else -length_weight * l2 * l2))


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
def _compact_refs(faces: NDArray[np.int64], face_alive: NDArray[np.bool_],
                  alive: NDArray[np.bool_], tstart: NDArray[np.int64],
                  tcount: NDArray[np.int64], refs: NDArray[np.int64]) -> int:
    """Rewrite the vertex-to-face references without dead triangles; returns their end."""
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
def _push_vertex_edges(x: int, faces: NDArray[np.int64], face_alive: NDArray[np.bool_],
                       tstart: NDArray[np.int64], tcount: NDArray[np.int64],
                       refs: NDArray[np.int64], mark: NDArray[np.int64], tag: int,
                       q: NDArray[np.float64], pos: NDArray[np.float64], ver: NDArray[np.int64],
                       is_b: NDArray[np.bool_], preserve: bool, length_weight: float,
                       hc: NDArray[np.float64], hi: NDArray[np.int64], size: int,
                       both: bool) -> int:
    """Push the collapses ``x -> w`` (and ``w -> x`` when ``both``) for each neighbour ``w``."""
    mark[x] = tag
    for k in range(tstart[x], tstart[x] + tcount[x]):
        f = refs[k]
        if not face_alive[f]:
            continue
        for c in range(3):
            w = faces[f, c]
            if mark[w] == tag:
                continue
            mark[w] = tag
            # x -> w: a boundary vertex never moves onto an interior one when preserving.
            if not (preserve and is_b[x] and not is_b[w]):
                size = _heap_push(hc, hi, size, _cost(q, pos, x, w, length_weight),
                                  x, w, ver[x], ver[w])
            if both and not (preserve and is_b[w] and not is_b[x]):
                size = _heap_push(hc, hi, size, _cost(q, pos, w, x, length_weight),
                                  w, x, ver[w], ver[x])
    return size


@njit(cache=True)
def _rebuild_heap(faces: NDArray[np.int64], face_alive: NDArray[np.bool_],
                  alive: NDArray[np.bool_], tstart: NDArray[np.int64],
                  tcount: NDArray[np.int64], refs: NDArray[np.int64], mark: NDArray[np.int64],
                  tag: int, q: NDArray[np.float64], pos: NDArray[np.float64],
                  ver: NDArray[np.int64], is_b: NDArray[np.bool_], preserve: bool,
                  length_weight: float, hc: NDArray[np.float64], hi: NDArray[np.int64]
                  ) -> tuple[int, int]:
    """Empty the queue and push every directed collapse of the current mesh once."""
    size = 0
    for x in range(len(alive)):
        if alive[x]:
            tag += 1
            size = _push_vertex_edges(x, faces, face_alive, tstart, tcount, refs, mark, tag, q,
                                      pos, ver, is_b, preserve, length_weight, hc, hi, size,
                                      False)
    return size, tag


@njit(cache=True)
def _tri_ok(pos: NDArray[np.float64], i0: int, i1: int, i2: int, u: int, v: int,
            ref: NDArray[np.float64], min_normal_dot: float, min_quality: float) -> bool:
    """Whether triangle (i0, i1, i2) stays acceptable when its corner ``u`` moves onto ``v``.

    Acceptable: quality at least ``min_quality``, normal turned by less than
    ``acos(min_normal_dot)``, and on the same side as ``ref``, the summed area-weighted normals
    of the original triangles it stands for (so small turns cannot add up to a flip).
    """
    j0 = v if i0 == u else i0
    j1 = v if i1 == u else i1
    j2 = v if i2 == u else i2
    # previous normal
    ax, ay, az = pos[i1, 0] - pos[i0, 0], pos[i1, 1] - pos[i0, 1], pos[i1, 2] - pos[i0, 2]
    bx, by, bz = pos[i2, 0] - pos[i0, 0], pos[i2, 1] - pos[i0, 1], pos[i2, 2] - pos[i0, 2]
    px, py, pz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    # new normal and quality
    ax, ay, az = pos[j1, 0] - pos[j0, 0], pos[j1, 1] - pos[j0, 1], pos[j1, 2] - pos[j0, 2]
    bx, by, bz = pos[j2, 0] - pos[j0, 0], pos[j2, 1] - pos[j0, 1], pos[j2, 2] - pos[j0, 2]
    cx, cy, cz = bx - ax, by - ay, bz - az
    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
    nlen = math.sqrt(nx * nx + ny * ny + nz * nz)
    ssq = ax * ax + ay * ay + az * az + bx * bx + by * by + bz * bz + cx * cx + cy * cy + cz * cz
    if ssq <= 0.0 or 2.0 * math.sqrt(3.0) * nlen < min_quality * ssq:
        return False
    if nx * ref[0] + ny * ref[1] + nz * ref[2] <= 0.0:
        return False
    plen = math.sqrt(px * px + py * py + pz * pz)
    return plen == 0.0 or (nx * px + ny * py + nz * pz) >= min_normal_dot * nlen * plen


@njit(cache=True)
def _collapse_loop(pos: NDArray[np.float64], faces: NDArray[np.int64],
                   ref: NDArray[np.float64], face_alive: NDArray[np.bool_],
                   alive: NDArray[np.bool_],
                   is_b: NDArray[np.bool_], q: NDArray[np.float64], ver: NDArray[np.int64],
                   tstart: NDArray[np.int64], tcount: NDArray[np.int64],
                   refs: NDArray[np.int64], mark: NDArray[np.int64], blocked: NDArray[np.int64],
                   hc: NDArray[np.float64],
                   hi: NDArray[np.int64], state: NDArray[np.int64], history: NDArray[np.int64],
                   params: NDArray[np.float64], target: int) -> int:
    """Collapse edges until ``target`` vertices are alive (``_REACHED``) or none can go (``_STUCK``).

    ``state`` holds [alive count, refs end, heap size, collapses done, marker tag,
    collapses since the last rebuild]; it is updated in place so a later call continues.
    """
    preserve = params[0] > 0.5
    min_normal_dot = params[1]
    min_quality = params[2]
    length_weight = params[3]
    refresh = int(params[4])
    n_alive, refs_end, size, n_done, tag, since = (state[0], state[1], state[2], state[3],
                                                   state[4], state[5])
    top = np.empty(4, dtype=np.int64)
    shared = np.empty(2, dtype=np.int64)
    opp = np.empty(2, dtype=np.int64)
    cap = len(hc)
    code = _REACHED
    while n_alive > target:
        if size == 0:
            if since == 0:
                code = _STUCK
                break
            tag += 1
            size, tag = _rebuild_heap(faces, face_alive, alive, tstart, tcount, refs, mark, tag,
                                      q, pos, ver, is_b, preserve, length_weight, hc, hi)
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
            nfo = 0
            for k in range(tstart[o], tstart[o] + tcount[o]):
                if face_alive[refs[k]]:
                    nfo += 1
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
                           min_normal_dot, min_quality):
                bad = True
                break
        if bad:
            blocked[u] = 1
            continue
        # Collapse u onto v.
        need = tcount[u] + tcount[v]
        if refs_end + need > len(refs):
            refs_end = _compact_refs(faces, face_alive, alive, tstart, tcount, refs)
        n_mod = 0
        for k in range(tstart[u], tstart[u] + tcount[u]):
            f = refs[k]
            if face_alive[f] and f != shared[0] and (n_shared == 1 or f != shared[1]):
                n_mod += 1
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
        is_b[v] = is_b[v] or is_b[u]
        ver[v] += 1
        history[n_done, 0] = u
        history[n_done, 1] = v
        n_done += 1
        n_alive -= 1
        since += 1
        # Re-queue the collapses of the edges around v with the new quadric, and (refresh 2)
        # those of the neighbours whose last collapse was refused: their triangles changed.
        room = 2 * tcount[v] + 4
        if refresh > 1:
            for k in range(tstart[v], tstart[v] + tcount[v]):
                f = refs[k]
                for c in range(3):
                    if blocked[faces[f, c]]:
                        room += 2 * tcount[faces[f, c]]
        if size + room > cap:
            tag += 1
            size, tag = _rebuild_heap(faces, face_alive, alive, tstart, tcount, refs, mark, tag,
                                      q, pos, ver, is_b, preserve, length_weight, hc, hi)
            blocked[:] = 0
            continue
        if refresh > 1:
            for k in range(tstart[v], tstart[v] + tcount[v]):
                f = refs[k]
                if not face_alive[f]:
                    continue
                for c in range(3):
                    w = faces[f, c]
                    if w != v and blocked[w]:
                        blocked[w] = 0
                        ver[w] += 1
                        tag += 1
                        size = _push_vertex_edges(w, faces, face_alive, tstart, tcount, refs,
                                                  mark, tag, q, pos, ver, is_b, preserve,
                                                  length_weight, hc, hi, size, True)
        tag += 1
        size = _push_vertex_edges(v, faces, face_alive, tstart, tcount, refs, mark, tag, q,
                                  pos, ver, is_b, preserve, length_weight, hc, hi, size, True)
    state[0], state[1], state[2], state[3], state[4], state[5] = (n_alive, refs_end, size, n_done,
                                                                  tag, since)
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
    is_b = np.zeros(nv, dtype=bool)
    is_b[boundary_edges(fw).ravel()] = True
    flat = fw.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat, minlength=nv).astype(np.int64)
    refs = np.empty(REFS_SLACK * 3 * nf + 16, dtype=np.int64)
    refs[: 3 * nf] = order // 3
    tstart = np.zeros(nv, dtype=np.int64)
    tstart[1:] = np.cumsum(counts)[:-1]
    ref = face_normals(pos, fw, unit=False)
    face_alive = np.ones(nf, dtype=bool)
    alive = np.ones(nv, dtype=bool)
    ver = np.zeros(nv, dtype=np.int64)
    mark = np.zeros(nv, dtype=np.int64)
    blocked = np.zeros(nv, dtype=np.int64)
    cap = HEAP_SLACK * 2 * 3 * nf + 64
    hc = np.empty(cap, dtype=np.float64)
    hi = np.empty((cap, 4), dtype=np.int64)
    history = np.empty((nv, 2), dtype=np.int64)
    lw = -cfg.length_weight if cfg.area_weighted else cfg.length_weight
    params = np.array([float(cfg.preserve_boundary), cfg.min_normal_dot, cfg.min_quality, lw,
                       float(cfg.refresh)])
    state = np.array([nv, 3 * nf, 0, 0, 0, 0], dtype=np.int64)
    size, tag = _rebuild_heap(fw, face_alive, alive, tstart, counts, refs, mark, 1, q,
                              pos, ver, is_b, cfg.preserve_boundary, lw, hc, hi)
    state[2], state[4], state[5] = size, tag, 1

    results: list[DecimationResult] = []
    for t in tg:
        code = _collapse_loop(pos, fw, ref, face_alive, alive, is_b, q, ver, tstart, counts, refs,
                              mark, blocked, hc, hi, state, history, params, t)
        if code != _REACHED:
            raise TargetUnreachableError(
                f"no valid edge collapse is left at {int(state[0])} vertices, above the target "
                f"{t}: the remaining collapses would break the manifold or flip triangles. Ask "
                f"for at least {int(state[0])} vertices, or relax DecimationConfig.min_quality / "
                "min_normal_dot")
        kept = np.flatnonzero(alive).astype(np.int64)
        new_index = np.full(nv, -1, dtype=np.int64)
        new_index[kept] = np.arange(len(kept))
        out_f = new_index[fw[face_alive]]
        results.append(DecimationResult(v_in[kept].copy(), out_f, kept,
                                        history[: int(state[3])].copy()))
        log.debug("decimated %d -> %d vertices, %d triangles", nv, len(kept), len(out_f))
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
