"""Tests of facegcn_lib.eval.metrics: NME (landmark, dense), yaw bins, balanced subset, CED."""

from __future__ import annotations

from math import sqrt
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from facegcn_lib.eval.metrics import (
    AFLW2000_YAW_BINS,
    LANDMARK_REGIONS,
    MEAN_OF_BINS,
    OVERALL,
    STD_OF_BINS,
    THREEDDFA_CROP_SIZE,
    MetricInputError,
    YawBinning,
    balanced_subset,
    ced_auc,
    ced_curve,
    crop_to_image,
    dense_nme,
    from_3ddfa_layout,
    landmark_box_size,
    nme,
    nme_by_region,
    nme_by_yaw,
    placement_split,
    yaw_bins,
)
from facegcn_lib.paths import require

AFLW = "aflw2000-3d"


# --- slow, literal references (3DDFA's benchmark_aflw2000.py, one image at a time) ----------


def ref_calc_nme(fit_all: NDArray, gt_all: NDArray) -> NDArray:
    """3DDFA's calc_nme loop on (N, 2, 68) predictions in image pixels, (N, 2|3, 68) ground truth."""
    out = []
    for fit, gt in zip(fit_all, gt_all, strict=True):
        minx, maxx = np.min(gt[0, :]), np.max(gt[0, :])
        miny, maxy = np.min(gt[1, :]), np.max(gt[1, :])
        llength = sqrt((maxx - minx) * (maxy - miny))
        dis = fit - gt[:2, :]
        dis = np.sqrt(np.sum(np.power(dis, 2), 0))
        out.append(np.mean(dis) / llength)
    return np.array(out)


def ref_ana(nme_list: NDArray, yaws: NDArray) -> tuple[float, float, float, float, float]:
    """3DDFA's ana (without the x100): bin means, mean and std of the three means."""
    a = np.abs(yaws)
    m = [np.mean(nme_list[a <= 30]), np.mean(nme_list[(a > 30) & (a <= 60)]),
         np.mean(nme_list[a > 60])]
    return m[0], m[1], m[2], float(np.mean(m)), float(np.std(m))


def ref_convert_to_ori(lms: NDArray, box: NDArray, std_size: float) -> NDArray:
    """3DDFA's convert_to_ori on one (2|3, 68) array (on a copy)."""
    lms = lms.copy()
    sx, sy, ex, ey = box
    lms[0, :] = lms[0, :] * (ex - sx) / std_size + sx
    lms[1, :] = lms[1, :] * (ey - sy) / std_size + sy
    return lms


# --- fixtures ----------------------------------------------------------------------------


def boxed_landmarks(rng: np.random.Generator, n: int, box: tuple[float, float, float, float],
                    p: int = 68) -> NDArray:
    """(n, p, 3) random points inside box (x0, y0, x1, y1), two of them on opposite corners."""
    x0, y0, x1, y1 = box
    pts = np.empty((n, p, 3))
    pts[..., 0] = rng.uniform(x0, x1, (n, p))
    pts[..., 1] = rng.uniform(y0, y1, (n, p))
    pts[..., 2] = rng.normal(0.0, 20.0, (n, p))
    pts[:, 0, :2] = (x0, y0)
    pts[:, 1, :2] = (x1, y1)
    return pts


@pytest.fixture(scope="module")
def aflw(data_root: Path) -> dict[str, NDArray]:
    """The benchmark arrays, points last."""
    def load(name: str) -> NDArray:
        return np.load(require(f"{AFLW}/{name}", data_root))
    return {
        "ori": from_3ddfa_layout(load("AFLW2000-3D.pts68.npy")),
        "re": from_3ddfa_layout(load("AFLW2000-3D-Reannotated.pts68.npy")),
        "yaw": load("AFLW2000-3D.pose.npy"),
        "yaw_new": load("AFLW2000-3D-new.pose.npy"),
        "roi": load("AFLW2000-3D_crop.roi_box.npy"),
    }


# --- landmark NME --------------------------------------------------------------------------


def test_shift_gives_known_nme() -> None:
    rng = np.random.default_rng(0)
    gt = boxed_landmarks(rng, 5, (10.0, 20.0, 110.0, 70.0))  # w = 100, h = 50
    dx, dy = 3.0, -4.0
    pred = gt + np.array([dx, dy, 0.0])
    want = sqrt(dx**2 + dy**2) / sqrt(100.0 * 50.0)
    np.testing.assert_allclose(landmark_box_size(gt), sqrt(5000.0))
    np.testing.assert_allclose(nme(pred, gt), want, rtol=1e-12)
    np.testing.assert_allclose(nme(pred[..., :2], gt, dims=2), want, rtol=1e-12)
    np.testing.assert_allclose(nme(pred, gt, dims=3), want, rtol=1e-12)


def test_depth_shift_counts_in_3d_only() -> None:
    rng = np.random.default_rng(1)
    gt = boxed_landmarks(rng, 3, (0.0, 0.0, 40.0, 90.0))  # sqrt(w h) = 60
    pred = gt + np.array([0.0, 0.0, 6.0])
    np.testing.assert_allclose(nme(pred, gt, dims=2), 0.0, atol=1e-15)
    np.testing.assert_allclose(nme(pred, gt, dims=3), 0.1, rtol=1e-12)
    np.testing.assert_allclose(nme(pred, gt, dims=3, center_z=True), 0.0, atol=1e-15)


def test_nme_matches_3ddfa_loop_both_annotations() -> None:
    rng = np.random.default_rng(2)
    gt3 = boxed_landmarks(rng, 20, (50.0, 60.0, 250.0, 330.0))
    pred = gt3 + rng.normal(0.0, 5.0, gt3.shape)
    want = ref_calc_nme(np.swapaxes(pred[..., :2], 1, 2), np.swapaxes(gt3, 1, 2))
    np.testing.assert_allclose(nme(pred, gt3), want, rtol=1e-12)
    # reannotated layout: (x, y) only
    np.testing.assert_allclose(nme(pred, gt3[..., :2]), want, rtol=1e-12)
    with pytest.raises(MetricInputError, match="dims=2"):
        nme(pred, gt3[..., :2], dims=3)


class FakeTensor:
    """The part of torch.Tensor's interface the metrics use (importing torch takes seconds)."""

    def __init__(self, values: NDArray) -> None:
        self.values = values

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> NDArray:
        return self.values


def test_box_size_override_and_tensor_input() -> None:
    rng = np.random.default_rng(3)
    gt = boxed_landmarks(rng, 4, (0.0, 0.0, 10.0, 10.0))
    pred = FakeTensor(gt + 1.0)
    np.testing.assert_allclose(nme(pred, gt, box_size=np.full(4, 2.0)), sqrt(2.0) / 2.0)
    np.testing.assert_allclose(nme(pred, FakeTensor(gt)), sqrt(2.0) / 10.0)
    with pytest.raises(MetricInputError, match="positive"):
        nme(pred, gt, box_size=np.zeros(4))


@pytest.mark.parametrize("bad", [np.zeros((68, 2)), np.zeros((2, 2, 68)), np.zeros((2, 68, 4))])
def test_nme_rejects_bad_shapes(bad: NDArray) -> None:
    with pytest.raises(MetricInputError, match="batch of points"):
        nme(bad, bad)


def test_nme_rejects_mismatch_nan_and_flat_box() -> None:
    gt = boxed_landmarks(np.random.default_rng(4), 2, (0.0, 0.0, 5.0, 5.0))
    with pytest.raises(MetricInputError, match="differ"):
        nme(gt[:1], gt)
    nan = gt.copy()
    nan[0, 3, 0] = np.nan
    with pytest.raises(MetricInputError, match="NaN"):
        nme(nan, gt)
    flat = gt.copy()
    flat[1, :, 1] = 2.0
    with pytest.raises(MetricInputError, match="zero area"):
        nme(gt, flat)
    with pytest.raises(MetricInputError, match="dims"):
        nme(gt, gt, dims=4)


def test_from_3ddfa_layout() -> None:
    a = np.arange(2 * 3 * 68).reshape(2, 3, 68)
    b = from_3ddfa_layout(a)
    assert b.shape == (2, 68, 3)
    assert b[1, 5, 2] == a[1, 2, 5]
    assert from_3ddfa_layout(a[0]).shape == (68, 3)
    with pytest.raises(MetricInputError):
        from_3ddfa_layout(np.zeros((2, 68, 3)))


def test_crop_to_image_matches_convert_to_ori() -> None:
    rng = np.random.default_rng(5)
    pts = rng.uniform(0, THREEDDFA_CROP_SIZE, (3, 68, 3))
    boxes = np.array([[10.0, 20.0, 130.0, 260.0], [0.0, 0.0, 120.0, 120.0], [-5.0, 7.0, 55.0, 67.0]])
    got = crop_to_image(pts, boxes, THREEDDFA_CROP_SIZE)
    for i in range(3):
        want = ref_convert_to_ori(pts[i].T, boxes[i], THREEDDFA_CROP_SIZE)
        np.testing.assert_allclose(got[i].T, want, rtol=1e-12)
    np.testing.assert_allclose(got[1], pts[1])  # identity box
    np.testing.assert_allclose(crop_to_image([[[60.0, 60.0, 3.0]]], [[10.0, 20.0, 130.0, 260.0]],
                                             120.0, scale_z=True), [[[70.0, 140.0, 3.0 * sqrt(2.0)]]])


# --- the AFLW2000-3D ground truth ----------------------------------------------------------


def test_aflw2000_gt_against_itself_and_a_shift(aflw: dict[str, NDArray]) -> None:
    for key in ("ori", "re"):
        gt = aflw[key]
        assert gt.shape[:2] == (2000, 68)
        np.testing.assert_array_equal(nme(gt, gt), np.zeros(2000))
        shift = np.zeros(gt.shape[-1])
        shift[:2] = (3.0, -4.0)
        got = nme(gt + shift, gt)
        want = ref_calc_nme(np.swapaxes(gt[..., :2] + shift[:2], 1, 2), np.swapaxes(gt, 1, 2))
        np.testing.assert_allclose(got, want, rtol=1e-10)
        np.testing.assert_allclose(got * landmark_box_size(gt), 5.0, rtol=1e-10)


def test_aflw2000_bins_and_report_match_3ddfa(aflw: dict[str, NDArray]) -> None:
    assert np.bincount(yaw_bins(aflw["yaw"])).tolist() == [1312, 383, 305]
    assert np.bincount(yaw_bins(aflw["yaw_new"])).tolist() == [1306, 462, 232]
    err = nme(aflw["ori"] + np.array([1.0, 2.0, 0.0]), aflw["ori"])
    got = nme_by_yaw(err, aflw["yaw"])
    want = ref_ana(err, aflw["yaw"])
    np.testing.assert_allclose([got[k] for k in AFLW2000_YAW_BINS.labels], want[:3], rtol=1e-12)
    np.testing.assert_allclose(got[MEAN_OF_BINS], want[3], rtol=1e-12)
    np.testing.assert_allclose(got[STD_OF_BINS], want[4], rtol=1e-12)
    np.testing.assert_allclose(got[OVERALL], err.mean(), rtol=1e-12)


def test_aflw2000_balanced_subset(aflw: dict[str, NDArray]) -> None:
    idx = balanced_subset(aflw["yaw"], seed=0)
    assert idx.shape == (3 * 305,)
    assert np.bincount(yaw_bins(aflw["yaw"][idx])).tolist() == [305, 305, 305]
    assert np.bincount(yaw_bins(aflw["yaw_new"][balanced_subset(aflw["yaw_new"])])).tolist() == [232] * 3


# --- yaw bins and the per-bin report --------------------------------------------------------


def test_yaw_bins_boundaries_and_beyond_90() -> None:
    yaw = [0.0, 29.9, 30.0, 30.0001, -30.0, -45.0, 60.0, -60.0, 60.01, 90.0, 95.0, -351.2, 187.8]
    want = [0, 0, 0, 1, 0, 1, 1, 1, 2, 2, 2, 2, 2]
    assert yaw_bins(yaw).tolist() == want
    # the slow reference: 3DDFA's boolean masks
    a = np.abs(np.array(yaw))
    ref = np.select([a <= 30, (a > 30) & (a <= 60), a > 60], [0, 1, 2])
    assert yaw_bins(yaw).tolist() == ref.tolist()
    with pytest.raises(MetricInputError, match="NaN"):
        yaw_bins([np.nan])


def test_custom_binning() -> None:
    binning = YawBinning(edges=(45.0,), labels=("near", "far"))
    assert yaw_bins([10.0, 45.0, 46.0, -80.0], binning).tolist() == [0, 0, 1, 1]
    with pytest.raises(MetricInputError, match="labels"):
        YawBinning(edges=(10.0, 20.0), labels=("a", "b"))
    with pytest.raises(MetricInputError, match="increasing"):
        YawBinning(edges=(20.0, 10.0), labels=("a", "b", "c"))


def test_nme_by_yaw_hand_made() -> None:
    err = [1.0, 2.0, 3.0, 10.0, 20.0, 100.0]
    yaw = [5.0, -10.0, 30.0, 40.0, -59.0, 75.0]
    got = nme_by_yaw(err, yaw)
    assert got["[0, 30]"] == 2.0
    assert got["(30, 60]"] == 15.0
    assert got["(60, 90]"] == 100.0
    assert got[MEAN_OF_BINS] == pytest.approx(39.0)
    assert got[STD_OF_BINS] == pytest.approx(np.std([2.0, 15.0, 100.0]))
    assert got[OVERALL] == pytest.approx(136.0 / 6.0)


def test_nme_by_yaw_empty_bin_is_nan() -> None:
    got = nme_by_yaw([1.0, 3.0], [0.0, 45.0])
    assert got["[0, 30]"] == 1.0
    assert np.isnan(got["(60, 90]"])
    assert np.isnan(got[MEAN_OF_BINS])
    assert got[OVERALL] == 2.0
    with pytest.raises(MetricInputError, match="shape"):
        nme_by_yaw([1.0, 2.0], [0.0])


def test_balanced_subset_hand_made() -> None:
    yaw = np.array([0, 1, 2, 3, 4, 40, 41, 42, 70, 80, 95, -200], dtype=float)
    idx = balanced_subset(yaw, seed=7)
    assert idx.shape == (9,)  # smallest bin holds 3
    assert np.all(np.diff(idx) > 0)
    assert set(idx[yaw_bins(yaw[idx]) == 1]) == {5, 6, 7}
    np.testing.assert_array_equal(idx, balanced_subset(yaw, seed=7))
    draws = {tuple(balanced_subset(yaw, per_bin=2, seed=s)) for s in range(20)}
    assert len(draws) > 1  # the seed matters
    for d in draws:
        assert np.bincount(yaw_bins(yaw[list(d)])).tolist() == [2, 2, 2]
    with pytest.raises(MetricInputError, match="at most 3"):
        balanced_subset(yaw, per_bin=4)
    with pytest.raises(MetricInputError, match="cannot draw"):
        balanced_subset([1.0, 40.0])


# --- dense NME -----------------------------------------------------------------------------


def test_dense_nme_known_shift_and_normaliser() -> None:
    rng = np.random.default_rng(6)
    lmks = boxed_landmarks(rng, 2, (0.0, 0.0, 20.0, 80.0))  # sqrt(w h) = 40
    verts = rng.normal(0.0, 10.0, (2, 500, 3))
    pred = verts + np.array([2.0, 0.0, 0.0])
    np.testing.assert_allclose(dense_nme(pred, verts, lmks), 0.05, rtol=1e-12)
    np.testing.assert_allclose(dense_nme(pred, verts, box_size=[4.0, 8.0]), [0.5, 0.25])
    deeper = verts + np.array([0.0, 0.0, 8.0])
    np.testing.assert_allclose(dense_nme(deeper, verts, lmks, dims=2), 0.0)
    np.testing.assert_allclose(dense_nme(deeper, verts, lmks), 0.2)
    # against the slow reference: per image, per vertex
    pred = verts + rng.normal(0.0, 1.0, verts.shape)
    want = [np.mean([np.linalg.norm(pred[i, v] - verts[i, v]) for v in range(500)]) / 40.0
            for i in range(2)]
    np.testing.assert_allclose(dense_nme(pred, verts, lmks), want, rtol=1e-12)
    with pytest.raises(MetricInputError, match="exactly one"):
        dense_nme(pred, verts)
    with pytest.raises(MetricInputError, match="exactly one"):
        dense_nme(pred, verts, lmks, box_size=[1.0, 1.0])
    with pytest.raises(MetricInputError, match="images"):
        dense_nme(pred, verts, lmks[:1])


# --- CED -----------------------------------------------------------------------------------


def test_ced_curve_known() -> None:
    errors = [0.1, 0.2, 0.2, 0.4]
    t, frac = ced_curve(errors, [0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    np.testing.assert_array_equal(frac, [0.0, 0.25, 0.25, 0.75, 0.75, 1.0, 1.0])
    np.testing.assert_array_equal(t, [0.0, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5])
    t, frac = ced_curve(errors)
    assert t[0] == 0.0 and t[-1] == 0.4 and frac[-1] == 1.0
    assert np.all(np.diff(frac) >= 0)
    # the slow reference
    rng = np.random.default_rng(8)
    e = rng.exponential(0.03, 300)
    grid = np.linspace(0, 0.1, 57)
    np.testing.assert_allclose(ced_curve(e, grid)[1], [np.mean(e <= g) for g in grid])
    with pytest.raises(MetricInputError, match="empty"):
        ced_curve([])


def test_ced_auc_of_a_step_and_limits() -> None:
    assert ced_auc([0.03] * 10, 0.1) == pytest.approx(0.7)
    assert ced_auc(np.zeros(5), 0.08) == 1.0
    assert ced_auc([0.2, 0.5], 0.1) == 0.0
    assert ced_auc([0.0, 0.2], 0.1) == pytest.approx(0.5)  # half the images, always below
    with pytest.raises(MetricInputError, match="positive"):
        ced_auc([0.1], 0.0)


def test_ced_auc_matches_fine_trapezoid() -> None:
    e = np.random.default_rng(9).exponential(0.03, 200)
    grid = np.linspace(0.0, 0.07, 20001)
    _, frac = ced_curve(e, grid)
    trap = float(np.sum((frac[1:] + frac[:-1]) * np.diff(grid)) / 2.0 / 0.07)
    assert ced_auc(e, 0.07) == pytest.approx(trap, abs=1e-3)


def test_ced_figure() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    from facegcn_lib.viz import ced_figure

    rng = np.random.default_rng(10)
    fig = ced_figure({"a": rng.exponential(0.02, 50), "b": rng.exponential(0.04, 50)},
                     max_error=0.08, title="CED")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 2
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0].startswith("a (AUC ") and labels[1].startswith("b (AUC ")
    assert ax.get_xlim() == (0.0, 8.0)
    import matplotlib.pyplot as plt

    plt.close(fig)


# --- where the error is -------------------------------------------------------------------

def test_nme_by_region_matches_loops_and_the_plain_nme() -> None:
    rng = np.random.default_rng(7)
    gt = rng.uniform(0, 100, (3, 68, 3))
    pred = gt + rng.normal(0, 4, (3, 68, 3))
    out = nme_by_region(pred, gt)
    assert list(out.nme) == ["jaw", "brows", "nose", "eyes", "mouth"]
    for name, (a, b) in LANDMARK_REGIONS.items():
        errs, shifts = [], []
        for i in range(3):
            box = np.sqrt(np.ptp(gt[i, :, 0]) * np.ptp(gt[i, :, 1]))
            for k in range(a, b):
                d = pred[i, k, :2] - gt[i, k, :2]
                errs.append(np.hypot(*d) / box)
                shifts.append(d / box)
        assert out.nme[name] == pytest.approx(np.mean(errs))
        np.testing.assert_allclose(out.offset[name], np.mean(shifts, axis=0))
    sizes = {n: b - a for n, (a, b) in LANDMARK_REGIONS.items()}
    weighted = sum(out.nme[n] * sizes[n] for n in sizes) / 68
    assert weighted == pytest.approx(nme(pred, gt).mean())


def test_nme_by_region_sees_a_shift_and_rejects_bad_ranges() -> None:
    gt = np.random.default_rng(8).uniform(0, 100, (2, 68, 2))
    box = np.sqrt(np.ptp(gt[..., 0], axis=1) * np.ptp(gt[..., 1], axis=1))
    pred = gt.copy()
    pred[:, 36:48, 1] += 0.05 * box[:, None]  # the eyes 5 % of the box lower
    out = nme_by_region(pred, gt)
    np.testing.assert_allclose(out.offset["eyes"], [0.0, 0.05], atol=1e-12)
    assert out.nme["nose"] == 0.0 and out.nme["eyes"] == pytest.approx(0.05)
    with pytest.raises(MetricInputError, match="not a range"):
        nme_by_region(pred, gt, {"too far": (60, 70)})


# --- placement and shape ----------------------------------------------------------------------
def _similar(gt: NDArray[np.float64], scale: float, angle: float,
             shift: tuple[float, float]) -> NDArray[np.float64]:
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    centre = gt.mean(axis=1, keepdims=True)
    return (gt - centre) @ rot.T * scale + centre + np.array(shift)


def test_placement_split_of_a_pure_similarity_is_all_placement() -> None:
    gt = np.random.default_rng(0).normal(size=(3, 68, 2)) * 40 + 200
    pred = _similar(gt, 0.8, 0.2, (6.0, -4.0))
    split = placement_split(pred, gt)
    np.testing.assert_allclose(split.shape_nme, 0.0, atol=1e-12)
    np.testing.assert_allclose(split.scale, 1 / 0.8)  # the prediction is smaller
    np.testing.assert_allclose(split.shift, np.array([6.0, -4.0]) / landmark_box_size(gt)[:, None])
    np.testing.assert_allclose(split.nme, nme(pred, gt))


def test_placement_split_keeps_the_shape_error_of_a_well_placed_face() -> None:
    rng = np.random.default_rng(1)
    gt = rng.normal(size=(2, 68, 3)) * 40 + 200  # z is ignored
    noise = rng.normal(size=(2, 68, 2))
    noise -= noise.mean(axis=1, keepdims=True)  # no shift
    pred = gt[..., :2] + noise
    moved = _similar(pred, 1.1, -0.1, (3.0, 2.0))
    a, b = placement_split(pred, gt), placement_split(moved, gt)
    np.testing.assert_allclose(a.shape_nme, b.shape_nme)  # a similarity changes no shape
    assert np.all(a.shape_nme <= a.nme + 1e-12) and np.all(b.nme > b.shape_nme)
    # a slow reference: the least-squares similarity by Umeyama's method in 3D with z = 0
    from facegcn_lib.geometry.umeyama import umeyama

    for i in range(2):
        flat = np.c_[moved[i], np.zeros(68)]
        fit = umeyama(flat, np.c_[gt[i, :, :2], np.zeros(68)])
        aligned = fit.apply(flat)[:, :2]
        ref = np.linalg.norm(aligned - gt[i, :, :2], axis=1).mean() / landmark_box_size(gt[i:i + 1])[0]
        assert b.shape_nme[i] == pytest.approx(ref, rel=1e-9)
        assert b.scale[i] == pytest.approx(fit.scale, rel=1e-9)


def test_placement_split_refuses_a_collapsed_prediction() -> None:
    gt = np.random.default_rng(2).normal(size=(1, 68, 2))
    with pytest.raises(MetricInputError, match="no shape"):
        placement_split(np.zeros((1, 68, 2)), gt)
