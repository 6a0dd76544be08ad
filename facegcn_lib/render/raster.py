"""A z-buffer triangle rasterizer in numba: screen-space triangles in, a G-buffer out.

The rasterizer does one thing: for every pixel it finds the nearest triangle that covers the
pixel's centre, and records that triangle's id, its depth and the pixel's barycentric
coordinates in it (a *G-buffer*). Everything else (normals, colours, lighting) is computed
afterwards by interpolating per-vertex attributes with :func:`interpolate`, which is the
"deferred shading" design of real-time renderers; :func:`resolve` does the same for a
supersampled G-buffer and averages each block of samples into one output pixel (anti-aliasing)
in the same pass. See :doc:`chapter 3 </chapters/03_faces_as_data>` for a step-by-step walk
through it.

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
#: Triangles spanning fewer pixel columns than this test every column of each row (the
#: row's exact span costs more than it saves).
_NARROW_COLUMNS = 2
#: Relative depth margin of the occlusion test of a chunk of triangles (rounding slack).
_CHUNK_DEPTH_MARGIN = 1e-9


class RasterInputError(ValueError):
    """The arrays given to the rasterizer have the wrong shape or values."""


@dataclass(frozen=True)
class GBuffer:
    """What the rasterizer knows about each pixel.

    Attributes:
        depth: (H, W) float32 interpolated depth key of the visible surface, ``inf`` where empty.
        tri: (H, W) int32 id of the visible triangle, :data:`EMPTY` (-1) where empty.
        bary: (H, W, 3) float32 barycentric weights of the pixel centre with respect to the
            triangle's three corners (in the order of ``faces``); zero where empty. An empty
            (0, 0, 3) array when :func:`rasterize` was asked not to record them.
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
                   depth: NDArray[np.float32], tri: NDArray[np.int32], bary: NDArray[np.float32],
                   start: int, stop: int) -> None:  # pragma: no cover - compiled
    """Draw triangles ``start .. stop - 1``."""
    height, width = depth.shape
    write_bary = bary.shape[0] > 0  # an empty ``bary``: depth and triangle ids only
    for f in range(start, stop):
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
        narrow = xmax - xmin < _NARROW_COLUMNS
        r0 = 1.0 / dy0 if dy0 != 0.0 else 0.0
        r1 = 1.0 / dy1 if dy1 != 0.0 else 0.0
        r2 = 1.0 / dy2 if dy2 != 0.0 else 0.0
        for py in range(ymin, ymax + 1):
            fy = float(py)
            # w_k is linear in x: w_k = c_k - dy_k x; find the x-span where all are >= 0
            c0 = dx0 * (fy - y1) + dy0 * x1
            c1 = dx1 * (fy - y2) + dy1 * x2
            c2 = dx2 * (fy - y0) + dy2 * x0
            if narrow:  # a few columns: test them all
                xa, xb = xmin, xmax
            else:
                lo = float(xmin)
                hi = float(xmax)
                empty = False
                for c, dy, rdy in ((c0, dy0, r0), (c1, dy1, r1), (c2, dy2, r2)):
                    if dy > 0.0:
                        hi = min(hi, c * rdy)
                    elif dy < 0.0:
                        lo = max(lo, c * rdy)
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
                # inside, with the edges' ownership; few branches (edges are unpredictable)
                inside = ((w0 > 0.0 or (w0 == 0.0 and own0)) & (w1 > 0.0 or (w1 == 0.0 and own1))
                          & (w2 > 0.0 or (w2 == 0.0 and own2)))
                b0 = w0 * inv_area
                b1 = w1 * inv_area
                b2 = w2 * inv_area
                z = b0 * z0 + b1 * z1 + b2 * z2
                d = depth[py, px]
                win = inside & (z < d)
                depth[py, px] = z if win else d
                tri[py, px] = f if win else tri[py, px]
                if win and write_bary:
                    bary[py, px, 0] = b0
                    if flipped:  # corners 1 and 2 were swapped above
                        bary[py, px, 1] = b2
                        bary[py, px, 2] = b1
                    else:
                        bary[py, px, 1] = b1
                        bary[py, px, 2] = b2


@numba.njit(cache=True, nogil=True)
def _chunk_hidden(pts: NDArray[np.float64], faces: NDArray[np.int64], depth: NDArray[np.float32],
                  start: int, stop: int) -> bool:  # pragma: no cover - compiled
    """Whether triangles ``start .. stop - 1`` cannot win a depth test at any pixel.

    True when every pixel centre in their screen bounding box already holds a depth nearer
    than their nearest corner (or the box holds no pixel centre): the exact z-buffer result
    without drawing them. Corners with NaN coordinates are ignored (their triangles are not
    drawn).
    """
    height, width = depth.shape
    xmin = ymin = zmin = np.inf
    xmax = ymax = -np.inf
    for f in range(start, stop):
        for k in range(3):
            i = faces[f, k]
            x, y, z = pts[i, 0], pts[i, 1], pts[i, 2]
            if x != x or y != y or z != z:
                continue
            xmin = min(xmin, x)
            xmax = max(xmax, x)
            ymin = min(ymin, y)
            ymax = max(ymax, y)
            zmin = min(zmin, z)
    if not (xmin <= xmax and ymin <= ymax):
        return True
    x0 = max(int(np.ceil(max(xmin, -1.0))), 0)
    x1 = min(int(np.floor(min(xmax, float(width)))), width - 1)
    y0 = max(int(np.ceil(max(ymin, -1.0))), 0)
    y1 = min(int(np.floor(min(ymax, float(height)))), height - 1)
    # a drawn depth is a convex combination of corner depths: never below zmin but by rounding
    threshold = zmin - _CHUNK_DEPTH_MARGIN * (1.0 + abs(zmin))
    for py in range(y0, y1 + 1):
        for px in range(x0, x1 + 1):
            if not depth[py, px] < threshold:
                return False
    return True


@numba.njit(cache=True, nogil=True)
def _raster_chunks(pts: NDArray[np.float64], faces: NDArray[np.int64], cull: NDArray[np.bool_],
                   depth: NDArray[np.float32], tri: NDArray[np.int32], bary: NDArray[np.float32],
                   chunk: int) -> None:  # pragma: no cover - compiled
    n = faces.shape[0]
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        if not _chunk_hidden(pts, faces, depth, start, stop):
            _raster_kernel(pts, faces, cull, depth, tri, bary, start, stop)


def rasterize(points: NDArray, faces: NDArray, height: int, width: int,
              cull_back: NDArray | bool = False, barycentric: bool = True,
              occlusion_chunk: int = 0) -> GBuffer:
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
        barycentric: also record the barycentric coordinates. Without them ``bary`` is an
            empty (0, 0, 3) array and rasterizing is a little faster (enough for depth maps).
        occlusion_chunk: when positive, draw the triangles in consecutive chunks of this many
            and skip a chunk whose screen bounding box holds only pixels already nearer than
            the chunk's nearest corner (occlusion culling). The result is the same; it is
            faster when ``faces`` lists outer surfaces before what they hide (a head's skin
            before its mouth interior, say) and each chunk is spatially compact.

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
    bary = np.zeros((height, width, 3) if barycentric else (0, 0, 3), dtype=np.float32)
    cull = np.broadcast_to(np.asarray(cull_back, dtype=np.bool_), (len(tris),))
    cull = np.ascontiguousarray(cull)
    if occlusion_chunk > 0:
        _raster_chunks(pts, tris, cull, depth, tri, bary, int(occlusion_chunk))
    else:
        _raster_kernel(pts, tris, cull, depth, tri, bary, 0, len(tris))
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


@numba.njit(cache=True, nogil=True)
def _resolve_kernel(tri: NDArray[np.int32], bary: NDArray[np.float32], faces: NDArray[np.int64],
                    attrs: NDArray[np.float32], weight: NDArray[np.float32], factor: int,
                    color: NDArray[np.float32], alpha: NDArray[np.float32],
                    wsum: NDArray[np.float32]) -> None:  # pragma: no cover - compiled
    height, width = alpha.shape
    channels = attrs.shape[1]
    rgb = channels == 3  # the common case, with the channels in registers
    inv = 1.0 / (factor * factor)
    for i in range(height):
        for j in range(width):
            count = 0
            ws = 0.0
            r = 0.0
            g = 0.0
            b = 0.0
            for si in range(factor):
                py = i * factor + si
                for sj in range(factor):
                    px = j * factor + sj
                    f = tri[py, px]
                    if f < 0:
                        continue
                    i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
                    w0, w1, w2 = bary[py, px, 0], bary[py, px, 1], bary[py, px, 2]
                    if rgb:
                        r += w0 * attrs[i0, 0] + w1 * attrs[i1, 0] + w2 * attrs[i2, 0]
                        g += w0 * attrs[i0, 1] + w1 * attrs[i1, 1] + w2 * attrs[i2, 1]
                        b += w0 * attrs[i0, 2] + w1 * attrs[i1, 2] + w2 * attrs[i2, 2]
                    else:
                        for ch in range(channels):
                            color[i, j, ch] += w0 * attrs[i0, ch] + w1 * attrs[i1, ch] + w2 * attrs[i2, ch]
                    count += 1
                    ws += weight[f]
            if count:
                if rgb:
                    color[i, j, 0] = r
                    color[i, j, 1] = g
                    color[i, j, 2] = b
                for ch in range(channels):
                    color[i, j, ch] *= inv
                alpha[i, j] = count * inv
                wsum[i, j] = ws * inv


@dataclass(frozen=True)
class Resolved:
    """A supersampled rendering averaged down to the output resolution.

    Attributes:
        color: (h, w, C) float32 mean over each pixel's samples of the interpolated
            attributes, zero for empty samples (colour premultiplied by coverage).
        alpha: (h, w) float32 fraction of each pixel's samples that some triangle covers.
        weight: (h, w) float32 mean over each pixel's samples of the covering triangle's
            weight (zero for empty samples): e.g. the coverage by one part of the mesh.
    """

    color: NDArray[np.float32]
    alpha: NDArray[np.float32]
    weight: NDArray[np.float32]


def resolve(gbuf: GBuffer, faces: NDArray, attrs: NDArray, factor: int,
            tri_weight: NDArray | None = None) -> Resolved:
    """Interpolate per-vertex attributes and box-filter ``factor`` x ``factor`` samples per pixel.

    The same as :func:`interpolate` followed by averaging every block of ``factor`` x
    ``factor`` pixels (OpenCV's ``INTER_AREA`` resize for an integer factor), in one pass and
    without the full-resolution image: this is how a supersampled rendering is anti-aliased.

    Args:
        gbuf: the G-buffer of :func:`rasterize` (with barycentric coordinates); its sides are
            multiples of ``factor``.
        faces: (F, 3) int triangles (the same array that was rasterized).
        attrs: (V, C) or (V,) float per-vertex values.
        factor: samples per output pixel along each axis (1: no filtering).
        tri_weight: (F,) float per-triangle weights averaged into the ``weight`` image
            (default: none, all zero).

    Returns:
        The :class:`Resolved` images, of side ``gbuf.shape // factor``.

    Raises:
        RasterInputError: ``factor`` does not divide the G-buffer's sides, or the G-buffer has
            no barycentric coordinates.
    """
    h, w = gbuf.shape
    if factor < 1 or h % factor or w % factor:
        raise RasterInputError(f"the supersampling factor {factor} must divide the G-buffer's "
                               f"sides {h}x{w}")
    if gbuf.bary.shape[:2] != (h, w):
        raise RasterInputError("resolve needs the barycentric coordinates: rasterize with "
                               "barycentric=True")
    a = np.asarray(attrs, dtype=np.float32)
    a2 = np.ascontiguousarray(a.reshape(len(a), -1))
    tris = np.ascontiguousarray(faces, dtype=np.int64)
    weight = (np.zeros(len(tris), dtype=np.float32) if tri_weight is None
              else np.ascontiguousarray(tri_weight, dtype=np.float32))
    color = np.zeros((h // factor, w // factor, a2.shape[1]), dtype=np.float32)
    alpha = np.zeros((h // factor, w // factor), dtype=np.float32)
    wsum = np.zeros_like(alpha)
    _resolve_kernel(gbuf.tri, gbuf.bary, tris, a2, weight, int(factor), color, alpha, wsum)
    return Resolved(color[..., 0] if a.ndim == 1 else color, alpha, wsum)


@numba.njit(cache=True, nogil=True)
def _covered_kernel(tri: NDArray[np.int32], faces: NDArray[np.int64],
                    seen: NDArray[np.bool_], out: NDArray[np.bool_]) -> None:  # pragma: no cover
    height, width = tri.shape
    for py in range(height):
        for px in range(width):
            f = tri[py, px]
            if f >= 0:
                seen[f] = True
    for f in range(faces.shape[0]):
        if seen[f]:
            out[faces[f, 0]] = True
            out[faces[f, 1]] = True
            out[faces[f, 2]] = True


def covered_vertices(gbuf: GBuffer, faces: NDArray, num_verts: int) -> NDArray[np.bool_]:
    """(V,) bool: the corners of the triangles that cover at least one pixel of ``gbuf``.

    These are the vertices whose attributes :func:`interpolate` and :func:`resolve` read, so
    per-vertex work (shading, say) can be restricted to them.
    """
    tris = np.ascontiguousarray(faces, dtype=np.int64)
    out = np.zeros(num_verts, dtype=np.bool_)
    _covered_kernel(gbuf.tri, tris, np.zeros(len(tris), dtype=np.bool_), out)
    return out
