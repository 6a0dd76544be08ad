"""The numba rasterizer against a slow, obvious per-pixel reference."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.render.raster import EMPTY, RasterInputError, interpolate, rasterize


def reference_rasterize(points: np.ndarray, faces: np.ndarray, height: int, width: int):
    """For every pixel centre and every triangle: solve for barycentrics, keep the nearest."""
    depth = np.full((height, width), np.inf)
    tri = np.full((height, width), EMPTY)
    bary = np.zeros((height, width, 3))
    for i in range(height):
        for j in range(width):
            for f, (a, b, c) in enumerate(faces):
                m = np.array([[points[a, 0], points[b, 0], points[c, 0]],
                              [points[a, 1], points[b, 1], points[c, 1]],
                              [1.0, 1.0, 1.0]])
                if abs(np.linalg.det(m)) < 1e-12:
                    continue
                w = np.linalg.solve(m, np.array([j, i, 1.0]))
                if (w < 0).any():
                    continue
                z = w @ points[[a, b, c], 2]
                if z < depth[i, j]:
                    depth[i, j], tri[i, j], bary[i, j] = z, f, w
    return depth, tri, bary


def random_scene(rng: np.random.Generator, n_tris: int, height: int, width: int):
    pts = np.column_stack([rng.uniform(-3, width + 3, 3 * n_tris), rng.uniform(-3, height + 3, 3 * n_tris),
                           rng.uniform(1.0, 10.0, 3 * n_tris)])
    return pts, np.arange(3 * n_tris).reshape(n_tris, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_reference_on_random_triangles(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 13, 17
    pts, faces = random_scene(rng, 6, h, w)
    g = rasterize(pts, faces, h, w)
    depth, tri, bary = reference_rasterize(pts, faces, h, w)
    assert (g.tri == tri).all()
    covered = tri != EMPTY
    assert covered.any() and (~covered).any()
    np.testing.assert_allclose(g.depth[covered], depth[covered], rtol=1e-5)
    np.testing.assert_allclose(g.bary[covered], bary[covered], atol=1e-5)
    assert np.isinf(g.depth[~covered]).all()


def test_nearest_triangle_wins_in_any_order() -> None:
    # two overlapping squares (two triangles each) at depths 2 and 5
    sq = np.array([[2, 2], [12, 2], [12, 12], [2, 12]], dtype=float)
    near = np.column_stack([sq, np.full(4, 2.0)])
    far = np.column_stack([sq + 3, np.full(4, 5.0)])
    quad = np.array([[0, 1, 2], [0, 2, 3]])
    for order in ((near, far), (far, near)):
        pts = np.concatenate(order)
        faces = np.concatenate([quad, quad + 4])
        g = rasterize(pts, faces, 18, 18)
        near_ids = {0, 1} if order[0] is near else {2, 3}
        assert set(np.unique(g.tri[5:12, 5:12])) <= near_ids  # the overlap
        assert np.allclose(g.depth[5:12, 5:12], 2.0)
        assert np.allclose(g.depth[13:15, 13:15], 5.0)  # only the far square


def test_empty_image() -> None:
    g = rasterize(np.zeros((0, 3)), np.zeros((0, 3), dtype=int), 5, 7)
    assert (g.tri == EMPTY).all() and np.isinf(g.depth).all() and not g.mask.any()
    outside = np.array([[-10, -10, 1], [-5, -10, 1], [-5, -5, 1]], dtype=float)
    g = rasterize(outside, np.array([[0, 1, 2]]), 5, 7)
    assert not g.mask.any()


def test_shared_edges_cover_each_pixel_once() -> None:
    # a grid of quads whose edges pass exactly through pixel centres (the top-left rule's job)
    n, step = 4, 3
    ys, xs = np.mgrid[0:n + 1, 0:n + 1]
    pts = np.column_stack([xs.ravel() * step, ys.ravel() * step, np.ones(xs.size)]).astype(float)
    faces = []
    for i in range(n):
        for j in range(n):
            a, b, c, d = i * (n + 1) + j, i * (n + 1) + j + 1, (i + 1) * (n + 1) + j + 1, (i + 1) * (n + 1) + j
            faces += [[a, b, c], [a, c, d]]
    size = n * step + 1
    count = np.zeros((size, size), dtype=int)
    for f in faces:
        count += rasterize(pts, np.array([f]), size, size).mask
    inner = count[: n * step, : n * step]  # pixels on the outer right/bottom edges are not owned
    assert (inner == 1).all()
    assert count.max() == 1


def test_back_faces_are_culled_on_request() -> None:
    ccw_on_screen = np.array([[1, 1, 1], [1, 8, 1], [8, 1, 1]], dtype=float)  # front (y down)
    cw_on_screen = ccw_on_screen[[0, 2, 1]]
    for pts, front in ((ccw_on_screen, True), (cw_on_screen, False)):
        assert rasterize(pts, np.array([[0, 1, 2]]), 10, 10).mask.any()
        assert rasterize(pts, np.array([[0, 1, 2]]), 10, 10, cull_back=True).mask.any() == front


def test_interpolate_recovers_pixel_coordinates() -> None:
    rng = np.random.default_rng(3)
    pts, faces = random_scene(rng, 5, 20, 20)
    g = rasterize(pts, faces, 20, 20)
    xy = interpolate(g, faces, pts[:, :2])
    rows, cols = np.nonzero(g.mask)
    np.testing.assert_allclose(xy[rows, cols, 0], cols, atol=1e-3)
    np.testing.assert_allclose(xy[rows, cols, 1], rows, atol=1e-3)
    ones = interpolate(g, faces, np.ones(len(pts)))
    assert ones.shape == (20, 20)
    np.testing.assert_allclose(ones[g.mask], 1.0, atol=1e-5)
    assert (ones[~g.mask] == 0).all()


def test_bad_input_is_refused() -> None:
    with pytest.raises(RasterInputError):
        rasterize(np.zeros((3, 2)), np.array([[0, 1, 2]]), 4, 4)
    with pytest.raises(RasterInputError):
        rasterize(np.zeros((3, 3)), np.array([[0, 1, 3]]), 4, 4)
    with pytest.raises(RasterInputError):
        rasterize(np.zeros((3, 3)), np.array([[0, 1, 2]]), 0, 4)
