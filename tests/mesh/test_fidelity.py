"""Tests of the simplification error measures (facegcn_lib.mesh.fidelity)."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.mesh.fidelity import (
    boundary_segments,
    fidelity,
    outline_hausdorff,
    point_to_segments_distance,
)
from tests.mesh import meshes


def test_point_to_segments_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    seg = rng.normal(size=(7, 2, 3))
    pts = rng.normal(size=(50, 3))
    t = np.linspace(0, 1, 20001)[None, :, None]
    dense = (seg[:, None, 0] * (1 - t) + seg[:, None, 1] * t).reshape(-1, 3)
    ref = np.linalg.norm(pts[:, None] - dense[None], axis=2).min(axis=1)
    np.testing.assert_allclose(point_to_segments_distance(pts, seg), ref, atol=1e-3)


def test_identical_and_shifted_meshes() -> None:
    verts, faces = meshes.grid(8)
    f = fidelity(verts, faces, verts, faces)
    assert f.surface_mean == f.surface_max == 0.0
    assert f.outline_hausdorff == pytest.approx(0.0, abs=1e-12)
    assert len(boundary_segments(verts, faces)) == 28
    up = verts + np.array([0.0, 0.0, 0.25])
    f = fidelity(verts, faces, up, faces)
    assert f.surface_mean == pytest.approx(0.25) and f.surface_max == pytest.approx(0.25)
    assert f.outline_hausdorff == pytest.approx(0.25)
    # shrinking the outline inwards by 10% is seen by the outline measure
    shrunk = verts.copy()
    shrunk[:, :2] = (verts[:, :2] - 0.5) * 0.9 + 0.5
    assert outline_hausdorff(verts, faces, shrunk, faces) == pytest.approx(0.05 * np.sqrt(2))


def test_outline_of_closed_meshes() -> None:
    v, f = meshes.icosphere(1)
    g, h = meshes.grid(4)
    assert outline_hausdorff(v, f, v, f) == 0.0
    assert outline_hausdorff(v, f, g, h) == float("inf")
