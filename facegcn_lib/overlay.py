"""Draw reconstructed faces on photos with OpenCV: a mesh wireframe and the 68 landmarks.

Plain raster drawing (no matplotlib), used by :meth:`facegcn_lib.face.Face.draw` for the
overlay images that ``facegcn reconstruct`` writes. Points are image pixels in the library's
convention (pixel centres at integer coordinates, x right, y down); lines are drawn
anti-aliased with sub-pixel precision.

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

#: The 68-point scheme's contours: ``(first, last, closed)`` index ranges (inclusive).
LANDMARK_CONTOURS: tuple[tuple[int, int, bool], ...] = (
    (0, 16, False),   # jaw
    (17, 21, False),  # right brow (the subject's)
    (22, 26, False),  # left brow
    (27, 30, False),  # nose ridge
    (31, 35, False),  # nose base
    (36, 41, True),   # right eye
    (42, 47, True),   # left eye
    (48, 59, True),   # outer lips
    (60, 67, True),   # inner lips
)

#: Bits of sub-pixel precision passed to OpenCV's drawing functions.
SUBPIXEL_BITS = 4


@dataclass(frozen=True)
class OverlayConfig:
    """Colours (RGB) and sizes of the overlay.

    Attributes:
        wire_color: colour of the mesh wireframe.
        wire_alpha: opacity of the wireframe over the photo.
        box_color: colour of the detection box.
        landmark_color: colour of the landmark contours and dots.
        thickness_per_px: line thickness per pixel of face size (at least 1 pixel).
        dot_radius_per_px: landmark dot radius per pixel of face size (at least 1 pixel).
        back_faces: also draw triangles seen from behind (hidden by the rest of the head).
    """

    wire_color: tuple[int, int, int] = (90, 200, 255)
    wire_alpha: float = 0.45
    box_color: tuple[int, int, int] = (255, 200, 0)
    landmark_color: tuple[int, int, int] = (255, 40, 40)
    thickness_per_px: float = 1.0 / 250.0
    dot_radius_per_px: float = 1.0 / 120.0
    back_faces: bool = False


def _fixed(points: NDArray) -> NDArray[np.int32]:
    """Float pixel coordinates to OpenCV's fixed point (``SUBPIXEL_BITS`` fraction bits)."""
    return np.round(np.asarray(points, dtype=np.float64) * (1 << SUBPIXEL_BITS)).astype(np.int32)


def front_facing(verts: NDArray, faces: NDArray) -> NDArray[np.bool_]:
    """``(F,)`` bool: triangles whose front side faces the camera.

    A triangle of an outward-oriented mesh faces the camera (z towards the viewer) when its
    corners run counter-clockwise as seen, i.e. clockwise in y-down pixel coordinates: a
    negative ``(p1 - p0) x (p2 - p0)``.

    Args:
        verts: (V, 2+) image pixels (x right, y down).
        faces: (F, 3) triangles.
    """
    p = np.asarray(verts, dtype=np.float64)[:, :2]
    f = np.asarray(faces, dtype=np.int64)
    a, b, c = p[f[:, 0]], p[f[:, 1]], p[f[:, 2]]
    cross = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    return np.asarray(cross < 0)


def _thickness(size: float, per_px: float) -> int:
    return max(1, round(size * per_px))


def draw_wireframe(image: NDArray[np.uint8], verts: NDArray, faces: NDArray, size: float,
                   cfg: OverlayConfig | None = None) -> NDArray[np.uint8]:
    """The mesh's triangle edges blended over the image (a new array).

    Args:
        image: (H, W, 3) uint8 RGB.
        verts: (V, 2+) image pixels.
        faces: (F, 3) triangles.
        size: the face's size in pixels (scales the line width).
    """
    c = cfg or OverlayConfig()
    f = np.asarray(faces, dtype=np.int64)
    if not c.back_faces:
        f = f[front_facing(verts, f)]
    pts = np.asarray(verts, dtype=np.float64)[:, :2]
    tris = _fixed(pts[f])  # (F, 3, 2)
    tris = tris[np.isfinite(pts[f]).all(axis=(1, 2))]
    layer = image.copy()
    cv2.polylines(layer, list(tris), isClosed=True, color=c.wire_color,
                  thickness=_thickness(size, c.thickness_per_px), lineType=cv2.LINE_AA,
                  shift=SUBPIXEL_BITS)
    out = cv2.addWeighted(layer, c.wire_alpha, image, 1.0 - c.wire_alpha, 0.0)
    return np.asarray(out, dtype=np.uint8)


def draw_landmarks(image: NDArray[np.uint8], lmks: NDArray, size: float,
                   cfg: OverlayConfig | None = None) -> NDArray[np.uint8]:
    """The 68 landmarks as dots joined along the scheme's contours (drawn in place; returned).

    Args:
        image: (H, W, 3) uint8 RGB, modified.
        lmks: (68, 2+) image pixels.
        size: the face's size in pixels.
    """
    c = cfg or OverlayConfig()
    pts = _fixed(np.asarray(lmks, dtype=np.float64)[:, :2])
    thick = _thickness(size, c.thickness_per_px)
    for first, last, closed in LANDMARK_CONTOURS:
        cv2.polylines(image, [pts[first:last + 1]], isClosed=closed, color=c.landmark_color,
                      thickness=thick, lineType=cv2.LINE_AA, shift=SUBPIXEL_BITS)
    radius = _thickness(size, c.dot_radius_per_px) << SUBPIXEL_BITS
    for p in pts:
        cv2.circle(image, (int(p[0]), int(p[1])), radius, c.landmark_color, -1, cv2.LINE_AA,
                   SUBPIXEL_BITS)
    return image


def draw_box(image: NDArray[np.uint8], box: NDArray, size: float,
             cfg: OverlayConfig | None = None) -> NDArray[np.uint8]:
    """A ``[x0, y0, x1, y1]`` box (drawn in place; returned)."""
    c = cfg or OverlayConfig()
    b = _fixed(np.asarray(box, dtype=np.float64).reshape(2, 2))
    cv2.rectangle(image, (int(b[0, 0]), int(b[0, 1])), (int(b[1, 0]), int(b[1, 1])), c.box_color,
                  _thickness(size, c.thickness_per_px), cv2.LINE_AA, SUBPIXEL_BITS)
    return image
