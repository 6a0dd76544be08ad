"""Tests of the down- and up-sampling matrices (facegcn_lib.mesh.sampling)."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.mesh.decimate import decimate
from facegcn_lib.mesh.sampling import SamplingError, down_matrix, up_matrix
from tests.mesh import meshes
from tests.mesh.test_proximity import slow_closest_on_triangle


def slow_up_matrix(fine: np.ndarray, coarse: np.ndarray, faces: np.ndarray,
                   kept: np.ndarray) -> np.ndarray:
    """Dense U: for each fine vertex, try every coarse triangle; kept vertices map to themselves."""
    u = np.zeros((len(fine), len(coarse)))
    for i, p in enumerate(fine):
        hit = np.flatnonzero(kept == i)
        if len(hit):
            u[i, hit[0]] = 1.0
            continue
        best, best_w, best_f = np.inf, None, None
        for f in faces:
            d, w = slow_closest_on_triangle(p, *coarse[f])
            if d < best - 1e-12:
                best, best_w, best_f = d, w, f
        u[i, best_f] += best_w
    return u


@pytest.fixture(scope="module")
def wavy() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    verts, faces = meshes.grid(12, wave=0.3)
    r = decimate(verts, faces, 40)
    return verts, faces, r.verts, r.faces, r.kept


def test_down_is_a_selection(wavy: tuple) -> None:
    verts, _, coarse, _, kept = wavy
    d = down_matrix(kept, len(verts))
    assert d.shape == (len(kept), len(verts))
    np.testing.assert_array_equal(d @ verts, coarse)
    assert d.nnz == len(kept)


def test_up_matches_slow_reference(wavy: tuple) -> None:
    verts, _, coarse, cfaces, kept = wavy
    fast = up_matrix(verts, coarse, cfaces, kept).toarray()
    slow = slow_up_matrix(verts, coarse, cfaces, kept)
    # the interpolated positions agree exactly; the weights too (ties lie on shared edges,
    # where the third weight is zero and both triangles give the same two weights)
    np.testing.assert_allclose(fast @ coarse, slow @ coarse, atol=1e-12)
    np.testing.assert_allclose(fast, slow, atol=1e-9)


def test_up_rows_are_convex_weights_and_d_u_is_identity(wavy: tuple) -> None:
    verts, _, coarse, cfaces, kept = wavy
    u = up_matrix(verts, coarse, cfaces, kept)
    d = down_matrix(kept, len(verts))
    assert u.shape == (len(verts), len(kept))
    assert u.data.min() >= 0
    assert np.diff(u.indptr).max() <= 3
    np.testing.assert_allclose(np.asarray(u.sum(axis=1)).ravel(), 1.0, atol=1e-12)
    np.testing.assert_allclose((d @ u).toarray(), np.eye(len(kept)), atol=1e-12)


def test_up_down_reproduces_linear_functions_on_a_plane() -> None:
    verts, faces = meshes.grid(15)
    r = decimate(verts, faces, 30)
    u = up_matrix(verts, r.verts, r.faces, r.kept)
    d = down_matrix(r.kept, len(verts))
    lin = 0.3 + 2.0 * verts[:, 0] - 1.5 * verts[:, 1]
    np.testing.assert_allclose(u @ (d @ lin), lin, atol=1e-12)


@pytest.mark.parametrize("name", ["sphere_with_holes", "noisy_scan"])
def test_up_down_reproduces_smooth_functions(name: str) -> None:
    verts, faces = meshes.sphere_with_holes(3) if name == "sphere_with_holes" else meshes.noisy_scan()
    r = decimate(verts, faces, len(verts) // 4)
    u = up_matrix(verts, r.verts, r.faces, r.kept)
    d = down_matrix(r.kept, len(verts))
    x, y = verts[:, 0], verts[:, 1]
    smooth = np.sin(1.5 * x) + np.cos(y) + 0.5 * x * y
    err = u @ (d @ smooth) - smooth
    assert np.abs(err).max() < 0.05 * np.ptp(smooth)
    assert np.sqrt(np.mean(err ** 2)) < 0.01 * np.ptp(smooth)


def test_bad_indices() -> None:
    verts, _ = meshes.grid(5)
    with pytest.raises(SamplingError, match="repeat"):
        down_matrix([0, 0, 1], len(verts))
    with pytest.raises(SamplingError, match=r"\[0, 25\)"):
        down_matrix([0, 25], len(verts))
    with pytest.raises(SamplingError, match="coarse vertices"):
        up_matrix(verts, verts[:3], np.array([[0, 1, 2]]), [0, 1])
