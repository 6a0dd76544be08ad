"""Carry a landmark definition from one face mesh to another by non-rigid registration.

AFLW2000-3D's and 300W-LP's 68 points are 68 vertices of the Basel Face Model. The ICT face has
its own 68-vertex list, placed by other people with other conventions (its brows sit higher, for
one). To predict the points that the benchmark measures, :func:`bfm_landmarks_on_ict` registers
the BFM mean mesh onto the ICT neutral face (a similarity from anatomically unambiguous landmarks,
then a Laplacian-regularised non-rigid closest-point deformation with decreasing stiffness) and
expresses each BFM keypoint as a barycentric point on an ICT triangle.

See :doc:`chapter 3 </chapters/03_faces_as_data>` for the two definitions side by side.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from numpy.typing import NDArray

from facegcn_lib.geometry.umeyama import umeyama
from facegcn_lib.mesh.graph import adjacency, combinatorial_laplacian
from facegcn_lib.mesh.proximity import SurfaceIndex
from facegcn_lib.mesh.topology import boundary_mask, face_normals

log = logging.getLogger(__name__)

#: 68-point indices that mean the same anatomical point in every convention: eye corners, the
#: nose ridge, tip and base, mouth corners and lip midpoints. The brows (17-26) and the jaw
#: (0-16) are the points whose definitions differ, so they are not used to align.
ANCHOR_LMKS: tuple[int, ...] = (27, 28, 29, 30, 31, 33, 35, 36, 39, 42, 45, 48, 51, 54, 57, 62, 66)

ArrayT = TypeVar("ArrayT")


@dataclass(frozen=True)
class RegistrationConfig:
    """Parameters of :func:`register_nonrigid`.

    Attributes:
        stiffness: Laplacian weights, one per outer iteration, from stiff to supple.
        anchor_weight: weight of the anchor-landmark constraints.
        inner_iterations: closest-point updates per stiffness.
        max_distance_mm: correspondences farther than this are ignored.
        max_normal_angle_deg: correspondences whose normals differ more than this are ignored.
    """

    stiffness: tuple[float, ...] = (50.0, 20.0, 8.0, 3.0, 1.0)
    anchor_weight: float = 10.0
    inner_iterations: int = 3
    max_distance_mm: float = 10.0
    max_normal_angle_deg: float = 60.0


@dataclass(frozen=True)
class SurfaceLandmarks:
    """Landmarks as points on a mesh's triangles (they follow the mesh as it deforms).

    Attributes:
        faces: (L, 3) int64 the vertex indices of each landmark's triangle.
        bary: (L, 3) float64 barycentric weights in that triangle.
        name: the convention, e.g. ``"bfm68-on-ict"``.
    """

    faces: NDArray[np.int64]
    bary: NDArray[np.float64]
    name: str

    def apply(self, verts: ArrayT) -> ArrayT:
        """Landmark positions on a mesh of the same topology.

        Args:
            verts: (..., V, 3) numpy array or torch tensor.
        Returns:
            (..., L, 3) of the same type and dtype.
        """
        corners = verts[..., self.faces, :]  # type: ignore[index]  # (..., L, 3, 3)
        if isinstance(corners, np.ndarray):
            return (corners * self.bary[:, :, None]).sum(axis=-2)  # type: ignore[no-any-return]
        import torch

        w = torch.as_tensor(self.bary, dtype=corners.dtype, device=corners.device)
        return (corners * w[:, :, None]).sum(dim=-2)  # type: ignore[no-any-return]

    @classmethod
    def from_vertices(cls, indices: NDArray, faces: NDArray, name: str) -> SurfaceLandmarks:
        """Landmarks that sit exactly on vertices, in the same form (weight 1 on one corner)."""
        idx = np.asarray(indices, dtype=np.int64)
        tri = np.zeros((len(idx), 3), dtype=np.int64)
        bary = np.zeros((len(idx), 3))
        for k, v in enumerate(idx):
            f = int(np.nonzero((faces == v).any(axis=1))[0][0])
            tri[k] = faces[f]
            bary[k, int(np.nonzero(faces[f] == v)[0][0])] = 1.0
        return cls(tri, bary, name)


def _vertex_normals(verts: NDArray, faces: NDArray) -> NDArray[np.float64]:
    fn = face_normals(verts, faces, unit=False)
    vn = np.zeros_like(verts)
    for k in range(3):
        np.add.at(vn, faces[:, k], fn)
    return np.asarray(vn / np.maximum(np.linalg.norm(vn, axis=1, keepdims=True), 1e-12))


def register_nonrigid(src_verts: NDArray, src_faces: NDArray, dst_verts: NDArray, dst_faces: NDArray,
                      src_anchors: NDArray, dst_anchors: NDArray,
                      config: RegistrationConfig | None = None) -> NDArray[np.float64]:
    """Deform a source mesh onto a destination surface.

    Minimises, for each stiffness ``a``, ``a |L d|^2 + sum_i w_i |v_i + d_i - c_i|^2 +
    b sum_k |v_k + d_k - t_k|^2`` over displacements ``d`` (``L``: the source's combinatorial
    Laplacian; ``c_i``: closest destination points, kept only when near, not on the
    destination's border and with agreeing normals; ``t_k``: anchor targets).

    Args:
        src_verts: (V, 3) source positions, already roughly aligned (e.g. by a similarity).
        src_faces: (F, 3) source triangles.
        dst_verts, dst_faces: the destination surface.
        src_anchors: (K,) source vertex indices; dst_anchors: (K, 3) their target positions.
    Returns:
        (V, 3) the deformed source positions.
    """
    cfg = config or RegistrationConfig()
    v0 = np.asarray(src_verts, dtype=np.float64)
    n = len(v0)
    lap = combinatorial_laplacian(adjacency(src_faces, n)).tocsr()
    ltl = (lap.T @ lap).tocsc()
    index = SurfaceIndex(dst_verts, dst_faces)
    dst_border = boundary_mask(dst_faces, len(dst_verts))
    dst_fn = face_normals(dst_verts, dst_faces)
    cos_max = np.cos(np.deg2rad(cfg.max_normal_angle_deg))
    anchors = np.asarray(src_anchors, dtype=np.int64)
    a_rows = sp.csr_matrix((np.ones(len(anchors)), (np.arange(len(anchors)), anchors)), shape=(len(anchors), n))
    ata = (a_rows.T @ a_rows).tocsc() * cfg.anchor_weight
    atb = a_rows.T @ (np.asarray(dst_anchors) - v0[anchors]) * cfg.anchor_weight
    disp = np.zeros_like(v0)
    for stiffness in cfg.stiffness:
        for _ in range(cfg.inner_iterations):
            cur = v0 + disp
            cp = index.query(cur)
            ok = cp.distances < cfg.max_distance_mm
            ok &= ~dst_border[dst_faces[cp.faces]].any(axis=1)
            ok &= (_vertex_normals(cur, src_faces) * dst_fn[cp.faces]).sum(axis=1) > cos_max
            w = sp.diags(ok.astype(np.float64))
            system = (stiffness * ltl + w + ata).tocsc()
            rhs = w @ (cp.points - v0) + atb
            solve = spla.factorized(system)
            disp = np.stack([solve(rhs[:, k]) for k in range(3)], axis=1)
            log.debug("stiffness %.1f: %d of %d matched, mean distance %.2f mm", stiffness,
                      ok.sum(), n, cp.distances[ok].mean() if ok.any() else float("nan"))
    return v0 + disp


def transfer_landmarks(src_verts: NDArray, src_faces: NDArray, src_lmks: NDArray,
                       dst_verts: NDArray, dst_faces: NDArray, dst_lmks: NDArray, name: str,
                       config: RegistrationConfig | None = None) -> SurfaceLandmarks:
    """Express the source's landmark vertices as barycentric points on the destination mesh.

    The destination mesh is aligned to the source by a similarity on :data:`ANCHOR_LMKS`, then
    deformed onto the source surface (:func:`register_nonrigid`); each source landmark is then
    located on the deformed destination by its closest point, which fixes a triangle and
    barycentric weights of the destination topology.

    Args:
        src_verts, src_faces: the mesh that defines the landmarks (e.g. the BFM mean).
        src_lmks: (68,) its landmark vertex indices.
        dst_verts, dst_faces: the mesh to carry them to (e.g. the ICT face).
        dst_lmks: (68,) the destination's own 68 landmarks, used only at :data:`ANCHOR_LMKS`.
    """
    anchors = np.asarray(ANCHOR_LMKS)
    src = np.asarray(src_verts, dtype=np.float64)
    dst = np.asarray(dst_verts, dtype=np.float64)
    src_anchor_pos = src[np.asarray(src_lmks)[anchors]]
    dst_anchor_idx = np.asarray(dst_lmks)[anchors]
    aligned = umeyama(dst[dst_anchor_idx], src_anchor_pos).apply(dst)
    deformed = register_nonrigid(aligned, dst_faces, src, src_faces, dst_anchor_idx, src_anchor_pos, config)
    cp = SurfaceIndex(deformed, dst_faces).query(src[np.asarray(src_lmks)])
    return SurfaceLandmarks(np.asarray(dst_faces)[cp.faces], cp.bary, name)


def bfm_landmarks_on_ict(root: Path | None = None) -> SurfaceLandmarks:
    """AFLW2000-3D's 68-point definition (the BFM keypoints) on the ICT face region, cached.

    Returns:
        Barycentric landmarks on the ICT face (9,409 vertices): ``apply(verts)`` gives the 68
        points that AFLW2000-3D's ground truth annotates.
    """
    from facegcn_lib.morphable.bfm import load_bfm_mean
    from facegcn_lib.morphable.ict import load_ict_neutral
    from facegcn_lib.paths import cache_file, require

    keys = [require(f"bfm-mean-3ddfa/{f}", root).stat().st_size for f in ("u_shp.npy", "keypoints_sim.npy")]
    cached = cache_file("bfm68-on-ict", ".npz", *keys, RegistrationConfig(), ANCHOR_LMKS, "v2")
    if cached.is_file():
        with np.load(cached) as z:
            return SurfaceLandmarks(z["faces"], z["bary"], "bfm68-on-ict")
    bfm = load_bfm_mean(root)
    ict = load_ict_neutral(root, region="face")
    lm = transfer_landmarks(bfm.verts, bfm.faces, bfm.lmks68, ict.verts, ict.faces, ict.lmks68,
                            "bfm68-on-ict")
    tmp = cached.with_suffix(".tmp.npz")
    np.savez(tmp, faces=lm.faces, bary=lm.bary)
    tmp.replace(cached)
    return lm
