"""Crop by the 68-landmark box, resize, and augment: one exact 3x3 affine for image and vertices.

The paper crops each face by the bounding box of its 68 landmarks, resizes it to 256x256 and
augments with a random rotation (-45..45 degrees), translation (10% of the size) and scale
(0.85..1.15). Here the whole chain is one affine map ``M`` (3x3, image pixels -> crop pixels):

``M = T(c + t) R(angle) S(scale) T(-c) C``, where ``C`` maps the square crop box onto the
output and ``c = ((size - 1) / 2, (size - 1) / 2)`` is the crop centre.

The image is warped with ``M`` (OpenCV ``warpAffine``, pixel centres at integer coordinates,
the same convention as the points), and image-frame vertices ``(x, y, z)`` map to
``(M (x, y), z * z_scale)`` with ``z_scale`` the isotropic scale of ``M``, so a mesh keeps its
shape. :meth:`CropTransform.invert` maps crop-frame predictions back to the original image
exactly. The geometric warp uses one matrix rather than a chain of ``torchvision.transforms.v2``
ops so that image and vertices are guaranteed to move together; the random parameters are
drawn from a ``torch.Generator`` (or torch's global RNG, which DataLoader seeds per worker).

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import torch
from numpy.typing import ArrayLike, NDArray

from facegcn_lib.data.images import image_to_tensor, tensor_to_image


@dataclass(frozen=True)
class CropConfig:
    """The crop box and output size.

    Attributes:
        size: output side in pixels (the paper: 256).
        margin: the square box's side is ``margin * max(width, height)`` of the landmark box.
        shift_y: the box centre moves down by ``shift_y * side`` (negative: up, to keep the
            forehead, which the 68 landmarks do not reach).
        antialias: shrink the image with area averaging first when the crop shrinks it by more
            than this factor (avoids aliasing; the geometry is unchanged).
    """

    size: int = 256
    margin: float = 1.5
    shift_y: float = -0.08
    antialias: float = 2.0


@dataclass(frozen=True)
class AugmentConfig:
    """Random geometric augmentation (the paper's ranges).

    Attributes:
        max_rotation_deg: rotation uniform in ``[-max, max]`` degrees (counter-clockwise on screen).
        max_translation: translation uniform in ``[-max, max] * size`` pixels along x and y.
        scale_range: scale uniform in ``[lo, hi]``.
    """

    max_rotation_deg: float = 45.0
    max_translation: float = 0.1
    scale_range: tuple[float, float] = (0.85, 1.15)


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the augmentation: degrees, pixels (crop frame) and scale."""

    angle_deg: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    scale: float = 1.0


@dataclass(frozen=True)
class CropBox:
    """A square box in image pixels: centre ``(cx, cy)`` and side (pixel-centre coordinates)."""

    cx: float
    cy: float
    side: float


class CropError(ValueError):
    """Landmarks that cannot define a crop box (NaN, too few, zero extent)."""


def landmark_box(landmarks: ArrayLike, cfg: CropConfig | None = None) -> CropBox:
    """The square crop box of ``(N, 2+)`` landmarks (image pixels; NaN rows are ignored)."""
    c = cfg or CropConfig()
    pts = np.asarray(landmarks, dtype=np.float64)[:, :2]
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < 2:
        raise CropError("fewer than two finite landmarks: cannot place a crop box")
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    extent = float((hi - lo).max())
    if extent <= 0:
        raise CropError("the landmarks all coincide: cannot place a crop box")
    side = c.margin * extent
    centre = (lo + hi) / 2.0
    return CropBox(float(centre[0]), float(centre[1] + c.shift_y * side), side)


def sample_augment(generator: torch.Generator | None = None, cfg: AugmentConfig | None = None,
                   size: int = CropConfig.size) -> AugmentParams:
    """Draw :class:`AugmentParams` uniformly within ``cfg``'s ranges."""
    c = cfg or AugmentConfig()
    u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
    lo, hi = c.scale_range
    return AugmentParams(
        angle_deg=(2 * u[0] - 1) * c.max_rotation_deg,
        tx=(2 * u[1] - 1) * c.max_translation * size,
        ty=(2 * u[2] - 1) * c.max_translation * size,
        scale=lo + u[3] * (hi - lo))


def _translate(tx: float, ty: float) -> NDArray[np.float64]:
    return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class CropTransform:
    """The map from original image pixels to crop pixels.

    Attributes:
        matrix: (3, 3) float64 affine on homogeneous ``(x, y, 1)``.
        z_scale: the factor applied to z (the isotropic scale of ``matrix``).
        size: the crop's side in pixels.
    """

    matrix: NDArray[np.float64]
    z_scale: float
    size: int

    @classmethod
    def build(cls, box: CropBox, size: int, aug: AugmentParams | None = None) -> CropTransform:
        """``T(c + t) R S T(-c) C`` for a box, an output size and augmentation parameters."""
        a = aug or AugmentParams()
        k = size / box.side
        centre = (size - 1) / 2.0
        crop = np.diag([k, k, 1.0]) @ _translate(-box.cx, -box.cy)
        crop = _translate(centre, centre) @ crop
        th = math.radians(a.angle_deg)
        # counter-clockwise on screen in a y-down image
        rot = np.array([[math.cos(th), math.sin(th), 0.0], [-math.sin(th), math.cos(th), 0.0],
                        [0.0, 0.0, 1.0]])
        aug_m = _translate(centre + a.tx, centre + a.ty) @ np.diag([a.scale, a.scale, 1.0]) @ rot \
            @ _translate(-centre, -centre)
        return cls(aug_m @ crop, k * a.scale, size)

    def apply(self, points: ArrayLike) -> NDArray[np.float64]:
        """Image-frame points ``(..., 2)`` or ``(..., 3)`` to the crop frame."""
        return _affine_points(points, self.matrix, self.z_scale)

    def invert(self, points: ArrayLike) -> NDArray[np.float64]:
        """Crop-frame points (e.g. a prediction) back to the original image frame."""
        inv = np.asarray(np.linalg.inv(self.matrix), dtype=np.float64)
        return _affine_points(points, inv, 1.0 / self.z_scale)

    def warp_image(self, image: NDArray[np.uint8], border_value: int = 0,
                   antialias: float = CropConfig.antialias) -> NDArray[np.uint8]:
        """Warp an ``(H, W, C)`` image into the ``(size, size, C)`` crop (bilinear).

        When the crop shrinks the image by more than ``antialias``, the image is first
        area-averaged to the crop's scale (the geometry is unchanged: the matrix is corrected
        for the resize, whose pixel centres map as ``u = f (x + 0.5) - 0.5``).
        """
        m = self.matrix
        src = image
        if 1.0 / self.z_scale > antialias:
            h, w = image.shape[:2]
            nw, nh = max(1, round(w * self.z_scale)), max(1, round(h * self.z_scale))
            src = np.asarray(cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA), dtype=np.uint8)
            fx, fy = nw / w, nh / h
            down = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
            m = m @ np.linalg.inv(down)
        out = np.asarray(cv2.warpAffine(src, m[:2], (self.size, self.size), flags=cv2.INTER_LINEAR,
                                        borderMode=cv2.BORDER_CONSTANT,
                                        borderValue=(border_value,) * 3), dtype=np.uint8)
        return out.reshape(self.size, self.size, -1)


def _affine_points(points: ArrayLike, matrix: NDArray[np.float64], z_scale: float) -> NDArray[np.float64]:
    p = np.array(points, dtype=np.float64)
    xy = p[..., :2] @ matrix[:2, :2].T + matrix[:2, 2]
    p[..., :2] = xy
    if p.shape[-1] > 2:
        p[..., 2] *= z_scale
    return p


#: sample keys holding image-frame points that a crop transforms
POINT_KEYS = ("landmarks", "vertices")


class CropAndAugment:
    """A dataset transform: crop a sample around its landmarks, resize and (optionally) augment.

    Reads ``sample["image"]`` ((3, H, W) uint8 tensor) and ``sample["landmarks"]`` (68, 2 or 3),
    writes the crop into ``"image"``, maps every key of :data:`POINT_KEYS` present, and adds
    ``"crop_matrix"`` ((3, 3) float64 tensor, image -> crop) and ``"z_scale"`` (float64
    tensor), with which :func:`uncrop_points` maps predictions back.

    Args:
        crop: the crop box and size.
        augment: the augmentation ranges, or ``None`` for a plain crop (evaluation).
        generator: random source (default: torch's global RNG, which ``DataLoader`` seeds
            differently in each worker; a generator passed here is copied into every worker,
            which would then draw the same augmentations: use it only with ``num_workers=0``).
        box_key: which points define the box (default the landmarks; e.g. ``"roi"`` boxes
            are not used by the paper).
    """

    def __init__(self, crop: CropConfig | None = None, augment: AugmentConfig | None = None,
                 generator: torch.Generator | None = None, box_key: str = "landmarks") -> None:
        self.crop = crop or CropConfig()
        self.augment = augment
        self.generator = generator
        self.box_key = box_key

    def transform_for(self, sample: dict[str, Any]) -> CropTransform:
        """The (random) crop transform for one sample."""
        box = landmark_box(torch.as_tensor(sample[self.box_key]).numpy(), self.crop)
        aug = sample_augment(self.generator, self.augment, self.crop.size) if self.augment else None
        return CropTransform.build(box, self.crop.size, aug)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        tf = self.transform_for(sample)
        out = dict(sample)
        out["image"] = image_to_tensor(
            tf.warp_image(tensor_to_image(sample["image"]), antialias=self.crop.antialias))
        for key in POINT_KEYS:
            if key in sample and sample[key] is not None:
                pts = torch.as_tensor(sample[key])
                out[key] = torch.as_tensor(tf.apply(pts.numpy()), dtype=pts.dtype)
        out["crop_matrix"] = torch.as_tensor(tf.matrix)
        out["z_scale"] = torch.tensor(tf.z_scale, dtype=torch.float64)
        return out


def uncrop_points(points: torch.Tensor, crop_matrix: torch.Tensor, z_scale: torch.Tensor) -> torch.Tensor:
    """Map crop-frame points ``(B, N, 2|3)`` back to image frames (batched, differentiable).

    Args:
        points: predictions in crop pixels.
        crop_matrix: (B, 3, 3) from :class:`CropAndAugment` (image -> crop).
        z_scale: (B,) likewise.
    """
    inv: torch.Tensor = torch.linalg.inv(crop_matrix.to(torch.float64)).to(points.dtype)
    xy: torch.Tensor = points[..., :2] @ inv[:, :2, :2].transpose(-1, -2) + inv[:, None, :2, 2]
    if points.shape[-1] == 2:
        return xy
    z = points[..., 2:] / z_scale.to(points.dtype)[:, None, None]
    return torch.cat([xy, z], dim=-1)
