"""Which vertices see what: depth-buffer visibility, shadow maps and ambient occlusion.

All three questions are answered the same way: rasterize a depth map of the mesh as seen
from some direction (the camera, the light, or each of many directions around the head) and
compare every vertex's own depth with the depth map at its pixel. A vertex is *visible* when
nothing in front of it is nearer by more than a small tolerance (the *bias*, which absorbs the
depth map's discretisation). See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facegcn_lib.render.raster import rasterize
from facegcn_lib.render.shading import matmul_rows


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
    p = np.asarray(points, dtype=np.float64)
    h, w = depth.shape
    x0 = np.floor(p[:, 0]).astype(np.int64)
    y0 = np.floor(p[:, 1]).astype(np.int64)
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < w) & (y0 + 1 < h)
    xi = np.clip(x0, 0, w - 2)
    yi = np.clip(y0, 0, h - 2)
    d = np.asarray(depth, dtype=np.float64)
    far = np.maximum(np.maximum(d[yi, xi], d[yi, xi + 1]), np.maximum(d[yi + 1, xi], d[yi + 1, xi + 1]))
    out: NDArray[np.bool_] = inside & (p[:, 2] <= far + bias)
    return out


def _basis_for(direction: NDArray) -> NDArray[np.float64]:
    """A rotation (3, 3) whose third row is the unit ``direction`` (rows: u, v, d)."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    helper = np.array([1.0, 0.0, 0.0]) if abs(d[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(helper, d)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(d, u), d])


def lit_from(verts: NDArray, faces: NDArray, direction: NDArray,
             cfg: OcclusionConfig | None = None,
             cull_back: NDArray | bool = False) -> NDArray[np.bool_]:
    """Which vertices a distant light from ``direction`` reaches (a shadow-map test).

    Args:
        verts: (V, 3) positions (any unit).
        faces: (F, 3) triangles.
        direction: (3,) direction *towards* the light, in the frame of ``verts``.
        cull_back: triangles that may be culled when seen from behind (see
            :func:`facegcn_lib.render.raster.rasterize`); ``verts`` must then be in a
            right-handed frame.

    Returns:
        (V,) bool: True where no other part of the mesh lies between the vertex and the light.
    """
    c = cfg or OcclusionConfig()
    v = np.asarray(verts, dtype=np.float64)
    rot = _basis_for(direction)
    local = matmul_rows(v, rot.T)  # u, v across the map, third axis towards the light
    lo = local[:, :2].min(axis=0)
    hi = local[:, :2].max(axis=0)
    pixel = float((hi - lo).max()) / (c.map_size - 3)
    # map frame (u, -v, -d): right-handed like a camera's (x right, y down, z away from the light)
    pts = np.empty_like(local)
    pts[:, 0] = (local[:, 0] - lo[0]) / pixel + 1.0
    pts[:, 1] = (hi[1] - local[:, 1]) / pixel + 1.0
    pts[:, 2] = -local[:, 2] / pixel  # depth key in pixel units: nearer the light is smaller
    gbuf = rasterize(pts, faces, c.map_size, c.map_size, cull_back)
    return visible_in_depth_map(pts, gbuf.depth, c.bias_pixels)


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
