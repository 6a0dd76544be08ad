"""Loose hair drawn over a face crop: a fringe over the forehead and curtains down the cheeks.

In real photographs hair often hangs over the face: a fringe hides the brows, a lock falls over
a cheek and the jaw's outline behind it. The renderer paints hair on the scalp only, so the
network never learns that the face goes on under hair; on such photos it stops the face where
the hair begins. This module draws loose hair into an already rendered crop (a cached face needs
no re-render), placed from the sample's own 68 landmarks:

1. **A frame on the image.** The eye centres ``c_l, c_r`` give the scale ``d = |c_r - c_l|``
   (2D, crop pixels), the across axis ``u`` and the down axis ``w`` (perpendicular to ``u``,
   towards the mouth). A pixel ``p`` has face coordinates ``a = (p - c) . u / d`` and
   ``b = (p - c) . w / d`` around the eyes' midpoint ``c``; every size below is in these units.
2. **A fringe** covers the pixels above ``b_f(a) = b_brow(a) + drop + tilt a + wave(a)``, the
   brows' line moved down by ``drop`` (negative: above them), tilted (swept to one side) and
   ragged at the tips, across the head's width.
3. **A curtain** on one side (sometimes both) is a band of hair of a random width outwards from
   ``a_h(b) = a_jaw(b) -+ depth(b)``, the jaw's outline on that side moved into the face by
   ``depth`` (negative: it hangs beside the face), from the top of the head down to a random
   length with ragged tips. On a half of the face turned away from the camera the curtain hangs
   beside the face (the hair over that cheek is out of view). Above the eyes every hair stays
   on the head, an ellipse as wide as the landmarks and about twice the eyes' distance high.
4. **Strands.** The hair's colour (a natural shade, scaled to the light on the face's skin,
   grey on a grey crop) is modulated by fine strands and coarser locks running along the hair's
   fall, with a sheen band; its edge is feathered and a little see-through, and the layer is
   blurred like the crop (the cached crops went through the camera's blur already).

Only pixels change: the vertices and landmarks (the targets) are the face's, as they are under
real hair. See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.data.overlays import CropOverlay

#: Eye landmarks of the 68-point scheme (the image's left eye first for a frontal face).
_EYE_A, _EYE_B = slice(36, 42), slice(42, 48)
#: The jaw's two halves, each from its end (ear level) to the chin; and the brows.
_JAW_SIDES = (slice(0, 9), slice(8, 17))
_BROWS = slice(17, 27)
#: The top of the nose's ridge: each jaw end's distance from it (in the image) says how much of
#: that half of the face is seen. A half seen less than ``_TURNED_AWAY`` times the other is
#: turned away: its curtain hangs beside the face (the hair over that cheek is out of view).
_RIDGE_TOP = 27
_TURNED_AWAY = 0.6
#: Landmarks on the nose (27-35): the skin whose brightness scales the hair's colour.
_NOSE = slice(27, 36)
#: The skin's brightness (sRGB, 0-1) at which the hair keeps its nominal shade.
_NOMINAL_SKIN = 0.55
#: Natural hair shades (sRGB, 0-1): black, dark brown, brown, auburn, dark blonde, blonde, grey.
_HAIR_SHADES = np.array([[0.05, 0.04, 0.035], [0.14, 0.09, 0.06], [0.30, 0.19, 0.11],
                         [0.42, 0.19, 0.09], [0.52, 0.40, 0.25], [0.78, 0.64, 0.42],
                         [0.62, 0.61, 0.60]])
#: How far (in d) the fringe reaches beyond the outer ends of the brows (to the temples; the
#: head's outline clips it).
_FRINGE_OVERHANG = 0.6
#: The head's outline above the eyes, an ellipse at the eyes' height: its half-height (the top
#: of the head with some hair volume, in d), how far its sides stand out of the landmarks, and its least half-width (a turned head is seen about as wide as
#: it is deep). Hair above the eyes stays inside it.
_HEAD_TOP = 2.0
_HEAD_SIDE_MARGIN = 0.3
_HEAD_MIN_HALF_WIDTH = 1.4


class LooseHairError(ValueError):
    """A loose-hair setting or a sample that hair cannot be drawn on; the message says why."""


@dataclass(frozen=True)
class LooseHairConfig:
    """Random loose hair (lengths are fractions of the distance between the eye centres).

    Attributes:
        prob: probability that a sample gets loose hair.
        fringe_prob: given hair, probability of a fringe (else, or also, a curtain).
        curtain_prob: given hair, probability of a curtain down a side of the face (at least
            one of the fringe and a curtain is drawn).
        both_sides_prob: probability that a curtain hangs on both sides.
        fringe_drop: range of the fringe's tips below the brows' line (negative: above it).
        fringe_tilt: range of its tilt (the drop's change per unit of ``a``: a side sweep).
        curtain_depth: range of how far a curtain reaches into the face from the jaw's outline
            (negative: it hangs beside the face).
        curtain_length: range of a curtain's lower end below the eyes.
        curtain_width: range of a curtain's width, outwards from its inner edge.
        strand_period: range of the fine strands' spacing.
        density: range of the hair's opacity (1: nothing shows through).
        blur_px: range of the blur of the hair layer, in pixels of the crop.
    """

    prob: float = 0.3
    fringe_prob: float = 0.5
    curtain_prob: float = 0.7
    both_sides_prob: float = 0.35
    fringe_drop: tuple[float, float] = (-0.45, 0.2)
    fringe_tilt: tuple[float, float] = (-0.3, 0.3)
    curtain_depth: tuple[float, float] = (-0.15, 0.55)
    curtain_length: tuple[float, float] = (1.3, 3.0)
    curtain_width: tuple[float, float] = (0.4, 1.4)
    strand_period: tuple[float, float] = (0.03, 0.08)
    density: tuple[float, float] = (0.85, 1.0)
    blur_px: tuple[float, float] = (0.0, 1.2)

    def __post_init__(self) -> None:
        for name in ("prob", "fringe_prob", "curtain_prob", "both_sides_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise LooseHairError(f"LooseHairConfig.{name} must be in [0, 1], got {value}")
        for name in ("fringe_drop", "fringe_tilt", "curtain_depth", "curtain_length",
                     "curtain_width", "strand_period", "density", "blur_px"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise LooseHairError(f"LooseHairConfig.{name} must be a (low, high) range, got "
                                     f"{(lo, hi)}")
        if self.strand_period[0] <= 0 or self.curtain_width[0] <= 0 or self.blur_px[0] < 0:
            raise LooseHairError("LooseHairConfig.strand_period and curtain_width must be "
                                 "positive and blur_px not negative")
        if not 0.0 < self.density[0] <= self.density[1] <= 1.0:
            raise LooseHairError(f"LooseHairConfig.density must lie in (0, 1], got {self.density}")
        if self.fringe_prob == 0 and self.curtain_prob == 0:
            raise LooseHairError("LooseHairConfig: with fringe_prob and curtain_prob both 0 there "
                                 "is no hair to draw; set prob=0 instead")


@dataclass(frozen=True)
class FaceFrame2D:
    """The image-plane frame the hair is placed in (crop pixels).

    Attributes:
        centre: (2,) the midpoint of the eye centres.
        u: (2,) unit vector from the first eye (landmarks 36-41) to the second.
        w: (2,) unit vector down the face (towards the mouth), orthogonal to ``u``.
        d: the distance between the eye centres, in pixels.
    """

    centre: NDArray[np.float64]
    u: NDArray[np.float64]
    w: NDArray[np.float64]
    d: float

    def coords(self, xy: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """(..., 2) crop pixels -> (..., 2) face coordinates ``(a, b)`` in units of ``d``."""
        rel = np.asarray(xy, dtype=np.float64) - self.centre
        return np.stack([rel @ self.u, rel @ self.w], axis=-1) / self.d


def face_frame_2d(lmks68: NDArray[np.floating[Any]]) -> FaceFrame2D:
    """The eyes' midpoint, the across and down axes and the scale of a face's 68 landmarks.

    Args:
        lmks68: (68, 2+) landmarks in the crop frame (x right, y down; a z column is ignored).

    Raises:
        LooseHairError: the landmarks are not 68 finite points, or the eyes coincide.
    """
    pts = np.asarray(lmks68, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] != 68 or pts.shape[1] < 2 or not np.isfinite(pts[:, :2]).all():
        raise LooseHairError(f"loose hair needs the (68, 2+) finite landmarks of the crop, got "
                             f"shape {pts.shape}")
    xy = pts[:, :2]
    eyes = np.stack([xy[_EYE_A].mean(0), xy[_EYE_B].mean(0)])
    d = float(np.linalg.norm(eyes[1] - eyes[0]))
    if d < 1e-6:
        raise LooseHairError("the two eye centres coincide: these are not a face's landmarks")
    u = (eyes[1] - eyes[0]) / d
    w = np.array([-u[1], u[0]])
    centre = eyes.mean(0)
    if (xy[48:68].mean(0) - centre) @ w < 0:  # the mouth is below the eyes
        w = -w
    return FaceFrame2D(centre, u, w, d)


@dataclass(frozen=True)
class HairStyle:
    """One draw of :class:`LooseHairConfig` (lengths in units of the eyes' distance).

    Attributes:
        fringe: whether a fringe is drawn; fringe_drop, fringe_tilt: its shape.
        curtains: the sides with a curtain (0: the jaw's landmarks 0-8, 1: 8-16).
        curtain_depth: per side, how far into the face; curtain_length: per side, its end;
            curtain_width: per side, its width.
        rgb: the nominal colour (sRGB, 0-1); strand_period, density, blur_px: as configured.
        sheen_b: where the sheen band crosses the hair (``b``); sweep: the strands' slant.
    """

    fringe: bool
    fringe_drop: float
    fringe_tilt: float
    curtains: tuple[int, ...]
    curtain_depth: tuple[float, float]
    curtain_length: tuple[float, float]
    curtain_width: tuple[float, float]
    rgb: tuple[float, float, float]
    strand_period: float
    density: float
    blur_px: float
    sheen_b: float
    sweep: float


def sample_style(rng: np.random.Generator, cfg: LooseHairConfig) -> HairStyle:
    """Draw the hair's layout, colour and texture settings."""
    fringe = bool(rng.random() < cfg.fringe_prob)
    curtain = bool(rng.random() < cfg.curtain_prob)
    if not (fringe or curtain):  # at least one: pick it in proportion to the two probabilities
        fringe = bool(rng.random() < cfg.fringe_prob / (cfg.fringe_prob + cfg.curtain_prob))
        curtain = not fringe
    curtains: tuple[int, ...] = ()
    if curtain:
        curtains = (0, 1) if rng.random() < cfg.both_sides_prob else (int(rng.integers(0, 2)),)
    shade = _HAIR_SHADES[rng.integers(0, len(_HAIR_SHADES))] * rng.uniform(0.75, 1.25)
    shade = shade * np.exp(rng.normal(0.0, 0.06, 3))  # a little hue variation
    return HairStyle(
        fringe=fringe,
        fringe_drop=float(rng.uniform(*cfg.fringe_drop)),
        fringe_tilt=float(rng.uniform(*cfg.fringe_tilt)),
        curtains=curtains,
        curtain_depth=(float(rng.uniform(*cfg.curtain_depth)), float(rng.uniform(*cfg.curtain_depth))),
        curtain_length=(float(rng.uniform(*cfg.curtain_length)),
                        float(rng.uniform(*cfg.curtain_length))),
        curtain_width=(float(rng.uniform(*cfg.curtain_width)), float(rng.uniform(*cfg.curtain_width))),
        rgb=(float(shade[0]), float(shade[1]), float(shade[2])),
        strand_period=float(rng.uniform(*cfg.strand_period)),
        density=float(rng.uniform(*cfg.density)),
        blur_px=float(rng.uniform(*cfg.blur_px)),
        sheen_b=float(rng.uniform(-1.5, 1.0)),
        sweep=float(rng.uniform(-0.3, 0.3)),
    )


def _noise_1d(rng: np.random.Generator, x: NDArray[np.float64], period: float) -> NDArray[np.float64]:
    """Smooth random values in [0, 1] along ``x`` (one knot per ``period``, cosine-interpolated)."""
    lo = float(np.floor(x.min() / period)) - 1.0
    n = int(np.ceil(x.max() / period) - lo) + 2
    knots = rng.random(n)
    t = x / period - lo
    i = np.clip(np.floor(t).astype(np.int64), 0, n - 2)
    f = t - i
    s = 0.5 - 0.5 * np.cos(np.pi * f)
    return np.asarray(knots[i] * (1.0 - s) + knots[i + 1] * s)


def _outline(ab: NDArray[np.float64], side: slice, b: NDArray[np.float64]) -> NDArray[np.float64]:
    """The jaw outline's ``a`` at heights ``b`` on one side (held constant beyond its ends)."""
    pts = ab[side]
    order = np.argsort(pts[:, 1])
    return np.asarray(np.interp(b, pts[order, 1], pts[order, 0]), dtype=np.float64)


def hair_alpha(lmks68: NDArray[np.floating[Any]], size: int, style: HairStyle,
               rng: np.random.Generator) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Where the hair covers a ``size x size`` crop, and its strand pattern.

    Args:
        lmks68: (68, 2+) the face's landmarks in the crop frame.
        size: the crop's side.
        style: the hair (:func:`sample_style`).
        rng: the random generator (ragged edges and strands).

    Returns:
        ``alpha`` (size, size) float32 in [0, 1], the hair's coverage, and ``shade``
        (size, size) float32 around 1, the strands' brightness.
    """
    frame = face_frame_2d(lmks68)
    ab_lm = frame.coords(np.asarray(lmks68, dtype=np.float64)[:, :2])
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    ab = frame.coords(np.stack([cols, rows], axis=-1))
    a, b = ab[..., 0], ab[..., 1]
    feather = 1.0 / frame.d  # one pixel, in face units
    cover = np.zeros((size, size))
    strand_s = a + style.sweep * b  # the coordinate across the strands
    # the head above the eyes: an ellipse as wide as the landmarks (the jaw's ends, the ears,
    # on a frontal face; a brow's end on the far side of a turned one) and a margin
    ends = ab_lm[[_JAW_SIDES[0].start, _JAW_SIDES[1].stop - 1], 0]
    lo, hi = float(ab_lm[:, 0].min()), float(ab_lm[:, 0].max())
    mid = 0.5 * (lo + hi)
    half = max(0.5 * (hi - lo) + _HEAD_SIDE_MARGIN, _HEAD_MIN_HALF_WIDTH)

    def on_head(extra: float) -> NDArray[np.float64]:
        """1 inside the head's ellipse widened by ``extra`` (and everywhere below the eyes)."""
        r = np.hypot((a - mid) / (half + extra), np.minimum(b, 0.0) / _HEAD_TOP)
        return np.asarray(np.clip((1.0 - r) * (half + extra) / feather, 0.0, 1.0))

    if style.fringe:
        brow_ab = ab_lm[_BROWS]
        order = np.argsort(brow_ab[:, 0])
        b_brow = np.interp(a, brow_ab[order, 0], brow_ab[order, 1])
        tips = 0.12 * (_noise_1d(rng, a.ravel(), 4.0 * style.strand_period).reshape(a.shape) - 0.5)
        edge = b_brow + style.fringe_drop + style.fringe_tilt * a + tips
        left = brow_ab[:, 0].min() - _FRINGE_OVERHANG
        right = brow_ab[:, 0].max() + _FRINGE_OVERHANG
        across = np.clip(np.minimum(a - left, right - a) / feather, 0.0, 1.0)
        cover = np.maximum(cover, np.clip((edge - b) / feather, 0.0, 1.0) * across * on_head(0.0))
    seen = np.abs(ends - ab_lm[_RIDGE_TOP, 0])
    for side in style.curtains:
        sign = -1.0 if side == 0 else 1.0  # outwards along a
        reach = style.curtain_depth[side]
        if seen[side] < _TURNED_AWAY * seen[1 - side]:
            reach = min(reach, -0.1)
        depth = reach + 0.1 * (
            _noise_1d(rng, b.ravel(), 0.5).reshape(b.shape) - 0.5)
        inner = _outline(ab_lm, _JAW_SIDES[side], b) - sign * depth
        ragged = 0.5 * (_noise_1d(rng, a.ravel(), 3.0 * style.strand_period).reshape(a.shape) - 0.5)
        end = style.curtain_length[side] + ragged
        width = style.curtain_width[side]
        inside = np.minimum(sign * (a - inner), width - sign * (a - inner))
        cover = np.maximum(cover, np.clip(inside / feather, 0.0, 1.0)
                           * np.clip((end - b) / feather, 0.0, 1.0) * on_head(width))
    fine = _noise_1d(rng, strand_s.ravel(), style.strand_period).reshape(a.shape)
    locks = _noise_1d(rng, strand_s.ravel(), 6.0 * style.strand_period).reshape(a.shape)
    sheen = np.exp(-(((b - style.sheen_b) / 0.2) ** 2)) * locks
    shade = (0.55 + 0.5 * fine) * (0.7 + 0.6 * locks) + 0.6 * sheen
    alpha = cover * style.density * (0.92 + 0.08 * fine)
    return alpha.astype(np.float32), shade.astype(np.float32)


def draw_loose_hair(image: NDArray[np.uint8], lmks68: NDArray[np.floating[Any]],
                    rng: np.random.Generator, cfg: LooseHairConfig | None = None) -> NDArray[np.uint8]:
    """Draw random loose hair on a face crop (always: ``cfg.prob`` is for :class:`AddLooseHair`).

    Args:
        image: (S, S, 3) uint8 crop (not modified).
        lmks68: (68, 2+) its landmarks in the crop frame (x right, y down).
        rng: the random generator.
        cfg: the ranges.

    Returns:
        (S, S, 3) uint8, the crop with hair over the face.

    Raises:
        LooseHairError: the image is not an (S, S, 3) uint8 crop, or the landmarks are unusable.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] != image.shape[1] or image.dtype != np.uint8:
        raise LooseHairError(f"draw_loose_hair needs an (S, S, 3) uint8 crop, got {image.shape} "
                             f"{image.dtype}")
    c = cfg or LooseHairConfig()
    size = image.shape[0]
    style = sample_style(rng, c)
    alpha, shade = hair_alpha(lmks68, size, style, rng)
    img = image.astype(np.float32) / 255.0
    # the hair is lit like the face: scale its shade by the skin's brightness on the nose
    nose = np.clip(np.rint(np.asarray(lmks68, dtype=np.float64)[_NOSE, :2]), 0, size - 1).astype(np.int64)
    skin = float(np.median(img[nose[:, 1], nose[:, 0]].mean(axis=1)))
    light = float(np.clip(skin / _NOMINAL_SKIN, 0.25, 1.6))
    rgb = np.asarray(style.rgb, dtype=np.float32) * light
    if np.ptp(image.reshape(-1, 3).astype(np.int16), axis=1).max() <= 2:  # a grey crop
        rgb = np.full(3, float(rgb.mean()), dtype=np.float32)
    colour = np.clip(shade[..., None] * rgb, 0.0, 1.0)
    if style.blur_px > 0.05:
        colour = np.asarray(cv2.GaussianBlur(colour, (0, 0), style.blur_px), dtype=np.float32)
        alpha = np.asarray(cv2.GaussianBlur(alpha, (0, 0), style.blur_px), dtype=np.float32)
    out = img * (1.0 - alpha[..., None]) + colour * alpha[..., None]
    return np.asarray(np.clip(np.rint(out * 255.0), 0, 255), dtype=np.uint8)


class AddLooseHair(CropOverlay):
    """A dataset transform: give a face sample loose hair with probability ``cfg.prob``.

    See :class:`~facegcn_lib.data.overlays.CropOverlay` for the sample's format (only its
    ``landmarks`` are read); only the image changes.

    Args:
        cfg: the probability and the ranges.
        generator: the random source; :class:`~facegcn_lib.train.build.SeededAugment` sets it
            per item.
    """

    cfg: LooseHairConfig

    def __init__(self, cfg: LooseHairConfig | None = None,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(cfg or LooseHairConfig(), generator)

    def draw(self, image: NDArray[np.uint8], sample: dict[str, Any],
             rng: np.random.Generator) -> NDArray[np.uint8]:
        return draw_loose_hair(image, torch.as_tensor(sample["landmarks"]).numpy(), rng, self.cfg)
