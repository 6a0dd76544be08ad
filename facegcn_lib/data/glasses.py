"""Eyeglasses drawn onto a face crop from its 3D landmarks, with the face hiding what is behind it.

Many real photographs show glasses, and the renderer draws none. Glasses are thin and placed in
a simple way relative to the eyes, so this module builds them in 3D from the sample's own
ground truth and draws them into an already rendered crop (a cached face needs no re-render):

1. **A frame on the face.** From the 68 landmarks in the crop frame (x right, y down, z towards
   the camera, all in pixels) come the eye centres ``c_l, c_r``, the across axis
   ``u = (c_r - c_l) / d`` with ``d = |c_r - c_l|`` the eyes' distance, the up axis ``v``
   (from the mouth's corners to the eyes, made orthogonal to ``u``) and the forward axis
   ``n = u x v``, turned towards the nose tip. Every size below is a fraction of ``d``, so the glasses follow the
   face's scale, pose and perspective.
2. **The glasses.** Two lenses, super-ellipses ``|a / w|^p + |b / h|^p = 1`` in the plane
   ``(u, v)``, their centres ``offset * d`` in front of the eyes (and of the nose's ridge, on
   which the bridge rests); a bridge between them; and
   the temple arms from the outer top of each rim back to the top of the ears (just above and
   behind the jaw's end points 0 and 16).
3. **Drawing.** Every curve is sampled densely; a sample is hidden when the face is in front of
   it (a depth map splatted from the mesh's vertices, dilated to close its holes), so the far
   arm goes behind the head and the nose hides part of the far lens on a turned face. The lenses
   are tinted (sunglasses, sometimes) and may carry a reflection; the frame is drawn as
   anti-aliased lines of a random colour and thickness.

Only pixels change: the vertices and landmarks (the targets) are the face's, as they are under
real glasses. See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.data.overlays import CropOverlay

#: Eye landmarks of the 68-point scheme (right eye of the image first: 36-41, then 42-47).
_EYE_A, _EYE_B = slice(36, 42), slice(42, 48)
#: The mouth's corners: the up axis runs from their midpoint to the eyes' (the brows would
#: tilt it forwards: they stand well in front of the eyes).
_MOUTH_CORNERS = (48, 54)
_NOSE_TIP = 30
#: Where the bridge of the glasses rests on the nose's ridge (halfway between these two of its
#: landmarks), and how far in front of it (a fraction of the eyes' distance) the lenses' plane
#: stays at least.
_NOSE_RIDGE = (27, 28)
_RIDGE_CLEARANCE = 0.05
_JAW_ENDS = (0, 16)
#: Where an arm ends, from the jaw's end point on its side: up (along ``v``) and back (along
#: ``-n``), fractions of the eyes' distance: about the top of the ear.
_EAR_LIFT, _EAR_BACK = 0.3, 0.15
#: Samples per lens rim (and per arm and bridge: fewer); enough for sub-pixel curves at 256 px.
_RIM_SAMPLES = 72
_LINE_SAMPLES = 24
#: Fixed-point bits of the coordinates given to OpenCV's anti-aliased drawing.
_SHIFT = 4
#: Depth slack (a fraction of ``d``) before the face counts as in front of the glasses.
_DEPTH_SLACK = 0.04


class GlassesError(ValueError):
    """A glasses setting or a sample that glasses cannot be drawn on; the message says why."""


@dataclass(frozen=True)
class GlassesConfig:
    """Random eyeglasses (every length is a fraction of the distance between the eye centres).

    Attributes:
        prob: probability that a sample gets glasses.
        lens_width: range of a lens's half-width.
        lens_aspect: range of its half-height over its half-width.
        squareness: range of the super-ellipse exponent (2: an ellipse; 4 and more: a
            rounded rectangle).
        offset: range of the lenses' distance in front of the eye centres (raised, where the
            nose's ridge is further forward, to just in front of it).
        lift: range of the lenses' centre above the eye centres (negative: below).
        thickness: range of the frame's line width.
        sunglasses_prob: probability of dark lenses (else clear ones with a light tint).
        reflection_prob: probability of a bright reflection on the lenses.
        rimless_prob: probability of lenses without a drawn rim (only the bridge and arms).
    """

    prob: float = 0.3
    lens_width: tuple[float, float] = (0.36, 0.48)
    lens_aspect: tuple[float, float] = (0.5, 0.8)
    squareness: tuple[float, float] = (2.0, 5.0)
    offset: tuple[float, float] = (0.15, 0.25)
    lift: tuple[float, float] = (-0.12, 0.06)
    thickness: tuple[float, float] = (0.02, 0.07)
    sunglasses_prob: float = 0.15
    reflection_prob: float = 0.3
    rimless_prob: float = 0.1

    def __post_init__(self) -> None:
        for name in ("prob", "sunglasses_prob", "reflection_prob", "rimless_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise GlassesError(f"GlassesConfig.{name} must be in [0, 1], got {value}")
        for name in ("lens_width", "lens_aspect", "squareness", "offset", "lift", "thickness"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise GlassesError(f"GlassesConfig.{name} must be a (low, high) range, got {(lo, hi)}")
        if self.lens_width[0] <= 0 or self.lens_aspect[0] <= 0 or self.thickness[0] <= 0:
            raise GlassesError("GlassesConfig.lens_width, lens_aspect and thickness must be positive")
        if self.squareness[0] < 1:
            raise GlassesError(f"GlassesConfig.squareness must be >= 1, got {self.squareness}")


@dataclass(frozen=True)
class FaceAxes:
    """The frame the glasses are built in (crop pixels, z towards the camera).

    Attributes:
        eyes: (2, 3) the eye centres, the image's left one (landmarks 36-41) first.
        u: (3,) unit vector from the first eye to the second.
        v: (3,) unit vector up the face (from the mouth to the eyes), orthogonal to ``u``.
        n: (3,) unit vector out of the face (towards the nose tip).
        d: the distance between the eye centres, in pixels.
    """

    eyes: NDArray[np.float64]
    u: NDArray[np.float64]
    v: NDArray[np.float64]
    n: NDArray[np.float64]
    d: float


def face_axes(lmks68: NDArray[np.floating[Any]]) -> FaceAxes:
    """The eyes, the axes and the scale of a face from its 68 landmarks.

    Args:
        lmks68: (68, 3) landmarks in the crop frame (x right, y down, z towards the camera).

    Raises:
        GlassesError: the landmarks are not (68, 3) finite points, or the eyes coincide.
    """
    pts = np.asarray(lmks68, dtype=np.float64)
    if pts.shape != (68, 3) or not np.isfinite(pts).all():
        raise GlassesError(f"glasses need the (68, 3) finite 3D landmarks of the crop, got shape "
                           f"{pts.shape}")
    eyes = np.stack([pts[_EYE_A].mean(0), pts[_EYE_B].mean(0)])
    across = eyes[1] - eyes[0]
    d = float(np.linalg.norm(across))
    if d < 1e-6:
        raise GlassesError("the two eye centres coincide: these are not a face's landmarks")
    u = across / d
    up = eyes.mean(0) - pts[list(_MOUTH_CORNERS)].mean(0)
    v = up - (up @ u) * u
    v_norm = float(np.linalg.norm(v))
    if v_norm < 1e-9:
        raise GlassesError("the mouth lies on the line through the eyes: these are not a face's "
                           "landmarks")
    v /= v_norm
    n = np.cross(u, v)
    if n @ (pts[_NOSE_TIP] - eyes.mean(0)) < 0:
        n = -n
    return FaceAxes(eyes, u, v, n, d)


@dataclass(frozen=True)
class GlassesShape:
    """One pair of glasses drawn from :class:`GlassesConfig`, in units of the eyes' distance."""

    lens_width: float
    lens_aspect: float
    squareness: float
    offset: float
    lift: float
    thickness: float
    frame_rgb: tuple[float, float, float]
    lens_rgb: tuple[float, float, float]
    lens_alpha: float
    reflection: float
    rimless: bool


def sample_shape(rng: np.random.Generator, cfg: GlassesConfig) -> GlassesShape:
    """Draw the glasses' sizes and colours."""
    kind = rng.random()
    if kind < 0.6:  # black, brown or grey plastic
        frame = rng.uniform(0.02, 0.3) * np.array([1.0, rng.uniform(0.75, 1.0), rng.uniform(0.55, 1.0)])
    elif kind < 0.85:  # metal: silver or gold
        frame = rng.uniform(0.55, 0.85) * np.array([1.0, rng.uniform(0.8, 1.0), rng.uniform(0.45, 1.0)])
    else:  # coloured
        frame = rng.uniform(0.1, 0.8, 3)
    dark = rng.random() < cfg.sunglasses_prob
    lens = rng.uniform(0.0, 0.25, 3) if dark else rng.uniform(0.6, 1.0, 3)
    return GlassesShape(
        lens_width=float(rng.uniform(*cfg.lens_width)),
        lens_aspect=float(rng.uniform(*cfg.lens_aspect)),
        squareness=float(rng.uniform(*cfg.squareness)),
        offset=float(rng.uniform(*cfg.offset)),
        lift=float(rng.uniform(*cfg.lift)),
        thickness=float(rng.uniform(*cfg.thickness)),
        frame_rgb=(float(frame[0]), float(frame[1]), float(frame[2])),
        lens_rgb=(float(lens[0]), float(lens[1]), float(lens[2])),
        lens_alpha=float(rng.uniform(0.6, 0.92) if dark else rng.uniform(0.0, 0.15)),
        reflection=float(rng.uniform(0.1, 0.35) if rng.random() < cfg.reflection_prob else 0.0),
        rimless=bool(rng.random() < cfg.rimless_prob),
    )


@dataclass(frozen=True)
class GlassesGeometry:
    """The glasses' curves in the crop frame (3D points, crop pixels).

    Attributes:
        rims: (2, R, 3) the two closed lens outlines.
        bridge: (L, 3) the bridge between the lenses.
        arms: (2, L, 3) the temple arms, from each rim's outer top to the top of its ear.
        width: the frame's line width in pixels.
    """

    rims: NDArray[np.float64]
    bridge: NDArray[np.float64]
    arms: NDArray[np.float64]
    width: float


def glasses_geometry(axes: FaceAxes, shape: GlassesShape,
                     lmks68: NDArray[np.floating[Any]]) -> GlassesGeometry:
    """Lenses, bridge and arms of ``shape`` placed on the face of ``axes``.

    Args:
        axes: the face's frame (:func:`face_axes`).
        shape: the glasses (:func:`sample_shape`).
        lmks68: (68, 3) the landmarks (the jaw's ends give the ears' depth).
    """
    d, u, v, n = axes.d, axes.u, axes.v, axes.n
    w, h = shape.lens_width * d, shape.lens_width * shape.lens_aspect * d
    # the bridge rests on the nose: the lenses are never behind the nose's ridge there
    ridge_pt = np.asarray(lmks68[list(_NOSE_RIDGE)], dtype=np.float64).mean(0)
    ridge = float((ridge_pt - axes.eyes.mean(0)) @ n) / d
    offset = max(shape.offset, ridge + _RIDGE_CLEARANCE)
    t = np.linspace(0.0, 2.0 * np.pi, _RIM_SAMPLES, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    e = 2.0 / shape.squareness  # super-ellipse: x = w sgn(cos) |cos|^(2/p)
    a, b = w * np.sign(c) * np.abs(c) ** e, h * np.sign(s) * np.abs(s) ** e
    centres = axes.eyes + offset * d * n + shape.lift * d * v  # (2, 3) the lenses' centres
    q = np.linspace(0.0, 1.0, _LINE_SAMPLES)[:, None]
    rims, arms = [], []
    for side, centre, jaw in ((-1.0, centres[0], _JAW_ENDS[0]), (1.0, centres[1], _JAW_ENDS[1])):
        rims.append(centre + a[:, None] * u + b[:, None] * v)
        hinge = centre + side * w * u + 0.5 * h * v  # the outer side, halfway up
        ear = np.asarray(lmks68[jaw], dtype=np.float64) + _EAR_LIFT * d * v - _EAR_BACK * d * n
        arms.append(hinge + q * (ear - hinge))
    inner_a, inner_b = centres[0] + w * u + 0.25 * h * v, centres[1] - w * u + 0.25 * h * v
    sag = (4.0 * q * (1.0 - q)) * 0.15 * h * v  # the bridge arches up over the nose
    bridge = inner_a + q * (inner_b - inner_a) + sag
    return GlassesGeometry(np.stack(rims), bridge, np.stack(arms), max(shape.thickness * d, 0.5))


def face_depth(verts: NDArray[np.floating[Any]], size: int, d: float) -> NDArray[np.float32]:
    """The face's depth (z, towards the camera) at every pixel of a ``size x size`` crop.

    Vertices are splatted to their pixels (the nearest wins) and the map is dilated by a few
    pixels to close the holes between them; pixels off the face are ``-inf``.

    Args:
        verts: (V, 3) the mesh's vertices in the crop frame.
        size: the crop's side.
        d: the eyes' distance (sets the dilation, about the spacing of the vertices).
    """
    pts = np.asarray(verts, dtype=np.float64)
    depth = np.full((size, size), -np.inf, dtype=np.float32)
    col = np.rint(pts[:, 0]).astype(np.int64)
    row = np.rint(pts[:, 1]).astype(np.int64)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    np.maximum.at(depth, (row[inside], col[inside]), pts[inside, 2].astype(np.float32))
    radius = int(np.clip(round(0.04 * d), 1, 4))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    finite = np.where(np.isfinite(depth), depth, np.float32(-1e9))
    grown = cv2.dilate(finite, kernel)
    return np.where(grown > -1e8, grown, -np.inf).astype(np.float32)


def _visible(points: NDArray[np.float64], depth: NDArray[np.float32], slack: float) -> NDArray[np.bool_]:
    size = depth.shape[0]
    col = np.clip(np.rint(points[:, 0]).astype(np.int64), 0, size - 1)
    row = np.clip(np.rint(points[:, 1]).astype(np.int64), 0, size - 1)
    return np.asarray(points[:, 2] + slack >= depth[row, col])


def _visible_runs(points: NDArray[np.float64], visible: NDArray[np.bool_],
                  closed: bool) -> list[NDArray[np.int32]]:
    """The visible stretches of a sampled curve, as fixed-point pixel polylines."""
    if visible.all():
        pts = points if not closed else np.vstack([points, points[:1]])
        return [np.rint(pts[:, :2] * (1 << _SHIFT)).astype(np.int32)]
    runs, start = [], None
    for i, vis in enumerate(np.append(visible, False)):
        if vis and start is None:
            start = i
        elif not vis and start is not None:
            if i - start >= 2:
                runs.append(np.rint(points[start:i, :2] * (1 << _SHIFT)).astype(np.int32))
            start = None
    return runs


def draw_glasses(image: NDArray[np.uint8], verts: NDArray[np.floating[Any]],
                 lmks68: NDArray[np.floating[Any]], rng: np.random.Generator,
                 cfg: GlassesConfig | None = None) -> NDArray[np.uint8]:
    """Draw random glasses on a face crop (always: ``cfg.prob`` is for :class:`AddGlasses`).

    Args:
        image: (S, S, 3) uint8 crop (not modified).
        verts: (V, 3) the face's vertices in the crop frame (for what hides the glasses).
        lmks68: (68, 3) its landmarks in the crop frame (x right, y down, z towards the camera).
        rng: the random generator.
        cfg: the ranges.

    Returns:
        (S, S, 3) uint8, the crop with glasses.

    Raises:
        GlassesError: the image is not an (S, S, 3) uint8 crop, or the landmarks are unusable.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.dtype != np.uint8:
        raise GlassesError(f"draw_glasses needs an (S, S, 3) uint8 crop, got {image.shape} {image.dtype}")
    c = cfg or GlassesConfig()
    axes = face_axes(lmks68)
    shape = sample_shape(rng, c)
    geo = glasses_geometry(axes, shape, lmks68)
    size = image.shape[0]
    depth = face_depth(verts, size, axes.d)
    slack = _DEPTH_SLACK * axes.d
    out = image.astype(np.float32)

    lens_mask = np.zeros((size, size), dtype=np.uint8)
    for rim in geo.rims:
        poly = np.rint(rim[:, :2] * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(lens_mask, [poly], 255, cv2.LINE_AA, _SHIFT)
    alpha = lens_mask.astype(np.float32) / 255.0
    if shape.lens_alpha > 0:
        tint = np.asarray(shape.lens_rgb, dtype=np.float32) * 255.0
        out = out * (1.0 - shape.lens_alpha * alpha[..., None]) + tint * (shape.lens_alpha * alpha[..., None])
    if shape.reflection > 0:  # a soft diagonal streak across the lenses
        rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
        ang = rng.uniform(0.0, np.pi)
        phase = (cols * np.cos(ang) + rows * np.sin(ang)) / max(axes.d, 1.0)
        streak = np.clip(np.cos(2.0 * np.pi * (phase - rng.uniform(0.0, 1.0))), 0.0, 1.0) ** 4
        out += (255.0 - out) * (shape.reflection * streak * alpha)[..., None]

    frame = np.zeros((size, size), dtype=np.uint8)
    width = max(1, round(geo.width))
    curves: list[tuple[NDArray[np.float64], bool]] = [(geo.bridge, False)]
    curves += [(arm, False) for arm in geo.arms]
    if not shape.rimless:
        curves += [(rim, True) for rim in geo.rims]
    for points, closed in curves:
        runs = _visible_runs(points, _visible(points, depth, slack), closed)
        if runs:
            cv2.polylines(frame, runs, False, 255, width, cv2.LINE_AA, _SHIFT)
    fa = (frame.astype(np.float32) / 255.0)[..., None]
    if geo.width < 1.0:  # thinner than a pixel: a faint line
        fa = fa * np.float32(geo.width)
    colour = np.asarray(shape.frame_rgb, dtype=np.float32) * 255.0
    out = out * (1.0 - fa) + colour * fa
    return np.asarray(np.clip(np.rint(out), 0, 255), dtype=np.uint8)


class AddGlasses(CropOverlay):
    """A dataset transform: give a face sample glasses with probability ``cfg.prob``.

    See :class:`~facegcn_lib.data.overlays.CropOverlay` for the sample's format; only the image
    changes.

    Args:
        cfg: the probability and the ranges.
        generator: the random source; :class:`~facegcn_lib.train.build.SeededAugment` sets it
            per item.
    """

    cfg: GlassesConfig

    def __init__(self, cfg: GlassesConfig | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(cfg or GlassesConfig(), generator)

    def draw(self, image: NDArray[np.uint8], sample: dict[str, Any],
             rng: np.random.Generator) -> NDArray[np.uint8]:
        return draw_glasses(image, torch.as_tensor(sample["vertices"]).numpy(),
                            torch.as_tensor(sample["landmarks"]).numpy(), rng, self.cfg)
