"""Similarity transforms and projections, against OpenCV and obvious references."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from facegcn_lib.geometry.projection import (
    Similarity,
    flip_y,
    intrinsics,
    model_to_camera,
    perspective,
    similarity_transform,
    similarity_transform_torch,
    weak_perspective,
)
from facegcn_lib.geometry.rotations import euler_to_rotation


def test_similarity_and_inverse() -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(20, 3))
    sim = Similarity(2.5, euler_to_rotation(0.3, -0.2, 0.1), np.array([1.0, -2.0, 3.0]))
    out = sim.apply(pts)
    ref = np.array([2.5 * sim.rotation @ p + sim.translation for p in pts])
    np.testing.assert_allclose(out, ref, atol=1e-12)
    np.testing.assert_allclose(sim.inverse().apply(out), pts, atol=1e-12)
    t = similarity_transform_torch(torch.as_tensor(pts)[None], torch.tensor([2.5], dtype=torch.float64),
                                   torch.as_tensor(sim.rotation)[None], torch.as_tensor(sim.translation)[None])
    np.testing.assert_allclose(t[0].numpy(), out, atol=1e-12)
    batched = similarity_transform(np.stack([pts, pts]), [2.5, 1.0], np.stack([sim.rotation] * 2),
                                   np.stack([sim.translation] * 2))
    np.testing.assert_allclose(batched[0], out, atol=1e-12)


def test_weak_perspective_flips_y() -> None:
    pts = np.array([[0.0, 10.0, 5.0], [10.0, 0.0, 0.0]])
    out = weak_perspective(pts, 2.0, np.eye(3), [100.0, 50.0], height=200)
    np.testing.assert_allclose(out, [[100.0, 200 - 70.0, 10.0], [120.0, 150.0, 0.0]])
    np.testing.assert_allclose(flip_y(flip_y(out, 200), 200), out)


def test_perspective_matches_opencv() -> None:
    rng = np.random.default_rng(1)
    model = rng.normal(size=(30, 3)) * 50
    rot = euler_to_rotation(0.4, 0.1, -0.2)
    cam = model_to_camera(model, rot, [0.0, 0.0, -600.0])
    assert (cam[:, 2] > 0).all()
    k = intrinsics(800.0, 128.0, 120.0)
    ours = perspective(cam, k)
    ref, _ = cv2.projectPoints(cam, np.zeros(3), np.zeros(3), k, None)
    np.testing.assert_allclose(ours[:, :2], ref[:, 0], atol=1e-9)
    np.testing.assert_allclose(perspective([[0.0, 0.0, 10.0]], k)[0, :2], [128.0, 120.0])
