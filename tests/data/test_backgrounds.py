"""Backgrounds: the noise and grids against the obvious float32 versions."""

from __future__ import annotations

import cv2
import numpy as np

from facegcn_lib.data.backgrounds import (
    BackgroundConfig,
    pixel_grid,
    random_background,
    smooth_noise,
)


def reference_smooth_noise(size: int, rng: np.random.Generator, octaves: int = 4,
                           base_cells: int = 3) -> np.ndarray:
    """float32 grids upsampled by OpenCV in float32, weighted, summed and normalised."""
    acc = np.zeros((size, size, 3), dtype=np.float32)
    amp, total, cells = 1.0, 0.0, base_cells
    for _ in range(octaves):
        grid = rng.random((cells, cells, 3)).astype(np.float32)
        acc += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        total += amp
        amp *= float(rng.uniform(0.35, 0.65))
        cells *= 2
    acc /= total
    return (acc - acc.min()) / max(float(acc.max() - acc.min()), 1e-6)


def test_smooth_noise_matches_the_float32_reference() -> None:
    for seed, octaves, cells in ((0, 4, 3), (1, 5, 7), (2, 2, 2)):
        got = smooth_noise(40, np.random.default_rng(seed), octaves, cells)
        ref = reference_smooth_noise(40, np.random.default_rng(seed), octaves, cells)
        assert got.dtype == np.float32 and got.shape == (40, 40, 3)
        np.testing.assert_allclose(got, ref, atol=1e-5)
        assert got.min() == 0.0 and got.max() == 1.0


def test_pixel_grid_broadcasts_like_mgrid() -> None:
    rows, cols = pixel_grid(5)
    yy, xx = np.mgrid[0:5, 0:5].astype(np.float32)
    np.testing.assert_array_equal(rows + 0 * cols, yy)
    np.testing.assert_array_equal(cols + 0 * rows, xx)


def test_every_kind_is_float32_in_range_and_reproducible() -> None:
    for kind in range(5):
        probs = tuple(1.0 if k == kind else 0.0 for k in range(5))
        cfg = BackgroundConfig(kind_probs=probs)  # type: ignore[arg-type]
        a = random_background(24, np.random.default_rng(kind), cfg)
        assert a.dtype == np.float32 and a.shape == (24, 24, 3)
        assert 0.0 <= a.min() and a.max() <= 1.0
        assert (a == random_background(24, np.random.default_rng(kind), cfg)).all()
