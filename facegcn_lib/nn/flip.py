"""Test-time flip averaging: predict a crop and its mirror image, and average the two meshes.

A face seen in a mirror is a face, so a network that has learnt faces should predict the
mirrored mesh for the mirrored crop. It does so only approximately, and its errors on the two
crops are partly independent: averaging the prediction with the un-mirrored prediction of the
flipped crop cancels part of them (a classic test-time augmentation of landmark detectors).

Un-mirroring needs two things: the reflection of the normalised crop frame (``x -> -x``:
flipping a crop's columns maps pixel ``u`` to ``S - 1 - u``, which is exactly ``x -> -x`` in
the frame of :func:`~facegcn_lib.nn.model.normalized_to_crop`), and the mesh's *mirror
permutation*: which vertex of the mesh is the mirror image of which
(:func:`mirror_permutation`, from a left-right symmetric template).

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from numpy.typing import NDArray

#: The axis of the normalised crop frame that a horizontal image flip negates (x, to the right).
FLIP_AXIS = 0
#: Largest mismatch, as a fraction of the template's size, between a vertex's mirror image and
#: the vertex taken as its mirror: beyond it the mesh is not left-right symmetric.
SYMMETRY_TOLERANCE = 1e-3


class AsymmetricMeshError(ValueError):
    """A template that is not left-right symmetric has no mirror permutation."""


def mirror_permutation(template: NDArray[np.floating], axis: int = FLIP_AXIS,
                       tolerance: float = SYMMETRY_TOLERANCE) -> NDArray[np.int64]:
    """For each vertex, the vertex at its mirror image across the plane ``x_axis = 0``.

    Args:
        template: (V, 3) a left-right symmetric mesh, centred on its plane of symmetry (e.g.
            the model's template in the normalised crop frame, or the ICT neutral face).
        axis: the coordinate the reflection negates.
        tolerance: the largest allowed distance from a mirrored vertex to its match, as a
            fraction of the template's extent along ``axis``.

    Returns:
        (V,) int64 ``p`` with ``template[p] ~ template * (-1 on axis)``; an involution
        (``p[p] == arange(V)``).

    Raises:
        AsymmetricMeshError: the mesh is not symmetric (or not centred) within ``tolerance``,
            or nearest neighbours do not pair the vertices one to one.
    """
    from scipy.spatial import cKDTree

    v = np.asarray(template, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3:
        raise AsymmetricMeshError(f"template must be (V, 3), got {v.shape}")
    mirrored = v.copy()
    mirrored[:, axis] = -mirrored[:, axis]
    dist, perm = cKDTree(v).query(mirrored)
    extent = float(np.ptp(v[:, axis])) or 1.0
    worst = float(dist.max()) / extent
    if worst > tolerance:
        raise AsymmetricMeshError(
            f"the mesh is not left-right symmetric about {'xyz'[axis]} = 0: a mirrored vertex lies "
            f"{100 * worst:.2f} % of the mesh's width from the nearest vertex (tolerance "
            f"{100 * tolerance:.2f} %); flip averaging needs a symmetric template")
    out: NDArray[np.int64] = np.asarray(perm, dtype=np.int64)
    if not np.array_equal(out[out], np.arange(len(v))):
        raise AsymmetricMeshError("the mirror matches are not one to one (duplicate vertices?)")
    return out


def unflip(verts_n: torch.Tensor, mirror: torch.Tensor, axis: int = FLIP_AXIS) -> torch.Tensor:
    """The mesh predicted for a flipped crop, carried back to the original crop.

    Args:
        verts_n: (B, V, 3) normalised-frame vertices predicted for horizontally flipped crops.
        mirror: (V,) the mesh's mirror permutation.
        axis: the coordinate the flip negates.

    Returns:
        (B, V, 3): vertex ``i`` is the reflection of the flipped prediction's vertex ``mirror[i]``.
    """
    sign = torch.ones(3, dtype=verts_n.dtype, device=verts_n.device)
    sign[axis] = -1.0
    return verts_n[:, mirror.to(verts_n.device)] * sign


def flip_average(forward: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                 mirror: torch.Tensor) -> torch.Tensor:
    """The mean of the predictions for crops and for their mirror images (one batch of 2B).

    Args:
        forward: crops (N, 3, S, S) -> vertices (N, V, 3) in the normalised crop frame (a
            model's ``forward``, or an onnxruntime session wrapped alike).
        images: (B, 3, S, S) the crops.
        mirror: (V,) the mesh's mirror permutation (:func:`mirror_permutation`).

    Returns:
        (B, V, 3) the averaged vertices, normalised crop frame.
    """
    b = images.shape[0]
    both = forward(torch.cat([images, images.flip(-1)]))
    return 0.5 * (both[:b] + unflip(both[b:], mirror))
