"""The per-vertex appearance kernel against the plain numpy version it replaced."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray

from facegcn_lib.data.appearance import (
    _BLOOD_LOG,
    _BLUSH_TINT,
    _GUMS_TINT,
    _IRIS_DEG,
    _LASH_DARKEN,
    _LIMBUS_DEG,
    _MELANIN_LOG,
    _MOUTH_LINEAR,
    _PUPIL_DEG,
    _PUPIL_LINEAR,
    _SOCKET_TINT,
    HAIR_COLORS_SRGB,
    IRIS_COLORS_SRGB,
    MONK_SKIN_TONES_SRGB,
    Appearance,
    AppearanceConfig,
    HeadParts,
    Part,
    _gauss,
    _smoothstep,
    hex_to_linear,
    sample_appearance,
    skin_tone_color,
)
from facegcn_lib.render.shading import matmul_rows, srgb_to_linear

_PER_VERTEX = ("part", "lips", "brows", "lash", "beard", "blush", "tzone", "elevation", "azimuth",
               "height", "iris_angle", "ao", "pos")


def _mix(base: NDArray[np.float32], color: NDArray | float, weight: NDArray) -> NDArray[np.float32]:
    """``base * (1 - w) + color * w`` with (V,) weights, in place on ``base``."""
    w = weight.astype(np.float32)[:, None]
    base *= 1.0 - w
    base += np.asarray(color, dtype=np.float32) * w
    return base



def reference_appearance(parts: HeadParts, rng: np.random.Generator,
                      cfg: AppearanceConfig | None = None,
                      subset: NDArray[np.int64] | None = None) -> Appearance:
    """Draw a random appearance for the head described by ``parts``.

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
    if subset is not None:
        parts = replace(parts, **{name: getattr(parts, name)[subset] for name in _PER_VERTEX})
    p = parts.part
    t = float(rng.uniform(0.0, len(MONK_SKIN_TONES_SRGB) - 1.0))
    skin = skin_tone_color(t, c.skin_saturation) * np.exp(rng.normal(0.0, c.tone_jitter, 3))
    skin *= np.exp(rng.uniform(*c.redness) * np.asarray(_BLOOD_LOG))  # blood under the skin
    skin *= c.albedo_scale

    # log-albedo: low-frequency plane waves over the neutral head, plus fine mottling
    dirs = rng.normal(size=(c.lowfreq_waves, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    lam = rng.uniform(*c.lowfreq_wavelength_mm, size=c.lowfreq_waves)
    phase = rng.uniform(0.0, 2.0 * np.pi, size=c.lowfreq_waves)
    waves = np.sin(matmul_rows(parts.pos, dirs.T * (2.0 * np.pi / lam)) + phase).astype(np.float32)
    # each wave varies the two skin chromophores: melanin (darker, most in blue) and blood
    # (redder: less green and blue); no other hue shifts
    chroma = rng.normal(0.0, 1.0, size=(c.lowfreq_waves, 2)) @ np.array([_MELANIN_LOG, _BLOOD_LOG])
    mix = (chroma * c.lowfreq_amp / np.sqrt(c.lowfreq_waves)).astype(np.float32)
    fine = rng.standard_normal((full, 1), dtype=np.float32)
    if subset is not None:
        fine = fine[subset]
    log_a = matmul_rows(waves, mix) + c.mottle_amp * fine
    blush = np.float32(rng.uniform(0.0, c.blush_amp)) * parts.blush.astype(np.float32)
    log_a += np.log1p(-blush[:, None] * np.asarray(_BLUSH_TINT, dtype=np.float32))
    albedo = np.exp(log_a) * skin.astype(np.float32)

    # lips
    lip = skin * np.array(c.lip_tint) * np.exp(rng.normal(0.0, 0.08, 3))
    if rng.random() < c.lipstick_prob:
        lip = srgb_to_linear(np.array([rng.uniform(0.4, 0.8), rng.uniform(0.0, 0.2), rng.uniform(0.05, 0.3)]))
    _mix(albedo, lip, parts.lips)

    # hair, brows, stubble and clothing
    hair_colors = hex_to_linear(HAIR_COLORS_SRGB)
    dark_bias = rng.random() < 0.5 + 0.05 * t  # darker skin -> more often dark hair
    hair = hair_colors[rng.integers(0, 3) if dark_bias else rng.integers(0, len(hair_colors))]
    hair = hair * np.exp(rng.normal(0.0, 0.1, 3))
    strands = np.exp(c.hair_noise * fine)
    _mix(albedo, 0.5 * (skin + hair) * _LASH_DARKEN, parts.lash * rng.uniform(*c.lash_density))
    skin_part = (p == Part.SKIN).astype(np.float32)
    if rng.random() < c.hair_prob:
        front = rng.uniform(*c.hairline_front_deg)
        back, side = rng.uniform(-70.0, -30.0), rng.uniform(5.0, 25.0)
        # line(phi) = a0 + a1 cos(phi) + a2 cos(2 phi) through front (0), side (90), back (180)
        a1 = 0.5 * (front - back)
        a0 = 0.5 * (0.5 * (front + back) + side)
        a2 = 0.5 * (0.5 * (front + back) - side)
        phi = np.radians(parts.azimuth)
        line = a0 + a1 * np.cos(phi) + a2 * np.cos(2 * phi)
        soft = rng.uniform(1.5, 6.0)
        w_hair = _smoothstep(parts.elevation - line, -soft, soft) * skin_part * rng.uniform(0.85, 1.0)
        _mix(albedo, 0.0, w_hair)
        albedo += (hair.astype(np.float32) * strands) * w_hair.astype(np.float32)[:, None]
    brow_color = hair if rng.random() < 0.8 else hair_colors[rng.integers(0, 3)]
    w_brow = (rng.uniform(*c.brow_density) * parts.brows).astype(np.float32)
    _mix(albedo, 0.0, w_brow)
    albedo += brow_color.astype(np.float32) * strands * w_brow[:, None]
    if rng.random() < c.beard_prob:
        w_beard = (rng.uniform(*c.beard_density) * parts.beard).astype(np.float32)
        _mix(albedo, 0.0, w_beard)
        stubble = np.exp(0.5 * c.hair_noise * fine)
        albedo += (0.5 * (hair + skin)).astype(np.float32) * stubble * w_beard[:, None]
    if rng.random() < c.clothing_prob:
        collar = rng.uniform(25.0, 60.0)
        w_cloth = _smoothstep(parts.height - collar - 6.0 * np.cos(np.radians(parts.azimuth)), -3.0, 3.0)
        _mix(albedo, srgb_to_linear(rng.uniform(0.05, 0.9, 3)), w_cloth * skin_part)

    # eyes, eyelids, mouth
    eye_idx = np.flatnonzero(p == Part.EYEBALL)
    sclera = srgb_to_linear(np.full(3, rng.uniform(*c.sclera_srgb))) * np.array([1.0, 0.97, 0.95])
    iris = hex_to_linear(IRIS_COLORS_SRGB)[rng.integers(0, len(IRIS_COLORS_SRGB))]
    iris = iris * np.exp(rng.normal(0.0, 0.1, 3))
    pupil = rng.uniform(*_PUPIL_DEG)
    ang = parts.iris_angle[eye_idx]
    eye = np.tile(sclera, (len(eye_idx), 1)).astype(np.float32)
    _mix(eye, iris, _smoothstep(_IRIS_DEG - ang, -1.0, 1.0))
    _mix(eye, iris * 0.3, _gauss(ang - _IRIS_DEG, _LIMBUS_DEG) * 0.6)
    _mix(eye, np.full(3, _PUPIL_LINEAR), _smoothstep(pupil - ang, -0.8, 0.8))
    albedo[eye_idx] = eye
    albedo[p == Part.EYE_SOCKET] = skin * np.array(_SOCKET_TINT)
    teeth = srgb_to_linear(np.full(3, rng.uniform(*c.teeth_srgb))) * np.array([1.0, 0.96, 0.86])
    albedo[p == Part.TEETH] = teeth
    albedo[p == Part.GUMS] = skin * np.array(_GUMS_TINT) + np.array([0.15, 0.0, 0.0])
    albedo[p == Part.MOUTH] = np.array(_MOUTH_LINEAR)

    ao = (c.ao_floor + (1.0 - c.ao_floor) * parts.ao).astype(np.float32)
    albedo = np.clip(albedo * ao[:, None], 0.0, 1.0)
    spec = np.asarray(c.specular_of_part, dtype=np.float32)[p] * (1.0 + parts.tzone.astype(np.float32)) * ao
    return Appearance(albedo=albedo.astype(np.float64), specular=spec.astype(np.float64),
                      skin_tone=t, skin=np.asarray(skin, dtype=np.float64))


def random_parts(n: int, seed: int = 0) -> HeadParts:
    """A fake head: every part, and random masks, angles and positions over ``n`` vertices."""
    rng = np.random.default_rng(seed)
    part = np.arange(n) % 8
    return HeadParts(part=part.astype(np.int8), draw_faces=np.zeros((0, 3), dtype=np.int64),
                     lips=rng.random(n), brows=rng.random(n), lash=rng.random(n), beard=rng.random(n),
                     blush=rng.random(n), tzone=rng.random(n), elevation=rng.uniform(-90, 90, n),
                     azimuth=rng.uniform(-180, 180, n), height=rng.uniform(-50, 120, n),
                     iris_angle=np.where(part == Part.EYEBALL, rng.uniform(0, 40, n), 180.0),
                     ao=rng.random(n), pos=rng.uniform(-100, 100, (n, 3)))


@pytest.mark.parametrize("seed", range(6))
def test_kernel_matches_the_numpy_reference(seed: int) -> None:
    parts = random_parts(400)
    # make every random branch (hair, beard, clothing, lipstick) happen in some seeds
    cfg = AppearanceConfig() if seed < 3 else AppearanceConfig(hair_prob=1.0, beard_prob=1.0,
                                                               clothing_prob=1.0, lipstick_prob=1.0)
    subset = None if seed % 2 else np.sort(np.random.default_rng(seed).choice(400, 150, replace=False))
    got = sample_appearance(parts, np.random.default_rng(seed), cfg, subset)
    ref = reference_appearance(parts, np.random.default_rng(seed), cfg, subset)
    np.testing.assert_allclose(got.albedo, ref.albedo, atol=1e-5)
    np.testing.assert_allclose(got.specular, ref.specular, rtol=1e-6, atol=1e-7)
    assert got.skin_tone == ref.skin_tone
    np.testing.assert_allclose(got.skin, ref.skin)


def test_subset_is_the_rows_of_the_whole() -> None:
    parts = random_parts(300)
    whole = sample_appearance(parts, np.random.default_rng(7))
    idx = np.array([5, 3, 299, 0])
    part = sample_appearance(parts, np.random.default_rng(7), subset=idx)
    np.testing.assert_array_equal(part.albedo, whole.albedo[idx])
    np.testing.assert_array_equal(part.specular, whole.specular[idx])
