"""Tests of facegcn_lib.eval.icp: Kabsch, rigid ICP and the Florence-style error."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray

from facegcn_lib.eval.icp import (
    OUTER_EYE_CORNERS_68,
    ICPConfig,
    florence_error,
    kabsch,
    nearest_distances,
    rigid_icp,
)
from facegcn_lib.eval.metrics import MetricInputError

MAX_ANGLE_DEG = 30.0


def surface_cloud(rng: np.random.Generator, n: int = 500) -> NDArray:
    """(n, 3) random points on a smooth, asymmetric face-sized height field (millimetres)."""
    u = rng.uniform(-1.0, 1.0, n)
    v = rng.uniform(-1.3, 1.3, n)
    z = 0.5 * np.exp(-(u**2 + v**2)) + 0.2 * u**2 * v + 0.1 * v
    return np.stack([u, v, z], axis=1) * 50.0


def random_rotation(rng: np.random.Generator, max_deg: float) -> NDArray:
    """A rotation about a random axis by a random angle in [0, max_deg] (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    theta = np.deg2rad(rng.uniform(0.0, max_deg))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(theta) * k + (1.0 - np.cos(theta)) * k @ k


def test_kabsch_recovers_motion_and_avoids_reflection() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 3))
    rot = random_rotation(rng, 180.0)
    t = np.array([1.0, -2.0, 3.0])
    r_fit, t_fit = kabsch(src, src @ rot.T + t)
    np.testing.assert_allclose(r_fit, rot, atol=1e-12)
    np.testing.assert_allclose(t_fit, t, atol=1e-12)
    mirrored = src * np.array([1.0, 1.0, -1.0])
    r_fit, _ = kabsch(src, mirrored)
    assert np.linalg.det(r_fit) == pytest.approx(1.0)
    # a slow reference: the fit is no worse than any of many random rotations
    best = np.sum((src @ r_fit.T + _ - mirrored) ** 2)
    for _k in range(200):
        r = random_rotation(rng, 180.0)
        tt = mirrored.mean(0) - r @ src.mean(0)
        assert np.sum((src @ r.T + tt - mirrored) ** 2) >= best - 1e-9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_icp_recovers_rigid_motion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    cloud = surface_cloud(rng)
    rot = random_rotation(rng, MAX_ANGLE_DEG)
    t = rng.normal(0.0, 10.0, 3)
    moved = cloud @ rot.T + t
    res = rigid_icp(moved, cloud)
    np.testing.assert_allclose(res.aligned, cloud, atol=1e-6)
    np.testing.assert_allclose(res.rotation, rot.T, atol=1e-6)  # the inverse motion
    np.testing.assert_allclose(res.translation, -rot.T @ t, atol=1e-6)
    np.testing.assert_allclose(moved @ res.rotation.T + res.translation, res.aligned, atol=1e-9)
    assert res.history[-1] < 1e-6 < res.history[0]
    rotation, translation, aligned, history = res  # unpacks as a 4-tuple
    assert rotation is res.rotation and translation is res.translation
    assert aligned is res.aligned and len(history) >= 2


def test_icp_from_correspondences_and_subset() -> None:
    rng = np.random.default_rng(4)
    cloud = surface_cloud(rng, 800)
    rot = random_rotation(rng, 90.0)  # too far for plain ICP, fine with landmarks
    part = np.arange(0, 800, 3)
    moved = cloud[part] @ rot.T + np.array([5.0, 0.0, -3.0])
    lm = np.arange(0, part.size, 25)
    res = rigid_icp(moved, cloud, correspondences=(lm, part[lm]))
    np.testing.assert_allclose(res.aligned, cloud[part], atol=1e-6)


def test_icp_config_and_input_checks() -> None:
    cloud = surface_cloud(np.random.default_rng(5), 50)
    res = rigid_icp(cloud, cloud, config=ICPConfig(init="identity"))
    np.testing.assert_allclose(res.rotation, np.eye(3), atol=1e-12)
    assert res.history[0] == 0.0
    res = rigid_icp(cloud + 1.0, cloud, config=ICPConfig(max_iterations=1, init="identity"))
    assert len(res.history) == 2
    with pytest.raises(MetricInputError, match="max_iterations"):
        ICPConfig(max_iterations=0)
    with pytest.raises(MetricInputError, match=r"\(N, 3\)"):
        rigid_icp(cloud[:, :2], cloud)
    with pytest.raises(MetricInputError, match="same length"):
        rigid_icp(cloud, cloud, correspondences=([0, 1, 2], [0, 1]))


def test_nearest_distances_against_brute_force() -> None:
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(70, 3))
    brute = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(nearest_distances(a, b), brute, rtol=1e-12)


def test_florence_error_of_a_rigid_copy_is_zero() -> None:
    rng = np.random.default_rng(7)
    gt = surface_cloud(rng, 600)
    pred = gt @ random_rotation(rng, MAX_ANGLE_DEG).T + np.array([3.0, 1.0, -2.0])
    eyes = (10, 20)
    for direction in ("pred_to_gt", "gt_to_pred", "symmetric"):
        assert florence_error(pred, gt, eyes, direction=direction) < 1e-8  # type: ignore[arg-type]
    assert florence_error(pred, gt, iod=60.0) < 1e-8


def test_florence_error_normalisation() -> None:
    rng = np.random.default_rng(8)
    gt = surface_cloud(rng, 400)
    noisy = gt + rng.normal(0.0, 0.5, gt.shape)
    e1 = florence_error(noisy, gt, iod=1.0)
    assert e1 > 0.1
    assert florence_error(noisy, gt, iod=2.0) == pytest.approx(e1 / 2.0)
    iod = float(np.linalg.norm(gt[3] - gt[7]))
    assert florence_error(noisy, gt, (3, 7)) == pytest.approx(e1 / iod)
    assert OUTER_EYE_CORNERS_68 == (36, 45)
    with pytest.raises(MetricInputError, match="outer_eye_idx"):
        florence_error(noisy, gt, None)
    with pytest.raises(MetricInputError, match="positive"):
        florence_error(noisy, gt, (3, 3))
    with pytest.raises(MetricInputError, match="direction"):
        florence_error(noisy, gt, iod=1.0, direction="sideways")  # type: ignore[arg-type]
