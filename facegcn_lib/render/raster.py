"""A z-buffer triangle rasterizer in numba: screen-space triangles in, a G-buffer out.

The rasterizer does one thing: for every pixel it finds the nearest triangle that covers the
pixel's centre, and records that triangle's id, its depth and the pixel's barycentric
coordinates in it (a *G-buffer*). Everything else (normals, colours, lighting) is computed
afterwards by interpolating per-vertex attributes with :func:`interpolate`, which is the
"deferred shading" design of real-time renderers. See
:doc:`chapter 3 </chapters/03_faces_as_data>` for a step-by-step walk through it.

Conventions (the *screen frame*):

* ``x`` is the column and ``y`` the row, in pixels, x right and y down; the centre of pixel
  ``(row i, column j)`` is the point ``(x, y) = (j, i)`` (OpenCV's convention).
* ``z`` is a depth key: smaller is nearer. It is interpolated linearly in screen space, which
  is exact for orthographic cameras and, for perspective ones, differs from true depth by far
  less than a triangle's own depth range when triangles are small (the face meshes here have
  millimetre-sized triangles seen from hundreds of millimetres).
* Coverage follows the *top-left rule* of Direct3D/OpenGL: a pixel centre on an edge shared
  by two triangles belongs to exactly one of them, so a closed surface has no gaps and no
  double-drawn pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

#: Triangle id of pixels that no triangle covers.
EMPTY = -1


class RasterInputError(ValueError):
    """The arrays given to the rasterizer have the wrong shape or values."""


@dataclass(frozen=True)
class GBuffer:
    """What the rasterizer knows about each pixel.

    Attributes:
        depth: (H, W) float32 interpolated depth key of the visible surface, ``inf`` where empty.
        tri: (H, W) int32 id of the visible triangle, :data:`EMPTY` (-1) where empty.
        bary: (H, W, 3) float32 barycentric weights of the pixel centre with respect to the
            triangle's three corners (in the order of ``faces``); zero where empty.
    """

    depth: NDArray[np.float32]
    tri: NDArray[np.int32]
    bary: NDArray[np.float32]

    @property
    def mask(self) -> NDArray[np.bool_]:
        """(H, W) bool: the pixels some triangle covers."""
        out: NDArray[np.bool_] = self.tri != EMPTY
        return out

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return (int(self.tri.shape[0]), int(self.tri.shape[1]))


@numba.njit(cache=True, nogil=True)
def _owns_edge(dx: float, dy: float) -> bool:
    """Top-left rule: whether a triangle owns pixel centres lying exactly on its edge.

    The edge runs by ``(dx, dy)`` in a triangle oriented so that its interior has positive edge
    functions; it is a *left* edge when it runs upwards (``dy < 0``, y down) and a *top* edge
    when it is horizontal and runs right.
    """
    return dy < 0.0 or (dy == 0.0 and dx > 0.0)


@numba.njit(cache=True, nogil=True)
def _raster_kernel(pts: NDArray[np.float64], faces: NDArray[np.int64], cull: NDArray[np.bool_],
                   depth: NDArray[np.float32], tri: NDArray[np.int32],
                   bary: NDArray[np.float32]) -> None:  # pragma: no cover - compiled
    height, width = depth.shape
    for f in range(faces.shape[0]):
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        x0, y0, z0 = pts[i0, 0], pts[i0, 1], pts[i0, 2]
        x1, y1, z1 = pts[i1, 0], pts[i1, 1], pts[i1, 2]
        x2, y2, z2 = pts[i2, 0], pts[i2, 1], pts[i2, 2]
        area = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
        if not area != 0.0:  # degenerate, or NaN coordinates
            continue
        if area > 0.0 and cull[f]:  # clockwise as displayed (y down): seen from behind
            continue
        flipped = area < 0.0
        if flipped:  # orient so that the interior has positive edge functions
            x1, y1, z1, x2, y2, z2 = x2, y2, z2, x1, y1, z1
            area = -area
        xmin = max(int(np.ceil(min(x0, x1, x2))), 0)
        xmax = min(int(np.floor(max(x0, x1, x2))), width - 1)
        ymin = max(int(np.ceil(min(y0, y1, y2))), 0)
        ymax = min(int(np.floor(max(y0, y1, y2))), height - 1)
        if xmin > xmax or ymin > ymax:
            continue
        # edge k is opposite corner k: e0 = v1->v2, e1 = v2->v0, e2 = v0->v1; with the
        # orientation above the interior has w_k >= 0, w_k = dx_k (y - ya) - dy_k (x - xa)
        dx0, dy0 = x2 - x1, y2 - y1
        dx1, dy1 = x0 - x2, y0 - y2
        dx2, dy2 = x1 - x0, y1 - y0
        own0 = _owns_edge(dx0, dy0)
        own1 = _owns_edge(dx1, dy1)
        own2 = _owns_edge(dx2, dy2)
        inv_area = 1.0 / area
        for py in range(ymin, ymax + 1):
            fy = float(py)
            # w_k is linear in x: w_k = c_k - dy_k x; find the x-span where all are >= 0
            c0 = dx0 * (fy - y1) + dy0 * x1
            c1 = dx1 * (fy - y2) + dy1 * x2
            c2 = dx2 * (fy - y0) + dy2 * x0
            lo = float(xmin)
            hi = float(xmax)
            empty = False
            for c, dy in ((c0, dy0), (c1, dy1), (c2, dy2)):
                if dy > 0.0:
                    hi = min(hi, c / dy)
                elif dy < 0.0:
                    lo = max(lo, c / dy)
                elif c < 0.0:
                    empty = True
            if empty or lo > hi + 1.0:
                continue
            # one pixel of slack each side: the exact test below decides the borders
            xa = max(xmin, int(np.ceil(lo)) - 1)
            xb = min(xmax, int(np.floor(hi)) + 1)
            for px in range(xa, xb + 1):
                fx = float(px)
                w0 = c0 - dy0 * fx
                w1 = c1 - dy1 * fx
                w2 = c2 - dy2 * fx
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                if (w0 == 0.0 and not own0) or (w1 == 0.0 and not own1) or (w2 == 0.0 and not own2):
                    continue
                b0 = w0 * inv_area
                b1 = w1 * inv_area
                b2 = w2 * inv_area
                z = b0 * z0 + b1 * z1 + b2 * z2
                if z < depth[py, px]:
                    depth[py, px] = z
                    tri[py, px] = f
                    bary[py, px, 0] = b0
                    if flipped:  # corners 1 and 2 were swapped above
                        bary[py, px, 1] = b2
                        bary[py, px, 2] = b1
                    else:
                        bary[py, px, 1] = b1
                        bary[py, px, 2] = b2


def rasterize(points: NDArray, faces: NDArray, height: int, width: int,
              cull_back: NDArray | bool = False) -> GBuffer:
    """Rasterize triangles with a z-buffer.

    Args:
        points: (V, 3) float screen-frame positions: x, y in pixels (pixel centres at integer
            coordinates, x right, y down) and a depth key z (smaller is nearer). Vertices with
            NaN coordinates drop their triangles.
        faces: (F, 3) int vertex indices of the triangles; either winding is drawn.
        height: image rows ``H``.
        width: image columns ``W``.
        cull_back: (F,) bool or one bool: drop these triangles when they are seen from behind,
            i.e. when their corners run clockwise as the image is displayed (y down; a
            positive ``(p1 - p0) x (p2 - p0)`` in pixel coordinates). For a closed surface whose
            triangles run counter-clockwise seen from outside, culling changes nothing in the
            image and halves the work.

    Returns:
        The :class:`GBuffer` of the nearest triangle at every pixel centre.

    Raises:
        RasterInputError: wrong shapes, an index out of range, or a non-positive image size.
    """
    pts = np.ascontiguousarray(points, dtype=np.float64)
    tris = np.ascontiguousarray(faces, dtype=np.int64)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise RasterInputError(f"points must be (V, 3) (x, y, depth), got shape {pts.shape}")
    if tris.ndim != 2 or tris.shape[1] != 3:
        raise RasterInputError(f"faces must be (F, 3) triangles, got shape {tris.shape}")
    if height <= 0 or width <= 0:
        raise RasterInputError(f"the image size must be positive, got {height}x{width}")
    if tris.size and (tris.min() < 0 or tris.max() >= len(pts)):
        raise RasterInputError(f"faces index vertices outside 0..{len(pts) - 1}")
    depth = np.full((height, width), np.inf, dtype=np.float32)
    tri = np.full((height, width), EMPTY, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    cull = np.broadcast_to(np.asarray(cull_back, dtype=np.bool_), (len(tris),))
    _raster_kernel(pts, tris, np.ascontiguousarray(cull), depth, tri, bary)
    return GBuffer(depth, tri, bary)


@numba.njit(cache=True, nogil=True)
def _interp_kernel(tri: NDArray[np.int32], bary: NDArray[np.float32],
                   faces: NDArray[np.int64], attrs: NDArray[np.float32],
                   out: NDArray[np.float32]) -> None:  # pragma: no cover - compiled
    height, width = tri.shape
    channels = attrs.shape[1]
    for py in range(height):
        for px in range(width):
            f = tri[py, px]
            if f < 0:
                continue
            a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
            w0, w1, w2 = bary[py, px, 0], bary[py, px, 1], bary[py, px, 2]
            for ch in range(channels):
                out[py, px, ch] = w0 * attrs[a, ch] + w1 * attrs[b, ch] + w2 * attrs[c, ch]


def interpolate(gbuf: GBuffer, faces: NDArray, attrs: NDArray) -> NDArray[np.float32]:
    """Interpolate per-vertex attributes at every covered pixel.

    Args:
        gbuf: the G-buffer of :func:`rasterize` for these ``faces``.
        faces: (F, 3) int triangles (the same array that was rasterized).
        attrs: (V, C) or (V,) float per-vertex values (colours, normals, depths...).

    Returns:
        (H, W, C) float32 (or (H, W) for 1-D ``attrs``), zero at empty pixels.
    """
    a = np.asarray(attrs, dtype=np.float32)
    squeeze = a.ndim == 1
    a2 = np.ascontiguousarray(a.reshape(len(a), -1))
    out = np.zeros((*gbuf.shape, a2.shape[1]), dtype=np.float32)
    _interp_kernel(gbuf.tri, gbuf.bary, np.ascontiguousarray(faces, dtype=np.int64), a2, out)
    return out[..., 0] if squeeze else out
