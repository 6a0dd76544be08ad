"""Camera effects: the one-pass colour, noise and quantisation kernel against plain numpy."""

from __future__ import annotations

import numpy as np
import pytest

from facegcn_lib.data.effects import (
    NOISE_TABLE_SIZE,
    CameraConfig,
    OccluderConfig,
    add_occluders,
    camera_effects,
    develop,
    noise_table,
)

LUMA = np.array([0.299, 0.587, 0.114])


def reference_develop(img: np.ndarray, saturation: float | None = None, contrast: float = 1.0,
                      brightness: float = 1.0, gamma: float = 1.0, gray: bool = False,
                      noise_std: float = 0.0, noise: np.ndarray | None = None) -> np.ndarray:
    """Each step as a whole-image numpy operation, in float64, with an exact power."""
    x = img.astype(np.float64)
    if saturation is not None:
        y = (x @ LUMA)[..., None]
        mean = float(y.mean())
        x = y + (x - y) * saturation
        x = (mean + (x - mean) * contrast) * brightness
        x = np.clip(x, 0.0, 1.0) ** gamma
    if gray:
        x = np.repeat((x @ LUMA)[..., None], 3, axis=2)
    if noise_std > 0.0:
        assert noise is not None
        x = x + noise_std * np.sqrt(np.clip(x, 0.02, 1.0) / 0.5) * noise[:x.size].reshape(x.shape)
    return np.clip(x * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


@pytest.mark.parametrize("seed", range(4))
def test_develop_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    img = np.clip(rng.normal(0.5, 0.35, (13, 17, 3)), -0.1, 1.1).astype(np.float32)
    noise = rng.standard_normal(img.size).astype(np.float32)
    kw = dict(saturation=rng.uniform(0.7, 1.3), contrast=rng.uniform(0.7, 1.3),
              brightness=rng.uniform(0.65, 1.35), gamma=rng.uniform(0.8, 1.25))
    for args in ({}, kw, {**kw, "gray": True}, {"noise_std": 0.04, "noise": noise},
                 {**kw, "noise_std": 0.02, "noise": noise}):
        got = develop(img, **args).astype(int)
        ref = reference_develop(img, **args).astype(int)
        # the gamma table interpolates the power: at most one step of 255, rarely
        assert np.abs(got - ref).max() <= 1
        assert (got != ref).mean() < 0.02
    assert (develop(img) == reference_develop(img)).all()
    with pytest.raises(ValueError, match="noise"):
        develop(img, noise_std=0.1, noise=noise[:10])


def test_noise_table_is_fixed_and_standard_normal() -> None:
    t = noise_table()
    assert t.shape == (NOISE_TABLE_SIZE,) and t.dtype == np.float32
    assert abs(float(t.mean())) < 5e-3 and abs(float(t.std()) - 1.0) < 5e-3
    assert noise_table() is t  # made once per process


def test_effects_are_reproducible_and_do_something() -> None:
    rng = np.random.default_rng(0)
    img = rng.random((32, 32, 3)).astype(np.float32)
    always = CameraConfig(blur_prob=1, motion_prob=1, noise_prob=1, jitter_prob=1, jpeg_prob=1)
    a = camera_effects(img, np.random.default_rng(3), always)
    b = camera_effects(img, np.random.default_rng(3), always)
    assert a.dtype == np.uint8 and a.shape == img.shape and (a == b).all()
    plain = camera_effects(img, np.random.default_rng(3), CameraConfig(
        blur_prob=0, motion_prob=0, noise_prob=0, jitter_prob=0, gray_prob=0, jpeg_prob=0))
    assert (plain == np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)).all()
    assert np.abs(a.astype(int) - plain.astype(int)).mean() > 1


def test_occluders_cover_part_of_the_face_box() -> None:
    img = np.zeros((64, 64, 3), dtype=np.float32)
    out, alpha = add_occluders(img, (16, 16, 48, 48), np.random.default_rng(1), OccluderConfig(prob=1.0))
    assert out.shape == img.shape and alpha.shape == (64, 64)
    assert 0 < alpha.mean() < 1 and alpha[16:48, 16:48].max() > 0.5
