"""Landmark and dense NME with the AFLW2000-3D protocol, yaw bins, the balanced subset and CED.

The landmark protocol reproduces the standard AFLW2000-3D benchmark script of 3DDFA,
``benchmark_aflw2000.py`` of https://github.com/cleardusk/3DDFA (functions ``calc_nme`` and
``ana``, read at commit 0ff8ca4). 3DDFA_V2 has no benchmark script of its own and points to
this one for its NME (cleardusk/3DDFA_V2 issue #20); SynergyNet copies it unchanged:

* **Error per image** (``calc_nme``): the mean over the 68 points of the Euclidean distance
  between predicted and ground-truth **(x, y)** in original image pixels (z is never used),
  divided by ``sqrt(w * h)`` of the axis-aligned bounding box of the 68 *ground-truth* points,
  ``w = max(x) - min(x)``, ``h = max(y) - min(y)``. Predictions made in the 120 x 120 crop are
  first mapped back to the image with the crop boxes (:func:`crop_to_image`). ``option='re'``
  scores against the reannotated landmarks with the same formula.
* **Yaw bins** (``ana``): by ``|yaw|`` from ``AFLW2000-3D.pose.npy``: ``|yaw| <= 30``,
  ``30 < |yaw| <= 60`` and ``|yaw| > 60``. The last bin (printed ``[60, 90]``) takes *every*
  ``|yaw| > 60``: the seven values of the pose file beyond 90 degrees (-351.2, -117.6, -104.6,
  -103.0, -95.5, 118.9, 187.8) are not wrapped to (-180, 180]. This gives the 1312 / 383 / 305
  split of the data README; :func:`yaw_bins` does exactly this.
* **Reported figure** (``ana``): the mean of the three bin means (and, as "Std", the population
  standard deviation of those three means), in percent. The plain mean over all images is
  commented out of the script; :func:`nme_by_yaw` returns it as ``"overall"``.

The script works on ``(2|3, 68)`` arrays per image and in float32; this module takes points
last, ``(N, 68, 2|3)`` (:func:`from_3ddfa_layout` converts), and computes in float64, so its
values agree with the script's to float32 rounding (about 1e-7 relative).

3D NME (``dims=3``) is not in 3DDFA's script. It divides the 3D distance by the same 2D
normaliser, the ground-truth box's ``sqrt(w * h)``, the reading under which users reproduce
PRNet's reported 3D NME (PRNet's evaluation code is unpublished; see
https://github.com/yfeng95/PRNet/issues/145). Depth is compared as given unless
``center_z=True`` removes each point set's mean depth (the ground truth's depth origin is
that of its fitted model, which a predictor need not share). Dense NME (:func:`dense_nme`) averages over
all vertices of a dense mesh in correspondence, with the same normaliser taken from the 68
ground-truth landmarks.

See :doc:`chapter 6 </chapters/06_evaluation>`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

logger = logging.getLogger(__name__)

#: Number of coordinates 3DDFA's script compares (x, y).
DIMS_2D = 2
#: Number of coordinates of a 3D point.
DIMS_3D = 3
#: Side in pixels of 3DDFA's network input crop (``std_size`` in its benchmark script).
THREEDDFA_CROP_SIZE = 120


class MetricInputError(ValueError):
    """An array given to a metric has the wrong shape, dtype or values."""


@dataclass(frozen=True)
class YawBinning:
    """Yaw bins by absolute yaw: bin ``i`` holds ``edges[i-1] < |yaw| <= edges[i]``.

    The first bin starts at 0 (inclusive) and the last one is open above: it takes every
    ``|yaw| > edges[-1]``, including values beyond 90 degrees, as 3DDFA's script does.

    Attributes:
        edges: increasing inner bin edges in degrees.
        labels: one label per bin (``len(edges) + 1``), used as dictionary keys and table headers.
    """

    edges: tuple[float, ...] = (30.0, 60.0)
    labels: tuple[str, ...] = ("[0, 30]", "(30, 60]", "(60, 90]")

    def __post_init__(self) -> None:
        if len(self.labels) != len(self.edges) + 1:
            raise MetricInputError(f"YawBinning needs len(edges) + 1 labels, got {len(self.edges)} "
                                   f"edges and {len(self.labels)} labels")
        if any(b <= a for a, b in zip(self.edges[:-1], self.edges[1:], strict=True)) or (
                self.edges and self.edges[0] <= 0):
            raise MetricInputError(f"YawBinning.edges must be positive and increasing, got {self.edges}")

    @property
    def num_bins(self) -> int:
        """The number of bins."""
        return len(self.labels)


#: The bins of the AFLW2000-3D benchmark: [0, 30], (30, 60], (60, 90] (and beyond) degrees.
AFLW2000_YAW_BINS = YawBinning()
#: Key of :func:`nme_by_yaw`'s result: the mean of the bin means (the reported figure).
MEAN_OF_BINS = "mean_of_bins"
#: Key of :func:`nme_by_yaw`'s result: the population std of the bin means (3DDFA's "Std").
STD_OF_BINS = "std_of_bins"
#: Key of :func:`nme_by_yaw`'s result: the plain mean over all images.
OVERALL = "overall"


@dataclass(frozen=True)
class CEDConfig:
    """Defaults of :func:`ced_curve`.

    Attributes:
        num_thresholds: thresholds on ``[0, max error]`` when none are given.
    """

    num_thresholds: int = 201


# --- array checks ------------------------------------------------------------------------


def to_numpy(arr: Any) -> NDArray[np.float64]:
    """A float64 array from an array-like or a torch tensor (detached, moved to the CPU)."""
    if hasattr(arr, "detach"):  # torch.Tensor, without importing torch
        arr = arr.detach().cpu().numpy()
    return np.asarray(arr, dtype=np.float64)


def _points(name: str, arr: ArrayLike, min_dims: int) -> NDArray[np.float64]:
    a = to_numpy(arr)
    if a.ndim != 3 or a.shape[-1] not in (DIMS_2D, DIMS_3D):
        raise MetricInputError(
            f"{name} must be a batch of points (N, P, 2|3), got shape {a.shape}; add a batch "
            "axis with a[None] for one image, and convert 3DDFA's (N, 2|3, 68) arrays with "
            "from_3ddfa_layout()")
    if a.shape[-1] < min_dims:
        raise MetricInputError(f"{name} has {a.shape[-1]} coordinates per point but {min_dims} "
                               "are needed (the reannotated AFLW2000-3D landmarks are 2D only: "
                               "use dims=2)")
    if not np.all(np.isfinite(a)):
        raise MetricInputError(f"{name} holds NaN or infinite values")
    return a


def _vector(name: str, arr: ArrayLike, n: int | None = None) -> NDArray[np.float64]:
    a = to_numpy(arr)
    if a.ndim != 1 or (n is not None and a.shape[0] != n):
        want = f"({n},)" if n is not None else "(N,)"
        raise MetricInputError(f"{name} must have shape {want}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise MetricInputError(f"{name} holds NaN or infinite values")
    return a


def from_3ddfa_layout(arr: ArrayLike) -> NDArray[np.float64]:
    """Points-last view of 3DDFA's landmark arrays.

    Args:
        arr: (N, D, P) or (D, P) array, coordinates first, as in ``AFLW2000-3D.pts68.npy``
            (2000, 3, 68) and ``AFLW2000-3D-Reannotated.pts68.npy`` (2000, 2, 68).

    Returns:
        (N, P, D) float64 (or (P, D) for a single (D, P) array).
    """
    a = to_numpy(arr)
    if a.ndim not in (2, 3) or a.shape[-2] not in (DIMS_2D, DIMS_3D):
        raise MetricInputError(f"expected a (N, 2|3, P) or (2|3, P) array, got shape {a.shape}")
    return np.ascontiguousarray(np.swapaxes(a, -1, -2))


def crop_to_image(points: ArrayLike, roi_boxes: ArrayLike, crop_size: float,
                  scale_z: bool = False) -> NDArray[np.float64]:
    """Map points predicted in a square network crop back to original image pixels.

    The crop ``[sx, sy, ex, ey]`` of the image was resized to ``crop_size`` pixels, so
    ``x_img = x * (ex - sx) / crop_size + sx`` (and the same for y), as ``convert_to_ori`` and
    ``calc_nme`` of 3DDFA's ``benchmark_aflw2000.py`` do (with ``crop_size = 120``); unlike
    ``calc_nme`` this does not modify its input.

    Args:
        points: (N, P, 2|3) float, pixels of the crop (x right, y down).
        roi_boxes: (N, 4) float crop boxes ``[sx, sy, ex, ey]`` in image pixels
            (``AFLW2000-3D_crop.roi_box.npy``).
        crop_size: side of the network input in pixels (:data:`THREEDDFA_CROP_SIZE` for 3DDFA).
        scale_z: also scale z by ``sqrt(scale_x * scale_y)`` (3DDFA leaves z unchanged; set it
            for a 3D comparison).

    Returns:
        (N, P, 2|3) float64 points in image pixels.
    """
    p = _points("points", points, DIMS_2D).copy()
    boxes = to_numpy(roi_boxes)
    if boxes.shape != (p.shape[0], 4):
        raise MetricInputError(f"roi_boxes must have shape ({p.shape[0]}, 4), got {boxes.shape}")
    if crop_size <= 0:
        raise MetricInputError(f"crop_size must be positive, got {crop_size}")
    scale = (boxes[:, 2:4] - boxes[:, 0:2]) / crop_size  # (N, 2): scale_x, scale_y
    p[..., :2] = p[..., :2] * scale[:, None, :] + boxes[:, None, 0:2]
    if scale_z and p.shape[-1] == DIMS_3D:
        p[..., 2] *= np.sqrt(scale[:, 0] * scale[:, 1])[:, None]
    return p


# --- normalised mean error ---------------------------------------------------------------


def landmark_box_size(gt: ArrayLike) -> NDArray[np.float64]:
    """``sqrt(w * h)`` of each ground-truth point set's axis-aligned (x, y) bounding box.

    Args:
        gt: (N, P, 2|3) float ground-truth points in image pixels (only x, y are used).

    Returns:
        (N,) float64 normalisers, in pixels.

    Raises:
        MetricInputError: a box has zero width or height (the points are collinear).
    """
    g = _points("gt", gt, DIMS_2D)
    wh = g[..., :2].max(axis=1) - g[..., :2].min(axis=1)
    size: NDArray[np.float64] = np.sqrt(wh[:, 0] * wh[:, 1])
    bad = np.flatnonzero(size <= 0)
    if bad.size:
        raise MetricInputError(f"ground-truth boxes of zero area at images {bad[:10].tolist()}: "
                               "NME is undefined for them")
    return size


def _normalised_error(pred: NDArray[np.float64], gt: NDArray[np.float64], dims: int,
                      norm: NDArray[np.float64], center_z: bool) -> NDArray[np.float64]:
    diff = pred[..., :dims] - gt[..., :dims]
    if center_z and dims == DIMS_3D:
        diff[..., 2] -= diff[..., 2].mean(axis=1, keepdims=True)
    err: NDArray[np.float64] = np.linalg.norm(diff, axis=-1).mean(axis=1) / norm
    return err


def _check_pair(pred: NDArray[np.float64], gt: NDArray[np.float64]) -> None:
    if pred.shape[:2] != gt.shape[:2]:
        raise MetricInputError(f"pred {pred.shape} and gt {gt.shape} differ in the number of "
                               "images or points")


def _check_dims(dims: int) -> None:
    if dims not in (DIMS_2D, DIMS_3D):
        raise MetricInputError(f"dims must be 2 or 3, got {dims}")


def nme(pred: ArrayLike, gt: ArrayLike, dims: int = DIMS_2D, *,
        box_size: ArrayLike | None = None, center_z: bool = False) -> NDArray[np.float64]:
    """Per-image normalised mean error of landmarks (3DDFA's ``calc_nme`` for ``dims=2``).

    ``nme[i] = mean_k ||pred[i, k, :dims] - gt[i, k, :dims]|| / sqrt(w_i * h_i)`` with
    ``w_i, h_i`` the extent of ``gt[i, :, 0]`` and ``gt[i, :, 1]``.

    Args:
        pred: (N, 68, 2|3) float predicted landmarks in image pixels (torch tensors accepted).
        gt: (N, 68, 2|3) float ground truth in the same frame, e.g. the original (x, y, z)
            or the reannotated (x, y) AFLW2000-3D landmarks, points last.
        dims: 2 compares (x, y) (the benchmark), 3 compares (x, y, z) with the same 2D normaliser.
        box_size: optional (N,) normalisers replacing ``sqrt(w * h)`` of ``gt``.
        center_z: for ``dims=3``, subtract each point set's mean depth first (for predictions
            whose depth origin differs from the ground truth's); off in the benchmark.

    Returns:
        (N,) float64 errors as fractions (multiply by 100 for the percentages papers print).
    """
    _check_dims(dims)
    p = _points("pred", pred, dims)
    g = _points("gt", gt, max(dims, DIMS_2D))
    _check_pair(p, g)
    norm = landmark_box_size(g) if box_size is None else _positive("box_size", box_size, len(g))
    return _normalised_error(p, g, dims, norm, center_z)


#: The parts of the 68-point layout (Multi-PIE / 300-W / AFLW2000-3D order): 0-based index
#: ranges, end exclusive.
LANDMARK_REGIONS: dict[str, tuple[int, int]] = {
    "jaw": (0, 17), "brows": (17, 27), "nose": (27, 36), "eyes": (36, 48), "mouth": (48, 68)}


@dataclass(frozen=True)
class RegionErrors:
    """The 2D landmark error of a set of images, split by face part.

    Attributes:
        nme: part name -> mean over the images and the part's points of the (x, y) error
            over ``sqrt(w h)`` of the ground-truth box (the parts' point-weighted mean is the
            plain mean of :func:`nme`).
        offset: part name -> (2,) mean *signed* (x, y) error over the same normaliser: a
            systematic shift of the part (x right, y down), which averaging over images keeps
            and random errors cancel.
    """

    nme: dict[str, float]
    offset: dict[str, NDArray[np.float64]]


def nme_by_region(pred: ArrayLike, gt: ArrayLike,
                  regions: dict[str, tuple[int, int]] | None = None) -> RegionErrors:
    """Where the 68-point error is: per face part, its NME and its mean signed offset.

    Args:
        pred: (N, 68, 2|3) float predicted landmarks in image pixels.
        gt: (N, 68, 2|3) float ground truth in the same frame.
        regions: part name -> (start, end) point ranges (default :data:`LANDMARK_REGIONS`).

    Returns:
        :class:`RegionErrors`, as fractions (multiply by 100 for percentages).
    """
    p = _points("pred", pred, DIMS_2D)
    g = _points("gt", gt, DIMS_2D)
    _check_pair(p, g)
    diff = (p[..., :DIMS_2D] - g[..., :DIMS_2D]) / landmark_box_size(g)[:, None, None]
    parts = LANDMARK_REGIONS if regions is None else regions
    for name, (a, b) in parts.items():
        if not 0 <= a < b <= p.shape[1]:
            raise MetricInputError(f"region {name!r} = ({a}, {b}) is not a range of the "
                                   f"{p.shape[1]} points")
    return RegionErrors(
        nme={name: float(np.linalg.norm(diff[:, a:b], axis=-1).mean()) for name, (a, b) in parts.items()},
        offset={name: diff[:, a:b].mean(axis=(0, 1)) for name, (a, b) in parts.items()})


@dataclass(frozen=True)
class PlacementSplit:
    """The 2D landmark error of each image split into where the face is and what shape it has.

    Attributes:
        nme: (N,) the 2D NME of :func:`nme`.
        shape_nme: (N,) the NME left after the 2D similarity (shift, rotation, isotropic scale)
            that best fits the prediction to the ground truth in the least-squares sense (the
            Procrustes-aligned NME): the error of the shape alone. ``nme - shape_nme`` is
            about what the face's placement (position, size, in-plane angle) adds.
        scale: (N,) that similarity's scale: above 1 the prediction is smaller than the
            ground truth, below 1 larger.
        shift: (N, 2) the predicted points' centroid minus the ground truth's, over the same
            normaliser (x right, y down).
    """

    nme: NDArray[np.float64]
    shape_nme: NDArray[np.float64]
    scale: NDArray[np.float64]
    shift: NDArray[np.float64]


def placement_split(pred: ArrayLike, gt: ArrayLike) -> PlacementSplit:
    """Split each image's 2D landmark error into placement and shape (Procrustes analysis).

    In the complex plane (``z = x + iy``) the similarity ``z -> a z + b`` that best maps the
    centred prediction :math:`p` onto the centred ground truth :math:`g` has
    :math:`a = \\sum_k \\bar p_k g_k / \\sum_k |p_k|^2` (its modulus is the scale, its
    argument the angle) and ``b`` the ground truth's centroid.

    Args:
        pred: (N, L, 2|3) float predicted landmarks in image pixels (z is ignored).
        gt: (N, L, 2|3) float ground truth in the same frame.

    Returns:
        :class:`PlacementSplit`, errors as fractions of ``sqrt(w h)`` of the ground-truth box.
    """
    p = _points("pred", pred, DIMS_2D)
    g = _points("gt", gt, DIMS_2D)
    _check_pair(p, g)
    norm = landmark_box_size(g)
    zp = p[..., 0] + 1j * p[..., 1]
    zg = g[..., 0] + 1j * g[..., 1]
    cp, cg = zp.mean(axis=1, keepdims=True), zg.mean(axis=1, keepdims=True)
    power = (np.abs(zp - cp) ** 2).sum(axis=1, keepdims=True)
    if np.any(power == 0.0):
        raise MetricInputError("a prediction has all its points in one place: it has no shape to align")
    a = (np.conj(zp - cp) * (zg - cg)).sum(axis=1, keepdims=True) / power
    aligned = a * (zp - cp) + cg
    shift = (cp - cg)[:, 0] / norm
    return PlacementSplit(
        nme=np.abs(zp - zg).mean(axis=1) / norm,
        shape_nme=np.abs(aligned - zg).mean(axis=1) / norm,
        scale=np.abs(a[:, 0]),
        shift=np.stack([shift.real, shift.imag], axis=-1))


def _positive(name: str, arr: ArrayLike, n: int) -> NDArray[np.float64]:
    a = _vector(name, arr, n)
    if np.any(a <= 0):
        raise MetricInputError(f"{name} must be positive")
    return a


def dense_nme(pred: ArrayLike, gt: ArrayLike, lmks_gt: ArrayLike | None = None, *,
              box_size: ArrayLike | None = None, dims: int = DIMS_3D,
              center_z: bool = False) -> NDArray[np.float64]:
    """Per-image NME over all vertices of a dense mesh, normalised like the landmark NME.

    Args:
        pred: (N, V, 3) float predicted vertices in image pixels, in correspondence with ``gt``.
        gt: (N, V, 3) float ground-truth vertices (same topology).
        lmks_gt: (N, 68, 2|3) ground-truth landmarks whose (x, y) box gives the normaliser
            ``sqrt(w * h)``, as in :func:`nme`. Give this or ``box_size``.
        box_size: (N,) normalisers instead of ``lmks_gt``.
        dims: 3 (default) for (x, y, z) distances, 2 for (x, y) only.
        center_z: subtract each set's mean depth before comparing (``dims=3`` only).

    Returns:
        (N,) float64 errors as fractions.
    """
    _check_dims(dims)
    p = _points("pred", pred, dims)
    g = _points("gt", gt, dims)
    _check_pair(p, g)
    if (lmks_gt is None) == (box_size is None):
        raise MetricInputError("give exactly one of lmks_gt (the 68 ground-truth landmarks, "
                               "whose box normalises) and box_size")
    if box_size is not None:
        norm = _positive("box_size", box_size, p.shape[0])
    else:
        assert lmks_gt is not None  # checked above
        norm = landmark_box_size(lmks_gt)
        if norm.shape[0] != p.shape[0]:
            raise MetricInputError(f"lmks_gt has {norm.shape[0]} images, pred has {p.shape[0]}")
    return _normalised_error(p, g, dims, norm, center_z)


# --- yaw bins ------------------------------------------------------------------------------


def yaw_bins(yaw_deg: ArrayLike, binning: YawBinning = AFLW2000_YAW_BINS) -> NDArray[np.int64]:
    """The yaw bin of each image, by absolute yaw, as 3DDFA's ``ana`` assigns it.

    With the default bins: 0 for ``|yaw| <= 30``, 1 for ``30 < |yaw| <= 60``, 2 for
    ``|yaw| > 60``, including ``|yaw| > 90`` (no wrapping: -351 degrees falls in bin 2).

    Args:
        yaw_deg: (N,) float yaw angles in degrees (``AFLW2000-3D.pose.npy``).
        binning: the bin edges.

    Returns:
        (N,) int64 bin indices in ``0 .. binning.num_bins - 1``.
    """
    a = np.abs(_vector("yaw_deg", yaw_deg))
    # side="left": a value equal to an edge stays in the lower bin (the bins are closed above).
    return np.searchsorted(np.asarray(binning.edges), a, side="left").astype(np.int64)


def nme_by_yaw(per_image: ArrayLike, yaw_deg: ArrayLike,
               binning: YawBinning = AFLW2000_YAW_BINS) -> dict[str, float]:
    """Mean error per yaw bin, the mean of the bin means and the overall mean (3DDFA's ``ana``).

    Args:
        per_image: (N,) float per-image errors (e.g. from :func:`nme`), fractions.
        yaw_deg: (N,) float yaw in degrees.
        binning: the bin edges and labels.

    Returns:
        A dict with one entry per bin label (the bin's mean error; NaN for an empty bin),
        :data:`MEAN_OF_BINS` (the benchmark's figure), :data:`STD_OF_BINS` (the population std
        of the bin means, the script's "Std") and :data:`OVERALL` (the mean over all images).
        Values are fractions like the input.
    """
    err = _vector("per_image", per_image)
    bins = yaw_bins(_vector("yaw_deg", yaw_deg, err.shape[0]), binning)
    means: list[float] = []
    for b, label in enumerate(binning.labels):
        members = err[bins == b]
        if members.size == 0:
            logger.warning("yaw bin %s holds no image: its mean is NaN", label)
        means.append(float(members.mean()) if members.size else float("nan"))
    out = dict(zip(binning.labels, means, strict=True))
    out[MEAN_OF_BINS] = float(np.mean(means))
    out[STD_OF_BINS] = float(np.std(means))
    out[OVERALL] = float(err.mean()) if err.size else float("nan")
    return out


def balanced_subset(yaw_deg: ArrayLike, per_bin: int | None = None, seed: int = 0,
                    binning: YawBinning = AFLW2000_YAW_BINS) -> NDArray[np.int64]:
    """Indices of a pose-balanced subset: the same number of images drawn from every yaw bin.

    Papers that follow 3DDFA and PRNet also report results on such a subset, drawn at random;
    their draws were not published, so this one is reproducible through ``seed`` only: within
    each bin, ``numpy.random.default_rng(seed).choice(members, per_bin, replace=False)``, one
    generator for the bins in order.

    Args:
        yaw_deg: (N,) float yaw in degrees.
        per_bin: images per bin; by default the size of the smallest bin (305 with
            ``AFLW2000-3D.pose.npy``, 232 with ``AFLW2000-3D-new.pose.npy``).
        seed: seed of the generator.
        binning: the bins.

    Returns:
        (num_bins * per_bin,) int64 indices into the N images, sorted.

    Raises:
        MetricInputError: a bin holds fewer than ``per_bin`` images (or none).
    """
    bins = yaw_bins(yaw_deg, binning)
    counts = np.bincount(bins, minlength=binning.num_bins)
    n = int(counts.min()) if per_bin is None else per_bin
    if n <= 0 or np.any(counts < n):
        raise MetricInputError(f"cannot draw {n} images per bin: the bins {binning.labels} hold "
                               f"{counts.tolist()} images; pass a per_bin of at most "
                               f"{int(counts.min())} (and above 0)")
    rng = np.random.default_rng(seed)
    picks = [rng.choice(np.flatnonzero(bins == b), size=n, replace=False)
             for b in range(binning.num_bins)]
    return np.sort(np.concatenate(picks)).astype(np.int64)


# --- cumulative error distribution ---------------------------------------------------------


def ced_curve(errors: ArrayLike, thresholds: ArrayLike | None = None,
              config: CEDConfig = CEDConfig()) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The cumulative error distribution: the fraction of images with error <= each threshold.

    Args:
        errors: (N,) float per-image errors (N >= 1).
        thresholds: (T,) float thresholds; by default ``config.num_thresholds`` evenly spaced
            on ``[0, max(errors)]``.
        config: defaults.

    Returns:
        ``(thresholds, fraction)``, both (T,) float64, ``fraction[k] = mean(errors <= thresholds[k])``.
    """
    err = np.sort(_vector("errors", errors))
    if err.size == 0:
        raise MetricInputError("errors is empty: a CED curve needs at least one error")
    t = (np.linspace(0.0, float(err[-1]), config.num_thresholds) if thresholds is None
         else _vector("thresholds", thresholds))
    fraction = np.searchsorted(err, t, side="right") / err.size
    return t, fraction.astype(np.float64)


def ced_auc(errors: ArrayLike, threshold: float) -> float:
    """Area under the CED curve on ``[0, threshold]``, divided by ``threshold`` (in [0, 1]).

    The integral of the empirical (step) CED is exact: ``(1/T) * int_0^T F(e) de
    = mean_i max(0, T - e_i) / T``, so no threshold grid is involved (trapezoid sums on a grid,
    used by some scripts, approach it as the grid is refined).

    Args:
        errors: (N,) float per-image errors, N >= 1.
        threshold: the upper limit ``T > 0`` (same units as the errors, e.g. 0.07 for 7 %).

    Returns:
        The normalised area: 1 when all errors are 0, 0 when none is below ``threshold``.
    """
    err = _vector("errors", errors)
    if err.size == 0:
        raise MetricInputError("errors is empty: the AUC needs at least one error")
    if not threshold > 0:
        raise MetricInputError(f"threshold must be positive, got {threshold}")
    return float(np.mean(np.clip(threshold - err, 0.0, None)) / threshold)
