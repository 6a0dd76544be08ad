"""The training loss: L1 on vertices plus alpha times the Laplacian smoothness ``||(D - W) Y||``.

See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from facegcn_lib.config import LossConfig
from facegcn_lib.mesh.graph import mesh_graph
from facegcn_lib.nn.sparse import to_torch_sparse


class LossTerms(NamedTuple):
    """The loss and its two terms (each a scalar tensor)."""

    total: torch.Tensor
    vertex: torch.Tensor
    smooth: torch.Tensor


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
    """``L = L1(Y_hat, Y) + alpha ||(D - W) Y_hat||`` (the paper's loss; alpha = 0.1).

    Args:
        laplacian: (V, V) combinatorial Laplacian ``D - W`` of the regressed mesh (scipy
            sparse or torch tensor); :meth:`from_faces` builds it from the triangles.
        cfg: the weight alpha and what the smoothness term applies to.
    """

    laplacian: torch.Tensor

    def __init__(self, laplacian: Any, cfg: LossConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LossConfig()
        lap = to_torch_sparse(laplacian, layout="coo", dtype=torch.float32)
        self.register_buffer("laplacian", lap, persistent=False)

    @classmethod
    def from_faces(cls, faces: NDArray, n_verts: int, cfg: LossConfig | None = None) -> MeshLoss:
        """The loss for the mesh with triangles ``faces`` (F, 3) and ``n_verts`` vertices."""
        return cls(mesh_graph(np.asarray(faces), n_verts).combinatorial_laplacian, cfg)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> LossTerms:
        """The loss of predictions ``(B, V, 3)`` against targets ``(B, V, 3)``."""
        vert = vertex_l1(pred, target)
        smoothed = pred if self.cfg.smooth_on == "prediction" else pred - target
        smooth = laplacian_smoothness(smoothed, self.laplacian)
        return LossTerms(vert + self.cfg.smooth_weight * smooth, vert, smooth)
