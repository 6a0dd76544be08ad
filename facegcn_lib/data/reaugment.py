"""Fresh views of cached crops: a mirror image and a small re-crop, so every epoch sees new faces.

A disk cache of rendered faces (:mod:`facegcn_lib.data.synth_cache`) holds a fixed set of crops;
training on it for many epochs would show the network the same pixels again and again. This
transform makes each reading of a cached sample a different one, with two exact operations on
the crop and its ground truth:

* **the mirror image** (with probability ``mirror_p``): the columns of the crop are reversed,
  so a point at column ``x`` moves to ``S - 1 - x``; vertex ``i`` of the mirrored face is the
  mirror image of vertex ``p[i]`` (the mesh's mirror permutation,
  :func:`facegcn_lib.nn.flip.mirror_permutation`), and landmark ``j`` that of landmark
  :data:`LMKS68_MIRROR` ``[j]`` (the left eye becomes the right eye). Yaw and roll change sign.
* **a small re-crop**: rotation, translation and scale about the crop's centre, applied to the
  image and the points alike (the crop transform of :mod:`facegcn_lib.data.crop` with the whole
  crop as its box). The renderer already drew the paper's large ranges; this one is small, so
  that it only adds variety and few black corners.
* **glasses** (optional, :class:`~facegcn_lib.data.glasses.GlassesConfig`): drawn last, on the
  final crop, from its 3D landmarks (:mod:`facegcn_lib.data.glasses`); the targets do not change.
* **loose hair** (optional, :class:`~facegcn_lib.data.loose_hair.LooseHairConfig`): a fringe or
  curtains drawn over the final crop (and over any glasses) from its landmarks
  (:mod:`facegcn_lib.data.loose_hair`); the targets do not change.

Every draw comes from the ``generator`` attribute, which
:class:`facegcn_lib.train.build.SeededAugment` seeds per item: an epoch's data depend on the
seed and the item index alone.

See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.data.crop import AugmentConfig, CropBox, CropTransform, sample_augment
from facegcn_lib.data.glasses import AddGlasses, GlassesConfig
from facegcn_lib.data.images import image_to_tensor, tensor_to_image
from facegcn_lib.data.loose_hair import AddLooseHair, LooseHairConfig

#: For each of the 68 iBUG landmarks, the landmark at its mirror image (jaw 0-16, brows
#: 17-26, nose 27-35, eyes 36-47, mouth 48-67); an involution.
LMKS68_MIRROR: tuple[int, ...] = (
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  # jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,  # brows
    27, 28, 29, 30,  # nose bridge
    35, 34, 33, 32, 31,  # nostrils
    45, 44, 43, 42, 47, 46,  # right eye <- left eye
    39, 38, 37, 36, 41, 40,  # left eye <- right eye
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,  # outer lip
    64, 63, 62, 61, 60, 67, 66, 65,  # inner lip
)


class ReaugmentError(ValueError):
    """A sample or a permutation that the transform cannot use; the message says why."""


@dataclass(frozen=True)
class ReaugmentConfig:
    """How cached crops are varied.

    Attributes:
        mirror_p: probability of the mirror image.
        augment: the re-crop's ranges (small: the renderer drew the large ones already), or
            ``None`` for none.
        glasses: eyeglasses drawn on the final crop (with probability ``glasses.prob``), or
            ``None`` for none.
        loose_hair: loose hair drawn over the final crop, after the glasses (with probability
            ``loose_hair.prob``), or ``None`` for none.
    """

    mirror_p: float = 0.5
    augment: AugmentConfig | None = field(default_factory=lambda: AugmentConfig(
        max_rotation_deg=10.0, max_translation=0.03, scale_range=(0.95, 1.05)))
    glasses: GlassesConfig | None = None
    loose_hair: LooseHairConfig | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.mirror_p <= 1.0:
            raise ReaugmentError(f"mirror_p must be in [0, 1], got {self.mirror_p}")


def _check_involution(perm: NDArray[np.int64], what: str) -> None:
    if perm.ndim != 1 or not np.array_equal(perm[perm], np.arange(len(perm))):
        raise ReaugmentError(f"the {what} mirror permutation must be a (N,) involution "
                             "(p[p] == arange(N)); use facegcn_lib.nn.flip.mirror_permutation")


def mirror_points(points: NDArray[np.floating[Any]], perm: NDArray[np.int64],
                  size: int) -> NDArray[np.floating[Any]]:
    """Points of a crop as they are in its mirror image.

    Args:
        points: (N, 2 or 3) crop pixels (x right, y down, z unchanged by the mirror).
        perm: (N,) mirror permutation of the points.
        size: the crop's side S (column ``x`` goes to ``S - 1 - x``).

    Returns:
        (N, 2 or 3), same dtype: point ``i`` is the reflection of ``points[perm[i]]``.
    """
    out = np.array(points[perm], copy=True)
    out[:, 0] = (size - 1) - out[:, 0]
    return out


def mirror_sample(sample: dict[str, Any], vertex_mirror: NDArray[np.int64]) -> dict[str, Any]:
    """A face sample seen in a mirror: its crop, vertices, landmarks, pose and visibility.

    Args:
        sample: ``image`` (3, S, S) uint8 tensor, ``vertices`` (V, 3) and ``landmarks``
            (68, 2 or 3) crop pixels, and optionally ``pose`` (3,) yaw, pitch, roll (radians)
            and ``visibility`` (V,) bool.
        vertex_mirror: (V,) the mesh's mirror permutation.

    Returns:
        A new dict with the same keys (others copied unchanged).

    Raises:
        ReaugmentError: the permutation does not fit the vertices.
    """
    verts = torch.as_tensor(sample["vertices"])
    if len(vertex_mirror) != verts.shape[0]:
        raise ReaugmentError(f"the mirror permutation has {len(vertex_mirror)} entries but the "
                             f"sample has {verts.shape[0]} vertices: build it from this mesh")
    size = int(sample["image"].shape[-1])
    lmks = torch.as_tensor(sample["landmarks"])
    out = dict(sample)
    out["image"] = sample["image"].flip(-1).contiguous()
    out["vertices"] = torch.from_numpy(mirror_points(verts.numpy(), vertex_mirror, size))
    out["landmarks"] = torch.from_numpy(
        mirror_points(lmks.numpy(), np.asarray(LMKS68_MIRROR, dtype=np.int64), size))
    if "pose" in sample:
        out["pose"] = torch.as_tensor(sample["pose"]) * torch.tensor([-1.0, 1.0, -1.0])
    if "visibility" in sample:
        out["visibility"] = torch.as_tensor(sample["visibility"])[torch.from_numpy(vertex_mirror)]
    return out


def recrop_sample(sample: dict[str, Any], tf: CropTransform) -> dict[str, Any]:
    """A crop's sample warped by ``tf`` (crop pixels to new crop pixels), points alike.

    Args:
        sample: as for :func:`mirror_sample`.
        tf: the transform, e.g. ``CropTransform.build(whole_crop_box(S), S, params)``.
    """
    out = dict(sample)
    out["image"] = image_to_tensor(tf.warp_image(tensor_to_image(sample["image"])))
    for key in ("vertices", "landmarks"):
        pts = torch.as_tensor(sample[key])
        out[key] = torch.as_tensor(tf.apply(pts.numpy()), dtype=pts.dtype)
    return out


def whole_crop_box(size: int) -> CropBox:
    """The box of a whole ``size x size`` crop (its crop transform is the identity)."""
    centre = (size - 1) / 2.0
    return CropBox(centre, centre, float(size))


class Reaugment:
    """A dataset transform: mirror (sometimes) and re-crop (slightly) a cached face sample.

    Args:
        vertex_mirror: (V,) the mesh's mirror permutation
            (:func:`facegcn_lib.nn.flip.mirror_permutation` of the ICT face).
        cfg: the probabilities and ranges.
        generator: the random source; :class:`~facegcn_lib.train.build.SeededAugment` sets it
            per item.
    """

    def __init__(self, vertex_mirror: NDArray[np.int64], cfg: ReaugmentConfig | None = None,
                 generator: torch.Generator | None = None) -> None:
        perm = np.asarray(vertex_mirror, dtype=np.int64)
        _check_involution(perm, "vertex")
        self.vertex_mirror = perm
        self.cfg = cfg or ReaugmentConfig()
        self.generator = generator

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        out = dict(sample)
        if float(torch.rand((), generator=self.generator)) < self.cfg.mirror_p:
            out = mirror_sample(out, self.vertex_mirror)
        if self.cfg.augment is not None:
            size = int(out["image"].shape[-1])
            params = sample_augment(self.generator, self.cfg.augment, size)
            out = recrop_sample(out, CropTransform.build(whole_crop_box(size), size, params))
        if self.cfg.glasses is not None:
            out = AddGlasses(self.cfg.glasses, self.generator)(out)
        if self.cfg.loose_hair is not None:
            out = AddLooseHair(self.cfg.loose_hair, self.generator)(out)
        return out

    def __repr__(self) -> str:
        return f"Reaugment(vertices={len(self.vertex_mirror)}, cfg={self.cfg})"


def ict_face_mirror() -> NDArray[np.int64]:
    """The mirror permutation of the ICT face region (9,409 vertices), from its neutral face."""
    from facegcn_lib.morphable.ict import load_ict_neutral
    from facegcn_lib.nn.flip import mirror_permutation

    verts = np.asarray(load_ict_neutral(region="face").verts, dtype=np.float64)
    return mirror_permutation(verts)
