"""Check that a triangle mesh is a valid oriented 2-manifold, and repair what can be repaired.

Decimation, sampling matrices and graph Laplacians assume a clean mesh: finite coordinates,
every vertex used, no repeated or duplicate triangles, each edge shared by at most two
consistently oriented triangles, and a single fan of triangles around each vertex.
:func:`inspect_mesh` counts each kind of defect, :func:`validate_mesh` raises
:class:`InvalidMeshError` naming them, and :func:`repair_mesh` fixes the defects that have one
obvious fix (see its docstring) and refuses the others. See
:doc:`chapter 2 </chapters/02_decimation>`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from facegcn_lib.mesh.topology import edge_keys, face_areas, half_edges

#: A triangle whose area is below this fraction of its longest edge squared counts as zero-area.
ZERO_AREA_RTOL = 1e-12


class InvalidMeshError(ValueError):
    """A mesh has defects that the algorithm cannot work with; the message lists them."""


@dataclass(frozen=True)
class MeshReport:
    """How many defects of each kind a mesh has (all zero for a clean mesh).

    Attributes:
        n_verts: number of vertices.
        n_faces: number of triangles.
        nonfinite_verts: vertices with a NaN or infinite coordinate.
        out_of_range: triangle corners that index no vertex.
        repeated_index_faces: triangles that use one vertex twice (``a a b``).
        duplicate_faces: triangles over the same three vertices as an earlier one.
        nonmanifold_edges: edges used by more than two triangles.
        misoriented_edges: edges whose two triangles run the same way along them (the
            triangles are not consistently oriented).
        nonmanifold_verts: vertices whose triangles form more than one fan (a "bow tie").
        unreferenced_verts: vertices no triangle uses.
        duplicate_verts: vertices at exactly the position of an earlier vertex (a seam).
        zero_area_faces: triangles with three distinct but collinear corners (not an error).
    """

    n_verts: int
    n_faces: int
    nonfinite_verts: int = 0
    out_of_range: int = 0
    repeated_index_faces: int = 0
    duplicate_faces: int = 0
    nonmanifold_edges: int = 0
    misoriented_edges: int = 0
    nonmanifold_verts: int = 0
    unreferenced_verts: int = 0
    duplicate_verts: int = 0
    zero_area_faces: int = 0

    def problems(self) -> list[str]:
        """One line per kind of defect present (``zero_area_faces`` is not a defect)."""
        out = []
        for f in fields(self):
            if f.name in ("n_verts", "n_faces", "zero_area_faces"):
                continue
            count = getattr(self, f.name)
            if count:
                out.append(f"{count} {f.name.replace('_', ' ')}")
        return out

    @property
    def ok(self) -> bool:
        """Whether the mesh has no defect."""
        return not self.problems()


def _as_arrays(verts: NDArray, faces: NDArray) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    v = np.asarray(verts)
    f = np.asarray(faces)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) == 0:
        raise InvalidMeshError(f"verts must be a non-empty (V, 3) array, got shape {v.shape}")
    if f.ndim != 2 or f.shape[1] != 3 or len(f) == 0:
        raise InvalidMeshError(f"faces must be a non-empty (F, 3) array of triangles, got shape "
                               f"{f.shape}; triangulate polygons first (facegcn_lib.mesh.io does)")
    if not np.issubdtype(f.dtype, np.integer):
        raise InvalidMeshError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
    return v.astype(np.float64, copy=False), f.astype(np.int64, copy=False)


def _edge_pairs(faces: NDArray[np.int64], n_verts: int
                ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """Half-edges grouped by undirected edge: (order, group starts, group sizes)."""
    key = edge_keys(half_edges(faces), n_verts)
    order = np.argsort(key, kind="stable")
    k = key[order]
    new = np.ones(len(k), dtype=bool)
    new[1:] = k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.append(starts, len(k)))
    return order, starts, sizes


def _face_keys(faces: NDArray[np.int64], n_verts: int) -> NDArray[np.int64]:
    """(F,) int64 one integer per unordered vertex triple (falls back to ranks when V is huge)."""
    fs = np.sort(faces, axis=1)
    n = np.int64(n_verts)
    if n_verts < 2_000_000:
        return (fs[:, 0] * n + fs[:, 1]) * n + fs[:, 2]
    order = np.lexsort((fs[:, 2], fs[:, 1], fs[:, 0]))
    new = np.ones(len(fs), dtype=bool)
    new[1:] = np.any(fs[order][1:] != fs[order][:-1], axis=1)
    ranks = np.empty(len(fs), dtype=np.int64)
    ranks[order] = np.cumsum(new) - 1
    return ranks


def duplicate_rows(a: NDArray) -> NDArray[np.int64]:
    """(N,) int64 for each row the index of the first row equal to it (itself if unique)."""
    order = np.lexsort(a.T[::-1])
    s = a[order]
    new = np.ones(len(a), dtype=bool)
    new[1:] = np.any(s[1:] != s[:-1], axis=1)
    group = np.cumsum(new) - 1
    first_in_group = np.minimum.reduceat(order, np.flatnonzero(new))
    out = np.empty(len(a), dtype=np.int64)
    out[order] = first_in_group[group]
    return out


def _nonmanifold_vertices(faces: NDArray[np.int64], n_verts: int) -> NDArray[np.int64]:
    """Vertices whose triangle corners form more than one fan (edge-connected group)."""
    order, starts, sizes = _edge_pairs(faces, n_verts)
    two = starts[sizes == 2]
    h1, h2 = order[two], order[two + 1]
    flat = faces.ravel()

    def end(h: NDArray[np.int64]) -> NDArray[np.int64]:
        return 3 * (h // 3) + (h % 3 + 1) % 3

    same_dir = flat[h1] == flat[h2]  # misoriented pair: both start at the same vertex
    a1, b1 = h1, end(h1)
    a2 = np.where(same_dir, h2, end(h2))
    b2 = np.where(same_dir, end(h2), h2)
    rows = np.concatenate([a1, b1])
    cols = np.concatenate([a2, b2])
    n_corners = len(flat)
    g = sp.coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_corners, n_corners))
    _, labels = sp.csgraph.connected_components(g, directed=False)
    pairs = np.unique(flat * np.int64(n_corners) + labels)
    fans = np.bincount(pairs // n_corners, minlength=n_verts)
    return np.flatnonzero(fans > 1)


def inspect_mesh(verts: NDArray, faces: NDArray) -> MeshReport:
    """Count the defects of a mesh (see :class:`MeshReport`); never raises on a defect.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles, 0-based.

    Raises:
        InvalidMeshError: only when the arrays do not have the shapes of a triangle mesh.
    """
    v, f = _as_arrays(verts, faces)
    nv, nf = len(v), len(f)
    finite = np.asarray(np.isfinite(v).all(axis=1), dtype=bool)
    nonfinite = int((~finite).sum())
    out = int(((f < 0) | (f >= nv)).sum())
    if out:
        return MeshReport(nv, nf, nonfinite_verts=nonfinite, out_of_range=out)
    repeated = (f[:, 0] == f[:, 1]) | (f[:, 1] == f[:, 2]) | (f[:, 2] == f[:, 0])
    n_dup_faces = nf - len(np.unique(_face_keys(f, nv)))
    good = f[~repeated]
    nonmanifold_edges = misoriented = nonmanifold_verts = zero = 0
    if len(good):
        _, _, sizes = _edge_pairs(good, nv)
        nonmanifold_edges = int((sizes > 2).sum())
        he = half_edges(good)
        _, he_counts = np.unique(he[:, 0] * np.int64(nv) + he[:, 1], return_counts=True)
        misoriented = int((he_counts > 1).sum())
        nonmanifold_verts = len(_nonmanifold_vertices(good, nv))
        ok = finite[good].all(axis=1)
        g = good[ok]
        longest_sq = np.max([np.sum((v[g[:, i]] - v[g[:, (i + 1) % 3]]) ** 2, axis=1)
                             for i in range(3)], axis=0)
        zero = int((face_areas(v, g) <= ZERO_AREA_RTOL * longest_sq).sum())
    used = np.zeros(nv, dtype=bool)
    used[f.ravel()] = True
    dup_verts = int((duplicate_rows(v) != np.arange(nv)).sum())
    return MeshReport(nv, nf, nonfinite, 0, int(repeated.sum()), n_dup_faces, nonmanifold_edges,
                      misoriented, nonmanifold_verts, int((~used).sum()), dup_verts, zero)


def validate_mesh(verts: NDArray, faces: NDArray, what: str = "mesh",
                  allow_duplicate_verts: bool = False) -> MeshReport:
    """Raise :class:`InvalidMeshError` unless the mesh is a clean oriented manifold.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
        what: how to name the mesh in the message.
        allow_duplicate_verts: accept distinct vertices at the same position (separate
            surfaces that touch, which merging would glue together).

    Returns:
        The report (defect-free, except duplicate vertices when allowed).
    """
    report = inspect_mesh(verts, faces)
    problems = [p for p in report.problems()
                if not (allow_duplicate_verts and p.endswith("duplicate verts"))]
    if problems:
        raise InvalidMeshError(
            f"the {what} ({report.n_verts} vertices, {report.n_faces} triangles) is not a clean "
            f"oriented manifold: {', '.join(problems)}. facegcn_lib.mesh.validate.repair_mesh fixes "
            "duplicate and unreferenced vertices and repeated or duplicate triangles; non-finite "
            "coordinates, non-manifold edges or vertices and inconsistent orientation must be "
            "fixed at the source.")
    return report


@dataclass(frozen=True)
class RepairedMesh:
    """The result of :func:`repair_mesh`.

    Attributes:
        verts: (V', 3) float64 positions.
        faces: (F', 3) int64 triangles over the new vertex numbering.
        vertex_map: (V,) int64 new index of each input vertex (merged vertices share one;
            -1 for a dropped vertex).
        face_map: (F',) int64 the input triangle each output triangle comes from.
        before: the report of the input.
    """

    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    vertex_map: NDArray[np.int64]
    face_map: NDArray[np.int64]
    before: MeshReport


def repair_mesh(verts: NDArray, faces: NDArray, merge_duplicates: bool = True) -> RepairedMesh:
    """Fix the defects that have one obvious fix, and refuse the others.

    Repairs, in this order: vertices at exactly the same position are merged into the first
    of them (``merge_duplicates``); triangles that then use a vertex twice are dropped; a
    triangle over the same vertices as an earlier one is dropped; vertices no triangle uses
    (also those with non-finite coordinates) are dropped and the rest renumbered in order.

    Raises:
        InvalidMeshError: defects remain that have no safe automatic fix: a used vertex with a
            non-finite coordinate, a corner index out of range, a non-manifold edge or vertex,
            or inconsistent orientation (possibly created by merging: then pass
            ``merge_duplicates=False``).
    """
    v, f = _as_arrays(verts, faces)
    before = inspect_mesh(v, f)
    if before.out_of_range:
        raise InvalidMeshError(f"{before.out_of_range} triangle corners index no vertex; "
                               "the faces array does not belong to these vertices")
    nv = len(v)
    remap = np.arange(nv, dtype=np.int64)
    if merge_duplicates:
        remap = duplicate_rows(v)
    g = remap[f]
    keep = (g[:, 0] != g[:, 1]) & (g[:, 1] != g[:, 2]) & (g[:, 2] != g[:, 0])
    idx = np.flatnonzero(keep)
    _, first_face = np.unique(_face_keys(g[idx], nv), return_index=True)
    idx = idx[np.sort(first_face)]
    g = g[idx]
    used = np.zeros(nv, dtype=bool)
    used[g.ravel()] = True
    new_index = np.full(nv, -1, dtype=np.int64)
    new_index[used] = np.arange(int(used.sum()))
    out_v = v[used]
    out_f = new_index[g]
    vertex_map = new_index[remap]
    try:
        validate_mesh(out_v, out_f, what="repaired mesh", allow_duplicate_verts=not merge_duplicates)
    except InvalidMeshError as err:
        if merge_duplicates and before.duplicate_verts:
            raise InvalidMeshError(
                f"{err} Merging the {before.duplicate_verts} vertices that share a position with "
                "another may have glued separate surfaces together: if they are meant to touch, "
                "repair with merge_duplicates=False (and decimate with "
                "DecimationConfig(validate=False)).") from err
        raise
    return RepairedMesh(out_v, out_f, vertex_map, idx.astype(np.int64), before)
