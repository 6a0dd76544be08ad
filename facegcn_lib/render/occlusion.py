"""Which vertices see what: depth-buffer visibility, shadow maps and ambient occlusion.

All three questions are answered the same way: rasterize a depth map of the mesh as seen
from some direction (the camera, the light, or each of many directions around the head) and
compare every vertex's own depth with the depth map at its pixel. A vertex is *visible* when
nothing in front of it is nearer by more than a small tolerance (the *bias*, which absorbs the
depth map's discretisation). See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.render.raster import rasterize


@dataclass(frozen=True)
class OcclusionConfig:
    """Resolutions and tolerances of the depth-map tests.

    Attributes:
        map_size: side of the square orthographic depth maps, in pixels.
        bias_pixels: depth tolerance in units of the depth map's pixel size (a surface at
            45 degrees changes depth by one pixel size per pixel).
        ao_directions: number of directions over the sphere for ambient occlusion.
    """

    map_size: int = 256
    bias_pixels: float = 1.5
    ao_directions: int = 48


def visible_in_depth_map(points: NDArray, depth: NDArray, bias: float) -> NDArray[np.bool_]:
    """Whether points are at most ``bias`` behind the depth map at their (nearest) pixel.

    Args:
        points: (N, 3) screen-frame points (x, y pixels with pixel centres at integers, z the
            same depth key as the map: smaller is nearer).
        depth: (H, W) depth map (``inf`` where empty), e.g. :attr:`facegcn_lib.render.raster.GBuffer.depth`.
        bias: tolerance in depth units.

    Returns:
        (N,) bool: inside the map and not hidden. The test takes the farthest depth of the
        2x2 pixels around the point, so a point on a silhouette counts as visible.
    """
    p = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 3)
    d = np.asarray(depth)
    if d.dtype != np.float32:
        d = d.astype(np.float64)
    out = np.empty(len(p), dtype=np.bool_)
    _visible_kernel(p, np.ascontiguousarray(d), float(bias), out)
    return out


@numba.njit(cache=True, nogil=True)
def _visible_kernel(p: NDArray[np.float64], depth: NDArray[np.floating], bias: float,
                    out: NDArray[np.bool_]) -> None:  # pragma: no cover - compiled
    h, w = depth.shape
    for i in range(p.shape[0]):
        x, y = p[i, 0], p[i, 1]
        out[i] = False
        if not (x >= 0.0 and y >= 0.0 and x < w - 1 and y < h - 1):  # NaN: outside
            continue
        x0, y0 = int(x), int(y)  # floor, for non-negative x and y
        far = max(max(depth[y0, x0], depth[y0, x0 + 1]), max(depth[y0 + 1, x0], depth[y0 + 1, x0 + 1]))
        out[i] = p[i, 2] <= far + bias


def _basis_for(direction: NDArray) -> NDArray[np.float64]:
    """A rotation (3, 3) whose third row is the unit ``direction`` (rows: u, v, d)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(d, u), d])


@numba.njit(cache=True, nogil=True)
def _light_map_points(v: NDArray[np.float64], rot: NDArray[np.float64], map_size: int,
                      out: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    """Orthographic depth-map coordinates of ``v`` seen along ``-rot[2]`` (see :func:`lit_from`)."""
    n = v.shape[0]
    for i in range(n):
        for r in range(3):
            out[i, r] = rot[r, 0] * v[i, 0] + rot[r, 1] * v[i, 1] + rot[r, 2] * v[i, 2]
    lo_u = hi_u = out[0, 0]
    lo_v = hi_v = out[0, 1]
    for i in range(1, n):
        lo_u = min(lo_u, out[i, 0])
        hi_u = max(hi_u, out[i, 0])
        lo_v = min(lo_v, out[i, 1])
        hi_v = max(hi_v, out[i, 1])
    pixel = max(hi_u - lo_u, hi_v - lo_v) / (map_size - 3)
    # map frame (u, -v, -d): right-handed like a camera's (x right, y down, z away from the light)
    for i in range(n):
        out[i, 0] = (out[i, 0] - lo_u) / pixel + 1.0
        out[i, 1] = (hi_v - out[i, 1]) / pixel + 1.0
        out[i, 2] = -out[i, 2] / pixel  # depth key in pixel units: nearer the light is smaller


def lit_from(verts: NDArray, faces: NDArray, direction: NDArray,
             cfg: OcclusionConfig | None = None,
             cull_back: NDArray | bool = False,
             subset: NDArray | None = None) -> NDArray[np.bool_]:
    """Which vertices a distant light from ``direction`` reaches (a shadow-map test).

    Args:
        verts: (V, 3) positions (any unit).
        faces: (F, 3) triangles.
        direction: (3,) direction *towards* the light, in the frame of ``verts``.
        cull_back: triangles that may be culled when seen from behind (see
            :func:`facegcn_lib.render.raster.rasterize`); ``verts`` must then be in a
            right-handed frame.
        subset: (N,) vertex indices to test (default: all); the whole mesh casts shadows.

    Returns:
        (V,) bool, or (N,) for a ``subset``: True where no other part of the mesh lies between
        the vertex and the light.
    """
    c = cfg or OcclusionConfig()
    v = np.ascontiguousarray(verts, dtype=np.float64)
    if len(v) == 0:
        return np.zeros(0 if subset is None else len(subset), dtype=bool)
    # u, v across the map, the third axis towards the light, scaled to map pixels
    pts = np.empty_like(v)
    _light_map_points(v, _basis_for(direction), c.map_size, pts)
    gbuf = rasterize(pts, faces, c.map_size, c.map_size, cull_back, barycentric=False)
    return visible_in_depth_map(pts if subset is None else pts[subset], gbuf.depth, c.bias_pixels)


def sphere_directions(n: int) -> NDArray[np.float64]:
    """(n, 3) unit vectors spread evenly over the sphere (a Fibonacci lattice)."""
    k = np.arange(n, dtype=np.float64) + 0.5
    z = 1.0 - 2.0 * k / n
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = k * np.pi * (3.0 - np.sqrt(5.0))
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def ambient_occlusion(verts: NDArray, faces: NDArray, normals: NDArray,
                      cfg: OcclusionConfig | None = None) -> NDArray[np.float64]:
    """Per-vertex ambient occlusion: the cosine-weighted fraction of the sky a vertex sees.

    Args:
        verts: (V, 3) positions.
        faces: (F, 3) triangles.
        normals: (V, 3) unit outward normals.

    Returns:
        (V,) float64 in [0, 1]: 1 for a vertex that sees its whole hemisphere (a convex
        surface), smaller inside the mouth, eye sockets, ears and nostrils.
    """
    c = cfg or OcclusionConfig()
    n = np.asarray(normals, dtype=np.float64)
    seen = np.zeros(len(n))
    total = np.zeros(len(n))
    for d in sphere_directions(c.ao_directions):
        cos = np.clip(n @ d, 0.0, None)
        total += cos
        seen += cos * lit_from(verts, faces, d, c)
    out: NDArray[np.float64] = np.where(total > 0, seen / np.maximum(total, 1e-12), 1.0)
    return out
