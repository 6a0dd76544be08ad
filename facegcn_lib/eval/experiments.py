"""Decoders compared at one budget: the paper's Table 1 (GCN, UV map, 3DMM) and its ablations.

The paper's Table 1 trains three decoders behind the same encoder on the same data and finds
the graph-convolution decoder best in every yaw bin; its ablations vary the weight ``alpha`` of
the smoothness term (Figure 13), the normalisation inside the residual blocks and their
identity path. :func:`run_experiments` repeats these comparisons on the synthetic faces:

1. **One encoder, frozen.** Every variant decodes the *same* 256-d codes: those of a trained
   model's encoder (by default the pretrained model's; the shipped results were made with the
   first pretrained model's ResNet-18, whose digest ``decoders_meta.json`` records) for a fixed
   set of rendered training faces (:attr:`ExperimentConfig.train_faces`, seed
   :attr:`ExperimentConfig.train_seed`) and for the synthetic test set of ``facegcn evaluate``
   (:func:`~facegcn_lib.eval.benchmarks.render_synthetic_test_set`). The codes are computed once
   and cached. This isolates the decoders (the paper's question) and makes each run cheap
   enough for a CPU; the price is a bias: the encoder was trained with the GCN decoder, so its
   codes suit it. End-to-end comparisons are ``facegcn train --decoder uvmap|3dmm`` followed by
   ``facegcn evaluate`` (hours on a CPU per model; minutes on a GPU).
2. **The same budget.** Each decoder starts from its own random initialisation (seeded) and
   sees the same batches in the same order for :attr:`ExperimentConfig.steps` Adam steps, the
   learning rate halving every quarter, with the paper's loss (L1 plus ``alpha`` times the
   Laplacian smoothness) on the vertices, whatever the decoder.
3. **The same scores.** The synthetic benchmark's NMEs (2D and 3D on the 68 landmark vertices,
   dense 3D on all 9,409), by yaw bin, and a *roughness ratio*: the mean norm of the
   combinatorial Laplacian ``(D - W) Y`` of the predicted meshes over that of the ground truth
   (1 is as smooth as a real face; the smoothness term pushes it down, noise pushes it up).

``facegcn experiments --out DIR`` writes ``decoders.csv`` (one row per variant),
``decoders_curves.csv`` (training loss per step), ``decoders_showcase.npz`` (a few test faces
as every variant predicts them) and ``decoders_meta.json`` (the configuration, the encoder's
checkpoint, the machine). The book's results and evaluation chapters read the copy shipped in
``facegcn_lib/resources/results/``.

See :doc:`chapter 6 </chapters/06_evaluation>`.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import NDArray

from facegcn_lib.eval.benchmarks import AUC
from facegcn_lib.eval.metrics import AFLW2000_YAW_BINS, MEAN_OF_BINS, OVERALL

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.eval.benchmarks import EvalResult, SyntheticTestSet
    from facegcn_lib.eval.table import EvalTable
    from facegcn_lib.nn.model import FaceGCN

log = logging.getLogger(__name__)

#: The studies, in the order the tables show them.
STUDIES = ("table1", "alpha", "norm", "identity")
#: Files written by :func:`run_experiments` (and shipped in ``resources/results``).
RESULTS_CSV = "decoders.csv"
CURVES_CSV = "decoders_curves.csv"
SHOWCASE_NPZ = "decoders_showcase.npz"
META_JSON = "decoders_meta.json"
#: NMEs are fractions; the CSV gives them in percent, as papers print them.
PERCENT = 100.0
#: Faces per shard and rendering processes of the training faces' cache.
RENDER_SHARD = 500
RENDER_WORKERS = 2
#: The scores of :func:`score_variant`, as in the synthetic benchmark's summary.
SCORES = {"nme_2d": "68 landmarks, 2D", "nme_3d": "68 landmarks, 3D", "dense_3d": "dense, 3D"}


class ExperimentError(ValueError):
    """A variant or an experiment setting that cannot run; the message says what to change."""


@dataclass(frozen=True)
class Variant:
    """One decoder setting of a study.

    Attributes:
        name: a unique short name (a CSV key), e.g. ``gcn`` or ``alpha=1``.
        study: which comparison it belongs to (one of :data:`STUDIES`).
        label: how tables and figures name it.
        decoder: ``gcn`` (the paper), ``uvmap`` (PRNet-like) or ``3dmm`` (3DDFA-like).
        smooth_weight: the loss's ``alpha``.
        norm: normalisation in the residual blocks (``instance``, ``batch`` or ``none``).
        residual: whether the residual blocks have their identity path.
    """

    name: str
    study: str
    label: str
    decoder: str = "gcn"
    smooth_weight: float = 0.1
    norm: str = "instance"
    residual: bool = True

    def __post_init__(self) -> None:
        if self.study not in STUDIES:
            raise ExperimentError(f"unknown study {self.study!r}: choose one of {STUDIES}")


#: The paper's comparisons. The reference (``gcn``: instance norm, identity path, alpha 0.1)
#: belongs to every study; each study's other rows change one thing.
VARIANTS: tuple[Variant, ...] = (
    Variant("gcn", "table1", "ResGCN decoder (the paper)"),
    Variant("uvmap", "table1", "UV position map (PRNet-like)", decoder="uvmap"),
    Variant("3dmm", "table1", "3DMM regression (3DDFA-like)", decoder="3dmm"),
    Variant("alpha=0", "alpha", "alpha = 0", smooth_weight=0.0),
    Variant("alpha=0.01", "alpha", "alpha = 0.01", smooth_weight=0.01),
    Variant("alpha=1", "alpha", "alpha = 1", smooth_weight=1.0),
    Variant("batchnorm", "norm", "batch normalization", norm="batch"),
    Variant("no-identity", "identity", "no identity path", residual=False),
)
#: The variant every study compares against.
REFERENCE = "gcn"


def variants_of(study: str) -> list[Variant]:
    """The rows of one study: the reference first (relabelled for the study), then its own."""
    ref = next(v for v in VARIANTS if v.name == REFERENCE)
    own = [v for v in VARIANTS if v.study == study and v.name != REFERENCE]
    if study == "table1":
        return [ref, *own]
    ref_label = {"alpha": "alpha = 0.1 (the paper)", "norm": "instance normalization (the paper)",
                 "identity": "with the identity path (the paper)"}[study]
    return [replace(ref, label=ref_label), *own]


@dataclass(frozen=True)
class ExperimentConfig:
    """The shared budget and data of every variant.

    Attributes:
        train_faces: rendered training faces (their codes are the training set).
        train_seed: the generator's seed for them (no other set uses it).
        test_faces: faces of the synthetic test set (balanced over the yaw bins).
        steps: Adam steps per variant (the budget).
        batch_size: faces per step.
        lr: the initial learning rate, halved every quarter of the steps.
        seed: seeds each decoder's initialisation and the order of the batches (the same for
            every variant).
        showcase: test faces (the first of each yaw bin, then the next) whose predicted
            meshes are kept for figures.
        encode_batch: crops per encoder pass.
    """

    train_faces: int = 4000
    train_seed: int = 20_261_125
    test_faces: int = 1000
    steps: int = 150
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    showcase: int = 1
    encode_batch: int = 64

    def __post_init__(self) -> None:
        for name in ("train_faces", "test_faces", "steps", "batch_size", "encode_batch"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"ExperimentConfig.{name} must be positive, got "
                                      f"{getattr(self, name)}")
        if self.batch_size > self.train_faces:
            raise ExperimentError(f"batch_size {self.batch_size} exceeds train_faces "
                                  f"{self.train_faces}")


@dataclass(frozen=True)
class EncodedFaces:
    """Codes and ground truth of a set of faces, in the network's normalised crop frame.

    Attributes:
        codes: (N, C) float32 encoder outputs.
        verts: (N, V, 3) float32 ground-truth vertices (normalised crop frame).
    """

    codes: NDArray[np.float32]
    verts: NDArray[np.float32]

    def __len__(self) -> int:
        return int(self.codes.shape[0])


def _checkpoint_digest(path: Path | None) -> str:
    from facegcn_lib.pipeline import default_checkpoint_path

    p = path if path is not None else default_checkpoint_path()
    return hashlib.sha256(p.read_bytes()).hexdigest()[:16]


@torch.no_grad()
def encode_images(model: FaceGCN, images: Iterable[torch.Tensor]) -> NDArray[np.float32]:
    """The encoder's codes (N, C) of batches of (B, 3, S, S) uint8 crops."""
    model.eval()
    device = next(model.parameters()).device
    out = [model.encoder(batch.to(device).float().div_(255.0)).float().cpu().numpy()
           for batch in images]
    return np.concatenate(out).astype(np.float32)


def _batches(images: NDArray[np.uint8], size: int) -> Iterable[torch.Tensor]:
    for start in range(0, len(images), size):
        yield torch.from_numpy(np.ascontiguousarray(images[start:start + size])).permute(0, 3, 1, 2)


def encode_test_set(model: FaceGCN, test_set: SyntheticTestSet, batch: int = 64) -> EncodedFaces:
    """Codes and normalised ground truth of the synthetic test set."""
    from facegcn_lib.nn.model import crop_to_normalized

    size = test_set.images.shape[1]
    codes = encode_images(model, _batches(test_set.images, batch))
    verts = crop_to_normalized(torch.from_numpy(test_set.vertices), size).numpy()
    return EncodedFaces(codes, verts.astype(np.float32))


def training_faces(model: FaceGCN, cfg: ExperimentConfig, checkpoint: Path | None = None,
                   progress: bool = True, cache: bool = True,
                   faces_dir: Path | None = None, cache_root: Path | None = None) -> EncodedFaces:
    """The training set of every variant: codes and ground truth of rendered faces.

    The faces (:class:`~facegcn_lib.data.synth.SyntheticFaces` at the model's input size,
    seed ``cfg.train_seed``) are rendered in worker processes into a
    :mod:`~facegcn_lib.data.synth_cache` folder (``faces_dir``, by default one in the cache
    directory; an interrupted rendering resumes), then encoded; the codes are cached, keyed by
    the generator, the count and the encoder's checkpoint, in ``cache_root`` (default: the
    cache directory).
    """
    from torch.utils.data import DataLoader

    from facegcn_lib.data import synth
    from facegcn_lib.data.synth_cache import SynthCache, write_cache
    from facegcn_lib.nn.model import crop_to_normalized
    from facegcn_lib.paths import cache_dir, cache_file

    size = model.cfg.encoder.image_size
    scfg = synth.SynthConfig(image_size=size)
    key = (repr(scfg), cfg.train_seed, cfg.train_faces, Path(synth.__file__))
    codes_path = cache_file("experiment-codes", ".npz", *key, _checkpoint_digest(checkpoint))
    if cache_root is not None:
        cache_root.mkdir(parents=True, exist_ok=True)
        codes_path = cache_root / codes_path.name
    if cache and codes_path.is_file():
        log.info("training codes from the cache %s", codes_path)
        with np.load(codes_path) as z:
            return EncodedFaces(z["codes"], z["verts"].astype(np.float32))
    folder = faces_dir or (cache_root or cache_dir()) / f"experiment-faces-{codes_path.stem.split('-')[-1]}"
    log.info("rendering %d training faces into %s", cfg.train_faces, folder)
    write_cache(folder, cfg.train_faces, scfg, seed=cfg.train_seed, shard_size=RENDER_SHARD,
                workers=RENDER_WORKERS)
    faces = SynthCache(folder)
    if len(faces) != cfg.train_faces:
        raise ExperimentError(f"{folder} holds {len(faces)} faces, the experiment asks for "
                              f"{cfg.train_faces}: delete it or pass another folder")
    loader = DataLoader(faces, batch_size=cfg.encode_batch, num_workers=0)
    codes, verts = [], []
    from tqdm.auto import tqdm

    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        for batch in tqdm(loader, desc="encode training faces", unit="batch", disable=not progress):
            codes.append(model.encoder(batch["image"].to(device).float().div_(255.0)).float().cpu())
            verts.append(crop_to_normalized(batch["vertices"], size))
    # the vertices are kept as float16 (0.03 px at 128 px): the same values cached or not
    out = EncodedFaces(torch.cat(codes).numpy().astype(np.float32),
                       torch.cat(verts).numpy().astype(np.float16).astype(np.float32))
    if cache:
        tmp = codes_path.with_name(codes_path.stem + ".tmp.npz")
        np.savez(tmp, codes=out.codes, verts=out.verts.astype(np.float16))
        tmp.replace(codes_path)
    return out


def build_variant(base: FaceGCN, variant: Variant, seed: int) -> FaceGCN:
    """A model with ``base``'s mesh and a freshly initialised decoder of ``variant``.

    The encoder is ``base``'s (shared, not trained here): only :meth:`FaceGCN.decode` is used.
    """
    from facegcn_lib.nn.model import FaceGCN

    gcn = replace(base.cfg.gcn, norm=variant.norm, residual=variant.residual)
    cfg = replace(base.cfg, decoder=variant.decoder, gcn=gcn)
    torch.manual_seed(seed)
    model = FaceGCN(cfg, base.target, load_weights=False)
    model.encoder = base.encoder  # shared: the codes come from it
    return model


@dataclass
class TrainedVariant:
    """A decoder trained by :func:`train_variant`.

    Attributes:
        variant: its setting.
        model: the model (shared encoder, trained decoder).
        losses: the training loss of every step.
        seconds: wall-clock seconds of the training loop.
    """

    variant: Variant
    model: FaceGCN
    losses: list[float]
    seconds: float


def train_variant(base: FaceGCN, variant: Variant, train: EncodedFaces, cfg: ExperimentConfig,
                  progress: bool = True) -> TrainedVariant:
    """Train ``variant``'s decoder on the codes of ``train`` for ``cfg.steps`` steps.

    Every variant sees the same batches (a permutation seeded by ``cfg.seed``, one epoch
    after another) with the paper's loss, ``alpha = variant.smooth_weight``.
    """
    from tqdm.auto import tqdm

    from facegcn_lib.config import LossConfig
    from facegcn_lib.train.losses import MeshLoss

    model = build_variant(base, variant, cfg.seed)
    decoder = model.decoder
    decoder.train()
    loss_fn = MeshLoss.from_faces(model.target.faces, model.template.shape[0],
                                  LossConfig(smooth_weight=variant.smooth_weight))
    opt = torch.optim.Adam(decoder.parameters(), lr=cfg.lr)
    quarter = max(1, cfg.steps // 4)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=quarter, gamma=0.5)
    order = _batch_order(len(train), cfg)
    codes = torch.from_numpy(train.codes)
    verts = torch.from_numpy(train.verts)
    losses: list[float] = []
    t0 = time.perf_counter()
    for idx in tqdm(order, desc=f"train {variant.name}", unit="step", disable=not progress):
        pred = model.decode(codes[idx])
        loss = loss_fn(pred, verts[idx]).total
        if not torch.isfinite(loss):
            raise FloatingPointError(f"variant {variant.name}: the loss became {loss.item()} at step "
                                     f"{len(losses)}; lower ExperimentConfig.lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    decoder.eval()
    return TrainedVariant(variant, model, losses, time.perf_counter() - t0)


def _batch_order(n: int, cfg: ExperimentConfig) -> list[torch.Tensor]:
    """The index batches of ``cfg.steps`` steps: shuffled epochs, seeded by ``cfg.seed``."""
    gen = torch.Generator().manual_seed(cfg.seed)
    out: list[torch.Tensor] = []
    while len(out) < cfg.steps:
        perm = torch.randperm(n, generator=gen)
        out += [perm[s:s + cfg.batch_size] for s in range(0, n - cfg.batch_size + 1, cfg.batch_size)]
    return out[:cfg.steps]


@torch.no_grad()
def decode_codes(model: FaceGCN, codes: NDArray[np.float32], batch: int = 64) -> NDArray[np.float32]:
    """Vertices (N, V, 3) in the normalised crop frame decoded from codes (N, C)."""
    model.eval()
    out = [model.decode(torch.from_numpy(codes[s:s + batch])).float().numpy()
           for s in range(0, len(codes), batch)]
    return np.concatenate(out)


def roughness(verts: NDArray[np.floating[Any]], faces: NDArray[np.integer[Any]]) -> NDArray[np.float64]:
    """Per mesh, the mean norm of the combinatorial Laplacian ``(D - W) Y`` over the vertices.

    Args:
        verts: (N, V, 3) meshes of one topology (any frame: compare like with like).
        faces: (F, 3) their triangles.

    Returns:
        (N,) mean ``||((D - W) Y)_v||`` (in the units of ``verts``).
    """
    from facegcn_lib.mesh.graph import mesh_graph

    lap = mesh_graph(np.asarray(faces), verts.shape[1]).combinatorial_laplacian.tocsr()
    v = np.asarray(verts, dtype=np.float64)
    return np.array([np.linalg.norm(lap @ m, axis=1).mean() for m in v])


def score_variant(model: FaceGCN, test: EncodedFaces, test_set: SyntheticTestSet,
                  title: str = "") -> tuple[EvalResult, NDArray[np.float32], float]:
    """The synthetic benchmark's result, the predictions and the roughness ratio of a model.

    Returns:
        ``(result, verts_n, ratio)``: the :class:`~facegcn_lib.eval.benchmarks.EvalResult`,
        the (N, V, 3) predictions in the normalised crop frame, and the mean roughness of the
        predictions over that of the ground truth.
    """
    from facegcn_lib.eval.benchmarks import score_synthetic
    from facegcn_lib.nn.model import normalized_to_crop

    verts_n = decode_codes(model, test.codes)
    size = test_set.images.shape[1]
    verts_px = normalized_to_crop(torch.from_numpy(verts_n), size).numpy()
    lmks = verts_px[:, model.lmks68.numpy()]
    result = score_synthetic(verts_px, lmks, test_set, title=title)
    faces = model.target.faces
    ratio = float(roughness(verts_n, faces).mean() / roughness(test.verts, faces).mean())
    return result, verts_n, ratio


def showcase_indices(test_set: SyntheticTestSet, per_bin: int = 1) -> NDArray[np.int64]:
    """The first ``per_bin`` faces of each yaw bin of the test set (figure material)."""
    picks = [np.flatnonzero(test_set.yaw_bin == b)[:per_bin] for b in range(AFLW2000_YAW_BINS.num_bins)]
    return np.concatenate(picks).astype(np.int64)


def result_row(trained: TrainedVariant, result: EvalResult, ratio: float) -> dict[str, Any]:
    """One CSV row: the variant, its budget and parameter count, and its scores by yaw bin.

    Score columns are ``<score> <column>``: a score of :data:`SCORES` and a column of the
    synthetic benchmark's summary (the yaw bins, ``mean_of_bins``, ``std_of_bins``,
    ``overall`` in percent; ``auc`` as a fraction).
    """
    from facegcn_lib.nn.model import count_parameters

    v = trained.variant
    row: dict[str, Any] = {
        "name": v.name, "study": v.study, "label": v.label, "decoder": v.decoder,
        "smooth_weight": v.smooth_weight, "norm": v.norm, "residual": v.residual,
        "decoder_params": count_parameters(trained.model.decoder), "steps": len(trained.losses),
        "train_seconds": round(trained.seconds, 1),
        "final_loss": round(float(np.mean(trained.losses[-10:])), 5),
    }
    for key, name in SCORES.items():
        for col, val in result.summary[name].items():  # NMEs in percent, the AUC a fraction
            row[f"{key} {col}"] = round(float(val) * (1.0 if col == AUC else PERCENT), 4)
    row["roughness_ratio"] = round(ratio, 4)
    return row


def run_experiments(out_dir: str | Path, variants: Sequence[Variant] = VARIANTS,
                    cfg: ExperimentConfig = ExperimentConfig(), checkpoint: str | Path | None = None,
                    progress: bool = True,
                    on_result: Callable[[dict[str, Any]], None] | None = None,
                    faces_dir: str | Path | None = None,
                    cache_root: str | Path | None = None) -> list[dict[str, Any]]:
    """Train and score every variant at the same budget; write the results into ``out_dir``.

    Args:
        out_dir: where the CSV, NPZ and JSON files go (created).
        variants: the settings to run (default: all of :data:`VARIANTS`).
        cfg: the shared data and budget.
        checkpoint: the model whose encoder makes the codes (default: the pretrained model).
        progress: progress bars.
        on_result: called with each variant's row as soon as it is scored.
        faces_dir: where the rendered training faces go (default: the cache directory).
        cache_root: where the test set, the training faces and the codes are cached (default:
            the cache directory).

    Returns:
        The rows of ``decoders.csv``.

    Raises:
        ExperimentError: duplicate variant names, or a model that does not regress the ICT face.
    """
    from facegcn_lib.eval.benchmarks import as_model, render_synthetic_test_set

    names = [v.name for v in variants]
    if len(set(names)) != len(names):
        raise ExperimentError(f"variant names must be unique, got {names}")
    ckpt = Path(checkpoint) if checkpoint is not None else None
    base = as_model(ckpt)
    if base.target.name != "ict-face":
        raise ExperimentError(f"the experiments train on synthetic ICT faces, but the model "
                              f"regresses the {base.target.name!r} mesh: pass an ICT-face checkpoint")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    size = base.cfg.encoder.image_size
    root = Path(cache_root) if cache_root is not None else None
    test_set = render_synthetic_test_set(cfg.test_faces, size, cache=root if root is not None else True)
    test = encode_test_set(base, test_set, cfg.encode_batch)
    train = training_faces(base, cfg, ckpt, progress,
                           faces_dir=Path(faces_dir) if faces_dir is not None else None,
                           cache_root=root)
    show = showcase_indices(test_set, cfg.showcase)
    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    shown: dict[str, NDArray[Any]] = {
        "images": test_set.images[show], "truth": test.verts[show].astype(np.float16),
        "yaw_deg": test_set.pose_deg[show, 0], "faces": base.target.faces.astype(np.int32)}
    for variant in variants:
        trained = train_variant(base, variant, train, cfg, progress)
        result, verts_n, ratio = score_variant(trained.model, test, test_set, variant.label)
        row = result_row(trained, result, ratio)
        rows.append(row)
        curves += [{"name": variant.name, "step": i + 1, "loss": round(x, 6)}
                   for i, x in enumerate(trained.losses)]
        shown[f"pred/{variant.name}"] = verts_n[show].astype(np.float16)
        log.info("%s: dense %.2f, 2D %.2f, roughness %.2f", variant.name,
                 row[f"dense_3d {MEAN_OF_BINS}"], row[f"nme_2d {MEAN_OF_BINS}"], ratio)
        if on_result is not None:
            on_result(row)
        _write_csv(out / RESULTS_CSV, rows)   # after each variant: a long run keeps what it has
        _write_csv(out / CURVES_CSV, curves)
        np.savez_compressed(out / SHOWCASE_NPZ, allow_pickle=False, **shown)
    meta = {"config": asdict(cfg), "encoder_checkpoint": str(ckpt or "pretrained"),
            "encoder_checkpoint_sha256_16": _checkpoint_digest(ckpt),
            "model": repr(base.cfg), "train_faces_rendered_at": size, "torch": torch.__version__,
            "threads": torch.get_num_threads(), "machine": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "variants": [asdict(v) for v in variants],
            "columns": {"mean of bins": MEAN_OF_BINS, "all": OVERALL}}
    (out / META_JSON).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return rows


def _write_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    fields = list(rows[0])
    for r in rows[1:]:
        fields += [k for k in r if k not in fields]
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def read_results(folder: str | Path | None = None) -> list[dict[str, str]]:
    """The rows of ``decoders.csv`` in ``folder`` (default: the copy shipped with the library)."""
    path = Path(folder) / RESULTS_CSV if folder is not None else shipped_results() / RESULTS_CSV
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run `facegcn experiments --out "
                                f"{path.parent}` to make it")
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def shipped_results() -> Path:
    """The folder of the results that ship with the library (``resources/results``)."""
    return Path(__file__).resolve().parents[1] / "resources" / "results"


def study_table(rows: Sequence[dict[str, Any]], study: str, score: str = "dense_3d",
                title: str = "") -> EvalTable:
    """One study of ``decoders.csv`` as an :class:`~facegcn_lib.eval.table.EvalTable`.

    Args:
        rows: rows of :func:`read_results` (or of :func:`run_experiments`).
        study: one of :data:`STUDIES`; its reference row is the ``gcn`` row.
        score: one of :data:`SCORES`.
        title: the table's title (default: the score's name).

    Returns:
        A table of the score by yaw bin and the mean of the bins (percent, the best in bold);
        each method's name carries its decoder's parameter count and its roughness ratio.
    """
    from facegcn_lib.eval.table import EvalTable

    if score not in SCORES:
        raise ExperimentError(f"unknown score {score!r}: choose one of {sorted(SCORES)}")
    by_name = {str(r["name"]): r for r in rows}
    table = EvalTable(title=title or f"{SCORES[score]}, NME (%)", scale=1.0)
    for v in variants_of(study):
        if v.name not in by_name:
            raise ExperimentError(f"the results have no row {v.name!r}: run `facegcn experiments "
                                  f"--study {study}`")
        r = by_name[v.name]
        params = int(float(r["decoder_params"])) / 1e6
        name = f"{v.label} ({params:.2f} M, roughness {float(r['roughness_ratio']):.2f})"
        table.add(name, {c: float(r[f"{score} {c}"]) for c in table.columns})
    return table
