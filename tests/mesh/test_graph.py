"""Tests of facegcn_lib.mesh.graph against slow, obvious references on tiny meshes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from facegcn_lib.mesh import graph
from facegcn_lib.mesh.graph import (
    MeshGraphError,
    adjacency,
    combinatorial_laplacian,
    degree,
    lambda_max,
    mesh_graph,
    normalized_laplacian,
    scaled_laplacian,
)
from tests.meshes import grid_mesh

#: A closed mesh: the octahedron (6 vertices, 12 edges, 8 triangles; every degree 4).
OCTAHEDRON = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4],
                       [2, 0, 5], [1, 2, 5], [3, 1, 5], [0, 3, 5]])


def slow_adjacency(faces: np.ndarray, n_verts: int) -> np.ndarray:
    """Dense W from a Python set of undirected edges."""
    edges = {tuple(sorted((int(f[i]), int(f[(i + 1) % 3])))) for f in faces for i in range(3)}
    w = np.zeros((n_verts, n_verts))
    for a, b in edges:
        if a != b:
            w[a, b] = w[b, a] = 1.0
    return w


@pytest.fixture(params=["grid", "octahedron"])
def mesh(request: pytest.FixtureRequest) -> tuple[np.ndarray, int]:
    if request.param == "grid":
        verts, faces = grid_mesh(5, 6)
        return faces, len(verts)
    return OCTAHEDRON, 6


def test_adjacency_matches_slow_reference(mesh: tuple[np.ndarray, int]) -> None:
    faces, n = mesh
    w = adjacency(faces, n)
    assert isinstance(w, sp.csr_matrix) and w.has_sorted_indices
    np.testing.assert_array_equal(w.toarray(), slow_adjacency(faces, n))


def test_adjacency_counts_shared_edges_once_and_ignores_degenerate_corners() -> None:
    faces = np.array([[0, 1, 2], [2, 1, 3], [3, 3, 1]])  # edge 1-2 twice; a degenerate triangle
    w = adjacency(faces, 5)  # vertex 4 is in no triangle
    np.testing.assert_array_equal(w.toarray(), slow_adjacency(faces, 5))
    assert w.diagonal().sum() == 0 and w.max() == 1.0
    assert w[4].nnz == 0


def test_degree_is_number_of_neighbours(mesh: tuple[np.ndarray, int]) -> None:
    faces, n = mesh
    neighbours = [set() for _ in range(n)]
    for f in faces:
        for i in range(3):
            neighbours[f[i]].add(int(f[(i + 1) % 3]))
            neighbours[f[(i + 1) % 3]].add(int(f[i]))
    np.testing.assert_array_equal(degree(faces, n).diagonal(), [len(s) for s in neighbours])
    np.testing.assert_array_equal(degree(adjacency(faces, n)).toarray(),
                                  np.diag([len(s) for s in neighbours]))


def test_laplacians_match_their_formulas(mesh: tuple[np.ndarray, int]) -> None:
    faces, n = mesh
    w = slow_adjacency(faces, n)
    d = w.sum(axis=1)
    expected = np.eye(n) - w / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(normalized_laplacian(faces, n).toarray(), expected, atol=1e-15)
    np.testing.assert_allclose(combinatorial_laplacian(faces, n).toarray(), np.diag(d) - w)
    # the same from the adjacency matrix
    np.testing.assert_allclose(normalized_laplacian(adjacency(faces, n)).toarray(), expected,
                               atol=1e-15)


def test_laplacian_properties(mesh: tuple[np.ndarray, int]) -> None:
    faces, n = mesh
    lap_n = normalized_laplacian(faces, n).toarray()
    lap_c = combinatorial_laplacian(faces, n).toarray()
    for lap in (lap_n, lap_c):
        np.testing.assert_array_equal(lap, lap.T)  # symmetric
        assert np.linalg.eigvalsh(lap).min() > -1e-12  # positive semi-definite
    np.testing.assert_allclose(lap_c.sum(axis=1), 0.0, atol=1e-12)  # rows of D - W sum to 0
    eig = np.linalg.eigvalsh(lap_n)
    assert eig.max() <= 2.0 + 1e-12
    assert abs(eig[0]) < 1e-12 and eig[1] > 1e-6  # one zero eigenvalue: the mesh is connected


def test_isolated_vertex_keeps_unit_diagonal() -> None:
    lap = normalized_laplacian(OCTAHEDRON, 7).toarray()  # vertex 6 is in no triangle
    assert lap[6, 6] == 1.0 and np.count_nonzero(lap[6]) == 1
    assert np.isfinite(lap).all()


def test_lambda_max_exact_dense_and_lanczos_paths() -> None:
    for rows, cols in [(4, 5), (20, 20)]:  # 20 verts: dense solver; 400 verts: Lanczos
        verts, faces = grid_mesh(rows, cols)
        lap = normalized_laplacian(faces, len(verts))
        assert (len(verts) > graph.DENSE_EIGEN_MAX_VERTS) == (rows == 20)
        ref = np.linalg.eigvalsh(lap.toarray())[-1]
        assert lambda_max(lap) == pytest.approx(ref, rel=graph.LAMBDA_MAX_RTOL)
        assert lambda_max(lap) <= 2.0
        comb = combinatorial_laplacian(faces, len(verts))
        assert lambda_max(comb) == pytest.approx(np.linalg.eigvalsh(comb.toarray())[-1],
                                                 rel=graph.LAMBDA_MAX_RTOL)


def _test_meshes() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    from tests.mesh import meshes

    verts, faces = grid_mesh(17, 23)
    return {"grid": (verts, faces), "wavy_grid": meshes.grid(24, wave=0.25),
            "sphere_with_holes": meshes.sphere_with_holes(3), "closed_sphere": meshes.icosphere(3),
            "noisy_scan": meshes.noisy_scan(900)}


@pytest.mark.parametrize("name", sorted(_test_meshes()))
def test_lanczos_lambda_max_matches_the_dense_spectrum(name: str) -> None:
    verts, faces = _test_meshes()[name]
    for lap in (normalized_laplacian(faces, len(verts)), combinatorial_laplacian(faces, len(verts))):
        ref = np.linalg.eigvalsh(lap.toarray())[-1]
        got = graph.lanczos_lambda_max(lap)
        # the documented accuracy, and never above the true value (a Ritz value)
        assert got == pytest.approx(ref, rel=graph.LAMBDA_MAX_RTOL)
        assert got <= ref * (1 + 1e-12)
        # the ~1e-3 the Chebyshev rescaling needs is reached with a looser stop, much sooner
        assert graph.lanczos_lambda_max(lap, rtol=1e-3) == pytest.approx(ref, rel=1e-3)


def test_lanczos_handles_breakdown_and_is_reproducible() -> None:
    # two disjoint triangles and an isolated vertex: a tiny invariant Krylov space
    faces = np.array([[0, 1, 2], [3, 4, 5]])
    lap = normalized_laplacian(faces, 7)
    assert graph.lanczos_lambda_max(lap) == pytest.approx(1.5, rel=1e-12)
    verts, faces = grid_mesh(20, 30)
    lap = normalized_laplacian(faces, len(verts))
    assert graph.lanczos_lambda_max(lap) == graph.lanczos_lambda_max(lap.copy())


def test_lambda_max_bound_only_for_normalized_laplacian() -> None:
    verts, faces = grid_mesh(4, 4)
    assert lambda_max(normalized_laplacian(faces, len(verts)), exact=False) == 2.0
    with pytest.raises(MeshGraphError, match="exact=True"):
        lambda_max(combinatorial_laplacian(faces, len(verts)), exact=False)


def test_lambda_max_rejects_asymmetric_matrix() -> None:
    with pytest.raises(MeshGraphError, match="symmetric"):
        lambda_max(sp.csr_matrix(np.array([[1.0, 2.0], [0.0, 1.0]])))


def test_scaled_laplacian_spectrum_is_minus_one_to_one(mesh: tuple[np.ndarray, int]) -> None:
    faces, n = mesh
    lap = normalized_laplacian(faces, n)
    lmax = lambda_max(lap)
    scaled = scaled_laplacian(lap, lmax)
    np.testing.assert_allclose(scaled.toarray(), 2.0 * lap.toarray() / lmax - np.eye(n),
                               atol=1e-15)
    eig = np.linalg.eigvalsh(scaled.toarray())
    assert eig[0] == pytest.approx(-1.0, abs=1e-12) and eig[-1] == pytest.approx(1.0, abs=1e-9)
    eig_bound = np.linalg.eigvalsh(scaled_laplacian(lap, 2.0).toarray())
    assert eig_bound[0] >= -1.0 - 1e-12 and eig_bound[-1] <= 1.0 + 1e-12
    with pytest.raises(MeshGraphError, match="positive"):
        scaled_laplacian(lap, 0.0)


@pytest.mark.parametrize(("faces", "n_verts", "match"), [
    (np.zeros((4, 4), dtype=int), 5, r"\(F, 3\)"),
    (np.array([[0, 1, 5]]), 5, "outside"),
    (np.array([[1, 2, 3]]) - 2, 5, "outside"),
    (np.array([[0.0, 1.0, 2.0]]), 5, "integer"),
    (np.array([[0, 1, 2]]), 0, "positive int"),
])
def test_bad_faces_raise_clear_errors(faces: np.ndarray, n_verts: int, match: str) -> None:
    with pytest.raises(MeshGraphError, match=match):
        adjacency(faces, n_verts)


def test_faces_without_vertex_count_raise() -> None:
    with pytest.raises(MeshGraphError, match="n_verts"):
        normalized_laplacian(OCTAHEDRON)
    with pytest.raises(MeshGraphError, match="square"):
        degree(sp.csr_matrix(np.ones((2, 3))))


def test_mesh_graph_is_built_once_and_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    graph.clear_graph_cache()
    verts, faces = grid_mesh(5, 5)
    calls = []
    real = graph.lambda_max

    def counting(lap: sp.csr_matrix, exact: bool = True) -> float:
        calls.append(exact)
        return real(lap, exact)

    monkeypatch.setattr(graph, "lambda_max", counting)
    g1 = mesh_graph(faces, len(verts))
    g2 = mesh_graph(faces.copy().astype(np.int32), len(verts))  # equal triangles, another array
    assert g1 is g2
    assert g1.scaled_laplacian() is g2.scaled_laplacian()
    assert g1.normalized_laplacian is g2.normalized_laplacian
    assert calls == [True]
    assert mesh_graph(faces, len(verts) + 1) is not g1  # a different vertex count
    assert "MeshGraph(n_verts=25" in repr(g1)


def test_mesh_graph_matches_functions_and_is_read_only() -> None:
    verts, faces = grid_mesh(4, 6)
    n = len(verts)
    g = mesh_graph(faces, n)
    np.testing.assert_array_equal(g.adjacency.toarray(), adjacency(faces, n).toarray())
    np.testing.assert_array_equal(g.degree.toarray(), degree(faces, n).toarray())
    np.testing.assert_array_equal(g.combinatorial_laplacian.toarray(),
                                  combinatorial_laplacian(faces, n).toarray())
    lap = normalized_laplacian(faces, n)
    np.testing.assert_array_equal(g.scaled_laplacian(exact=False).toarray(),
                                  scaled_laplacian(lap, 2.0).toarray())
    assert g.lambda_max() == pytest.approx(lambda_max(lap))
    with pytest.raises(ValueError, match="read-only"):
        g.normalized_laplacian.data[0] = 5.0
    # read-only matrices still work in ordinary scipy expressions
    x = np.ones(n)
    np.testing.assert_allclose(g.combinatorial_laplacian @ x, 0.0, atol=1e-12)
    assert (g.scaled_laplacian() * 2.0).nnz == g.scaled_laplacian().nnz
    assert graph.is_symmetric(g.normalized_laplacian.T.tocsr())


def test_bfm_mesh_graph(data_root: Path) -> None:
    from facegcn_lib.morphable.bfm import load_bfm_mean

    m = load_bfm_mean(data_root)
    g = mesh_graph(m.faces, len(m.verts))
    w = g.adjacency
    e = np.unique(np.sort(np.concatenate([m.faces[:, [0, 1]], m.faces[:, [1, 2]],
                                          m.faces[:, [2, 0]]]), axis=1), axis=0)
    assert w.shape == (53215, 53215) and w.nnz == 2 * len(e)
    assert graph.is_symmetric(w) and graph.is_symmetric(g.normalized_laplacian)
    np.testing.assert_allclose(g.combinatorial_laplacian.sum(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(g.normalized_laplacian.diagonal(), 1.0)
    assert g.degree.diagonal().min() >= 1  # every vertex is in a triangle
