"""Tests of moment pooling: shapes, a slow reference, centroids, batched == per-sample."""

from __future__ import annotations

import pytest
import torch

from facegcn_lib.nn.pooling import MomentPool, moment_pool, pixel_centres


def _slow_moments(features: torch.Tensor) -> torch.Tensor:
    """The definition, one pixel at a time (pixel centres on [-1, 1])."""
    b, c, h, w = features.shape
    out = torch.zeros(b, 3 * c, dtype=features.dtype)
    for i in range(h):
        for j in range(w):
            x = (2 * j + 1) / w - 1
            y = (2 * i + 1) / h - 1
            f = features[:, :, i, j]
            out[:, :c] += f
            out[:, c:2 * c] += x * f
            out[:, 2 * c:] += y * f
    return out / (h * w)


def test_pixel_centres_span_the_unit_frame() -> None:
    torch.testing.assert_close(pixel_centres(4), torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert pixel_centres(1).tolist() == [0.0]


@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (1, 3, 3, 7), (3, 2, 1, 1)])
def test_equals_the_slow_reference(shape: tuple[int, int, int, int]) -> None:
    torch.manual_seed(0)
    f = torch.randn(*shape, dtype=torch.float64)
    out = moment_pool(f)
    assert out.shape == (shape[0], 3 * shape[1])
    torch.testing.assert_close(out, _slow_moments(f))


def test_first_third_is_global_average_pooling() -> None:
    f = torch.randn(2, 6, 5, 3)
    torch.testing.assert_close(moment_pool(f)[:, :6], torch.nn.AdaptiveAvgPool2d(1)(f).flatten(1))


def test_a_single_hot_pixel_gives_its_position() -> None:
    f = torch.zeros(1, 1, 4, 8)
    f[0, 0, 3, 1] = 2.0  # row 3 (bottom), column 1 (left)
    m, mx, my = moment_pool(f)[0]
    assert (mx / m).item() == pytest.approx(pixel_centres(8)[1].item())
    assert (my / m).item() == pytest.approx(pixel_centres(4)[3].item())


def test_moving_a_feature_moves_its_moment_and_not_its_mean() -> None:
    f = torch.zeros(1, 1, 6, 6)
    f[0, 0, 2, 1] = 1.0
    g = torch.roll(f, shifts=2, dims=3)  # two pixels to the right
    a, b = moment_pool(f)[0], moment_pool(g)[0]
    assert a[0] == b[0] and a[2] == b[2]
    assert b[1] - a[1] == pytest.approx(2 * 2 / 6 / 36)  # two pixel widths (2/6), over 36 pixels


def test_batched_equals_per_sample_and_module_shape() -> None:
    torch.manual_seed(1)
    f = torch.randn(3, 4, 5, 5)
    pool = MomentPool()
    out = pool(f)
    assert out.shape == (3, 12, 1, 1)
    torch.testing.assert_close(out, torch.cat([pool(f[i:i + 1]) for i in range(3)]))
    assert repr(pool) == "MomentPool(mean, x and y moments)"


def test_rejects_a_flat_input() -> None:
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        moment_pool(torch.zeros(2, 3))
