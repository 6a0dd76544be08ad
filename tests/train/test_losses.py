"""Tests of the training loss: L1 on vertices plus alpha times the Laplacian smoothness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegcn_lib.config import ConfigError, LossConfig
from facegcn_lib.train.losses import MeshLoss, laplacian_smoothness, vertex_l1

# a small strip of triangles: 0-1-2, 1-3-2, 2-3-4, 3-5-4
FACES = np.array([[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]])
N = 6


def slow_combinatorial_laplacian() -> np.ndarray:
    w = np.zeros((N, N))
    for f in FACES:
        for a, b in ((f[0], f[1]), (f[1], f[2]), (f[2], f[0])):
            w[a, b] = w[b, a] = 1.0
    return np.diag(w.sum(axis=1)) - w


def test_vertex_l1_matches_loops() -> None:
    torch.manual_seed(0)
    pred, target = torch.randn(2, N, 3), torch.randn(2, N, 3)
    ref = sum(abs(float(pred[b, v, k] - target[b, v, k]))
              for b in range(2) for v in range(N) for k in range(3)) / (2 * N)
    assert float(vertex_l1(pred, target)) == pytest.approx(ref, rel=1e-5)


def test_smoothness_matches_dense_reference() -> None:
    torch.manual_seed(1)
    y = torch.randn(3, N, 3, dtype=torch.float64)
    lap = slow_combinatorial_laplacian()
    ref = np.mean([np.linalg.norm(lap @ y[b].numpy(), axis=1).mean() for b in range(3)])
    loss = MeshLoss.from_faces(FACES, N)
    assert float(laplacian_smoothness(y, loss.laplacian)) == pytest.approx(ref, rel=1e-6)


def test_total_is_l1_plus_alpha_smoothness() -> None:
    torch.manual_seed(2)
    pred, target = torch.randn(2, N, 3), torch.randn(2, N, 3)
    loss = MeshLoss.from_faces(FACES, N)
    terms = loss(pred, target)
    assert loss.cfg.smooth_weight == 0.1
    torch.testing.assert_close(terms.total, terms.vertex + 0.1 * terms.smooth)
    torch.testing.assert_close(terms.vertex, vertex_l1(pred, target))
    torch.testing.assert_close(terms.smooth, laplacian_smoothness(pred, loss.laplacian))


def test_residual_smoothness_is_zero_for_a_perfect_prediction() -> None:
    target = torch.randn(1, N, 3)
    terms = MeshLoss.from_faces(FACES, N, LossConfig(smooth_on="residual"))(target, target)
    assert float(terms.total) == 0.0
    with pytest.raises(ConfigError, match="smooth_on"):
        LossConfig(smooth_on="target")


def test_gradients_are_finite_at_zero_laplacian() -> None:
    pred = torch.ones(1, N, 3, requires_grad=True)  # every vertex equal: L Y = 0
    MeshLoss.from_faces(FACES, N)(pred, torch.zeros(1, N, 3)).total.backward()
    assert pred.grad is not None and torch.isfinite(pred.grad).all()


def test_float64_and_shape_errors() -> None:
    loss = MeshLoss.from_faces(FACES, N)
    out = loss(torch.randn(1, N, 3, dtype=torch.float64), torch.randn(1, N, 3, dtype=torch.float64))
    assert out.total.dtype == torch.float64
    with pytest.raises(ValueError, match=r"\(B, V, 3\)"):
        loss(torch.randn(1, N, 3), torch.randn(1, N + 1, 3))


# --- the landmark term ------------------------------------------------------------------------

def two_landmarks():
    from facegcn_lib.morphable.correspondence import SurfaceLandmarks

    return SurfaceLandmarks(np.array([[0, 1, 2], [3, 5, 4]]),
                            np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]), "test")


def test_landmark_term_matches_loops() -> None:
    torch.manual_seed(3)
    pred, target = torch.randn(2, N, 3), torch.randn(2, N, 3)
    lmks = two_landmarks()
    loss = MeshLoss.from_faces(FACES, N, LossConfig(landmark_weight=0.5), landmarks=lmks)
    terms = loss(pred, target)
    p, t = lmks.apply(pred.numpy()), lmks.apply(target.numpy())
    ref = sum(abs(float(p[b, k, d] - t[b, k, d]))
              for b in range(2) for k in range(2) for d in range(2)) / (2 * 2)
    assert float(terms.landmark) == pytest.approx(ref, rel=1e-5)
    torch.testing.assert_close(terms.total, terms.vertex + 0.1 * terms.smooth + 0.5 * terms.landmark)


def test_landmark_term_ignores_depth_and_batches_like_single_meshes() -> None:
    torch.manual_seed(4)
    target = torch.randn(3, N, 3)
    deeper = target.clone()
    deeper[..., 2] += 5.0  # depth only
    loss = MeshLoss.from_faces(FACES, N, LossConfig(landmark_weight=1.0), landmarks=two_landmarks())
    assert float(loss(deeper, target).landmark) == 0.0
    pred = torch.randn(3, N, 3)
    batched = loss(pred, target).landmark
    single = torch.stack([loss(pred[b:b + 1], target[b:b + 1]).landmark for b in range(3)]).mean()
    torch.testing.assert_close(batched, single)


def test_landmark_term_is_off_by_default_and_needs_landmarks() -> None:
    terms = MeshLoss.from_faces(FACES, N)(torch.randn(1, N, 3), torch.randn(1, N, 3))
    assert terms.landmark is None
    with pytest.raises(ValueError, match="reported_landmarks"):
        MeshLoss.from_faces(FACES, N, LossConfig(landmark_weight=1.0))
    with pytest.raises(ConfigError, match="landmark_weight"):
        LossConfig(landmark_weight=-1.0)
    from facegcn_lib.morphable.correspondence import SurfaceLandmarks

    wrong_mesh = SurfaceLandmarks(np.array([[0, 1, 99]]), np.array([[1.0, 0.0, 0.0]]), "other")
    with pytest.raises(ValueError, match="another mesh"):
        MeshLoss.from_faces(FACES, N, LossConfig(landmark_weight=1.0), landmarks=wrong_mesh)


def test_landmark_gradient_reaches_only_the_landmark_triangles() -> None:
    pred = torch.zeros(1, N, 3, requires_grad=True)
    loss = MeshLoss.from_faces(FACES, N, LossConfig(smooth_weight=0.0, landmark_weight=1.0),
                               landmarks=two_landmarks())
    target = torch.zeros(1, N, 3)
    target[0, :, 0] = 1.0
    loss(pred, target).landmark.backward()  # type: ignore[union-attr]
    grad = pred.grad[0, :, 0].abs()  # type: ignore[index]
    assert torch.all(grad[[0, 1, 2, 3]] > 0) and grad[5] == 0 and grad[4] == 0
