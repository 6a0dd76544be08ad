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


def test_small_triangles_match_reference() -> None:
    # many triangles narrower than two columns take the rasterizer's short path
    rng = np.random.default_rng(11)
    h, w = 9, 11
    corners = rng.uniform(-1, 10, (30, 1, 2)) + rng.uniform(-1.2, 1.2, (30, 3, 2))
    pts = np.column_stack([corners.reshape(-1, 2), rng.uniform(1.0, 5.0, 90)])
    faces = np.arange(90).reshape(30, 3)
    g = rasterize(pts, faces, h, w)
    depth, tri, bary = reference_rasterize(pts, faces, h, w)
    assert (g.tri == tri).all()
    covered = tri != EMPTY
    np.testing.assert_allclose(g.depth[covered], depth[covered], rtol=1e-5)
    np.testing.assert_allclose(g.bary[covered], bary[covered], atol=1e-5)


def test_without_barycentric_coordinates_and_with_occlusion_culling() -> None:
    rng = np.random.default_rng(4)
    pts, faces = random_scene(rng, 60, 24, 24)
    pts[5] = np.nan  # a dropped triangle
    cull = rng.random(len(faces)) < 0.5
    ref = rasterize(pts, faces, 24, 24, cull)
    lean = rasterize(pts, faces, 24, 24, cull, barycentric=False)
    assert lean.bary.shape == (0, 0, 3)
    assert (lean.tri == ref.tri).all() and (lean.depth == ref.depth).all()
    for chunk in (1, 4, 7, 100):
        g = rasterize(pts, faces, 24, 24, cull, occlusion_chunk=chunk)
        assert (g.tri == ref.tri).all() and (g.depth == ref.depth).all() and (g.bary == ref.bary).all()


def test_occlusion_culling_skips_what_is_hidden() -> None:
    # a square in front, then a chunk of triangles behind it: same image, and the hidden
    # chunk is found hidden by the test itself
    from facegcn_lib.render.raster import _chunk_hidden

    sq = np.array([[0, 0], [20, 0], [20, 20], [0, 20]], dtype=float)
    front = np.column_stack([sq, np.full(4, 1.0)])
    rng = np.random.default_rng(2)
    pts_back, faces_back = random_scene(rng, 10, 12, 12)
    pts_back[:, :2] = np.clip(pts_back[:, :2], 2, 18)
    pts_back[:, 2] += 5.0
    pts = np.concatenate([front, pts_back])
    faces = np.concatenate([np.array([[0, 1, 2], [0, 2, 3]]), faces_back + 4])
    g = rasterize(pts, faces, 21, 21, occlusion_chunk=2)
    assert (g.tri == rasterize(pts, faces, 21, 21).tri).all()
    assert set(np.unique(g.tri[:20, :20])) == {0, 1}
    assert _chunk_hidden(pts, faces, g.depth, 2, len(faces))
    assert not _chunk_hidden(pts, faces, np.full((21, 21), np.inf, np.float32), 2, len(faces))


@pytest.mark.parametrize("factor", [1, 2, 3])
def test_resolve_is_interpolate_then_box_filter(factor: int) -> None:
    import cv2

    from facegcn_lib.render.raster import resolve

    rng = np.random.default_rng(factor)
    size = 6 * factor
    pts, faces = random_scene(rng, 12, size, size)
    g = rasterize(pts, faces, size, size)
    weight = rng.random(len(faces))
    for attrs in (rng.random((len(pts), 3)), rng.random((len(pts), 2)), rng.random(len(pts))):
        got = resolve(g, faces, attrs, factor, weight)
        hi = interpolate(g, faces, attrs)
        box = (size // factor, size // factor)
        np.testing.assert_allclose(got.color, cv2.resize(hi, box, interpolation=cv2.INTER_AREA), atol=1e-5)
        np.testing.assert_allclose(got.alpha, cv2.resize(g.mask.astype(np.float32), box,
                                                         interpolation=cv2.INTER_AREA), atol=1e-6)
        w_hi = np.where(g.mask, weight[np.maximum(g.tri, 0)], 0.0).astype(np.float32)
        np.testing.assert_allclose(got.weight, cv2.resize(w_hi, box, interpolation=cv2.INTER_AREA), atol=1e-5)
    with pytest.raises(RasterInputError):
        resolve(g, faces, pts, 5)
    with pytest.raises(RasterInputError):
        resolve(rasterize(pts, faces, size, size, barycentric=False), faces, pts, factor)


def test_covered_vertices() -> None:
    from facegcn_lib.render.raster import covered_vertices

    rng = np.random.default_rng(8)
    pts, faces = random_scene(rng, 20, 16, 16)
    g = rasterize(pts, faces, 16, 16)
    ref = np.zeros(len(pts), dtype=bool)
    ref[faces[np.unique(g.tri[g.mask])].ravel()] = True
    assert (covered_vertices(g, faces, len(pts)) == ref).all()
