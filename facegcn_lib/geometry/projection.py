"""Similarity transforms and camera projections: model frame (mm) to image frame (pixels).

Frames (see :mod:`facegcn_lib.geometry.rotations`): the model frame is x right, y up, z towards
the viewer, in millimetres; the image frame is x right, y down, in 0-based pixel coordinates
(the centre of the top-left pixel is (0, 0), as in OpenCV), with z towards the viewer in the
same pixel scale (weak perspective) so that image-frame meshes keep their shape. The dense
vertices the network regresses are image-frame vertices of this kind.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from facegcn_lib.geometry.rotations import pose_para_rotation

#: MATLAB (3DDFA, 300-W) pixel coordinates start at 1; the library's start at 0.
MATLAB_ORIGIN = 1.0
#: 3DDFA's ``Pose_Para`` scale multiplies micrometre vertices; the library's are millimetres.
UM_PER_MM = 1000.0


@dataclass(frozen=True)
class Similarity:
    """``x -> scale * R x + t`` on row vectors: ``scale * x @ R.T + t``.

    Attributes:
        scale: the isotropic scale.
        rotation: (3, 3) float64 rotation matrix (det +1).
        translation: (3,) float64.
    """

    scale: float
    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]

    def apply(self, points: ArrayLike) -> NDArray[np.float64]:
        """Transform (..., 3) points."""
        return similarity_transform(points, self.scale, self.rotation, self.translation)

    def inverse(self) -> Similarity:
        """The inverse transform."""
        rt = self.rotation.T
        return Similarity(1.0 / self.scale, rt, -(rt @ self.translation) / self.scale)


def similarity_transform(points: ArrayLike, scale: ArrayLike, rotation: ArrayLike,
                         translation: ArrayLike) -> NDArray[np.float64]:
    """``scale * R p + t`` for points ``(..., N, 3)``, ``scale`` scalar or ``(...)``,
    ``rotation (..., 3, 3)``, ``translation (..., 3)`` (all broadcast)."""
    p = np.asarray(points, dtype=np.float64)
    s = np.asarray(scale, dtype=np.float64)[..., None, None]
    r = np.asarray(rotation, dtype=np.float64)
    t = np.asarray(translation, dtype=np.float64)[..., None, :]
    return s * (p @ np.swapaxes(r, -1, -2)) + t


def similarity_transform_torch(points: torch.Tensor, scale: torch.Tensor, rotation: torch.Tensor,
                               translation: torch.Tensor) -> torch.Tensor:
    """Torch version of :func:`similarity_transform` (batched, differentiable)."""
    return scale[..., None, None] * (points @ rotation.transpose(-1, -2)) + translation[..., None, :]


def flip_y(points: ArrayLike, height: float) -> NDArray[np.float64]:
    """Model-frame-aligned (y up) pixel points to the image frame (y down): ``y -> height - y``.

    Its own inverse. x and z are unchanged.
    """
    p = np.array(points, dtype=np.float64)
    p[..., 1] = height - p[..., 1]
    return p


def weak_perspective(points: ArrayLike, scale: ArrayLike, rotation: ArrayLike,
                     translation_2d: ArrayLike, height: float) -> NDArray[np.float64]:
    """Scaled orthographic projection of model-frame points to image-frame vertices.

    ``v = scale * R p + (tx, ty, 0)`` then ``y -> height - y``: x, y are pixels, z is depth
    towards the viewer in pixels (the mesh keeps its shape up to a reflection of y).

    Args:
        points: (..., N, 3) model frame, millimetres.
        scale: pixels per millimetre.
        rotation: (3, 3) (see :mod:`facegcn_lib.geometry.rotations`).
        translation_2d: (2,) pixels, in the y-up frame before the flip.
        height: image height in pixels.
    Returns:
        (..., N, 3) image-frame vertices.
    """
    t = np.zeros(3)
    t[:2] = np.asarray(translation_2d, dtype=np.float64)
    return flip_y(similarity_transform(points, scale, rotation, t), height)


def pose_para_to_image(points: ArrayLike, pose_para: ArrayLike, height: float) -> NDArray[np.float64]:
    """Model-frame points (mm) to image-frame vertices with a 3DDFA ``Pose_Para``.

    ``Pose_Para = [pitch, yaw, roll, tx, ty, tz, s]`` (AFLW2000-3D, 300W-LP): 3DDFA computes
    ``v = s R p_um + t`` with ``p_um`` in micrometres and then ``y = height + 1 - y`` in
    MATLAB's 1-based pixels; this returns the same points in the library's 0-based pixels
    (``x - 1``, ``height - y``). z is ``s R p + tz`` (towards the viewer), unchanged.

    Args:
        points: (..., N, 3) millimetres, model frame (e.g. a BFM mesh).
        pose_para: (7,) the ``Pose_Para`` row.
        height: image height in pixels.
    """
    pp = np.asarray(pose_para, dtype=np.float64).reshape(-1)
    if pp.shape != (7,):
        raise ValueError(f"Pose_Para must have 7 entries [pitch, yaw, roll, tx, ty, tz, s], "
                         f"got {pp.shape}")
    v = similarity_transform(points, pp[6] * UM_PER_MM, pose_para_rotation(pp), pp[3:6])
    v[..., 0] -= MATLAB_ORIGIN
    v[..., 1] = height - v[..., 1]  # (height + 1 - y) in 1-based pixels, minus 1
    return v


def intrinsics(focal_px: float, cx: float, cy: float) -> NDArray[np.float64]:
    """A (3, 3) pinhole camera matrix ``[[f, 0, cx], [0, f, cy], [0, 0, 1]]``."""
    return np.array([[focal_px, 0.0, cx], [0.0, focal_px, cy], [0.0, 0.0, 1.0]])


def perspective(points_cam: ArrayLike, camera: ArrayLike) -> NDArray[np.float64]:
    """Pinhole projection of camera-frame points (OpenCV frame: x right, y down, z forward).

    Args:
        points_cam: (..., N, 3) with z > 0 in front of the camera.
        camera: (3, 3) intrinsics (:func:`intrinsics`).
    Returns:
        (..., N, 3): pixel x, pixel y and the depth z (unchanged).
    """
    p = np.asarray(points_cam, dtype=np.float64)
    k = np.asarray(camera, dtype=np.float64)
    uvw = p @ k.T
    out = p.copy()
    out[..., :2] = uvw[..., :2] / uvw[..., 2:3]
    return out


def model_to_camera(points: ArrayLike, rotation: ArrayLike, translation: ArrayLike) -> NDArray[np.float64]:
    """Model-frame points to the OpenCV camera frame: ``diag(1, -1, -1) (R p + t)``.

    The camera looks along -z of the model frame (at the face); ``translation`` is in the model
    frame's axes (e.g. ``(0, 0, -600)`` puts the face 600 mm in front of the camera).
    """
    v = similarity_transform(points, 1.0, rotation, translation)
    v[..., 1:] *= -1.0
    return v
