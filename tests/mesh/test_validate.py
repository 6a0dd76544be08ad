"""Tests of the mesh checks and repairs (facegcn_lib.mesh.validate, facegcn_lib.mesh.topology)."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.mesh.topology import (
    boundary_edges,
    boundary_loops,
    connected_components,
    edges,
    euler_characteristic,
)
from facegcn_lib.mesh.validate import (
    InvalidMeshError,
    duplicate_rows,
    inspect_mesh,
    repair_mesh,
    validate_mesh,
)
from tests.mesh import meshes


def test_clean_meshes_pass() -> None:
    for verts, faces in (meshes.grid(6), meshes.sphere_with_holes(2), meshes.octahedron()):
        assert inspect_mesh(verts, faces).ok
        validate_mesh(verts, faces)


def test_topology_of_known_meshes() -> None:
    verts, faces = meshes.grid(5)
    e, counts = edges(faces)
    assert len(e) == 4 * 5 * 2 + 16  # rows + columns + diagonals
    assert (counts == 1).sum() == 16
    loops = boundary_loops(faces)
    assert len(loops) == 1 and len(loops[0]) == 16
    # loops follow the triangles' orientation: consecutive vertices form directed boundary edges
    directed = {tuple(x) for x in boundary_edges(faces).tolist()}
    lp = loops[0]
    assert all((int(a), int(b)) in directed for a, b in zip(lp, np.roll(lp, -1), strict=True))
    assert euler_characteristic(len(verts), faces) == 1
    v, f = meshes.icosphere(1)
    assert euler_characteristic(len(v), f) == 2 and boundary_loops(f) == []
    v, f = meshes.sphere_with_holes(2)
    assert euler_characteristic(len(v), f) == 2 - 3
    two = np.vstack([faces, faces + len(verts)])
    assert connected_components(two, 2 * len(verts))[0] == 2


def test_each_defect_is_counted() -> None:
    verts, faces = meshes.grid(5)
    assert inspect_mesh(verts, faces[:, [0, 2, 1]]).ok  # flipping all faces is still consistent
    mixed = faces.copy()
    mixed[0] = mixed[0, [0, 2, 1]]
    assert inspect_mesh(verts, mixed).misoriented_edges > 0
    assert inspect_mesh(verts, np.vstack([faces, faces[:1]])).duplicate_faces == 1
    assert inspect_mesh(verts, np.vstack([faces, [[0, 0, 1]]])).repeated_index_faces == 1
    assert inspect_mesh(verts, np.vstack([faces, [[1, 5, 24]]])).nonmanifold_edges == 1
    nan = verts.copy()
    nan[2] = np.inf
    assert inspect_mesh(nan, faces).nonfinite_verts == 1
    assert inspect_mesh(np.vstack([verts, [[9.0, 9, 9]]]), faces).unreferenced_verts == 1
    assert inspect_mesh(verts, np.vstack([faces, [[0, 1, 99]]])).out_of_range == 1
    # a bow tie: two fans meeting at one vertex
    bow_v = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [-1, 0, 0], [-1, -1, 0]], dtype=float)
    bow_f = np.array([[0, 1, 2], [0, 3, 4]])
    rep = inspect_mesh(bow_v, bow_f)
    assert rep.nonmanifold_verts == 1 and rep.nonmanifold_edges == 0
    with pytest.raises(InvalidMeshError, match="nonmanifold verts"):
        validate_mesh(bow_v, bow_f)
    with pytest.raises(InvalidMeshError, match="non-empty"):
        validate_mesh(verts, np.zeros((0, 3), dtype=int))
    with pytest.raises(InvalidMeshError, match="integer"):
        validate_mesh(verts, faces.astype(float))


def test_repair_merges_drops_and_maps() -> None:
    verts, faces = meshes.grid(4)
    # a seam: vertex 5 duplicated as 16 in half of its triangles; plus junk
    v = np.vstack([verts, verts[5:6], [[np.nan, 0, 0]]])
    f = faces.copy()
    f[np.flatnonzero((f == 5).any(axis=1))[:2]] = np.where(
        f[np.flatnonzero((f == 5).any(axis=1))[:2]] == 5, 16, f[np.flatnonzero((f == 5).any(axis=1))[:2]])
    f = np.vstack([f, f[:1], [[1, 1, 2]]])
    before = inspect_mesh(v, f)
    assert before.duplicate_verts == 1 and before.duplicate_faces == 1
    assert before.repeated_index_faces == 1 and before.nonfinite_verts == 1
    fixed = repair_mesh(v, f)
    assert inspect_mesh(fixed.verts, fixed.faces).ok
    np.testing.assert_array_equal(fixed.verts, verts)
    assert sorted(map(tuple, np.sort(fixed.faces, axis=1))) == sorted(map(tuple, np.sort(faces, axis=1)))
    assert fixed.vertex_map[16] == fixed.vertex_map[5] == 5 and fixed.vertex_map[17] == -1
    np.testing.assert_array_equal(fixed.vertex_map[fixed.faces.max() + 1:16], [])
    # what cannot be repaired is refused
    with pytest.raises(InvalidMeshError, match="repaired mesh"):
        repair_mesh(verts, np.vstack([faces, [[0, 1, 15]]]))


def test_duplicate_rows() -> None:
    a = np.array([[1.0, 2], [0, 0], [1, 2], [0, 0], [3, 3]])
    np.testing.assert_array_equal(duplicate_rows(a), [0, 1, 0, 1, 4])


def test_merging_that_would_glue_surfaces_is_explained() -> None:
    # three separate triangles whose first edges coincide: merged, that edge has three triangles
    v = []
    for k in range(3):
        angle = 2 * np.pi * k / 3
        v += [[0.0, 0, 0], [1.0, 0, 0], [0.5, np.cos(angle), np.sin(angle)]]
    verts = np.array(v)
    faces = np.arange(9).reshape(3, 3)
    with pytest.raises(InvalidMeshError, match="merge_duplicates=False"):
        repair_mesh(verts, faces)
    kept = repair_mesh(verts, faces, merge_duplicates=False)
    assert len(kept.verts) == 9 and inspect_mesh(kept.verts, kept.faces).duplicate_verts == 4
