"""Yaw/pitch/roll <-> rotation matrices, against 3DDFA's convention and AFLW2000-3D's poses."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

from facegcn_lib.geometry.projection import pose_para_to_image
from facegcn_lib.geometry.rotations import (
    euler_to_rotation,
    euler_to_rotation_torch,
    pose_para_rotation,
    rotation_to_euler,
    rotation_to_euler_torch,
)
from facegcn_lib.morphable.bfm import load_bfm_mean


def _angle2matrix_3ddfa(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA / face3d ``angle2matrix_3ddfa``, written out as they do (slow reference)."""
    x, y, z = pitch, yaw, roll
    rx = np.array([[1, 0, 0], [0, np.cos(x), np.sin(x)], [0, -np.sin(x), np.cos(x)]])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])
    rz = np.array([[np.cos(z), np.sin(z), 0], [-np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rx @ ry @ rz


def _random_angles(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([rng.uniform(-1.5, 1.5, n), rng.uniform(-np.pi, np.pi, n),
                     rng.uniform(-np.pi, np.pi, n)], axis=1)


def test_matches_3ddfa_and_is_a_rotation() -> None:
    ang = _random_angles(50)
    rots = euler_to_rotation(ang[:, 0], ang[:, 1], ang[:, 2])
    assert rots.shape == (50, 3, 3)
    for (yaw, pitch, roll), r in zip(ang, rots, strict=True):
        np.testing.assert_allclose(r, _angle2matrix_3ddfa(pitch, yaw, roll), atol=1e-12)
        np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
        assert np.linalg.det(r) == pytest.approx(1.0)


def test_round_trip_numpy_and_torch() -> None:
    ang = _random_angles(200, seed=1)
    rots = euler_to_rotation(*ang.T)
    back = np.stack(rotation_to_euler(rots), axis=1)
    np.testing.assert_allclose(back, ang, atol=1e-9)
    t = torch.as_tensor(ang)
    rt = euler_to_rotation_torch(t[:, 0], t[:, 1], t[:, 2])
    np.testing.assert_allclose(rt.numpy(), rots, atol=1e-12)
    np.testing.assert_allclose(torch.stack(rotation_to_euler_torch(rt), 1).numpy(), ang, atol=1e-9)


@pytest.mark.parametrize("yaw", [np.pi / 2, -np.pi / 2])
def test_gimbal_lock_still_reconstructs_the_rotation(yaw: float) -> None:
    r = euler_to_rotation(yaw, 0.3, -0.2)
    y, p, ro = rotation_to_euler(r)
    assert ro == 0.0 and y == pytest.approx(yaw)
    np.testing.assert_allclose(euler_to_rotation(y, p, ro), r, atol=1e-7)
    yt, pt, rot = rotation_to_euler_torch(torch.as_tensor(r))
    np.testing.assert_allclose(euler_to_rotation(yt.item(), pt.item(), rot.item()), r, atol=1e-7)


def test_signs_as_documented() -> None:
    nose = np.array([0.0, 0.0, 100.0])  # model frame: z towards the viewer
    right = np.array([100.0, 0.0, 0.0])
    deg = np.radians(20)
    assert (euler_to_rotation(deg, 0, 0) @ nose)[0] < 0, "positive yaw: nose to the image's left"
    assert (euler_to_rotation(0, deg, 0) @ nose)[1] > 0, "positive pitch: nose up (model y up)"
    # positive roll: clockwise on screen; a point on the right moves down (model y decreases)
    assert (euler_to_rotation(0, 0, deg) @ right)[1] < 0


def test_aflw2000_pose_para(data_root: Path) -> None:
    """AFLW2000-3D's Pose_Para with the BFM mean reproduces its 68 landmarks (a few pixels:
    the mean shape lacks the fitted identity/expression), and its yaw is the benchmark's."""
    bfm = load_bfm_mean(data_root)
    base = data_root / "aflw2000-3d"
    yaws = np.load(base / "AFLW2000-3D.pose.npy")
    with open(base / "rows.csv") as f:
        rows = {r["image"]: int(r["row"]) for r in csv.DictReader(f)}
    for name, row in rows.items():
        mat = loadmat(base / "images" / f"{name}.mat")
        pose = mat["Pose_Para"].ravel()
        assert np.degrees(pose[1]) == pytest.approx(yaws[row], abs=1e-3)
        proj = pose_para_to_image(bfm.verts[bfm.lmks68], pose, height=450)
        gt = mat["pt3d_68"].T - [1, 1, 0]  # MATLAB 1-based pixels -> 0-based
        err = np.linalg.norm(proj[:, :2] - gt[:, :2], axis=1).mean()
        assert err < 6.0, f"{name}: mean landmark error {err:.1f} px"
        assert abs(np.mean(proj[:, 2] - gt[:, 2])) < 6.0
        np.testing.assert_allclose(pose_para_rotation(pose), euler_to_rotation(pose[1], pose[0], pose[2]))
