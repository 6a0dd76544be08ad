"""Rigid point-to-point ICP and the Florence-style error (outer inter-ocular normalised).

The Florence protocol of PRNet (Feng et al. 2018), after VRN (Jackson et al. 2017): align the
predicted point cloud rigidly to the ground-truth scan with ICP, then average the distance of
each aligned predicted point to its nearest ground-truth point and divide by the outer
inter-ocular distance (between the outer eye corners, landmarks 36 and 45 of the 68-point
convention, 0-based).

See :doc:`chapter 6 </chapters/06_evaluation>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.spatial import cKDTree

from facegcn_lib.eval.metrics import MetricInputError, to_numpy

#: Outer eye corners in the 68-point convention (0-based): right eye's outer corner, left eye's.
OUTER_EYE_CORNERS_68 = (36, 45)
_DIMS = 3

Direction = Literal["pred_to_gt", "gt_to_pred", "symmetric"]


@dataclass(frozen=True)
class ICPConfig:
    """Stopping rules and start of :func:`rigid_icp`.

    Attributes:
        max_iterations: the most correspondence / fit rounds.
        tolerance: stop when the RMS nearest-neighbour distance falls by less than
            ``tolerance * previous RMS`` in one round (relative change).
        init: ``"centroid"`` starts by translating the source's centroid onto the target's,
            ``"identity"`` starts from the source as given (when ``correspondences`` are not given).
    """

    max_iterations: int = 100
    tolerance: float = 1e-10
    init: Literal["centroid", "identity"] = "centroid"

    def __post_init__(self) -> None:
        if self.max_iterations < 1:
            raise MetricInputError(f"ICPConfig.max_iterations must be >= 1, got {self.max_iterations}")
        if self.tolerance < 0:
            raise MetricInputError(f"ICPConfig.tolerance must be >= 0, got {self.tolerance}")
        if self.init not in ("centroid", "identity"):
            raise MetricInputError(f"ICPConfig.init must be 'centroid' or 'identity', got {self.init!r}")


class ICPResult(NamedTuple):
    """The outcome of :func:`rigid_icp`; ``aligned = source @ rotation.T + translation``.

    Attributes:
        rotation: (3, 3) float64 proper rotation (det +1).
        translation: (3,) float64.
        aligned: (N, 3) float64 source points moved onto the target.
        history: RMS nearest-neighbour distance (target units) at the start and after each round.
    """

    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]
    aligned: NDArray[np.float64]
    history: tuple[float, ...]


def _cloud(name: str, arr: ArrayLike) -> NDArray[np.float64]:
    a = to_numpy(arr)
    if a.ndim != 2 or a.shape[1] != _DIMS or a.shape[0] < _DIMS:
        raise MetricInputError(f"{name} must be (N, 3) points with N >= 3, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MetricInputError(f"{name} holds NaN or infinite values")
    return a


def kabsch(source: ArrayLike, target: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The least-squares rigid motion taking ``source[i]`` onto ``target[i]`` (Kabsch / Umeyama).

    Minimises ``sum_i ||R source[i] + t - target[i]||^2`` over rotations ``R`` (det +1, the
    reflection case corrected as in Umeyama 1991) and translations ``t``: the library's
    :func:`facegcn_lib.geometry.umeyama.umeyama` without scale (imported on first use, as it
    loads torch).

    Args:
        source: (N, 3) float points, N >= 3.
        target: (N, 3) float corresponding points.

    Returns:
        ``(R, t)``: (3, 3) and (3,) float64.

    Raises:
        MetricInputError: the arrays are not (N, 3) or differ in shape.
        facegcn_lib.geometry.umeyama.FitError: the source points all coincide.
    """
    from facegcn_lib.geometry.umeyama import umeyama

    src = _cloud("source", source)
    dst = _cloud("target", target)
    if src.shape != dst.shape:
        raise MetricInputError(f"source {src.shape} and target {dst.shape} must correspond point "
                               "for point")
    fit = umeyama(src, dst, with_scale=False)
    return np.asarray(fit.rotation, dtype=np.float64), np.asarray(fit.translation, dtype=np.float64)


def rigid_icp(source: ArrayLike, target: ArrayLike, *,
              correspondences: tuple[ArrayLike, ArrayLike] | None = None,
              config: ICPConfig | None = None) -> ICPResult:
    """Rigidly align a point cloud to another by point-to-point ICP (Besl and McKay 1992).

    Each round pairs every source point with its nearest target point (scipy ``cKDTree``) and
    refits the rigid motion to the pairs with :func:`kabsch`; it stops after
    ``config.max_iterations`` rounds, when the pairs repeat (the fit is then a fixed point) or
    when the RMS distance stops falling by more than ``config.tolerance`` (relative).

    Args:
        source: (N, 3) float points to move (e.g. predicted vertices).
        target: (M, 3) float fixed points (e.g. a ground-truth scan), same units.
        correspondences: optional ``(source_idx, target_idx)`` index arrays of known pairs
            (e.g. the 68 landmarks); the start is then the Kabsch / Umeyama fit of those pairs.
        config: stopping rules and the start without correspondences (default :class:`ICPConfig`).

    Returns:
        An :class:`ICPResult` ``(rotation, translation, aligned, history)``.
    """
    cfg = config or ICPConfig()
    src = _cloud("source", source)
    dst = _cloud("target", target)
    if correspondences is not None:
        si = np.asarray(correspondences[0], dtype=np.int64)
        ti = np.asarray(correspondences[1], dtype=np.int64)
        if si.shape != ti.shape or si.ndim != 1:
            raise MetricInputError("correspondences must be two index arrays of the same length")
        rot, trans = kabsch(src[si], dst[ti])
    elif cfg.init == "centroid":
        rot, trans = np.eye(_DIMS), dst.mean(axis=0) - src.mean(axis=0)
    else:
        rot, trans = np.eye(_DIMS), np.zeros(_DIMS)

    tree = cKDTree(dst)
    moved = src @ rot.T + trans
    dist, idx = tree.query(moved)
    history = [float(np.sqrt(np.mean(dist**2)))]
    for _ in range(cfg.max_iterations):
        rot, trans = kabsch(src, dst[idx])
        moved = src @ rot.T + trans
        dist, new_idx = tree.query(moved)
        rms = float(np.sqrt(np.mean(dist**2)))
        prev = history[-1]
        history.append(rms)
        if np.array_equal(new_idx, idx) or prev - rms <= cfg.tolerance * prev:
            break
        idx = new_idx
    return ICPResult(rot, trans, moved, tuple(history))


def nearest_distances(points: ArrayLike, reference: ArrayLike) -> NDArray[np.float64]:
    """(N,) float64 distance from each of ``points`` (N, 3) to its nearest ``reference`` (M, 3) point."""
    dist, _ = cKDTree(_cloud("reference", reference)).query(_cloud("points", points))
    return np.asarray(dist, dtype=np.float64)


def florence_error(pred: ArrayLike, gt_points: ArrayLike,
                   outer_eye_idx: tuple[int, int] | None = OUTER_EYE_CORNERS_68, *,
                   iod: float | None = None,
                   correspondences: tuple[ArrayLike, ArrayLike] | None = None,
                   direction: Direction = "pred_to_gt",
                   config: ICPConfig | None = None) -> float:
    """The Florence-style error: rigid ICP, then mean nearest-point distance over the outer IOD.

    Args:
        pred: (N, 3) float predicted points (e.g. vertices), any rigid pose, same scale as the
            ground truth.
        gt_points: (M, 3) float ground-truth scan points.
        outer_eye_idx: indices into ``gt_points`` of the two outer eye corners; the normaliser
            is their distance. Ignored when ``iod`` is given.
        iod: the outer inter-ocular distance itself (same units as the points).
        correspondences: optional known ``(pred_idx, gt_idx)`` pairs to start ICP from.
        direction: average over predicted points (``"pred_to_gt"``, the protocol's), over
            ground-truth points (``"gt_to_pred"``) or the mean of both (``"symmetric"``).
        config: ICP settings.

    Returns:
        The normalised error (a fraction; 0 for a rigidly moved copy of the ground truth).
    """
    gt = _cloud("gt_points", gt_points)
    if iod is None:
        if outer_eye_idx is None:
            raise MetricInputError("give outer_eye_idx (indices of the outer eye corners in "
                                   "gt_points) or iod")
        i, j = outer_eye_idx
        iod = float(np.linalg.norm(gt[i] - gt[j]))
    if not iod > 0:
        raise MetricInputError(f"the inter-ocular distance must be positive, got {iod}")
    aligned = rigid_icp(pred, gt, correspondences=correspondences, config=config).aligned
    if direction == "pred_to_gt":
        err = float(nearest_distances(aligned, gt).mean())
    elif direction == "gt_to_pred":
        err = float(nearest_distances(gt, aligned).mean())
    elif direction == "symmetric":
        err = 0.5 * float(nearest_distances(aligned, gt).mean() + nearest_distances(gt, aligned).mean())
    else:
        raise MetricInputError(f"direction must be 'pred_to_gt', 'gt_to_pred' or 'symmetric', "
                               f"got {direction!r}")
    return err / iod
