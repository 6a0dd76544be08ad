"""The look of a synthetic ICT head: per-vertex albedo, gloss and ambient occlusion.

The ICT Face Model has geometry but no texture, so every sample gets a procedural per-vertex
albedo: a skin tone drawn across the whole human range (the Monk Skin Tone scale) with
low-frequency variation, redder lips and cheeks, darker brows, optional hair, stubble and
clothing, white sclera with a coloured iris and dark pupil, teeth, gums and a dark mouth
interior. The region masks that this needs are derived once from the neutral mesh and its 68
landmarks (:class:`HeadParts`). See :doc:`chapter 3 </chapters/03_faces_as_data>`.

Colours are linear RGB in [0, 1] unless a name says ``srgb``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numba
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.data.hair import hairline_coefficients
from facegcn_lib.morphable.ict import ICT_REGIONS
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.paths import cache_file
from facegcn_lib.render.occlusion import OcclusionConfig, ambient_occlusion
from facegcn_lib.render.shading import matmul_rows, srgb_to_linear, vertex_normals

log = logging.getLogger(__name__)

#: Regions of the ICT head that are shading overlays (tear film, blend and shadow shells);
#: they are not drawn. Nor are the eyelashes: they are cards meant for an alpha texture, and
#: drawn opaque they look like thick eyeliner; a darker lash line on the lid margins stands in.
OVERLAY_REGIONS = ("lacrimal_fluid_left", "lacrimal_fluid_right", "eye_blend_left",
                   "eye_blend_right", "eye_occlusion_left", "eye_occlusion_right")


class Part:
    """Integer codes of the head's parts (one per vertex)."""

    SKIN = 0
    MOUTH = 1
    GUMS = 2
    TEETH = 3
    EYE_SOCKET = 4
    EYEBALL = 5
    LASHES = 6
    OVERLAY = 7


_PART_OF_REGION = {
    "face": Part.SKIN, "head_and_neck": Part.SKIN, "mouth_socket": Part.MOUTH,
    "eye_socket_left": Part.EYE_SOCKET, "eye_socket_right": Part.EYE_SOCKET,
    "gums_and_tongue": Part.GUMS, "teeth": Part.TEETH, "eyeball_left": Part.EYEBALL,
    "eyeball_right": Part.EYEBALL, "eyelashes_left": Part.LASHES, "eyelashes_right": Part.LASHES,
    **{name: Part.OVERLAY for name in OVERLAY_REGIONS},
}

#: The Monk Skin Tone scale (Google, CC-BY 4.0), light to dark, sRGB.
MONK_SKIN_TONES_SRGB = ("#f6ede4", "#f3e7db", "#f7ead0", "#eadaba", "#d7bd96", "#a07e56",
                        "#825c43", "#604134", "#3a312a", "#292420")
#: Hair colours (sRGB): black, dark brown, brown, auburn, dark blond, blond, grey, white.
HAIR_COLORS_SRGB = ("#0b0908", "#2c1f17", "#4e3524", "#6a3a22", "#8d6a46", "#b8975e",
                    "#8c8a87", "#cfcac3")
#: Iris colours (sRGB): dark brown, brown, hazel, green, blue, grey-blue.
IRIS_COLORS_SRGB = ("#2a160b", "#5a3415", "#7b5a2c", "#5c6f3a", "#4f6f95", "#7a8790")

_CACHE_VERSION = "head-parts-v5"


def hex_to_linear(colors: tuple[str, ...]) -> NDArray[np.float64]:
    """(N, 3) linear RGB of ``#rrggbb`` sRGB strings."""
    srgb = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in colors], dtype=np.float64)
    return srgb_to_linear(srgb / 255.0)


@dataclass(frozen=True)
class AppearanceConfig:
    """Ranges of the random appearance (probabilities and colour factors).

    Attributes:
        albedo_scale: overall albedo multiplier (keeps the palest skin below white).
        skin_saturation: chroma multiplier of the Monk swatches (skin albedo is more
            saturated than a swatch photographed under diffuse light looks).
        tone_jitter: log-normal std of per-channel skin colour jitter (hue and saturation).
        redness: range of the amount of blood colour added to the swatch (log albedo along
            the blood direction: the swatches are yellower than lit skin looks).
        mottle_amp: amplitude (log albedo) of per-vertex skin mottling.
        hair_noise: amplitude (log albedo) of per-vertex variation of hair (strands).
        lowfreq_amp: amplitude (log albedo) of the low-frequency skin variation.
        lowfreq_waves: number of random plane waves in that variation.
        lowfreq_wavelength_mm: range of their wavelengths.
        lip_tint: lip albedo relative to skin (R, G, B), before jitter.
        lipstick_prob: probability of a saturated lip colour.
        blush_amp: maximum extra redness on the cheeks and nose.
        brow_density: range of how far brows move from skin to hair colour.
        lash_density: range of how dark the lash lines are.
        hair_prob: probability of hair on the scalp (else shaved or bald).
        hairline_front_deg: range of the front hairline's elevation above the eyes.
        beard_prob: probability of stubble or beard.
        beard_density: range of its density.
        clothing_prob: probability that the lower neck is covered by clothing.
        sclera_srgb: range of the sclera's grey level (sRGB).
        teeth_srgb: range of the teeth's grey level (sRGB).
        ao_floor: ambient occlusion is mapped to ``ao_floor + (1 - ao_floor) * ao``.
        specular_of_part: highlight strength per :class:`Part` code.
    """

    albedo_scale: float = 0.85
    skin_saturation: float = 1.6
    tone_jitter: float = 0.06
    redness: tuple[float, float] = (0.05, 0.35)
    mottle_amp: float = 0.03
    hair_noise: float = 0.3
    lowfreq_amp: float = 0.12
    lowfreq_waves: int = 6
    lowfreq_wavelength_mm: tuple[float, float] = (40.0, 160.0)
    lip_tint: tuple[float, float, float] = (0.85, 0.55, 0.6)
    lipstick_prob: float = 0.08
    blush_amp: float = 0.15
    brow_density: tuple[float, float] = (0.35, 0.9)
    lash_density: tuple[float, float] = (0.4, 0.9)
    hair_prob: float = 0.85
    hairline_front_deg: tuple[float, float] = (24.0, 48.0)
    beard_prob: float = 0.2
    beard_density: tuple[float, float] = (0.15, 0.6)
    clothing_prob: float = 0.8
    sclera_srgb: tuple[float, float] = (0.72, 0.92)
    teeth_srgb: tuple[float, float] = (0.65, 0.9)
    ao_floor: float = 0.25
    specular_of_part: tuple[float, ...] = (1.0, 0.3, 0.8, 1.5, 0.6, 3.0, 0.2, 0.0)


@dataclass(frozen=True)
class HeadParts:
    """Region masks of the ICT head, derived once from the neutral mesh.

    Attributes:
        part: (V,) int8 :class:`Part` code per vertex.
        draw_faces: (F', 3) int64 triangles that are drawn (overlay shells dropped).
        lips: (V,) float weight of the lips (soft edge).
        brows: (V,) float weight of the eyebrows.
        lash: (V,) float weight of the lash lines along the eyelid margins.
        beard: (V,) float weight of the beard area (jaw, chin, upper lip; not the lips).
        blush: (V,) float weight of the cheeks and nose tip.
        tzone: (V,) float weight of the forehead and nose (glossier skin).
        elevation: (V,) degrees above the horizontal plane through the head centre.
        azimuth: (V,) degrees around the vertical axis, 0 at the face, +-180 at the back.
        height: (V,) millimetres below the chin (positive on the neck, for clothing).
        iris_angle: (V,) degrees between an eyeball vertex's direction and its eye's gaze
            axis (180 for other vertices).
        ao: (V,) ambient occlusion in [0, 1] (mouth parts from an open-mouth mesh).
        pos: (V, 3) neutral positions in millimetres (for low-frequency noise).
    """

    part: NDArray[np.int8]
    draw_faces: NDArray[np.int64]
    lips: NDArray[np.float64]
    brows: NDArray[np.float64]
    lash: NDArray[np.float64]
    beard: NDArray[np.float64]
    blush: NDArray[np.float64]
    tzone: NDArray[np.float64]
    elevation: NDArray[np.float64]
    azimuth: NDArray[np.float64]
    height: NDArray[np.float64]
    iris_angle: NDArray[np.float64]
    ao: NDArray[np.float64]
    pos: NDArray[np.float64] = field(repr=False)


def _segment_distance(points: NDArray, poly: NDArray, closed: bool) -> NDArray[np.float64]:
    """(N,) distance of 2D points to a polyline (N, 2), (M, 2)."""
    a = poly if closed else poly[:-1]
    b = np.roll(poly, -1, axis=0) if closed else poly[1:]
    ab = b - a
    ap = points[:, None, :] - a[None, :, :]
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12), 0.0, 1.0)
    d = ap - t[..., None] * ab
    return np.asarray(np.sqrt((d * d).sum(-1)).min(axis=1))


def _smoothstep(x: NDArray, lo: float, hi: float) -> NDArray[np.float64]:
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t))


def _gauss(d: NDArray, sigma: float) -> NDArray[np.float64]:
    return np.asarray(np.exp(-0.5 * (np.asarray(d) / sigma) ** 2))


# Geometry of the region masks, in millimetres of the ICT neutral head.
_LIP_EDGE_MM = 1.5
_FRONT_Z_MARGIN_MM = 25.0
_BROW_HALF_WIDTH_MM = 4.5
_BROW_LIFT_MM = 1.5
_BLUSH_SIGMA_MM = 18.0
_NOSE_SIGMA_MM = 10.0
_TZONE_SIGMA_MM = 22.0
_BEARD_EDGE_MM = 8.0
_HEAD_CENTRE_ABOVE_EYES_MM = 10.0
_EYE_AXIS_CONE_DEG = 12.0
_LASH_WIDTH_MM = 1.0


def head_parts(model: MorphableModel, cfg: OcclusionConfig | None = None) -> HeadParts:
    """The region masks of the ICT head (cached on disk; computing them takes a few seconds).

    Args:
        model: the whole ICT head (:func:`facegcn_lib.morphable.ict.load_ict_model`), with
            its ``jawOpen`` expression.
    """
    if model.num_verts != ICT_REGIONS["eyelashes_right"][1] or "jawOpen" not in model.exp_names:
        raise ValueError(f"head_parts needs the whole ICT head with its expressions, got "
                         f"{model.name} with {model.num_verts} vertices; use load_ict_model()")
    occ = cfg or OcclusionConfig()
    key = cache_file("ict-head-parts", ".npz", _CACHE_VERSION, model.name,
                     float(model.mean.sum()), occ)
    if key.is_file():
        with np.load(key) as z:
            return HeadParts(**{k: z[k] for k in z.files})
    log.info("computing the ICT head's region masks and ambient occlusion (once)")
    parts = _compute_head_parts(model, occ)
    tmp = key.with_name(key.name + ".tmp.npz")
    np.savez(tmp, **{k: getattr(parts, k) for k in HeadParts.__dataclass_fields__})
    tmp.replace(key)
    return parts


def _compute_head_parts(model: MorphableModel, occ: OcclusionConfig) -> HeadParts:
    v = model.mean
    nv = len(v)
    part = np.zeros(nv, dtype=np.int8)
    for name, (a, b) in ICT_REGIONS.items():
        part[a:b] = _PART_OF_REGION[name]
    faces = model.faces
    hidden = (part == Part.OVERLAY) | (part == Part.LASHES)
    draw = faces[~hidden[faces].any(axis=1)]
    lm = v[model.lmks68]
    xy = v[:, :2]
    skin = part == Part.SKIN
    front = v[:, 2] > lm[:, 2].min() - _FRONT_Z_MARGIN_MM

    # lips: inside the outer lip contour (landmarks 48-59), seen from the front
    from skimage.measure import points_in_poly

    outer = lm[48:60, :2]
    inside = points_in_poly(xy, outer)
    d = _segment_distance(xy, outer, closed=True)
    lips = np.where(inside, 1.0, _smoothstep(-d, -_LIP_EDGE_MM, 0.0)) * (skin & front)
    lips = np.where(inside & skin & front, np.maximum(lips, _smoothstep(d, 0.0, _LIP_EDGE_MM)), lips)

    # brows: a band along landmarks 17-21 and 22-26, slightly above them
    brows = np.zeros(nv)
    for lo, hi in ((17, 22), (22, 27)):
        curve = lm[lo:hi, :2] + np.array([0.0, _BROW_LIFT_MM])
        brows = np.maximum(brows, _gauss(_segment_distance(xy, curve, closed=False), _BROW_HALF_WIDTH_MM))
    brows *= skin & front

    # lash lines: the skin along the eye contours (landmarks 36-41 and 42-47)
    lash = np.zeros(nv)
    for lo in (36, 42):
        contour = lm[lo:lo + 6, :2]
        lash = np.maximum(lash, _gauss(_segment_distance(xy, contour, closed=True), _LASH_WIDTH_MM))
    lash *= skin & front

    # cheeks and nose tip redden; forehead and nose shine (the T zone)
    cheek_l = (lm[2] + lm[31] + lm[36]) / 3.0
    cheek_r = (lm[14] + lm[35] + lm[45]) / 3.0
    blush = np.maximum.reduce([
        _gauss(np.linalg.norm(v - cheek_l, axis=1), _BLUSH_SIGMA_MM),
        _gauss(np.linalg.norm(v - cheek_r, axis=1), _BLUSH_SIGMA_MM),
        _gauss(np.linalg.norm(v - lm[30], axis=1), _NOSE_SIGMA_MM)]) * skin
    forehead = (lm[19] + lm[24]) / 2.0 + np.array([0.0, 25.0, 0.0])
    tzone = np.maximum(_gauss(np.linalg.norm(v - forehead, axis=1), _TZONE_SIGMA_MM),
                       _gauss(_segment_distance(xy, lm[27:31, :2], closed=False), _NOSE_SIGMA_MM)
                       * front) * skin

    # beard: below a curve from under the nose up to the ears, above the neck; never the lips
    # the top edge: under the nose across the moustache, down to the mouth corners, then up
    # along the cheek line to the sideburns
    half_width = 0.5 * (lm[16, 0] - lm[0, 0])
    mouth_half = 0.5 * (lm[54, 0] - lm[48, 0])
    ax = np.abs(v[:, 0])
    cheek = np.clip((ax - mouth_half) / (half_width - mouth_half), 0.0, 1.2)
    top = np.where(ax <= mouth_half, lm[33, 1] - _BEARD_EDGE_MM / 2,
                   lm[48, 1] + (lm[1, 1] - lm[48, 1]) * cheek)
    under = _smoothstep(top - v[:, 1], 0.0, _BEARD_EDGE_MM)
    neck_fade = _smoothstep(v[:, 1] - (lm[8, 1] - 2 * _BEARD_EDGE_MM), 0.0, 2 * _BEARD_EDGE_MM)
    beard = under * neck_fade * (1.0 - lips) * skin * (v[:, 2] > lm[0, 2] - _FRONT_Z_MARGIN_MM)

    # spherical coordinates about a point between the eyes and the back of the head
    eyes = lm[36:48].mean(axis=0)
    centre = np.array([0.0, eyes[1] + _HEAD_CENTRE_ABOVE_EYES_MM, 0.5 * (v[:, 2].min() + v[:, 2].max())])
    rel = v - centre
    elevation = np.degrees(np.arctan2(rel[:, 1], np.hypot(rel[:, 0], rel[:, 2])))
    azimuth = np.degrees(np.arctan2(rel[:, 0], rel[:, 2]))
    height = lm[8, 1] - v[:, 1]

    # the eyeballs: angle of each vertex's direction from its eye's gaze axis
    iris_angle = np.full(nv, 180.0)
    for name in ("eyeball_left", "eyeball_right"):
        a, b = ICT_REGIONS[name]
        e = v[a:b]
        c = 0.5 * (e.max(axis=0) + e.min(axis=0))
        dirs = e - c
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        tip = dirs[np.argmax(e[:, 2])]
        axis = dirs[(dirs @ tip) > np.cos(np.radians(_EYE_AXIS_CONE_DEG))].mean(axis=0)
        axis /= np.linalg.norm(axis)
        iris_angle[a:b] = np.degrees(np.arccos(np.clip(dirs @ axis, -1.0, 1.0)))

    # ambient occlusion: mouth parts from an open mouth (closed, they would be black)
    ao = ambient_occlusion(v, draw, vertex_normals(v, draw), occ)
    open_w = np.zeros(model.num_exp)
    open_w[model.exp_names.index("jawOpen")] = 0.6
    v_open = model.sample_numpy(exp_coeffs=open_w)
    ao_open = ambient_occlusion(v_open, draw, vertex_normals(v_open, draw), occ)
    mouth = np.isin(part, (Part.MOUTH, Part.GUMS, Part.TEETH))
    ao = np.where(mouth, ao_open, ao)

    return HeadParts(part=part, draw_faces=draw, lips=lips, brows=brows, lash=lash, beard=beard, blush=blush,
                     tzone=tzone, elevation=elevation, azimuth=azimuth, height=height,
                     iris_angle=iris_angle, ao=ao, pos=v.copy())


@dataclass(frozen=True)
class Appearance:
    """One sample's surface: albedo, gloss and the skin tone it was drawn from.

    Attributes:
        albedo: (V, 3) linear RGB diffuse albedo.
        specular: (V,) highlight strength multiplier.
        skin_tone: the Monk scale position in [0, 9] (0 lightest).
        skin: (3,) the base skin albedo (linear RGB) before variation.
        hair: (3,) the hair colour (linear RGB albedo), painted or not (for hair geometry,
            :mod:`facegcn_lib.data.hair`).
    """

    albedo: NDArray[np.float64]
    specular: NDArray[np.float64]
    skin_tone: float
    skin: NDArray[np.float64]
    hair: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))


# Iris geometry on the ICT eyeball (degrees from the gaze axis).
_PUPIL_DEG = (7.0, 12.0)
_IRIS_DEG = 24.0
_LIMBUS_DEG = 3.0
_PUPIL_LINEAR = 0.004
_MOUTH_LINEAR = (0.09, 0.025, 0.025)
_GUMS_TINT = (0.75, 0.28, 0.28)
_SOCKET_TINT = (0.9, 0.6, 0.6)
_BLUSH_TINT = (0.0, 0.28, 0.28)  # fraction of green and blue that blush removes
_LASH_DARKEN = 0.3
_REC709_LUMA = np.array([0.2126, 0.7152, 0.0722])
#: Directions in log-albedo (R, G, B) along which melanin and blood change skin colour.
_MELANIN_LOG = (-0.6, -0.8, -1.0)
_BLOOD_LOG = (0.0, -0.7, -0.5)


def skin_tone_color(t: float, saturation: float = 1.0) -> NDArray[np.float64]:
    """Linear RGB of position ``t`` in [0, 9] on the Monk Skin Tone scale (0 lightest)."""
    tones = hex_to_linear(MONK_SKIN_TONES_SRGB)
    k = min(int(t), len(tones) - 2)
    rgb = (1.0 - (t - k)) * tones[k] + (t - k) * tones[k + 1]
    lum = float(rgb @ _REC709_LUMA)
    return np.asarray(np.clip(lum + (rgb - lum) * saturation, 0.0, 1.0))


# Rows of the per-sample colour table and entries of the parameter vector that
# :func:`sample_appearance` hands to its per-vertex kernel.
_C_SKIN, _C_LIP, _C_LASH, _C_HAIR, _C_BROW, _C_BEARD, _C_CLOTH = 0, 1, 2, 3, 4, 5, 6
_C_SCLERA, _C_IRIS, _C_TEETH, _C_GUMS, _C_SOCKET, _C_MOUTH, _C_BLUSH = 7, 8, 9, 10, 11, 12, 13
_NUM_COLORS = 14
_P_BLUSH, _P_LASH, _P_HAIR_ON, _P_A0, _P_A1, _P_A2, _P_SOFT, _P_HAIR = 0, 1, 2, 3, 4, 5, 6, 7
_P_BROW, _P_BEARD_ON, _P_BEARD, _P_CLOTH_ON, _P_COLLAR, _P_PUPIL, _P_AO_FLOOR = 8, 9, 10, 11, 12, 13, 14
_NUM_PARAMS = 15
_SKIN, _MOUTH, _GUMS, _TEETH, _SOCKET, _EYEBALL = (Part.SKIN, Part.MOUTH, Part.GUMS, Part.TEETH,
                                                Part.EYE_SOCKET, Part.EYEBALL)
_COLLAR_AZIMUTH_MM = 6.0
_COLLAR_EDGE_MM = 3.0
_IRIS_EDGE_DEG = 1.0
_PUPIL_EDGE_DEG = 0.8
_LIMBUS_DARKEN = 0.3
_LIMBUS_WEIGHT = 0.6


@numba.njit(cache=True, nogil=True)
def _smooth(x: float, lo: float, hi: float) -> float:  # pragma: no cover - compiled
    t = min(max((x - lo) / (hi - lo), 0.0), 1.0)
    return t * t * (3.0 - 2.0 * t)


@numba.njit(cache=True, nogil=True)
def _albedo_kernel(idx: NDArray[np.int64], part: NDArray[np.int8], base: NDArray[np.float32],
                   strands: NDArray[np.float32], cos_az: NDArray[np.float32],
                   blush: NDArray[np.float64], lips: NDArray[np.float64], lash: NDArray[np.float64],
                   brows: NDArray[np.float64], beard: NDArray[np.float64],
                   elevation: NDArray[np.float64], height: NDArray[np.float64],
                   iris_angle: NDArray[np.float64], ao: NDArray[np.float64], tzone: NDArray[np.float64],
                   colors: NDArray[np.float64], prm: NDArray[np.float64],
                   spec_of_part: NDArray[np.float64], albedo: NDArray[np.float64],
                   spec: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    """Per vertex ``v = idx[n]`` (row ``n`` of ``base``, ``strands``, ``cos_az``): the albedo
    and gloss of :func:`sample_appearance` (its slow numpy form is the reference in
    tests/data/test_appearance.py). The transcendental functions come precomputed (numpy's
    float32 ones are vectorised, numba's are not)."""
    a = np.empty(3)
    for n in range(idx.shape[0]):
        v = idx[n]
        p = part[v]
        ao_v = prm[_P_AO_FLOOR] + (1.0 - prm[_P_AO_FLOOR]) * ao[v]
        spec[n] = spec_of_part[p] * (1.0 + tzone[v]) * ao_v
        if p == _EYEBALL:
            ang = iris_angle[v]
            w_iris = _smooth(_IRIS_DEG - ang, -_IRIS_EDGE_DEG, _IRIS_EDGE_DEG)
            d = (ang - _IRIS_DEG) / _LIMBUS_DEG
            w_limbus = np.exp(-0.5 * d * d) * _LIMBUS_WEIGHT
            w_pupil = _smooth(prm[_P_PUPIL] - ang, -_PUPIL_EDGE_DEG, _PUPIL_EDGE_DEG)
            for c in range(3):
                e = colors[_C_SCLERA, c] * (1.0 - w_iris) + colors[_C_IRIS, c] * w_iris
                e = e * (1.0 - w_limbus) + colors[_C_IRIS, c] * _LIMBUS_DARKEN * w_limbus
                a[c] = e * (1.0 - w_pupil) + _PUPIL_LINEAR * w_pupil
        elif p == _SOCKET or p == _TEETH or p == _GUMS or p == _MOUTH:
            row = _C_SOCKET if p == _SOCKET else _C_TEETH if p == _TEETH else _C_GUMS if p == _GUMS else _C_MOUTH
            for c in range(3):
                a[c] = colors[row, c]
        else:
            skin_part = 1.0 if p == _SKIN else 0.0
            b = prm[_P_BLUSH] * blush[v]  # blush removes some green and blue
            for c in range(3):
                a[c] = base[n, c] * (1.0 - b * colors[_C_BLUSH, c]) * colors[_C_SKIN, c]
            hair_tex = strands[n]
            w_lip = lips[v]
            w_lash = lash[v] * prm[_P_LASH]
            w_hair = 0.0
            if prm[_P_HAIR_ON] > 0.0:  # cos(2 phi) = 2 cos(phi)^2 - 1
                cos_phi = cos_az[n]
                line = prm[_P_A0] + prm[_P_A1] * cos_phi + prm[_P_A2] * (2.0 * cos_phi * cos_phi - 1.0)
                w_hair = (_smooth(elevation[v] - line, -prm[_P_SOFT], prm[_P_SOFT]) * skin_part
                          * prm[_P_HAIR])
            w_brow = prm[_P_BROW] * brows[v]
            w_beard = prm[_P_BEARD] * beard[v] if prm[_P_BEARD_ON] > 0.0 else 0.0
            stubble = np.sqrt(hair_tex)  # exp(hair_noise * fine / 2)
            w_cloth = 0.0
            if prm[_P_CLOTH_ON] > 0.0:
                w_cloth = _smooth(height[v] - prm[_P_COLLAR] - _COLLAR_AZIMUTH_MM * cos_az[n],
                                  -_COLLAR_EDGE_MM, _COLLAR_EDGE_MM) * skin_part
            for c in range(3):
                x = a[c] * (1.0 - w_lip) + colors[_C_LIP, c] * w_lip
                x = x * (1.0 - w_lash) + colors[_C_LASH, c] * w_lash
                x = x * (1.0 - w_hair) + colors[_C_HAIR, c] * hair_tex * w_hair
                x = x * (1.0 - w_brow) + colors[_C_BROW, c] * hair_tex * w_brow
                x = x * (1.0 - w_beard) + colors[_C_BEARD, c] * stubble * w_beard
                a[c] = x * (1.0 - w_cloth) + colors[_C_CLOTH, c] * w_cloth
        for c in range(3):
            albedo[n, c] = min(max(a[c] * ao_v, 0.0), 1.0)


def sample_appearance(parts: HeadParts, rng: np.random.Generator,
                      cfg: AppearanceConfig | None = None,
                      subset: NDArray[np.int64] | None = None) -> Appearance:
    """Draw a random appearance for the head described by ``parts``.

    The random draws are made here; the per-vertex colours are computed by one compiled loop
    over the ``subset`` vertices.

    Args:
        parts: the head's region masks (:func:`head_parts`).
        rng: the random generator (the draws do not depend on ``subset``).
        cfg: the ranges to draw from.
        subset: (N,) vertex indices to colour (the seen ones, say); all when ``None``.

    Returns:
        The :class:`Appearance` of the ``subset`` vertices, in that order.
    """
    c = cfg or AppearanceConfig()
    full = len(parts.part)
    idx = np.arange(full) if subset is None else np.ascontiguousarray(subset, dtype=np.int64)
    colors = np.zeros((_NUM_COLORS, 3))
    prm = np.zeros(_NUM_PARAMS)
    t = float(rng.uniform(0.0, len(MONK_SKIN_TONES_SRGB) - 1.0))
    skin = skin_tone_color(t, c.skin_saturation) * np.exp(rng.normal(0.0, c.tone_jitter, 3))
    skin *= np.exp(rng.uniform(*c.redness) * np.asarray(_BLOOD_LOG))  # blood under the skin
    skin *= c.albedo_scale
    colors[_C_SKIN] = skin.astype(np.float32)

    # log-albedo: low-frequency plane waves over the neutral head, plus fine mottling
    dirs = rng.normal(size=(c.lowfreq_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lam = rng.uniform(*c.lowfreq_wavelength_mm, size=c.lowfreq_waves)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=c.lowfreq_waves)
    wave_k = np.ascontiguousarray(dirs.T * (2.0 * np.pi / lam))
    # each wave varies the two skin chromophores: melanin (darker, most in blue) and blood
    # (redder: less green and blue); no other hue shifts
    chroma = rng.normal(0.0, 1.0, size=(c.lowfreq_waves, 2)) @ np.array([_MELANIN_LOG, _BLOOD_LOG])
    mix = (chroma * c.lowfreq_amp / np.sqrt(c.lowfreq_waves)).astype(np.float32)
    fine = rng.standard_normal(full, dtype=np.float32)
    prm[_P_BLUSH] = np.float32(rng.uniform(0.0, c.blush_amp))
    colors[_C_BLUSH] = _BLUSH_TINT

    # lips
    lip = skin * np.array(c.lip_tint) * np.exp(rng.normal(0.0, 0.08, 3))
    if rng.random() < c.lipstick_prob:
        lip = srgb_to_linear(np.array([rng.uniform(0.4, 0.8), rng.uniform(0.0, 0.2), rng.uniform(0.05, 0.3)]))
    colors[_C_LIP] = lip

    # hair, brows, stubble and clothing
    hair_colors = hex_to_linear(HAIR_COLORS_SRGB)
    dark_bias = rng.random() < 0.5 + 0.05 * t  # darker skin -> more often dark hair
    hair = hair_colors[rng.integers(0, 3) if dark_bias else rng.integers(0, len(hair_colors))]
    hair = hair * np.exp(rng.normal(0.0, 0.1, 3))
    colors[_C_LASH] = 0.5 * (skin + hair) * _LASH_DARKEN
    prm[_P_LASH] = rng.uniform(*c.lash_density)
    colors[_C_HAIR] = hair.astype(np.float32)
    if rng.random() < c.hair_prob:
        front = rng.uniform(*c.hairline_front_deg)
        back, side = rng.uniform(-70.0, -30.0), rng.uniform(5.0, 25.0)
        # line(phi) = a0 + a1 cos(phi) + a2 cos(2 phi) through front (0), side (90), back (180)
        prm[_P_HAIR_ON] = 1.0
        prm[_P_A0], prm[_P_A1], prm[_P_A2] = hairline_coefficients(front, side, back)
        prm[_P_SOFT] = rng.uniform(1.5, 6.0)
        prm[_P_HAIR] = rng.uniform(0.85, 1.0)
    colors[_C_BROW] = (hair if rng.random() < 0.8 else hair_colors[rng.integers(0, 3)]).astype(np.float32)
    prm[_P_BROW] = rng.uniform(*c.brow_density)
    if rng.random() < c.beard_prob:
        prm[_P_BEARD_ON] = 1.0
        prm[_P_BEARD] = rng.uniform(*c.beard_density)
        colors[_C_BEARD] = (0.5 * (hair + skin)).astype(np.float32)
    if rng.random() < c.clothing_prob:
        prm[_P_CLOTH_ON] = 1.0
        prm[_P_COLLAR] = rng.uniform(25.0, 60.0)
        colors[_C_CLOTH] = srgb_to_linear(rng.uniform(0.05, 0.9, 3))

    # eyes, eyelids, mouth
    colors[_C_SCLERA] = srgb_to_linear(np.full(3, rng.uniform(*c.sclera_srgb))) * np.array([1.0, 0.97, 0.95])
    iris = hex_to_linear(IRIS_COLORS_SRGB)[rng.integers(0, len(IRIS_COLORS_SRGB))]
    colors[_C_IRIS] = iris * np.exp(rng.normal(0.0, 0.1, 3))
    prm[_P_PUPIL] = rng.uniform(*_PUPIL_DEG)
    colors[_C_SOCKET] = skin * np.array(_SOCKET_TINT)
    colors[_C_TEETH] = srgb_to_linear(np.full(3, rng.uniform(*c.teeth_srgb))) * np.array([1.0, 0.96, 0.86])
    colors[_C_GUMS] = skin * np.array(_GUMS_TINT) + np.array([0.15, 0.0, 0.0])
    colors[_C_MOUTH] = _MOUTH_LINEAR
    prm[_P_AO_FLOOR] = c.ao_floor

    # the transcendental functions, vectorised in float32: the waves' log-albedo plus
    # mottling, its exponential, the hair strands' variation, and the azimuth's cosine
    fine_n = fine[idx]
    waves = np.sin((matmul_rows(parts.pos[idx], wave_k) + phase).astype(np.float32))
    base = np.exp(matmul_rows(waves, mix).astype(np.float32) + np.float32(c.mottle_amp) * fine_n[:, None])
    strands = np.exp(np.float32(c.hair_noise) * fine_n)
    cos_az = np.cos(np.radians(parts.azimuth[idx]).astype(np.float32))
    albedo = np.empty((len(idx), 3))
    spec = np.empty(len(idx))
    _albedo_kernel(idx, parts.part, np.ascontiguousarray(base, dtype=np.float32), strands, cos_az,
                   parts.blush, parts.lips, parts.lash, parts.brows, parts.beard, parts.elevation,
                   parts.height, parts.iris_angle, parts.ao, parts.tzone, colors, prm,
                   np.asarray(c.specular_of_part, dtype=np.float64), albedo, spec)
    return Appearance(albedo=albedo, specular=spec, skin_tone=t, skin=np.asarray(skin, dtype=np.float64),
                      hair=np.asarray(hair, dtype=np.float64))
