"""The 3DDFA fitting parameters of AFLW2000-3D and 300W-LP ``.mat`` files, and the meshes they give.

Each image of these sets comes with a ``.mat`` file holding a 3D morphable model fit:
``Shape_Para`` (199, 1) for the Basel Face Model's unit principal components (micrometres),
``Exp_Para`` (29, 1) for 3DDFA's expression components, and ``Pose_Para`` (1, 7)
``[pitch, yaw, roll, tx, ty, tz, s]``. The mesh is ``pose(shapeMU + expMU + shapePC Shape_Para +
expPC Exp_Para)``; the BFM itself is not redistributable, so the basis comes from the user
(:func:`facegcn_lib.morphable.bfm.load_bfm2009`, which also reads face3d's ``BFM.mat`` with the
expression basis).

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.geometry.projection import MATLAB_ORIGIN, pose_para_to_image
from facegcn_lib.morphable.model import MorphableModel

#: Upper bounds (degrees) of |yaw| of the first two of the benchmark's three yaw bins.
YAW_BIN_EDGES_DEG: tuple[float, float] = (30.0, 60.0)


class FitFormatError(ValueError):
    """A 3DDFA ``.mat`` file lacks a key, or the basis cannot use its coefficients."""


@dataclass(frozen=True)
class Fit3DDFA:
    """One ``.mat`` file's fit.

    Attributes:
        shape_para: (K_id,) raw identity coefficients (for unit principal components).
        exp_para: (K_exp,) raw expression coefficients.
        pose_para: (7,) ``[pitch, yaw, roll, tx, ty, tz, s]`` (radians; s per micrometre).
        pt2d: (2, N) the file's 2D landmarks in MATLAB 1-based pixels (N = 68 in 300W-LP,
            21 AFLW points in AFLW2000-3D), or ``None``.
        pt3d_68: (3, 68) 3D landmarks (AFLW2000-3D only, 1-based x, y), or ``None``.
        roi: (4,) the file's region of interest, or ``None``.
    """

    shape_para: NDArray[np.float64]
    exp_para: NDArray[np.float64]
    pose_para: NDArray[np.float64]
    pt2d: NDArray[np.float64] | None
    pt3d_68: NDArray[np.float64] | None
    roi: NDArray[np.float64] | None

    @property
    def yaw_pitch_roll(self) -> NDArray[np.float64]:
        """(3,) yaw, pitch, roll in radians (see :mod:`facegcn_lib.geometry.rotations`)."""
        return self.pose_para[[1, 0, 2]].copy()


def read_fit(path: str | Path) -> Fit3DDFA:
    """Read a 3DDFA fit ``.mat`` (AFLW2000-3D or 300W-LP layout).

    Raises:
        FitFormatError: unreadable, or ``Shape_Para``/``Exp_Para``/``Pose_Para`` missing.
    """
    from scipy.io import loadmat

    p = Path(path)
    try:
        mat = loadmat(p)
    except (ValueError, OSError, NotImplementedError) as err:
        raise FitFormatError(f"{p}: cannot read it as a MATLAB file ({err})") from err
    missing = [k for k in ("Shape_Para", "Exp_Para", "Pose_Para") if k not in mat]
    if missing:
        raise FitFormatError(f"{p}: missing {missing}; an AFLW2000-3D / 300W-LP fit file is expected")

    def opt(key: str) -> NDArray[np.float64] | None:
        return np.asarray(mat[key], dtype=np.float64) if key in mat else None

    roi = opt("roi")
    return Fit3DDFA(
        shape_para=np.asarray(mat["Shape_Para"], dtype=np.float64).reshape(-1),
        exp_para=np.asarray(mat["Exp_Para"], dtype=np.float64).reshape(-1),
        pose_para=np.asarray(mat["Pose_Para"], dtype=np.float64).reshape(-1),
        pt2d=opt("pt2d"), pt3d_68=opt("pt3d_68"), roi=None if roi is None else roi.reshape(-1))


def check_basis(basis: MorphableModel, fit: Fit3DDFA, *, allow_missing_expression: bool = False,
                name: str = "") -> None:
    """Raise :class:`FitFormatError` unless ``basis`` can use ``fit``'s coefficients."""
    if basis.num_id < len(fit.shape_para):
        raise FitFormatError(f"{name}: Shape_Para has {len(fit.shape_para)} coefficients but the "
                             f"basis {basis.name!r} only {basis.num_id} identity modes; use the "
                             "Basel Face Model (load_bfm2009)")
    if basis.num_exp < len(fit.exp_para) and not (allow_missing_expression and basis.num_exp == 0):
        raise FitFormatError(
            f"{name}: Exp_Para has {len(fit.exp_para)} coefficients but the basis {basis.name!r} "
            f"{basis.num_exp} expression modes; load face3d's BFM.mat (BFM + 3DDFA expressions) "
            "or pass allow_missing_expression=True to ignore the expression")


def mesh_from_fit(basis: MorphableModel, fit: Fit3DDFA, height: int, *,
                  allow_missing_expression: bool = False) -> NDArray[np.float64]:
    """The fitted dense mesh in the image frame (0-based pixels, y down, z towards the viewer).

    Args:
        basis: a BFM whose ``id_std``/``exp_std`` convert the raw coefficients.
        fit: the parameters of one image.
        height: the image height in pixels.
    Returns:
        (V, 3) float64 vertices on ``basis``' topology.
    """
    check_basis(basis, fit, allow_missing_expression=allow_missing_expression)
    ids = fit.shape_para / basis.id_std[: len(fit.shape_para)]
    exps = fit.exp_para / basis.exp_std[: len(fit.exp_para)] if basis.num_exp else None
    verts = basis.sample_numpy(ids, exps)
    return pose_para_to_image(verts, fit.pose_para, height)


def matlab_to_pixels(points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Points ``(N, 2|3)`` in MATLAB 1-based pixels to 0-based (x and y minus 1; z unchanged)."""
    out = np.array(points, dtype=np.float64)
    out[..., :2] -= MATLAB_ORIGIN
    return out


def yaw_bin(yaw_deg: float) -> int:
    """The benchmark's yaw bin: 0 for |yaw| <= 30, 1 for 30 < |yaw| <= 60, 2 beyond."""
    a = abs(float(yaw_deg))
    return 0 if a <= YAW_BIN_EDGES_DEG[0] else 1 if a <= YAW_BIN_EDGES_DEG[1] else 2


def as_float_tensor(points: NDArray[np.float64]) -> torch.Tensor:
    """A float32 tensor of an array (dataset outputs)."""
    return torch.as_tensor(np.ascontiguousarray(points), dtype=torch.float32)
