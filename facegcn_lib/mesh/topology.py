"""Combinatorial structure of a triangle mesh: edges, boundary, outline loops, components.

A *boundary edge* is an edge used by exactly one triangle; its two vertices are boundary
vertices, and the boundary edges chain into closed *loops* (the outline of a face mesh, the rims
of its holes). See :doc:`chapter 2 </chapters/02_decimation>`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray


def half_edges(faces: NDArray) -> NDArray[np.int64]:
    """The directed edges ``(a, b)`` of every triangle, in face order.

    Args:
        faces: (F, 3) int triangles.

    Returns:
        (3F, 2) int64: rows ``3f + k`` are the edge from corner ``k`` to corner ``k + 1`` of face ``f``.
    """
    f = np.asarray(faces, dtype=np.int64)
    return np.stack([f, np.roll(f, -1, axis=1)], axis=2).reshape(-1, 2)


def edge_keys(pairs: NDArray[np.int64], n_verts: int) -> NDArray[np.int64]:
    """(N,) int64 one integer per undirected pair, ``min * n_verts + max`` (for fast unique)."""
    lo = np.minimum(pairs[:, 0], pairs[:, 1])
    hi = np.maximum(pairs[:, 0], pairs[:, 1])
    return lo * np.int64(n_verts) + hi


def edges(faces: NDArray) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The undirected edges of a mesh and how many triangles use each.

    Args:
        faces: (F, 3) int triangles.

    Returns:
        ``(edges, counts)``: (E, 2) int64 sorted pairs ``a < b`` in lexicographic order, and
        (E,) int64 the number of triangles that use each edge (1 on the boundary, 2 inside,
        more on a non-manifold edge).
    """
    he = half_edges(faces)
    n = int(he.max()) + 1 if len(he) else 0
    uniq, counts = np.unique(edge_keys(he, n), return_counts=True)
    return np.stack([uniq // n, uniq % n], axis=1), counts.astype(np.int64)


def boundary_edges(faces: NDArray) -> NDArray[np.int64]:
    """The boundary edges, directed as in their triangle (so loops run consistently).

    Args:
        faces: (F, 3) int triangles of an edge-manifold mesh.

    Returns:
        (B, 2) int64 directed boundary edges.
    """
    he = half_edges(faces)
    if len(he) == 0:
        return he
    _, inverse, counts = np.unique(edge_keys(he, int(he.max()) + 1), return_inverse=True,
                                   return_counts=True)
    out: NDArray[np.int64] = he[counts[inverse] == 1]
    return out


def boundary_mask(faces: NDArray, n_verts: int) -> NDArray[np.bool_]:
    """(V,) bool: ``True`` for the vertices on a boundary edge."""
    mask = np.zeros(n_verts, dtype=bool)
    mask[boundary_edges(faces).ravel()] = True
    return mask


def boundary_loops(faces: NDArray) -> list[NDArray[np.int64]]:
    """The boundary as closed loops of vertex indices, longest first.

    Each loop lists its vertices in the direction of the triangles' orientation, without
    repeating the first vertex.

    Raises:
        ValueError: a vertex has more than one outgoing boundary edge (a pinched, non-manifold
            boundary); repair or split the mesh first.
    """
    be = boundary_edges(faces)
    if len(be) == 0:
        return []
    nxt: dict[int, int] = {}
    for a, b in be.tolist():
        if a in nxt:
            raise ValueError(f"vertex {a} has two outgoing boundary edges (a pinched boundary); "
                             "the mesh is not manifold there")
        nxt[a] = b
    loops: list[NDArray[np.int64]] = []
    seen: set[int] = set()
    for start in sorted(nxt):
        if start in seen:
            continue
        loop = [start]
        seen.add(start)
        cur = nxt[start]
        while cur != start:
            if cur in seen or cur not in nxt:
                raise ValueError(f"the boundary through vertex {cur} does not close into a loop")
            loop.append(cur)
            seen.add(cur)
            cur = nxt[cur]
        loops.append(np.asarray(loop, dtype=np.int64))
    loops.sort(key=lambda lp: (-len(lp), int(lp.min())))
    return loops


def connected_components(faces: NDArray, n_verts: int) -> tuple[int, NDArray[np.int64]]:
    """Connected components of the vertices through the triangles.

    Returns:
        ``(n, labels)``: the number of components and (V,) int64 the component of each vertex
        (an unreferenced vertex is a component of its own).
    """
    e = half_edges(faces)
    adj = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_verts, n_verts))
    n, labels = sp.csgraph.connected_components(adj, directed=False)
    return int(n), labels.astype(np.int64)


def face_normals(verts: NDArray, faces: NDArray, unit: bool = True) -> NDArray[np.float64]:
    """(F, 3) float64 triangle normals (right-hand rule over the corners).

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
        unit: normalise to length 1 (zero for a degenerate triangle); otherwise the length is
            twice the triangle's area.
    """
    v = np.asarray(verts, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    if unit:
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.divide(n, length, out=np.zeros_like(n), where=length > 0)
    out: NDArray[np.float64] = n
    return out


def face_areas(verts: NDArray, faces: NDArray) -> NDArray[np.float64]:
    """(F,) float64 triangle areas."""
    out: NDArray[np.float64] = 0.5 * np.linalg.norm(face_normals(verts, faces, unit=False), axis=1)
    return out


def euler_characteristic(n_verts: int, faces: NDArray) -> int:
    """``V - E + F``; edge collapses that keep the mesh manifold do not change it."""
    e, _ = edges(faces)
    return int(n_verts - len(e) + len(faces))
