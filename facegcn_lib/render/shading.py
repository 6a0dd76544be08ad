"""Shading: vertex normals, spherical-harmonic and directional lighting, Blinn-Phong highlights.

Lighting is evaluated per vertex in linear RGB and then interpolated over the pixels by
:func:`facegcn_lib.render.raster.interpolate` (Gouraud shading). The face meshes here have
triangles smaller than a pixel at training resolutions, so per-vertex lighting is as sharp
as per-pixel lighting and several times cheaper. See :doc:`chapter 3 </chapters/03_faces_as_data>`.

The radiance of a surface point with albedo :math:`\\rho`, unit normal :math:`n` and unit
direction :math:`v` towards the eye is

.. math::

    L = \\rho \\odot \\big(a + E_{SH}(n) + c_d \\max(0, n \\cdot l)\\big)
        + k_s \\, c_d \\max(0, n \\cdot h)^{s},\\qquad h = \\frac{l + v}{\\lVert l + v \\rVert},

with ambient colour :math:`a`, the order-2 spherical-harmonic irradiance :math:`E_{SH}`
(Ramamoorthi and Hanrahan 2001), one directional light of colour :math:`c_d` from direction
:math:`l`, and a Blinn-Phong highlight of strength :math:`k_s` and exponent :math:`s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

#: Number of real spherical harmonics up to order 2.
SH_COEFFS = 9
# Normalisation constants of the real spherical harmonics Y_00, Y_1m, Y_2m.
_SH_C0 = 0.28209479177387814  # 1 / (2 sqrt(pi))
_SH_C1 = 0.4886025119029199  # sqrt(3 / (4 pi))
_SH_C2 = 1.0925484305920792  # sqrt(15 / (4 pi))
_SH_C3 = 0.31539156525252005  # sqrt(5 / (16 pi))
_SH_C4 = 0.5462742152960396  # sqrt(15 / (16 pi))
#: Lambertian convolution factors per band (pi, 2 pi / 3, pi / 4): radiance -> irradiance.
SH_LAMBERT_BANDS = (np.pi, 2.0 * np.pi / 3.0, np.pi / 4.0)
_EPS = 1e-12
#: Highlights fade in over n.l in [0, 1 / _SPEC_TERMINATOR] (no hard edge at the terminator).
_SPEC_TERMINATOR = 8.0
_SRGB_LINEAR_CUT = 0.0031308
_SRGB_ENCODED_CUT = 0.04045
_SRGB_SLOPE = 12.92
_SRGB_A = 0.055
_SRGB_GAMMA = 2.4


@numba.njit(cache=True, nogil=True)
def _normals_kernel(v: NDArray[np.float64], f: NDArray[np.int64],
                    out: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    for t in range(f.shape[0]):
        a, b, c = f[t, 0], f[t, 1], f[t, 2]
        ux, uy, uz = v[b, 0] - v[a, 0], v[b, 1] - v[a, 1], v[b, 2] - v[a, 2]
        wx, wy, wz = v[c, 0] - v[a, 0], v[c, 1] - v[a, 1], v[c, 2] - v[a, 2]
        nx, ny, nz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx  # 2 * area
        for k in (a, b, c):
            out[k, 0] += nx
            out[k, 1] += ny
            out[k, 2] += nz
    for i in range(out.shape[0]):
        n = np.sqrt(out[i, 0] ** 2 + out[i, 1] ** 2 + out[i, 2] ** 2)
        if n > 1e-12:
            out[i, 0] /= n
            out[i, 1] /= n
            out[i, 2] /= n


def vertex_normals(verts: NDArray, faces: NDArray) -> NDArray[np.float64]:
    """Area-weighted unit vertex normals (the sum of the adjacent triangles' area vectors).

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles; a counter-clockwise triangle (seen from outside) gives
            outward normals.

    Returns:
        (V, 3) float64 unit normals (zero for vertices in no triangle).
    """
    v = np.ascontiguousarray(verts, dtype=np.float64)
    out = np.zeros_like(v)
    _normals_kernel(v, np.ascontiguousarray(faces, dtype=np.int64), out)
    return out


@numba.njit(cache=True, nogil=True)
def _rows_kernel(x: NDArray, m: NDArray, out: NDArray) -> None:  # pragma: no cover - compiled
    for i in range(x.shape[0]):
        for j in range(m.shape[1]):
            acc = 0.0
            for k in range(x.shape[1]):
                acc += x[i, k] * m[k, j]
            out[i, j] = acc


def matmul_rows(x: NDArray, m: NDArray) -> NDArray[np.float64]:
    """``x @ m`` for many rows ``x`` (..., K) and a small ``m`` (K, C) or (K,), without BLAS.

    Multi-threaded BLAS slows down badly when several processes (DataLoader workers) share a
    few cores (its threads spin while waiting for each other), and the renderer's products are
    thin: a compiled loop is several times faster for them than BLAS or ``np.einsum``. The
    result has the inputs' common dtype (float32 for float32 inputs), accumulated in float64.
    """
    xa = np.asarray(x)
    ma = np.asarray(m)
    vector = ma.ndim == 1
    m2 = ma[:, None] if vector else ma
    if xa.shape[-1] != m2.shape[0]:
        raise ValueError(f"matmul_rows: shapes {xa.shape} and {ma.shape} do not match")
    dtype = np.result_type(xa.dtype, ma.dtype, np.float32)
    x2 = xa.reshape(-1, xa.shape[-1])
    out = np.empty((x2.shape[0], m2.shape[1]), dtype=dtype)
    _rows_kernel(x2, m2, out)
    return out.reshape(xa.shape[:-1] if vector else (*xa.shape[:-1], m2.shape[1]))


def sh_basis(normals: NDArray) -> NDArray[np.float64]:
    """The 9 real spherical harmonics of order <= 2 at unit directions.

    Args:
        normals: (N, 3) unit vectors (x, y, z).

    Returns:
        (N, 9) float64: ``Y_00, Y_1-1, Y_10, Y_11, Y_2-2, Y_2-1, Y_20, Y_21, Y_22``.
    """
    n = np.asarray(normals, dtype=np.float64)
    x, y, z = n[:, 0], n[:, 1], n[:, 2]
    return np.stack([
        np.full_like(x, _SH_C0),
        _SH_C1 * y, _SH_C1 * z, _SH_C1 * x,
        _SH_C2 * x * y, _SH_C2 * y * z, _SH_C3 * (3.0 * z * z - 1.0), _SH_C2 * x * z,
        _SH_C4 * (x * x - y * y),
    ], axis=1)


def sh_irradiance(normals: NDArray, sh_radiance: NDArray) -> NDArray[np.float64]:
    """Irradiance at unit normals from environment radiance given in spherical harmonics.

    Args:
        normals: (N, 3) unit normals.
        sh_radiance: (9, 3) SH coefficients of the incoming radiance, per RGB channel.

    Returns:
        (N, 3) irradiance divided by pi (so a white constant environment of radiance 1
        gives 1), i.e. the radiance a white Lambertian surface reflects.
    """
    bands = np.repeat(np.asarray(SH_LAMBERT_BANDS), [1, 3, 5])[:, None] / np.pi
    return matmul_rows(sh_basis(normals), bands * np.asarray(sh_radiance, dtype=np.float64))


@dataclass(frozen=True)
class Lighting:
    """A light rig: ambient + spherical-harmonic environment + one directional light.

    Attributes:
        ambient: (3,) linear RGB ambient term (added to the irradiance everywhere).
        sh: (9, 3) spherical-harmonic coefficients of the environment's radiance.
        light_dir: (3,) unit direction *towards* the directional light (camera frame).
        light_color: (3,) linear RGB intensity of the directional light.
        specular: strength of the Blinn-Phong highlight (0 for none).
        shininess: Blinn-Phong exponent (larger is a tighter highlight).
    """

    ambient: NDArray[np.float64]
    sh: NDArray[np.float64]
    light_dir: NDArray[np.float64]
    light_color: NDArray[np.float64]
    specular: float
    shininess: float

    @staticmethod
    def simple(direction: tuple[float, float, float] = (0.3, 0.4, 1.0), ambient: float = 0.35,
               intensity: float = 0.75) -> Lighting:
        """A white key light plus ambient, no environment and no highlight (for tests, figures)."""
        d = np.asarray(direction, dtype=np.float64)
        return Lighting(ambient=np.full(3, ambient), sh=np.zeros((SH_COEFFS, 3)),
                        light_dir=d / np.linalg.norm(d), light_color=np.full(3, intensity),
                        specular=0.0, shininess=1.0)


@numba.njit(cache=True, nogil=True)
def _shade_kernel(albedo: NDArray[np.float64], n: NDArray[np.float64], v: NDArray[np.float64],
                  lvec: NDArray[np.float64], ambient: NDArray[np.float64], sh_irr: NDArray[np.float64],
                  color: NDArray[np.float64], specular: float, shininess: float,
                  spec_scale: NDArray[np.float64], vis: NDArray[np.float64],
                  out: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    lx, ly, lz = lvec[0], lvec[1], lvec[2]
    for i in range(n.shape[0]):
        x, y, z = n[i, 0], n[i, 1], n[i, 2]
        ndl = max(x * lx + y * ly + z * lz, 0.0) * vis[i]
        b0 = _SH_C0
        b1, b2, b3 = _SH_C1 * y, _SH_C1 * z, _SH_C1 * x
        b4, b5, b6 = _SH_C2 * x * y, _SH_C2 * y * z, _SH_C3 * (3.0 * z * z - 1.0)
        b7, b8 = _SH_C2 * x * z, _SH_C4 * (x * x - y * y)
        for c in range(3):
            e = (b0 * sh_irr[0, c] + b1 * sh_irr[1, c] + b2 * sh_irr[2, c] + b3 * sh_irr[3, c]
                 + b4 * sh_irr[4, c] + b5 * sh_irr[5, c] + b6 * sh_irr[6, c] + b7 * sh_irr[7, c]
                 + b8 * sh_irr[8, c])
            out[i, c] = albedo[i, c] * max(ambient[c] + e + ndl * color[c], 0.0)
        if specular > 0.0:
            hx, hy, hz = v[i, 0] + lx, v[i, 1] + ly, v[i, 2] + lz
            norm = max(np.sqrt(hx * hx + hy * hy + hz * hz), _EPS)
            ndh = max((x * hx + y * hy + z * hz) / norm, 0.0)
            spec = specular * spec_scale[i] * ndh ** shininess * min(ndl * _SPEC_TERMINATOR, 1.0)
            for c in range(3):
                out[i, c] += spec * color[c]


def shade(albedo: NDArray, normals: NDArray, view_dirs: NDArray, light: Lighting,
          specular_scale: NDArray | float = 1.0,
          light_visibility: NDArray | float = 1.0) -> NDArray[np.float64]:
    """Reflected radiance (linear RGB) of surface points.

    Args:
        albedo: (N, 3) linear RGB diffuse albedo in [0, 1].
        normals: (N, 3) unit normals, in the frame of ``light.light_dir``.
        view_dirs: (N, 3) unit directions from each point towards the eye, same frame.
        light: the light rig.
        specular_scale: (N,) or scalar multiplier of the highlight per point (skin is
            glossier on the nose and forehead, teeth and eyes more than the mouth interior).
        light_visibility: (N,) or scalar in [0, 1]: how much of the directional light
            reaches each point (0 in a cast shadow, see
            :func:`facegcn_lib.render.occlusion.lit_from`).

    Returns:
        (N, 3) float64 linear radiance (not clipped).
    """
    n = np.ascontiguousarray(normals, dtype=np.float64).reshape(-1, 3)
    num = len(n)
    bands = np.repeat(np.asarray(SH_LAMBERT_BANDS), [1, 3, 5])[:, None] / np.pi
    out = np.empty((num, 3))
    _shade_kernel(np.ascontiguousarray(np.broadcast_to(albedo, (num, 3)), dtype=np.float64), n,
                  np.ascontiguousarray(view_dirs, dtype=np.float64).reshape(-1, 3),
                  np.asarray(light.light_dir, dtype=np.float64),
                  np.asarray(light.ambient, dtype=np.float64) * np.ones(3),
                  bands * np.asarray(light.sh, dtype=np.float64),
                  np.asarray(light.light_color, dtype=np.float64) * np.ones(3),
                  float(light.specular), float(light.shininess),
                  np.ascontiguousarray(np.broadcast_to(specular_scale, (num,)), dtype=np.float64),
                  np.ascontiguousarray(np.broadcast_to(light_visibility, (num,)), dtype=np.float64), out)
    return out


def linear_to_srgb(x: NDArray) -> NDArray[np.float64]:
    """Encode linear RGB in [0, 1] with the sRGB transfer curve (values are clipped first)."""
    c = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    lo = c * _SRGB_SLOPE
    hi = (1.0 + _SRGB_A) * np.power(c, 1.0 / _SRGB_GAMMA) - _SRGB_A
    return np.where(c <= _SRGB_LINEAR_CUT, lo, hi)


def srgb_to_linear(x: NDArray) -> NDArray[np.float64]:
    """Decode sRGB values in [0, 1] to linear RGB."""
    c = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= _SRGB_ENCODED_CUT, c / _SRGB_SLOPE,
                    np.power((c + _SRGB_A) / (1.0 + _SRGB_A), _SRGB_GAMMA))


_SRGB_LUT_SIZE = 4096
_SRGB_LUT = linear_to_srgb(np.linspace(0.0, 1.0, _SRGB_LUT_SIZE)).astype(np.float32)


def linear_to_srgb_fast(x: NDArray) -> NDArray[np.float32]:
    """:func:`linear_to_srgb` through a 4096-entry table (error below 1/300): float32 out."""
    idx = (np.clip(np.asarray(x, dtype=np.float32), 0.0, 1.0) * (_SRGB_LUT_SIZE - 1) + 0.5).astype(np.int32)
    return _SRGB_LUT[idx]
