"""Tests of the exact closest-point queries (facegcn_lib.mesh.proximity)."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.mesh.proximity import SurfaceIndex, _closest_on_triangle, closest_points
from tests.mesh import meshes


def slow_closest_on_triangle(p: np.ndarray, a: np.ndarray, b: np.ndarray,
                             c: np.ndarray) -> tuple[float, np.ndarray]:
    """Distance and barycentric weights of the closest point: the plane projection if it falls
    inside, else the best of the three edges (each clamped)."""
    n = np.cross(b - a, c - a)
    n = n / np.linalg.norm(n)
    q = p - (p - a) @ n * n
    m = np.array([b - a, c - a]).T
    s, t = np.linalg.lstsq(m, q - a, rcond=None)[0]
    if s >= 0 and t >= 0 and s + t <= 1:
        w = np.array([1 - s - t, s, t])
        return float(np.linalg.norm(p - w @ np.array([a, b, c]))), w
    best = (np.inf, np.zeros(3))
    for i, j in [(0, 1), (1, 2), (2, 0)]:
        x, y = (a, b, c)[i], (a, b, c)[j]
        t = np.clip((p - x) @ (y - x) / ((y - x) @ (y - x)), 0, 1)
        d = float(np.linalg.norm(p - (x + t * (y - x))))
        if d < best[0]:
            w = np.zeros(3)
            w[i], w[j] = 1 - t, t
            best = (d, w)
    return best


def test_point_triangle_matches_slow_reference() -> None:
    rng = np.random.default_rng(1)
    out = np.empty(3)
    for _ in range(300):
        a, b, c = rng.normal(size=(3, 3))
        p = rng.normal(size=3) * 2
        d2 = _closest_on_triangle(p, a, b, c, out)
        d_ref, w_ref = slow_closest_on_triangle(p, a, b, c)
        assert np.sqrt(d2) == pytest.approx(d_ref, abs=1e-9)
        np.testing.assert_allclose(out @ np.array([a, b, c]), w_ref @ np.array([a, b, c]), atol=1e-9)


@pytest.mark.parametrize("scale", [0.0, 0.2, 3.0])
def test_mesh_queries_match_brute_force(scale: float) -> None:
    verts, faces = meshes.sphere_with_holes(2)
    rng = np.random.default_rng(0)
    pts = verts[rng.integers(0, len(verts), 200)] * (1 + scale * rng.uniform(-1, 1, (200, 1)))
    pts += rng.normal(scale=0.05, size=pts.shape)
    cp = closest_points(pts, verts, faces)
    out = np.empty(3)
    tri = verts[faces]
    for k, p in enumerate(pts):
        best = min(_closest_on_triangle(p, *t, out) for t in tri)
        assert cp.distances[k] == pytest.approx(np.sqrt(best), abs=1e-12)
    np.testing.assert_allclose(np.linalg.norm(cp.points - pts, axis=1), cp.distances, atol=1e-12)
    assert cp.bary.min() >= 0
    np.testing.assert_allclose(cp.bary.sum(axis=1), 1.0, atol=1e-12)


def test_vertices_are_on_their_surface_and_bad_input() -> None:
    verts, faces = meshes.grid(10, wave=0.2)
    index = SurfaceIndex(verts, faces)
    assert index.query(verts).distances.max() < 1e-12
    with pytest.raises(ValueError, match="finite"):
        index.query(np.array([[np.nan, 0, 0]]))
    with pytest.raises(ValueError, match="no triangles"):
        SurfaceIndex(verts, np.zeros((0, 3), dtype=np.int64))
