"""Least-squares similarity fits (Umeyama 1991) and the head pose of a mesh.

:func:`umeyama` finds ``s, R, t`` minimising ``sum_i w_i |s R x_i + t - y_i|^2`` in closed form
(SVD of the cross-covariance, with the reflection fix). :func:`pose_from_mesh` uses it to read
yaw, pitch and roll off a predicted image-frame mesh by aligning the model's mean shape to it.

See :doc:`chapter 4 </chapters/04_resgcn_decoder>` (the pose of a predicted mesh).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facegcn_lib.geometry.projection import Similarity, flip_y
from facegcn_lib.geometry.rotations import rotation_to_euler


class FitError(ValueError):
    """The points cannot determine a similarity (too few, mismatched or degenerate)."""


def umeyama(src: ArrayLike, dst: ArrayLike, *, with_scale: bool = True,
            weights: ArrayLike | None = None) -> Similarity:
    """The similarity (or rigid motion) that best maps ``src`` onto ``dst``.

    Args:
        src: (N, D) points, D = 2 or 3 (N >= D).
        dst: (N, D) corresponding points.
        with_scale: fit the scale too; else ``scale = 1``.
        weights: optional (N,) non-negative weights.
    Returns:
        A :class:`~facegcn_lib.geometry.projection.Similarity` (for D = 2 the 2x2 rotation and
        2-vector translation are stored as given).
    Raises:
        FitError: shapes differ, fewer than D points, or all points coincide.
    """
    x = np.asarray(src, dtype=np.float64)
    y = np.asarray(dst, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 2 or x.shape[0] < x.shape[1]:
        raise FitError(f"umeyama needs two (N, D) arrays with N >= D, got {x.shape} and {y.shape}")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(x),) or (w < 0).any() or w.sum() <= 0:
        raise FitError("weights must be (N,) non-negative with a positive sum")
    w = w / w.sum()
    mx, my = w @ x, w @ y
    xc, yc = x - mx, y - my
    var_x = float(w @ (xc**2).sum(axis=1))
    if var_x <= 0:
        raise FitError("the source points all coincide; no rotation or scale is defined")
    cov = (yc * w[:, None]).T @ xc
    u, d, vt = np.linalg.svd(cov)
    sign = np.ones(len(d))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    scale = float((d * sign).sum() / var_x) if with_scale else 1.0
    return Similarity(scale, rot, my - scale * rot @ mx)


@dataclass(frozen=True)
class HeadPose:
    """A head pose read off a mesh.

    Attributes:
        yaw, pitch, roll: radians, in :mod:`facegcn_lib.geometry.rotations`' convention.
        similarity: the fitted map from the template (model frame, mm) to the mesh with y
            flipped to point up (so its rotation is proper).
        rmse: root-mean-square residual of the fit, in the mesh's units (pixels).
    """

    yaw: float
    pitch: float
    roll: float
    similarity: Similarity
    rmse: float


def pose_from_mesh(mesh_image: ArrayLike, template: ArrayLike,
                   indices: ArrayLike | None = None) -> HeadPose:
    """Yaw, pitch and roll of an image-frame mesh (x right, y down, z towards the viewer).

    Flips y up, fits ``template`` (the model's mean shape, model frame) to it with
    :func:`umeyama`, and decomposes the rotation.

    Args:
        mesh_image: (V, 3) predicted vertices in the image frame (pixels).
        template: (V, 3) the same topology's mean shape in the model frame (mm).
        indices: optional subset of vertices to fit on (e.g. a rigid region or landmarks).
    """
    y = flip_y(mesh_image, 0.0)
    x = np.asarray(template, dtype=np.float64)
    if indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        x, y = x[idx], y[idx]
    sim = umeyama(x, y)
    yaw, pitch, roll = rotation_to_euler(sim.rotation)
    rmse = float(np.sqrt(((sim.apply(x) - y) ** 2).sum(axis=1).mean()))
    return HeadPose(float(yaw), float(pitch), float(roll), sim, rmse)


def pose_from_mesh_batch(meshes_image: ArrayLike, template: ArrayLike,
                         indices: ArrayLike | None = None) -> NDArray[np.float64]:
    """``(B, 3)`` yaw, pitch, roll (radians) of a batch of image-frame meshes ``(B, V, 3)``."""
    m = np.asarray(meshes_image, dtype=np.float64)
    out = np.empty((len(m), 3))
    for b in range(len(m)):
        pose = pose_from_mesh(m[b], template, indices)
        out[b] = pose.yaw, pose.pitch, pose.roll
    return out
