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
