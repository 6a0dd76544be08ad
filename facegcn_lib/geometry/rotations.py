"""Rotations from yaw, pitch and roll and back, in 3DDFA's ``Pose_Para`` convention (numpy and torch).

Frames. The *model frame* of every morphable model is x right, y up, z towards the viewer
(right-handed). The *image frame* is x right, y down (pixels), z towards the viewer; a mesh
goes from the first to the second by a rotation, a scale, a translation and the flip of y
(see :mod:`facegcn_lib.geometry.projection`).

Convention (identical to 3DDFA's ``angle2matrix`` and to the ``Pose_Para = [pitch, yaw, roll,
tx, ty, tz, s]`` of AFLW2000-3D and 300W-LP): angles in radians and

.. math::

    R = R_x(\\text{pitch})\\, R_y(\\text{yaw})\\, R_z(\\text{roll}),\\quad
    R_x(a) = \\begin{pmatrix}1&0&0\\\\0&\\cos a&\\sin a\\\\0&-\\sin a&\\cos a\\end{pmatrix},\\
    R_y(a) = \\begin{pmatrix}\\cos a&0&-\\sin a\\\\0&1&0\\\\\\sin a&0&\\cos a\\end{pmatrix},\\
    R_z(a) = \\begin{pmatrix}\\cos a&\\sin a&0\\\\-\\sin a&\\cos a&0\\\\0&0&1\\end{pmatrix},

applied to model-frame column vectors (``v' = R v``). Each factor is the *inverse* of the
textbook right-handed rotation about its axis, so, as seen in the image:

* positive **yaw** (about the vertical y axis) turns the face towards the image's left (the
  subject's right): the nose tip moves to smaller x;
* positive **pitch** (about the horizontal x axis) tilts the face up: the nose moves up;
* positive **roll** (about the viewing z axis) turns the face clockwise on screen.

:func:`rotation_to_euler` inverts :func:`euler_to_rotation` for |yaw| < 90 degrees; at
|yaw| = 90 (gimbal lock) it returns roll = 0 and folds the rotation into pitch.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

#: |cos(yaw)| below which :func:`rotation_to_euler` treats the rotation as gimbal-locked.
GIMBAL_EPS = 1e-9


def _matrix(cp: NDArray, sp: NDArray, cy: NDArray, sy: NDArray, cr: NDArray,
            sr: NDArray) -> NDArray[np.float64]:
    rows = [
        [cy * cr, cy * sr, -sy],
        [-cp * sr + sp * sy * cr, cp * cr + sp * sy * sr, sp * cy],
        [sp * sr + cp * sy * cr, -sp * cr + cp * sy * sr, cp * cy],
    ]
    return np.stack([np.stack(r, axis=-1) for r in rows], axis=-2)


def euler_to_rotation(yaw: ArrayLike, pitch: ArrayLike, roll: ArrayLike) -> NDArray[np.float64]:
    """Rotation matrices from angles in radians (broadcast together): shape ``(..., 3, 3)``.

    ``euler_to_rotation(yaw, pitch, roll) == R_x(pitch) @ R_y(yaw) @ R_z(roll)`` in the
    module's convention (3DDFA's ``Pose_Para[:3] = [pitch, yaw, roll]``).
    """
    y, p, r = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (yaw, pitch, roll)))
    return _matrix(np.cos(p), np.sin(p), np.cos(y), np.sin(y), np.cos(r), np.sin(r))


def rotation_to_euler(rot: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64],
                                               NDArray[np.float64]]:
    """``(yaw, pitch, roll)`` in radians of rotation matrices ``(..., 3, 3)`` (inverse of
    :func:`euler_to_rotation`; yaw in [-pi/2, pi/2])."""
    m = np.asarray(rot, dtype=np.float64)
    yaw = np.arcsin(np.clip(-m[..., 0, 2], -1.0, 1.0))
    locked = np.abs(np.cos(yaw)) < GIMBAL_EPS
    pitch = np.where(locked, np.arctan2(np.sign(-m[..., 0, 2]) * m[..., 1, 0], m[..., 1, 1]),
                     np.arctan2(m[..., 1, 2], m[..., 2, 2]))
    roll = np.where(locked, 0.0, np.arctan2(m[..., 0, 1], m[..., 0, 0]))
    return yaw, pitch, roll


def euler_to_rotation_torch(yaw: torch.Tensor, pitch: torch.Tensor,
                            roll: torch.Tensor) -> torch.Tensor:
    """Torch version of :func:`euler_to_rotation` (differentiable): ``(..., 3, 3)``."""
    y, p, r = torch.broadcast_tensors(yaw, pitch, roll)
    cp, sp, cy, sy, cr, sr = p.cos(), p.sin(), y.cos(), y.sin(), r.cos(), r.sin()
    rows = [
        [cy * cr, cy * sr, -sy],
        [-cp * sr + sp * sy * cr, cp * cr + sp * sy * sr, sp * cy],
        [sp * sr + cp * sy * cr, -sp * cr + cp * sy * sr, cp * cy],
    ]
    return torch.stack([torch.stack(row, dim=-1) for row in rows], dim=-2)


def rotation_to_euler_torch(rot: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Torch version of :func:`rotation_to_euler`: ``(yaw, pitch, roll)`` of ``(..., 3, 3)``."""
    yaw = torch.asin((-rot[..., 0, 2]).clamp(-1.0, 1.0))
    locked = yaw.cos().abs() < GIMBAL_EPS
    pitch = torch.where(locked, torch.atan2(torch.sign(-rot[..., 0, 2]) * rot[..., 1, 0], rot[..., 1, 1]),
                        torch.atan2(rot[..., 1, 2], rot[..., 2, 2]))
    roll = torch.where(locked, torch.zeros_like(yaw), torch.atan2(rot[..., 0, 1], rot[..., 0, 0]))
    return yaw, pitch, roll


def pose_para_rotation(pose_para: ArrayLike) -> NDArray[np.float64]:
    """The (3, 3) rotation of a 3DDFA ``Pose_Para`` ``[pitch, yaw, roll, tx, ty, tz, s]``."""
    p = np.asarray(pose_para, dtype=np.float64).reshape(-1)
    return euler_to_rotation(p[1], p[0], p[2])
