"""The training loss: L1 on vertices plus alpha times the Laplacian smoothness ``||(D - W) Y||``
(the paper's), plus beta times an L1 term on the 68 landmarks in the image plane (ours).

See :doc:`chapter 4 </chapters/04_resgcn_decoder>` and :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from facegcn_lib.config import LossConfig
from facegcn_lib.mesh.graph import mesh_graph
from facegcn_lib.nn.sparse import to_torch_sparse

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.morphable.correspondence import SurfaceLandmarks

#: The image-plane coordinates (x, y) of the crop frame: the landmark term ignores depth.
IMAGE_PLANE = 2


class LossTerms(NamedTuple):
    """The loss and its terms (scalar tensors; ``landmark`` is ``None`` for a loss without one)."""

    total: torch.Tensor
    vertex: torch.Tensor
    smooth: torch.Tensor
    landmark: torch.Tensor | None = None


def _check_pair(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.ndim != 3 or pred.shape[-1] != 3:
        raise ValueError(f"pred and target must both be (B, V, 3), got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")


def vertex_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The L1 vertex loss: the mean over meshes and vertices of ``sum_xyz |pred - target|``.

    Args:
        pred: (B, V, 3) predicted vertices.
        target: (B, V, 3) ground-truth vertices, same frame.
    """
    _check_pair(pred, target)
    return (pred - target).abs().sum(dim=-1).mean()


def surface_points(verts: torch.Tensor, tri: torch.Tensor, bary: torch.Tensor) -> torch.Tensor:
    """Points given by barycentric weights on triangles, for every mesh of a batch.

    Args:
        verts: (B, V, 3) vertices.
        tri: (L, 3) int64 vertex indices of each point's triangle.
        bary: (L, 3) barycentric weights of each point in its triangle.
    Returns:
        (B, L, 3): ``sum_k bary[l, k] * verts[:, tri[l, k]]``.
    """
    return (verts[:, tri] * bary.to(verts.dtype)[None, :, :, None]).sum(dim=2)


def landmark_l1(pred: torch.Tensor, target: torch.Tensor, tri: torch.Tensor,
                bary: torch.Tensor) -> torch.Tensor:
    """The landmark term: the mean over meshes and landmarks of ``|dx| + |dy|``.

    Args:
        pred: (B, V, 3) predicted vertices in the crop frame (x, y in the image plane).
        target: (B, V, 3) ground-truth vertices, same frame.
        tri, bary: (L, 3) the landmarks as points on triangles (see :func:`surface_points`).
    """
    _check_pair(pred, target)
    diff = surface_points(pred - target, tri, bary)[..., :IMAGE_PLANE]
    return diff.abs().sum(dim=-1).mean()


def _batched_sparse(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix @ x[b]`` for every ``b`` (differentiable in ``x``): (R, V) on (B, V, C) -> (B, R, C)."""
    b, v, c = x.shape
    out: torch.Tensor = torch.sparse.mm(matrix, x.transpose(0, 1).reshape(v, b * c))
    return out.reshape(matrix.shape[0], b, c).transpose(0, 1)


def laplacian_smoothness(verts: torch.Tensor, laplacian: torch.Tensor) -> torch.Tensor:
    """The smoothness term ``||(D - W) Y||``: the mean over meshes and vertices of ``|(L Y)_v|``.

    ``(L Y)_v = deg(v) y_v - sum_{u ~ v} y_u`` is ``deg(v)`` times the offset of vertex ``v``
    from the centroid of its neighbours; its Euclidean length is averaged.

    Args:
        verts: (B, V, 3) vertices Y.
        laplacian: (V, V) torch sparse combinatorial Laplacian ``D - W``.
    """
    if verts.ndim != 3 or laplacian.shape != (verts.shape[1], verts.shape[1]):
        raise ValueError(f"verts (B, V, 3) and a (V, V) Laplacian expected, got "
                         f"{tuple(verts.shape)} and {tuple(laplacian.shape)}")
    lap_y = _batched_sparse(laplacian.to(verts.dtype), verts)
    norms: torch.Tensor = torch.linalg.vector_norm(lap_y, dim=-1)
    return norms.mean()


class MeshLoss(nn.Module):
    """``L = L1(Y_hat, Y) + alpha ||(D - W) Y_hat|| + beta L1_xy(P Y_hat, P Y)``.

    The first two terms are the paper's loss (alpha = 0.1); the third, off unless
    ``cfg.landmark_weight`` (beta) is positive, is the image-plane L1 error of the 68 landmarks
    ``P Y`` (points on the mesh's triangles; :func:`landmark_l1`).

    Args:
        laplacian: (V, V) combinatorial Laplacian ``D - W`` of the regressed mesh (scipy
            sparse or torch tensor); :meth:`from_faces` builds it from the triangles.
        cfg: the weights alpha and beta, and what the smoothness term applies to.
        landmarks: the landmarks as points on the mesh's triangles (needed when beta > 0;
            e.g. :func:`facegcn_lib.pipeline.reported_landmarks`).

    Raises:
        ValueError: ``cfg.landmark_weight`` is positive but no landmarks are given.
    """

    laplacian: torch.Tensor
    lmk_tri: torch.Tensor
    lmk_bary: torch.Tensor

    def __init__(self, laplacian: Any, cfg: LossConfig | None = None,
                 landmarks: SurfaceLandmarks | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()
        if self.cfg.landmark_weight > 0 and landmarks is None:
            raise ValueError("LossConfig.landmark_weight > 0 needs the landmarks: pass "
                             "landmarks=reported_landmarks(target) (facegcn_lib.pipeline)")
        lap = to_torch_sparse(laplacian, layout="coo", dtype=torch.float32)
        self.register_buffer("laplacian", lap, persistent=False)
        tri = np.zeros((0, 3), np.int64) if landmarks is None else landmarks.faces
        bary = np.zeros((0, 3)) if landmarks is None else landmarks.bary
        if len(tri) and (tri.min() < 0 or tri.max() >= lap.shape[0]):
            raise ValueError(f"the landmarks' triangles index vertices outside 0..{lap.shape[0] - 1}: "
                             "they belong to another mesh")
        self.register_buffer("lmk_tri", torch.as_tensor(tri, dtype=torch.int64), persistent=False)
        self.register_buffer("lmk_bary", torch.as_tensor(bary, dtype=torch.float32), persistent=False)

    @classmethod
    def from_faces(cls, faces: NDArray, n_verts: int, cfg: LossConfig | None = None,
                   landmarks: SurfaceLandmarks | None = None) -> MeshLoss:
        """The loss for the mesh with triangles ``faces`` (F, 3) and ``n_verts`` vertices."""
        return cls(mesh_graph(np.asarray(faces), n_verts).combinatorial_laplacian, cfg, landmarks)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """The loss of predictions ``(B, V, 3)`` against targets ``(B, V, 3)``."""
        vert = vertex_l1(pred, target)
        smoothed = pred if self.cfg.smooth_on == "prediction" else pred - target
        smooth = laplacian_smoothness(smoothed, self.laplacian)
        total = vert + self.cfg.smooth_weight * smooth
        if not len(self.lmk_tri):
            return LossTerms(total, vert, smooth)
        lmk = landmark_l1(pred, target, self.lmk_tri, self.lmk_bary)
        return LossTerms(total + self.cfg.landmark_weight * lmk, vert, smooth, lmk)

    def extra_repr(self) -> str:
        return (f"alpha={self.cfg.smooth_weight}, smooth_on={self.cfg.smooth_on!r}, "
                f"beta={self.cfg.landmark_weight}, landmarks={len(self.lmk_tri)}")
