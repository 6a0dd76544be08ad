"""Umeyama similarity fits and the pose of a mesh."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from scipy.io import loadmat

from facegcn_lib.geometry.projection import Similarity, pose_para_to_image
from facegcn_lib.geometry.rotations import euler_to_rotation
from facegcn_lib.geometry.umeyama import FitError, pose_from_mesh, pose_from_mesh_batch, umeyama
from facegcn_lib.morphable.bfm import load_bfm_mean


def test_recovers_an_exact_similarity() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(40, 3))
    true = Similarity(3.0, euler_to_rotation(0.5, -0.3, 1.0), np.array([5.0, -1.0, 2.0]))
    fit = umeyama(src, true.apply(src))
    assert fit.scale == pytest.approx(3.0)
    np.testing.assert_allclose(fit.rotation, true.rotation, atol=1e-10)
    np.testing.assert_allclose(fit.translation, true.translation, atol=1e-10)
    rigid = umeyama(src, true.apply(src), with_scale=False)
    assert rigid.scale == 1.0 and np.linalg.det(rigid.rotation) == pytest.approx(1.0)


def test_noisy_fit_is_least_squares_and_never_a_reflection() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(60, 3))
    dst = src * [1, 1, -1] + rng.normal(size=src.shape) * 0.01  # a mirror image
    fit = umeyama(src, dst)
    assert np.linalg.det(fit.rotation) == pytest.approx(1.0)
    noisy = Similarity(2.0, euler_to_rotation(0.2, 0.1, 0.0), np.zeros(3)).apply(src)
    noisy += rng.normal(size=src.shape) * 0.05
    best = umeyama(src, noisy)
    cost = ((best.apply(src) - noisy) ** 2).sum()
    for delta in (1e-3, -1e-3):  # a perturbed scale does worse
        other = Similarity(best.scale + delta, best.rotation, best.translation)
        assert ((other.apply(src) - noisy) ** 2).sum() > cost


def test_weights_and_errors() -> None:
    src = np.array([[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [5, 5, 5]])
    dst = src.copy()
    dst[-1] = [-50, 3, 9]  # an outlier with zero weight
    fit = umeyama(src, dst, weights=[1, 1, 1, 1, 0])
    np.testing.assert_allclose(fit.apply(src[:4]), src[:4], atol=1e-10)
    with pytest.raises(FitError, match="coincide"):
        umeyama(np.ones((5, 3)), src)
    with pytest.raises(FitError, match=r"\(N, D\)"):
        umeyama(src, src[:3])


def test_pose_from_a_projected_mesh(data_root: Path) -> None:
    bfm = load_bfm_mean(data_root)
    template = bfm.verts[::50]
    for yaw, pitch, roll in [(0.3, -0.2, 0.1), (-1.2, 0.4, -0.3), (1.4, 0.0, 0.5)]:
        pose_para = [pitch, yaw, roll, 200.0, 180.0, 20.0, 0.0015]
        mesh = pose_para_to_image(template, pose_para, height=450)
        pose = pose_from_mesh(mesh, template)
        assert (pose.yaw, pose.pitch, pose.roll) == pytest.approx((yaw, pitch, roll), abs=1e-9)
        assert pose.similarity.scale == pytest.approx(1.5) and pose.rmse < 1e-9
    batch = pose_from_mesh_batch(np.stack([mesh, mesh]), template)
    assert batch.shape == (2, 3) and batch[1] == pytest.approx([1.4, 0.0, 0.5])


def test_pose_from_aflw2000_landmarks(data_root: Path) -> None:
    """The BFM mean's 68 landmarks fitted to AFLW2000-3D's 3D landmarks give its yaw."""
    bfm = load_bfm_mean(data_root)
    base = data_root / "aflw2000-3d"
    with open(base / "rows.csv") as f:
        names = [r["image"] for r in csv.DictReader(f)]
    for name in names:
        mat = loadmat(base / "images" / f"{name}.mat")
        pose = pose_from_mesh(mat["pt3d_68"].T, bfm.verts[bfm.lmks68])
        yaw, pitch = mat["Pose_Para"].ravel()[1], mat["Pose_Para"].ravel()[0]
        assert abs(np.degrees(pose.yaw - yaw)) < 6, name
        assert abs(np.degrees(pose.pitch - pitch)) < 10, name
