"""Depth-map visibility, shadows and ambient occlusion on scenes with known answers."""

from __future__ import annotations

import numpy as np

from facegcn_lib.render.occlusion import (
    OcclusionConfig,
    ambient_occlusion,
    lit_from,
    sphere_directions,
    visible_in_depth_map,
)
from facegcn_lib.render.shading import vertex_normals


def plate(z: float, half: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """A square plate of (n + 1)^2 vertices at height z, triangles facing +z."""
    t = np.linspace(-half, half, n + 1)
    xx, yy = np.meshgrid(t, t)
    v = np.column_stack([xx.ravel(), yy.ravel(), np.full(xx.size, z)])
    faces = []
    for i in range(n):
        for j in range(n):
            a, b = i * (n + 1) + j, i * (n + 1) + j + 1
            c, d = (i + 1) * (n + 1) + j + 1, (i + 1) * (n + 1) + j
            faces += [[a, b, c], [a, c, d]]
    return v, np.array(faces)


def test_visible_in_depth_map() -> None:
    depth = np.full((4, 4), np.inf)
    depth[1:3, 1:3] = 2.0
    pts = np.array([[1.5, 1.5, 2.05], [1.5, 1.5, 3.0], [0.2, 0.2, 9.0], [3.5, 0.5, 1.0], [-1, 0, 0]])
    assert visible_in_depth_map(pts, depth, bias=0.1).tolist() == [True, False, True, False, False]


def test_a_plate_shadows_the_floor_below_it() -> None:
    floor, ff = plate(0.0, 10.0, 20)
    roof, rf = plate(5.0, 3.0, 6)
    v = np.concatenate([floor, roof])
    f = np.concatenate([ff, rf + len(floor)])
    lit = lit_from(v, f, np.array([0.0, 0.0, 1.0]), OcclusionConfig(map_size=128))
    under = (np.abs(floor[:, 0]) < 2.5) & (np.abs(floor[:, 1]) < 2.5)
    away = (np.abs(floor[:, 0]) > 4) | (np.abs(floor[:, 1]) > 4)
    assert not lit[: len(floor)][under].any()
    assert lit[: len(floor)][away].all()
    assert lit[len(floor):].all()


def test_ambient_occlusion_of_a_convex_body_is_one() -> None:
    from scipy.spatial import ConvexHull

    v = sphere_directions(300)
    f = ConvexHull(v).simplices
    n = v.copy()
    ao = ambient_occlusion(v, f, n, OcclusionConfig(map_size=96, ao_directions=16))
    assert ao.min() > 0.9
    # a floor under a roof sees less sky than an open floor
    floor, ff = plate(0.0, 10.0, 10)
    roof, rf = plate(2.0, 6.0, 6)
    vv = np.concatenate([floor, roof])
    ffs = np.concatenate([ff, rf + len(floor)])
    ao2 = ambient_occlusion(vv, ffs, vertex_normals(vv, ffs), OcclusionConfig(map_size=96, ao_directions=32))
    centre = np.argmin(np.linalg.norm(floor[:, :2], axis=1))
    corner = np.argmax(np.linalg.norm(floor[:, :2], axis=1))
    assert ao2[centre] < 0.5 < ao2[corner]


def test_lit_from_a_subset_is_the_subset_of_all() -> None:
    floor, ff = plate(0.0, 10.0, 20)
    roof, rf = plate(5.0, 3.0, 6)
    v = np.concatenate([floor, roof])
    f = np.concatenate([ff, rf + len(floor)])
    idx = np.array([3, 200, 220, len(v) - 1, 0])
    for d in (np.array([0.0, 0.0, 1.0]), np.array([0.3, -0.2, 1.0])):
        np.testing.assert_array_equal(lit_from(v, f, d, subset=idx), lit_from(v, f, d)[idx])


def test_visible_in_depth_map_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1.0, 2.0, (9, 12)).astype(np.float32)
    depth[rng.random((9, 12)) < 0.2] = np.inf
    pts = np.column_stack([rng.uniform(-2, 14, 500), rng.uniform(-2, 11, 500), rng.uniform(0.5, 2.5, 500)])
    pts[0] = np.nan
    x0, y0 = np.floor(pts[:, 0]), np.floor(pts[:, 1])
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < 12) & (y0 + 1 < 9)
    xi, yi = np.clip(np.nan_to_num(x0), 0, 10).astype(int), np.clip(np.nan_to_num(y0), 0, 7).astype(int)
    d = depth.astype(np.float64)
    far = np.maximum(np.maximum(d[yi, xi], d[yi, xi + 1]), np.maximum(d[yi + 1, xi], d[yi + 1, xi + 1]))
    ref = inside & (pts[:, 2] <= far + 0.1)
    for dm in (depth, depth.astype(np.float64)):
        np.testing.assert_array_equal(visible_in_depth_map(pts, dm, 0.1), ref)
