"""Normals, spherical harmonics and the shading model against closed forms."""

from __future__ import annotations

import numpy as np

from facegcn_lib.render.occlusion import sphere_directions
from facegcn_lib.render.shading import (
    SH_COEFFS,
    Lighting,
    linear_to_srgb,
    linear_to_srgb_fast,
    matmul_rows,
    sh_basis,
    sh_irradiance,
    shade,
    srgb_to_linear,
    vertex_normals,
)


def icosphere() -> tuple[np.ndarray, np.ndarray]:
    """A sphere (unit radius) as a convex hull of many directions, triangles wound outwards."""
    from scipy.spatial import ConvexHull

    v = sphere_directions(400)
    faces = ConvexHull(v).simplices
    centroid = v[faces].mean(axis=1)
    n = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])
    flip = (n * centroid).sum(axis=1) < 0
    faces[flip] = faces[flip][:, [0, 2, 1]]
    return v, faces


def test_vertex_normals_of_a_sphere_are_radial() -> None:
    v, f = icosphere()
    n = vertex_normals(v, f)
    np.testing.assert_allclose(np.linalg.norm(n, axis=1), 1.0, atol=1e-9)
    assert (n * v).sum(axis=1).min() > 0.99


def test_vertex_normals_match_a_scatter_add_reference() -> None:
    rng = np.random.default_rng(0)
    v = rng.normal(size=(30, 3))
    f = rng.integers(0, 30, size=(50, 3))
    ref = np.zeros_like(v)
    for a, b, c in f:
        ref[[a, b, c]] += np.cross(v[b] - v[a], v[c] - v[a])
    norm = np.linalg.norm(ref, axis=1, keepdims=True)
    ref = np.where(norm > 1e-12, ref / np.maximum(norm, 1e-12), 0.0)
    np.testing.assert_allclose(vertex_normals(v, f), ref, atol=1e-12)


def test_sh_basis_is_orthonormal_on_the_sphere() -> None:
    d = sphere_directions(20000)
    y = sh_basis(d)
    gram = y.T @ y * (4 * np.pi / len(d))
    np.testing.assert_allclose(gram, np.eye(SH_COEFFS), atol=2e-3)


def test_constant_environment_gives_its_radiance() -> None:
    sh = np.zeros((SH_COEFFS, 3))
    sh[0] = 1.0 / sh_basis(np.array([[0.0, 0.0, 1.0]]))[0, 0]  # radiance 1 everywhere
    e = sh_irradiance(sphere_directions(50), sh)
    np.testing.assert_allclose(e, 1.0, atol=1e-12)


def test_lambert_and_blinn_phong() -> None:
    n = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, -1.0], [0.6, 0.0, 0.8]])
    view = np.tile([0.0, 0.0, 1.0], (3, 1))
    light = Lighting.simple(direction=(0.0, 0.0, 1.0), ambient=0.1, intensity=0.5)
    out = shade(np.full((3, 3), 0.5), n, view, light)
    np.testing.assert_allclose(out[:, 0], 0.5 * (0.1 + 0.5 * np.array([1.0, 0.0, 0.8])))
    shiny = Lighting(light.ambient, light.sh, light.light_dir, light.light_color, specular=1.0,
                     shininess=10.0)
    spec = shade(np.zeros((3, 3)), n, view, shiny)
    assert spec[0, 0] > spec[2, 0] > 0 and spec[1, 0] == 0  # peak at the mirror direction
    shadowed = shade(np.full((3, 3), 0.5), n, view, light, light_visibility=np.zeros(3))
    np.testing.assert_allclose(shadowed[:, 0], 0.5 * 0.1)


def test_srgb_round_trip_and_table() -> None:
    x = np.linspace(0.0, 1.0, 1001)
    np.testing.assert_allclose(srgb_to_linear(linear_to_srgb(x)), x, atol=1e-12)
    assert np.abs(linear_to_srgb_fast(x) - linear_to_srgb(x)).max() < 1 / 300


def test_matmul_rows_is_matmul() -> None:
    rng = np.random.default_rng(1)
    x, m, v = rng.normal(size=(7, 4, 3)), rng.normal(size=(3, 5)), rng.normal(size=3)
    np.testing.assert_allclose(matmul_rows(x, m), x @ m)
    np.testing.assert_allclose(matmul_rows(x, v), x @ v)


def reference_shade(albedo, normals, view_dirs, light, specular_scale=1.0, light_visibility=1.0):
    """The shading model in plain numpy, term by term."""
    ndl = np.clip(normals @ light.light_dir, 0.0, None) * light_visibility
    irradiance = light.ambient + sh_irradiance(normals, light.sh) + ndl[:, None] * light.light_color
    out = albedo * np.clip(irradiance, 0.0, None)
    h = view_dirs + light.light_dir
    h /= np.maximum(np.linalg.norm(h, axis=1, keepdims=True), 1e-12)
    ndh = np.clip((normals * h).sum(axis=1), 0.0, None)
    spec = light.specular * specular_scale * ndh ** light.shininess * np.minimum(8.0 * ndl, 1.0)
    return out + spec[:, None] * light.light_color


def test_shade_matches_the_numpy_reference() -> None:
    rng = np.random.default_rng(5)
    n = sphere_directions(300)
    view = rng.normal(size=(300, 3))
    view /= np.linalg.norm(view, axis=1, keepdims=True)
    d = rng.normal(size=3)
    light = Lighting(ambient=rng.uniform(0, 0.3, 3), sh=rng.normal(0, 0.3, (SH_COEFFS, 3)),
                     light_dir=d / np.linalg.norm(d), light_color=rng.uniform(0, 1, 3), specular=0.4,
                     shininess=25.0)
    albedo, scale, vis = rng.random((300, 3)), rng.random(300), (rng.random(300) > 0.3).astype(float)
    np.testing.assert_allclose(shade(albedo, n, view, light, scale, vis),
                               reference_shade(albedo, n, view, light, scale, vis), atol=1e-12)
    np.testing.assert_allclose(shade(albedo, n, view, light), reference_shade(albedo, n, view, light),
                               atol=1e-12)


def test_matmul_rows_keeps_float32() -> None:
    rng = np.random.default_rng(2)
    x, m = rng.normal(size=(50, 3)).astype(np.float32), rng.normal(size=(3, 6)).astype(np.float32)
    out = matmul_rows(x, m)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, x.astype(np.float64) @ m, rtol=1e-5, atol=1e-6)
    assert matmul_rows(x, m.astype(np.float64)).dtype == np.float64
