"""Synthetic training faces: random ICT heads rendered on the CPU, with dense ground truth.

Every sample is a random identity and expression of the ICT Face Model (optionally with a
haircut as geometry, :mod:`facegcn_lib.data.hair`; off by default), posed (yaw over the
full -90..90 degrees), lit (ambient, spherical-harmonic environment, a directional key light
with cast shadows and highlights), seen by a perspective camera, put in front of a random
background, partly occluded, and passed through camera effects. The ground truth comes for
free: the 9,409 face-region vertices in image pixels, the 68 landmarks, the pose and which
vertices the camera sees. See :doc:`chapter 3 </chapters/03_faces_as_data>`.

Frames and units of a sample (the same as the real datasets'; see
:mod:`facegcn_lib.geometry.projection`):

* ``verts_img`` (9409, 3) float32: x right and y down in pixels of the output image (pixel
  centres at integer coordinates), from the perspective projection; z towards the camera,
  relative to the head's centre, in pixels at the head centre's magnification
  (``z = f / D * depth difference``: scaled like x and y, as 300W-LP's ground truth is).
* ``lmks68`` (68, 3): the rows of ``verts_img`` at the 68 landmark vertices (3D landmarks: the
  jaw contour is the model's, seen or not, as in AFLW2000-3D).
* ``pose_deg`` (3,): yaw, pitch, roll in degrees, the head's rotation relative to the line
  of sight through the head centre and to the image's axes (the crop's rotation included), in
  the convention of :mod:`facegcn_lib.geometry.rotations`.
* ``visibility`` (9409,) bool: the vertex is the nearest surface at its pixel (not hidden by
  another part of the head or by the hair) and inside the image; occluders are not taken
  into account.

The image is framed exactly as :class:`facegcn_lib.data.crop.CropAndAugment` frames a real
photograph: the square box around the projected 68 landmarks
(:func:`facegcn_lib.data.crop.landmark_box`), then the paper's random rotation, translation
and scale (:class:`facegcn_lib.data.crop.AugmentConfig`). The framing is folded into the
camera's projection (an affine map of the normalised image plane), so it costs nothing, never
leaves empty borders, and the pose label includes the in-plane rotation.

Reproducibility: sample ``i`` of ``SyntheticFaces(cfg, seed)`` depends only on
``(cfg, seed, i)``, not on the worker or the order in which samples are drawn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numba
import numpy as np
import torch
from numpy.typing import NDArray
from torch.utils.data import Dataset

from facegcn_lib.data.appearance import (
    AppearanceConfig,
    HeadParts,
    Part,
    head_parts,
    sample_appearance,
)
from facegcn_lib.data.backgrounds import BackgroundConfig, random_background
from facegcn_lib.data.crop import (
    AugmentConfig,
    AugmentParams,
    CropConfig,
    CropTransform,
    landmark_box,
)
from facegcn_lib.data.effects import CameraConfig, OccluderConfig, add_occluders, camera_effects
from facegcn_lib.data.hair import HairBuilder, HairConfig
from facegcn_lib.geometry.rotations import euler_to_rotation, rotation_to_euler
from facegcn_lib.morphable.ict import FACE_VERTS, ICT_REGIONS, load_ict_model
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.render.occlusion import OcclusionConfig, lit_from, visible_in_depth_map
from facegcn_lib.render.raster import covered_vertices, interpolate, rasterize, resolve
from facegcn_lib.render.shading import (
    SH_COEFFS,
    Lighting,
    linear_to_srgb,
    linear_to_srgb_fast,
    matmul_rows,
    sh_basis,
    shade,
    vertex_normals,
)

log = logging.getLogger(__name__)

#: Flip from the model frame (y up, z to the viewer) to the camera frame (y down, z forward).
_MODEL_TO_CAM = np.diag([1.0, -1.0, -1.0])
_SH_C0 = 0.28209479177387814
#: Peak of :func:`facegcn_lib.render.shading.sh_irradiance` for a unit delta of radiance:
#: sum over bands l <= 2 of (A_l / pi) (2 l + 1) / (4 pi) = 4.25 / (4 pi).
_DELTA_PEAK = 4.25 / (4.0 * np.pi)
_LUMA = np.array([0.2126, 0.7152, 0.0722])
#: Luminance of a mid skin albedo (linear), the reference of the skin-tone metering.
_MID_SKIN = 0.15


@dataclass(frozen=True)
class ExpressionConfig:
    """How random expressions are drawn from the 53 ICT blendshapes.

    Attributes:
        active_prob: probability that each blendshape is active.
        max_weight: active weights are uniform in ``[0, max_weight]``.
        symmetric_prob: probability that a left/right pair shares one weight.
        jaw_open_prob: probability of an open jaw (``jawOpen`` in ``jaw_open``).
        jaw_open: range of that weight.
        eyes_closed_prob: probability of closed eyes (both ``eyeBlink`` in ``eyes_closed``).
        eyes_closed: range of that weight.
    """

    active_prob: float = 0.12
    max_weight: float = 0.8
    symmetric_prob: float = 0.6
    jaw_open_prob: float = 0.3
    jaw_open: tuple[float, float] = (0.2, 1.0)
    eyes_closed_prob: float = 0.12
    eyes_closed: tuple[float, float] = (0.7, 1.0)


@dataclass(frozen=True)
class LightConfig:
    """Random lighting (linear RGB intensities; directions in the camera frame).

    Attributes:
        ambient: range of the ambient term.
        environment: range of the spherical-harmonic environment's uniform (sky) irradiance.
        environment_lobes: range (inclusive, exclusive) of the number of distant lights
            (windows, lamps, bright walls) added to the environment, from random directions.
        environment_lobe: range of each one's irradiance on a surface facing it.
        key: range of the directional light's intensity.
        key_azimuth_deg: its azimuth range (0 behind the camera, +-90 from the sides).
        key_elevation_deg: its elevation range (positive from above).
        tint_std: std of the lights' colour temperature (log red/blue ratio).
        specular: range of the highlight strength.
        shininess: range of the Blinn-Phong exponent.
        shadow_prob: probability of cast shadows from the key light.
        exposure: range of the exposure multiplier.
        auto_exposure: how far exposure compensates the light on the skin (0: not at all,
            1: the seen skin always gets the same mean irradiance, like a camera's metering).
        skin_exposure: how far it compensates the skin's albedo (dark skin is exposed
            brighter, pale skin darker, as metering does).
    """

    ambient: tuple[float, float] = (0.05, 0.3)
    environment: tuple[float, float] = (0.1, 0.4)
    environment_lobes: tuple[int, int] = (0, 4)
    environment_lobe: tuple[float, float] = (0.05, 0.4)
    key: tuple[float, float] = (0.2, 1.0)
    key_azimuth_deg: tuple[float, float] = (-100.0, 100.0)
    key_elevation_deg: tuple[float, float] = (-30.0, 75.0)
    tint_std: float = 0.12
    specular: tuple[float, float] = (0.0, 0.35)
    shininess: tuple[float, float] = (6.0, 60.0)
    shadow_prob: float = 0.7
    exposure: tuple[float, float] = (0.6, 1.3)
    auto_exposure: float = 0.8
    skin_exposure: float = 0.3


@dataclass(frozen=True)
class SynthConfig:
    """Everything random about a synthetic sample, and the output format.

    Attributes:
        image_size: output side in pixels (square images).
        supersample: render at this many times the resolution and average (anti-aliasing).
        yaw_deg: range of yaw (uniform).
        pitch_deg: range of pitch (uniform).
        roll_deg: range of roll (uniform).
        distance_mm: range of the camera's distance to the head centre (log-uniform): near
            cameras (selfies) show strong perspective, far ones almost none.
        off_axis_deg: largest angle between the optical axis and the line of sight to the head.
        crop: the crop box around the landmarks (as for real images).
        augment: the random rotation, translation and scale of the crop, or ``None``.
        id_std: std of the 100 identity coefficients (1 = the population's).
        num_id: identity modes used (of the ICT model's 100).
        visibility_bias_mm: depth tolerance of the visibility test, in millimetres...
        visibility_bias_px: ...plus this many pixel footprints at the head's distance.
        expression: see :class:`ExpressionConfig`.
        light: see :class:`LightConfig`.
        appearance: see :class:`facegcn_lib.data.appearance.AppearanceConfig`.
        hair: see :class:`facegcn_lib.data.hair.HairConfig` (hair geometry over the painted
            scalp: volume, fringes, curtains over the cheeks).
        background: see :class:`facegcn_lib.data.backgrounds.BackgroundConfig`.
        occluders: see :class:`facegcn_lib.data.effects.OccluderConfig`.
        camera: see :class:`facegcn_lib.data.effects.CameraConfig`.
        shadow_map: the shadow maps' resolution and bias.
    """

    image_size: int = 256
    supersample: int = 2
    yaw_deg: tuple[float, float] = (-90.0, 90.0)
    pitch_deg: tuple[float, float] = (-35.0, 35.0)
    roll_deg: tuple[float, float] = (-20.0, 20.0)
    distance_mm: tuple[float, float] = (350.0, 3000.0)
    off_axis_deg: float = 15.0
    crop: CropConfig = field(default_factory=CropConfig)
    augment: AugmentConfig | None = field(default_factory=AugmentConfig)
    id_std: float = 1.0
    num_id: int = 100
    visibility_bias_mm: float = 1.0
    visibility_bias_px: float = 1.5
    expression: ExpressionConfig = field(default_factory=ExpressionConfig)
    light: LightConfig = field(default_factory=LightConfig)
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    hair: HairConfig = field(default_factory=HairConfig)
    background: BackgroundConfig = field(default_factory=BackgroundConfig)
    occluders: OccluderConfig = field(default_factory=OccluderConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    shadow_map: OcclusionConfig = field(default_factory=lambda: OcclusionConfig(map_size=160))


@dataclass(frozen=True)
class SynthSample:
    """One synthetic sample (numpy), with the intermediate results of its rendering.

    Attributes:
        image: (H, W, 3) uint8 RGB, the final image.
        verts_img: (9409, 3) float32 face-region vertices, image frame (see the module doc).
        lmks68: (68, 3) float32.
        pose_deg: (3,) float32 yaw, pitch, roll in degrees.
        visibility: (9409,) bool.
        mask: (H, W) float32 coverage of the face region (anti-aliased, before occluders).
        steps: intermediate images by name (only when asked for), for figures.
    """

    image: NDArray[np.uint8]
    verts_img: NDArray[np.float32]
    lmks68: NDArray[np.float32]
    pose_deg: NDArray[np.float32]
    visibility: NDArray[np.bool_]
    mask: NDArray[np.float32]
    steps: dict[str, Any] = field(default_factory=dict, repr=False)


def renderer_sources() -> tuple[Path, ...]:
    """The source files whose code decides what a rendered face looks like (this module, the
    head's appearance and the hair): caches of rendered faces are keyed by their contents."""
    from facegcn_lib.data import appearance, hair

    return Path(__file__), Path(appearance.__file__), Path(hair.__file__)


def sample_expression(names: tuple[str, ...], rng: np.random.Generator,
                      cfg: ExpressionConfig) -> NDArray[np.float64]:
    """Random blendshape weights (K_exp,) in [0, 1] for the ICT expression ``names``."""
    w = np.where(rng.random(len(names)) < cfg.active_prob,
                 rng.uniform(0.0, cfg.max_weight, len(names)), 0.0)
    index = {n: k for k, n in enumerate(names)}
    for k, n in enumerate(names):  # left/right pairs often move together
        if n.endswith("_L") and n[:-2] + "_R" in index and rng.random() < cfg.symmetric_prob:
            w[index[n[:-2] + "_R"]] = w[k]
    if "jawOpen" in index:
        w[index["jawOpen"]] = rng.uniform(*cfg.jaw_open) if rng.random() < cfg.jaw_open_prob else 0.0
    if rng.random() < cfg.eyes_closed_prob:
        closed = rng.uniform(*cfg.eyes_closed)
        for n in ("eyeBlink_L", "eyeBlink_R"):
            if n in index:
                w[index[n]] = closed
    return w


def _light_direction(azimuth_deg: float, elevation_deg: float) -> NDArray[np.float64]:
    """Unit direction towards a light, camera frame (x right, y down, z forward)."""
    a, e = np.radians(azimuth_deg), np.radians(elevation_deg)
    return np.array([np.sin(a) * np.cos(e), -np.sin(e), -np.cos(a) * np.cos(e)])


def _white_balance(rng: np.random.Generator, std: float) -> NDArray[np.float64]:
    """A random light colour near white: mostly warm-cool (red vs blue), a little green-magenta."""
    warm = rng.normal(0.0, std)
    green = rng.normal(0.0, 0.25 * std)
    return np.asarray(np.exp(np.array([warm, green, -warm])))


def random_lighting(rng: np.random.Generator, cfg: LightConfig) -> Lighting:
    """A random light rig in the camera frame (see :class:`LightConfig`)."""
    # the environment: a uniform sky plus a few distant lights, each a positive delta of
    # radiance projected on the spherical harmonics (so the radiance is never negative)
    sh = np.zeros((SH_COEFFS, 3))
    sh[0] = rng.uniform(*cfg.environment) / _SH_C0 * _white_balance(rng, cfg.tint_std)
    for _ in range(int(rng.integers(*cfg.environment_lobes))):
        d = rng.normal(size=3)
        peak = rng.uniform(*cfg.environment_lobe) * _white_balance(rng, cfg.tint_std)
        sh += sh_basis((d / np.linalg.norm(d))[None])[0][:, None] * (peak / _DELTA_PEAK)
    return Lighting(
        ambient=rng.uniform(*cfg.ambient) * _white_balance(rng, cfg.tint_std),
        sh=sh,
        light_dir=_light_direction(rng.uniform(*cfg.key_azimuth_deg), rng.uniform(*cfg.key_elevation_deg)),
        light_color=rng.uniform(*cfg.key) * _white_balance(rng, cfg.tint_std),
        specular=float(rng.uniform(*cfg.specular)),
        shininess=float(rng.uniform(*cfg.shininess)),
    )


def _rotation_towards(direction: NDArray) -> NDArray[np.float64]:
    """The rotation taking the optical axis (0, 0, 1) to the unit ``direction`` (Rodrigues)."""
    z = np.array([0.0, 0.0, 1.0])
    d = direction / np.linalg.norm(direction)
    axis = np.cross(z, d)
    s, c = np.linalg.norm(axis), float(z @ d)
    if s < 1e-12:
        return np.eye(3)
    k = axis / s
    kx = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    out: NDArray[np.float64] = np.eye(3) + s * kx + (1.0 - c) * (kx @ kx)
    return out


def _augment_params(rng: np.random.Generator, cfg: AugmentConfig, size: int) -> AugmentParams:
    """:func:`facegcn_lib.data.crop.sample_augment`'s distribution, drawn from a numpy ``rng``."""
    u = rng.random(4)
    lo, hi = cfg.scale_range
    return AugmentParams(angle_deg=float((2 * u[0] - 1) * cfg.max_rotation_deg),
                         tx=float((2 * u[1] - 1) * cfg.max_translation * size),
                         ty=float((2 * u[2] - 1) * cfg.max_translation * size),
                         scale=float(lo + u[3] * (hi - lo)))


def _in_plane_rotation(angle_deg: float) -> NDArray[np.float64]:
    """The model-frame rotation that an image rotation by ``angle_deg`` (counter-clockwise on
    screen, as :class:`facegcn_lib.data.crop.CropTransform`) applies to a head."""
    th = np.radians(angle_deg)
    screen = np.array([[np.cos(th), np.sin(th), 0.0], [-np.sin(th), np.cos(th), 0.0], [0.0, 0.0, 1.0]])
    return np.asarray(_MODEL_TO_CAM @ screen @ _MODEL_TO_CAM)


#: Triangles per chunk of the rasterizer's occlusion culling.
_OCCLUSION_CHUNK = 64
#: Largest integer of the renderer's 16-bit identity basis.
_INT16_MAX = 32767


@numba.njit(cache=True, nogil=True)
def _accumulate(out: NDArray[np.float32], coeffs: NDArray[np.float32],
                basis: NDArray) -> None:  # pragma: no cover - compiled
    """``out += coeffs @ basis[:len(coeffs)]``, skipping zero coefficients (single-threaded)."""
    for k in range(coeffs.shape[0]):
        c = coeffs[k]
        if c != 0.0:
            for j in range(out.shape[0]):
                out[j] += c * basis[k, j]


@numba.njit(cache=True, nogil=True)
def _to_camera(verts: NDArray[np.float32], pivot: NDArray[np.float64], view_rot: NDArray[np.float64],
               q: NDArray[np.float64], dist: float, p_cam: NDArray[np.float64],
               view_depth: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    """``p_view = view_rot (v - pivot) + (0, 0, dist)``; ``p_cam = q p_view``; ``view_depth``
    is ``p_view``'s z."""
    for i in range(verts.shape[0]):
        x = verts[i, 0] - pivot[0]
        y = verts[i, 1] - pivot[1]
        z = verts[i, 2] - pivot[2]
        a = view_rot[0, 0] * x + view_rot[0, 1] * y + view_rot[0, 2] * z
        b = view_rot[1, 0] * x + view_rot[1, 1] * y + view_rot[1, 2] * z
        c = view_rot[2, 0] * x + view_rot[2, 1] * y + view_rot[2, 2] * z + dist
        view_depth[i] = c
        for r in range(3):
            p_cam[i, r] = q[r, 0] * a + q[r, 1] * b + q[r, 2] * c


@numba.njit(cache=True, nogil=True)
def _to_image(p_cam: NDArray[np.float64], frame: NDArray[np.float64], ss: int, pix: NDArray[np.float64],
              pts_hi: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    """Perspective division, then the (2, 3) affine ``frame`` of the normalised image plane:
    ``pix`` in output pixels, ``pts_hi`` in the ``ss`` times supersampled raster's; both keep
    the camera depth as z."""
    for i in range(p_cam.shape[0]):
        z = p_cam[i, 2]
        nx = p_cam[i, 0] / z
        ny = p_cam[i, 1] / z
        x = frame[0, 0] * nx + frame[0, 1] * ny + frame[0, 2]
        y = frame[1, 0] * nx + frame[1, 1] * ny + frame[1, 2]
        pix[i, 0] = x
        pix[i, 1] = y
        pix[i, 2] = z
        pts_hi[i, 0] = (x + 0.5) * ss - 0.5
        pts_hi[i, 1] = (y + 0.5) * ss - 0.5
        pts_hi[i, 2] = z


@numba.njit(cache=True, nogil=True)
def _seen_frames(idx: NDArray[np.int64], model_normals: NDArray[np.float64], to_cam: NDArray[np.float64],
                 p_cam: NDArray[np.float64], normals: NDArray[np.float64],
                 view_dirs: NDArray[np.float64]) -> None:  # pragma: no cover - compiled
    """At vertices ``idx``: the normals rotated to the camera (``n @ to_cam``) and the unit
    directions towards the eye (``-p / |p|``)."""
    for n in range(idx.shape[0]):
        i = idx[n]
        for c in range(3):
            normals[n, c] = (model_normals[i, 0] * to_cam[0, c] + model_normals[i, 1] * to_cam[1, c]
                             + model_normals[i, 2] * to_cam[2, c])
        norm = np.sqrt(p_cam[i, 0] ** 2 + p_cam[i, 1] ** 2 + p_cam[i, 2] ** 2)
        for c in range(3):
            view_dirs[n, c] = -p_cam[i, c] / norm


class _Renderer:
    """The per-process state of the generator: the model, its region masks, cached arrays."""

    def __init__(self, model: MorphableModel) -> None:
        self.model = model
        self.parts: HeadParts = head_parts(model)
        # outer surfaces (skin, then eyeballs) before what they hide (eye sockets, mouth,
        # gums, teeth), so that the rasterizer's occlusion culling skips hidden chunks
        inner = self.parts.part[self.parts.draw_faces].max(axis=1)
        rank = np.select([inner == Part.SKIN, inner == Part.EYEBALL], [0, 1], 2)
        self.faces = np.ascontiguousarray(self.parts.draw_faces[np.argsort(rank, kind="stable")])
        self.face_tri: NDArray[np.bool_] = np.asarray((self.faces < FACE_VERTS).all(axis=1))
        self.face_weight = self.face_tri.astype(np.float32)
        self.skin: NDArray[np.bool_] = np.asarray(self.parts.part == Part.SKIN)
        # every drawn part is a closed or one-sided surface wound outwards: cull back faces
        self.cull = True
        k = model.num_verts * 3
        self.mean = model.mean.astype(np.float32).reshape(k)
        # every sample reads the whole identity basis (100 x 80k values): reading it is most of
        # the shape's cost, so it is kept in 16 bits with a scale per mode (error < 0.001 mm)
        id_basis = model.id_basis.reshape(model.num_id, k)
        self.id_scale = (np.abs(id_basis).max(axis=1) / _INT16_MAX).astype(np.float32)
        self.id_basis = np.round(id_basis / np.maximum(self.id_scale, 1e-30)[:, None]).astype(np.int16)
        self.exp_basis = model.exp_basis.reshape(model.num_exp, k)
        lm = model.mean[model.lmks68]
        # the pivot of the head's rotation: between the landmarks, halfway back in the skull
        self.pivot = np.array([0.0, lm[:, 1].mean(), 0.5 * (model.mean[:, 2].min() + model.mean[:, 2].max())])
        self.lmks68 = model.lmks68
        self.hair = HairBuilder(model.mean, np.arange(ICT_REGIONS["head_and_neck"][1]), model.lmks68)

    def shape(self, id_coeffs: NDArray, exp_coeffs: NDArray) -> NDArray[np.float32]:
        """(V, 3) float32 vertices, millimetres (reads only the active blendshapes; the identity
        basis is stored in 16 bits, within 0.001 mm of the model's float32 one)."""
        flat = self.mean.copy()
        _accumulate(flat, (id_coeffs * self.id_scale[:len(id_coeffs)]).astype(np.float32), self.id_basis)
        _accumulate(flat, exp_coeffs.astype(np.float32), self.exp_basis)
        return flat.reshape(-1, 3)


def _shading_only(normals: NDArray, view_dirs: NDArray, light: Lighting, idx: NDArray,
                  lit: NDArray | float) -> NDArray[np.float64]:
    """The radiance of a white (albedo 0.5) surface at the seen vertices, for figures."""
    out = np.zeros_like(normals)
    out[idx] = shade(np.full((len(idx), 3), 0.5), normals[idx], view_dirs[idx], light, 0.0, lit)
    return out


def render_sample(r: _Renderer, rng: np.random.Generator, cfg: SynthConfig,
                  keep_steps: bool = False) -> SynthSample:
    """Draw and render one sample from ``rng`` (see the module docstring)."""
    size, ss = cfg.image_size, cfg.supersample
    steps: dict[str, Any] = {}

    # --- shape, pose, camera -------------------------------------------------------------
    id_c = rng.normal(0.0, cfg.id_std, cfg.num_id)
    exp_c = sample_expression(r.model.exp_names, rng, cfg.expression)
    head32 = r.shape(id_c, exp_c)
    # the haircut draws from a generator spawned from the sample's (which spawning does not
    # advance): the face, pose, labels and everything else are the same with any haircut or none
    hair = r.hair.sample(head32, rng.spawn(1)[0], cfg.hair)
    nh = len(head32)  # vertices from nh on are the hair's
    verts32 = np.concatenate([head32, hair.verts]) if len(hair.verts) else head32
    faces = np.concatenate([r.faces, hair.faces + nh]) if len(hair.faces) else r.faces
    # hair is seen from both sides: its triangles are never culled
    cull = np.concatenate([np.full(len(r.faces), r.cull), np.zeros(len(hair.faces), dtype=bool)])
    face_weight = np.concatenate([r.face_weight, np.zeros(len(hair.faces), dtype=np.float32)])
    yaw, pitch, roll = (rng.uniform(*cfg.yaw_deg), rng.uniform(*cfg.pitch_deg), rng.uniform(*cfg.roll_deg))
    rot = euler_to_rotation(np.radians(yaw), np.radians(pitch), np.radians(roll))
    dist = float(np.exp(rng.uniform(*np.log(cfg.distance_mm))))
    off = np.radians(cfg.off_axis_deg) * np.sqrt(rng.random())
    off_dir = rng.uniform(0.0, 2.0 * np.pi)
    sight = np.array([np.sin(off) * np.cos(off_dir), np.sin(off) * np.sin(off_dir), np.cos(off)])
    q = _rotation_towards(sight)
    view_rot = _MODEL_TO_CAM @ rot  # model frame -> view frame (pivot on the optical axis)
    # view frame: p_view = view_rot (v - pivot) + (0, 0, dist); the head seen off-axis: q p_view
    p_cam = np.empty((len(verts32), 3))
    view_depth = np.empty(len(verts32))
    _to_camera(verts32, r.pivot, view_rot, q, dist, p_cam, view_depth)
    if p_cam[:, 2].min() <= 0.0:  # pragma: no cover - distances are far larger than the head
        raise ValueError("the head reaches behind the camera; raise SynthConfig.distance_mm")

    # framing: the crop of a real photograph (box around the 68 landmarks, then augmentation),
    # applied to the normalised image plane (x / z, y / z) of an ideal pinhole camera
    lm_cam = p_cam[r.lmks68]
    aug = _augment_params(rng, cfg.augment, size) if cfg.augment is not None else AugmentParams()
    frame = CropTransform.build(landmark_box(lm_cam[:, :2] / lm_cam[:, 2:3], cfg.crop), size, aug)
    # image pixels, and the supersampled raster's (pixel centres at integers in both)
    pix = np.empty_like(p_cam)
    pts_hi = np.empty_like(p_cam)
    _to_image(p_cam, np.ascontiguousarray(frame.matrix[:2]), ss, pix, pts_hi)
    focal = frame.z_scale  # pixels per unit of the normalised plane: the focal length
    magnification = focal / dist
    yaw_r, pitch_r, roll_r = rotation_to_euler(_in_plane_rotation(aug.angle_deg) @ rot)
    pose = np.degrees([float(yaw_r), float(pitch_r), float(roll_r)])
    verts_img = np.empty((FACE_VERTS, 3), dtype=np.float32)
    verts_img[:, :2] = pix[:FACE_VERTS, :2]
    verts_img[:, 2] = magnification * (dist - view_depth[:FACE_VERTS])

    # --- rasterize at supersampled resolution ---------------------------------------------
    hi = size * ss
    gbuf = rasterize(pts_hi, faces, hi, hi, cull, occlusion_chunk=_OCCLUSION_CHUNK)
    idx = np.flatnonzero(covered_vertices(gbuf, faces, len(p_cam)))  # corners of seen triangles
    idx_head, idx_hair = idx[idx < nh], idx[idx >= nh] - nh  # (idx is sorted: head rows first)

    # --- appearance and lighting, per seen vertex ------------------------------------------
    app = sample_appearance(r.parts, rng, cfg.appearance, None if keep_steps else idx_head)
    hair_albedo = np.minimum(app.hair[None, :] * hair.shade[:, None], 1.0)
    albedo = np.concatenate([app.albedo[idx_head] if keep_steps else app.albedo, hair_albedo[idx_hair]])
    specular = np.concatenate([app.specular[idx_head] if keep_steps else app.specular,
                               np.full(len(idx_hair), hair.specular)])
    to_cam = (q @ view_rot).T
    model_normals = vertex_normals(verts32, faces)
    normals = np.empty((len(idx), 3))  # camera frame, seen vertices
    view_dirs = np.empty((len(idx), 3))  # towards the eye
    _seen_frames(idx, model_normals, to_cam, p_cam, normals, view_dirs)
    # two-sided hair: a side seen from behind is lit as the side facing the camera
    behind = (idx >= nh) & (np.einsum("ij,ij->i", normals, view_dirs) < 0.0)
    normals[behind] *= -1.0
    light = random_lighting(rng, cfg.light)
    lit: NDArray[np.float64] | float = 1.0
    if rng.random() < cfg.light.shadow_prob:
        lit = lit_from(p_cam, faces, light.light_dir, cfg.shadow_map, cull, idx).astype(np.float64)
    radiance = shade(albedo, normals, view_dirs, light, specular, lit)
    # auto-exposure, like a camera's metering: the seen skin gets a random mean brightness,
    # partly independent of the light (auto_exposure) and of the skin tone (skin_exposure)
    skin_seen = (idx < nh) & r.skin[np.minimum(idx, nh - 1)]
    if skin_seen.any():
        lum = float(matmul_rows(radiance[skin_seen], _LUMA).mean())
        alb = max(float(matmul_rows(albedo[skin_seen], _LUMA).mean()), 1e-4)
        irradiance = max(lum / alb, 1e-3)
    else:
        irradiance, alb = 1.0, float(app.skin @ _LUMA)
    exposure = rng.uniform(*cfg.light.exposure) / (irradiance ** cfg.light.auto_exposure
                                                   * (alb / _MID_SKIN) ** cfg.light.skin_exposure)
    colors = np.zeros((len(p_cam), 3), dtype=np.float32)
    colors[idx] = linear_to_srgb_fast(radiance * exposure)

    # --- interpolate, anti-alias, composite ------------------------------------------------
    # one pass: interpolate the colours at the supersamples and average them per pixel
    # (premultiplied colour, coverage, and coverage by the face region)
    res = resolve(gbuf, faces, colors, ss, face_weight)
    rgb, alpha, face_mask = res.color, res.alpha, res.weight
    background = random_background(size, rng, cfg.background)
    image = rgb + (1.0 - alpha[..., None]) * background
    box_lo, box_hi = verts_img[r.lmks68, :2].min(axis=0), verts_img[r.lmks68, :2].max(axis=0)
    skin_srgb = linear_to_srgb(app.skin * exposure).astype(np.float32)
    occluded, occ_alpha = add_occluders(image, (*box_lo, *box_hi), rng, cfg.occluders, skin_srgb)
    final = camera_effects(occluded, rng, cfg.camera)

    # --- visibility of the face region ----------------------------------------------------
    bias = cfg.visibility_bias_mm + cfg.visibility_bias_px * dist / (focal * ss)
    visibility = visible_in_depth_map(pts_hi[:FACE_VERTS], gbuf.depth, bias)

    if keep_steps:
        all_normals = matmul_rows(model_normals, to_cam)
        all_dirs = -p_cam / np.linalg.norm(p_cam, axis=1, keepdims=True)
        all_albedo = np.concatenate([app.albedo, hair_albedo])
        steps.update(gbuffer=gbuf, faces=faces, normals=interpolate(gbuf, faces, all_normals),
                     albedo=interpolate(gbuf, faces, linear_to_srgb(all_albedo)),
                     shading=interpolate(gbuf, faces, linear_to_srgb_fast(exposure * _shading_only(
                         all_normals, all_dirs, light, idx, lit))),
                     rendered=interpolate(gbuf, faces, colors), alpha=alpha, background=background, composite=image,
                     occluded=occluded, occluder_alpha=occ_alpha, lighting=light,
                     shadow=lit, appearance=app, hair=hair, id_coeffs=id_c, exp_coeffs=exp_c,
                     distance_mm=dist, focal_px=focal, exposure=exposure)
    lm = verts_img[r.lmks68]
    return SynthSample(image=final, verts_img=verts_img, lmks68=lm.astype(np.float32),
                       pose_deg=pose.astype(np.float32), visibility=visibility,
                       mask=face_mask, steps=steps)


class SyntheticFaces(Dataset[dict[str, torch.Tensor]]):
    """An indexable, reproducible dataset of synthetic faces (rendered on the fly).

    ``ds[i]`` is a dict of tensors with the keys of the real datasets
    (:class:`facegcn_lib.data.aflw2000.AFLW2000`, :class:`facegcn_lib.data.w300lp.W300LP`),
    so that they mix in one loader:

    * ``"image"``: (3, H, W) uint8 RGB, already the 256x256 training crop;
    * ``"vertices"``: (9409, 3) float32 face-region vertices, ``"landmarks"``: (68, 3) float32
      (image frame, see the module docstring);
    * ``"pose"``: (3,) float32 yaw, pitch, roll in radians (like the real datasets');
    * ``"visibility"``: (9409,) bool;
    * ``"mask"``: (H, W) bool, pixels mostly covered by the face region.

    Sample ``i`` depends only on ``(cfg, seed, i)``. The ICT model is loaded lazily in each
    process (DataLoader workers load their own), so constructing the dataset is free.

    Args:
        cfg: what to draw.
        seed: the dataset's seed.
        length: the number of samples ``len(ds)`` reports (samples exist for any index).
        model: the whole ICT head (default: :func:`facegcn_lib.morphable.ict.load_ict_model`).
    """

    def __init__(self, cfg: SynthConfig | None = None, seed: int = 0, length: int = 100_000,
                 model: MorphableModel | None = None) -> None:
        self.cfg = cfg or SynthConfig()
        self.seed = int(seed)
        self.length = int(length)
        self._model = model
        self._renderer: _Renderer | None = None

    def __len__(self) -> int:
        return self.length

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_renderer"] = None  # rebuilt lazily in the worker
        return state

    @property
    def renderer(self) -> _Renderer:
        """The lazily built per-process renderer state."""
        if self._renderer is None:
            model = self._model if self._model is not None else load_ict_model()
            self._renderer = _Renderer(model)
        return self._renderer

    def rng(self, index: int) -> np.random.Generator:
        """The random generator of sample ``index`` (a function of the seed and the index)."""
        return np.random.default_rng([self.seed, int(index)])

    def sample(self, index: int, keep_steps: bool = False) -> SynthSample:
        """Sample ``index`` as numpy arrays, optionally with its intermediate images."""
        if index < 0:
            raise IndexError(f"sample index must be >= 0, got {index}")
        return render_sample(self.renderer, self.rng(index), self.cfg, keep_steps)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        s = self.sample(index)
        return {
            "image": torch.from_numpy(np.ascontiguousarray(s.image.transpose(2, 0, 1))),
            "vertices": torch.from_numpy(s.verts_img),
            "landmarks": torch.from_numpy(s.lmks68),
            "pose": torch.from_numpy(np.radians(s.pose_deg).astype(np.float32)),
            "visibility": torch.from_numpy(s.visibility),
            "mask": torch.from_numpy(s.mask > 0.5),
        }
