"""Build a preset's model, loss and data for the trainer: the glue behind ``facegcn train``.

:func:`build_from_preset` turns a :class:`~facegcn_lib.train.trainer.Preset` into a
:class:`TrainingSetup`: the :class:`~facegcn_lib.nn.model.FaceGCN` (seeded), the paper's loss
(:class:`~facegcn_lib.train.losses.MeshLoss`: L1 plus 0.1 x Laplacian smoothness), the training
set and a held-out validation set scored by the dense NME. Datasets yield dicts with

* ``image``: (3, S, S) float32 RGB in [0, 1], the crop the encoder reads;
* ``verts``: (V, 3) float32 ground-truth vertices in the model's normalised crop frame
  (:func:`facegcn_lib.nn.model.crop_to_normalized` of the crop's pixels), the regression target;
* ``lmks68``: (68, 3) float32 landmarks in the same frame (their box normalises the NME;
  2D landmarks get z = 0).

Data sources: ``synthetic`` renders ICT faces on the fly
(:class:`facegcn_lib.data.synth.SyntheticFaces`, the ``ict-face`` mesh), new ones every epoch
(a rendered face costs the same whether it is new or not), and a fixed validation set rendered
once and cached on disk; ``300w-lp`` reads 300W-LP (:class:`facegcn_lib.data.w300lp.W300LP`),
cropped and augmented as in the paper (new augmentations every epoch, seeded by the sample's
index), on the BFM mesh, and needs the user's own Basel Face Model file for its dense meshes.
Every sample depends only on the seed and its index, so a resumed run sees the same data.

See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from facegcn_lib.config import MeshConfig, ModelConfig, to_dict
from facegcn_lib.train.device import seed_everything
from facegcn_lib.train.trainer import (
    PRESETS,
    Callback,
    FitResult,
    Preset,
    TrainConfig,
    TrainConfigError,
    Trainer,
)

log = logging.getLogger(__name__)

DATA_SOURCES = ("synthetic", "300w-lp")
#: The seed of the held-out synthetic validation faces; training faces use the run's seed,
#: a small number, so the two sets never share a sample.
SYNTH_VAL_SEED = 1_000_003
#: Fraction of 300W-LP held out for validation (every n-th sample, n = 1 / fraction).
W300LP_VAL_FRACTION = 0.02
#: Name of the validation metric in logs and checkpoints.
METRIC_NAME = "nme"
#: Model files written next to the training checkpoints by :func:`export_models`.
BEST_MODEL = "model_best.pt"
LAST_MODEL = "model_last.pt"
#: With a weight average (``TrainConfig.ema_decay``) the model files hold the average; this one
#: holds the last step's raw weights, for comparison.
LAST_RAW_MODEL = "model_last_raw.pt"


class MissingBasisError(FileNotFoundError):
    """300W-LP training needs a Basel Face Model file that the user must supply."""


@dataclass
class TrainingSetup:
    """Everything :class:`~facegcn_lib.train.trainer.Trainer` needs for one preset.

    Attributes:
        preset: the preset (with any overrides applied).
        train: the training settings.
        model: the face model (on the CPU, freshly initialised from ``train.seed``).
        loss: the training loss.
        train_set: the training samples.
        val_set: the held-out validation samples.
        metric_fn: per-sample dense NME of a batch.
        run_info: JSON-able description stored in every checkpoint.
    """

    preset: Preset
    train: TrainConfig
    model: nn.Module
    loss: nn.Module
    train_set: Dataset[Any]
    val_set: Dataset[Any] | None
    metric_fn: Callable[[torch.Tensor, Any], torch.Tensor]
    run_info: dict[str, Any] = field(default_factory=dict)

    def trainer(self, out_dir: str | Path, callbacks: Sequence[Callback] = ()) -> Trainer:
        """A :class:`Trainer` for this setup writing to ``out_dir``."""
        return Trainer(self.model, self.loss, self.train_set, self.train, out_dir,
                       val_set=self.val_set, metric_fn=self.metric_fn, metric_name=METRIC_NAME,
                       run_info=self.run_info, callbacks=callbacks)


# --- datasets ----------------------------------------------------------------------------------

class FaceTrainingView(Dataset[dict[str, torch.Tensor]]):
    """A face dataset's items as the trainer's dicts (see the module docstring).

    Args:
        dataset: items with a (3, S, S) uint8 ``image`` in crop pixels and vertices and
            landmarks in the same crop's pixels.
        size: S, the crop's side (checked against every image).
        verts_key: the key of the vertices.
        lmks_key: the key of the 68 landmarks (2D or 3D).
        epoch_length: samples per epoch when ``dataset`` is a larger pool of generated samples
            (the trainer then gives every epoch its own; see ``Trainer``'s ``train_set``).
    """

    def __init__(self, dataset: Dataset[Any], size: int, verts_key: str = "vertices",
                 lmks_key: str = "landmarks", epoch_length: int | None = None) -> None:
        self.dataset = dataset
        self.epoch_length = epoch_length
        self.size = size
        self.verts_key = verts_key
        self.lmks_key = lmks_key

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        from facegcn_lib.nn.model import crop_to_normalized

        item = self.dataset[index]
        image = item["image"]
        if image.shape[-2:] != (self.size, self.size):
            raise TrainConfigError(f"sample {index} is {tuple(image.shape[-2:])} pixels but the "
                                   f"model reads {self.size}x{self.size} crops")
        lmks = torch.as_tensor(item[self.lmks_key], dtype=torch.float32)
        lmks3 = torch.cat([lmks, torch.zeros_like(lmks[:, :1])], dim=1) if lmks.shape[1] == 2 else lmks
        return {
            "image": image.float().div_(255.0),
            "verts": crop_to_normalized(torch.as_tensor(item[self.verts_key], dtype=torch.float32),
                                        self.size),
            "lmks68": crop_to_normalized(lmks3, self.size),
        }


class InMemoryFaces(Dataset[dict[str, torch.Tensor]]):
    """Stacked tensors of a small dataset, indexed like the original (a fixed validation set)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.tensors = dict(tensors)
        lengths = {len(t) for t in self.tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths: {sorted(lengths)}")
        self.length = lengths.pop()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: v[index] for k, v in self.tensors.items()}


class SeededAugment(Dataset[dict[str, Any]]):
    """``copies`` passes over a dataset, each item randomly transformed by a seed of its own.

    Item ``i`` is ``transform(dataset[i % n])`` with the transform's random generator seeded by
    ``(seed, i)``: with ``epoch_length = n``, the trainer gives epoch ``e`` the items
    ``[e n, (e + 1) n)``, so every epoch draws new augmentations, and every item depends on its
    index alone (exact resume, whatever the data-loader workers).

    Args:
        dataset: the samples.
        transform: a transform with a ``generator`` attribute
            (:class:`facegcn_lib.data.crop.CropAndAugment`).
        seed: the run's seed.
        copies: passes (the planned epochs).
    """

    def __init__(self, dataset: Dataset[Any], transform: Any, seed: int, copies: int = 1) -> None:
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.copies = copies
        self.n = len(dataset)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.n * self.copies

    def __getitem__(self, index: int) -> dict[str, Any]:
        from facegcn_lib.train.device import derive_seed

        self.transform.generator = torch.Generator().manual_seed(derive_seed(self.seed, index))
        out: dict[str, Any] = self.transform(self.dataset[index % self.n])
        return out


def materialize(dataset: Dataset[Any], num_workers: int = 0, batch_size: int = 32,
                cache: Path | None = None) -> InMemoryFaces:
    """Load every item of ``dataset`` once into memory (and into ``cache``, if given).

    For validation sets, which are read every epoch: the faces are rendered once, by
    ``num_workers`` processes, and reloaded from ``cache`` by later runs.
    """
    if cache is not None and cache.is_file():
        log.info("validation set from the cache %s", cache)
        return InMemoryFaces(torch.load(cache, map_location="cpu", weights_only=True))
    from tqdm.auto import tqdm

    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    parts: dict[str, list[torch.Tensor]] = {}
    for batch in tqdm(loader, desc="render validation set", unit="batch", leave=False):
        for k, v in batch.items():
            parts.setdefault(k, []).append(v)
    tensors = {k: torch.cat(v) for k, v in parts.items()}
    if cache is not None:
        from facegcn_lib.train.train_state import atomic_torch_save

        atomic_torch_save(tensors, cache)
    return InMemoryFaces(tensors)


def _synthetic_sets(cfg: TrainConfig, image_size: int, train_samples: int, val_samples: int,
                    glasses_prob: float = 0.0,
                    loose_hair_prob: float = 0.0) -> tuple[Dataset[Any], Dataset[Any]]:
    from facegcn_lib.data import synth
    from facegcn_lib.data.glasses import AddGlasses, GlassesConfig
    from facegcn_lib.data.loose_hair import AddLooseHair, LooseHairConfig
    from facegcn_lib.data.overlays import CropOverlay, Overlays
    from facegcn_lib.paths import cache_file

    scfg = synth.SynthConfig(image_size=image_size)
    # every epoch renders new faces: the pool holds one epoch's worth per planned epoch
    pool: Dataset[Any] = synth.SyntheticFaces(scfg, seed=cfg.seed, length=train_samples * cfg.epochs)
    overlays: list[CropOverlay] = []  # the validation faces stay as rendered
    if glasses_prob > 0:
        overlays.append(AddGlasses(GlassesConfig(prob=glasses_prob)))
    if loose_hair_prob > 0:  # drawn over any glasses, as in Reaugment
        overlays.append(AddLooseHair(LooseHairConfig(prob=loose_hair_prob)))
    if overlays:
        pool = SeededAugment(pool, Overlays(overlays), cfg.seed)
    train = FaceTrainingView(pool, image_size, epoch_length=train_samples)
    val_raw = FaceTrainingView(synth.SyntheticFaces(scfg, seed=SYNTH_VAL_SEED, length=val_samples),
                               image_size)
    cache = cache_file("synth-val", ".pt", repr(scfg), SYNTH_VAL_SEED, val_samples,
                       *synth.renderer_sources())
    return train, materialize(val_raw, cfg.num_workers, cfg.val_batch_size, cache)


def _cached_train_set(cfg: TrainConfig, image_size: int, folders: Sequence[str | Path],
                      glasses_prob: float = 0.0, loose_hair_prob: float = 0.0) -> Dataset[Any]:
    """Training faces read from ``facegcn data synth`` caches, varied anew every epoch.

    Each epoch passes once over the caches' faces (several folders are read as one set); every
    reading of a face is mirrored (half the time), slightly re-cropped and, with probabilities
    ``glasses_prob`` and ``loose_hair_prob``, given glasses and loose hair
    (:class:`facegcn_lib.data.reaugment.Reaugment`), seeded by the run's seed and the item's
    index (exact resume).
    """
    from torch.utils.data import ConcatDataset

    from facegcn_lib.data.glasses import GlassesConfig
    from facegcn_lib.data.loose_hair import LooseHairConfig
    from facegcn_lib.data.reaugment import Reaugment, ReaugmentConfig, ict_face_mirror
    from facegcn_lib.data.synth_cache import SynthCache, SynthCacheError

    caches = []
    for folder in folders:
        try:
            faces = SynthCache(folder)
        except (SynthCacheError, FileNotFoundError) as err:
            raise TrainConfigError(f"cannot read the synthetic-face cache {folder}: {err}. Make one "
                                   f"with `facegcn data synth --size {image_size} --out {folder}`") from err
        size = int(faces[0]["image"].shape[-1])
        if size != image_size:
            raise TrainConfigError(f"the cache {folder} holds {size}x{size} crops but the model "
                                   f"reads {image_size}x{image_size}: render one with `facegcn data "
                                   f"synth --size {image_size}`")
        caches.append(faces)
    every: Dataset[Any] = caches[0] if len(caches) == 1 else ConcatDataset(caches)
    n = len(every)  # type: ignore[arg-type]
    recfg = ReaugmentConfig(
        glasses=GlassesConfig(prob=glasses_prob) if glasses_prob > 0 else None,
        loose_hair=LooseHairConfig(prob=loose_hair_prob) if loose_hair_prob > 0 else None)
    varied = SeededAugment(every, Reaugment(ict_face_mirror(), recfg), cfg.seed, copies=cfg.epochs)
    return FaceTrainingView(varied, image_size, epoch_length=n)


def _require_basis(bfm: str | Path | None) -> Path:
    """The user's BFM file for 300W-LP, or a :class:`MissingBasisError` saying what to do."""
    if bfm is None or not Path(bfm).expanduser().is_file():
        where = f" ({bfm} does not exist)" if bfm is not None else ""
        raise MissingBasisError(
            "--data 300w-lp builds each sample's dense mesh from its 3DDFA fit, which needs a "
            f"Basel Face Model file that facegcn may not distribute{where}: download face3d's "
            "BFM.mat (the 53,215-vertex BFM with 3DDFA's expression basis) after accepting the "
            "BFM licence, and pass it with --bfm PATH; or train on --data synthetic.")
    return Path(bfm).expanduser()


def _w300lp_sets(cfg: TrainConfig, image_size: int, bfm: str | Path | None,
                 root: str | Path | None, n_verts: int) -> tuple[Dataset[Any], Dataset[Any]]:
    from torch.utils.data import Subset

    from facegcn_lib.data.crop import AugmentConfig, CropAndAugment, CropConfig
    from facegcn_lib.data.w300lp import W300LP
    from facegcn_lib.morphable.bfm import load_bfm2009

    bfm = _require_basis(bfm)
    basis = load_bfm2009(bfm)
    if basis.num_verts != n_verts:
        raise MissingBasisError(
            f"{bfm} has {basis.num_verts} vertices but the model regresses the {n_verts}-vertex "
            "BFM mesh of 3DDFA: use face3d's BFM.mat (the BFM 2009 file itself has 53,490).")
    crop = CropConfig(size=image_size)
    full = W300LP(root, basis=basis)
    every = max(2, round(1 / W300LP_VAL_FRACTION))
    idx = np.arange(len(full))
    val_idx, train_idx = idx[idx % every == 0], idx[idx % every != 0]
    if len(train_idx) < cfg.batch_size:
        raise TrainConfigError(f"300W-LP at {full.root} has {len(full)} samples, too few for "
                               f"batches of {cfg.batch_size}: point --data-root at the whole "
                               "300W-LP folder.")
    n = len(train_idx)
    train = FaceTrainingView(
        SeededAugment(Subset(full, train_idx.tolist()), CropAndAugment(crop, AugmentConfig()),
                      cfg.seed, copies=cfg.epochs), image_size, epoch_length=n)
    val = FaceTrainingView(
        SeededAugment(Subset(full, val_idx.tolist()), CropAndAugment(crop, None), cfg.seed),
        image_size)
    return train, val


def dense_nme_metric(pred: torch.Tensor, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Per-sample dense 3D NME: mean vertex distance over ``sqrt(w h)`` of the landmark box.

    See :func:`facegcn_lib.eval.metrics.dense_nme`; both are in the normalised crop frame,
    which the NME does not depend on (it is invariant to scale and translation).
    """
    from facegcn_lib.eval.metrics import dense_nme

    err = dense_nme(pred.detach().float().cpu(), batch["verts"], lmks_gt=batch["lmks68"])
    return torch.from_numpy(err)


# --- the preset --------------------------------------------------------------------------------

def resolve_preset(preset: str | Preset) -> Preset:
    """The preset named ``preset`` (a :class:`Preset` is returned as is).

    Raises:
        TrainConfigError: no preset has that name.
    """
    if isinstance(preset, Preset):
        return preset
    if preset not in PRESETS:
        raise TrainConfigError(f"unknown preset {preset!r}: choose one of {sorted(PRESETS)}")
    return PRESETS[preset]


def build_from_preset(preset: str | Preset, *, data: str = "synthetic",
                      train_overrides: Mapping[str, Any] | None = None,
                      decoder: str | None = None, train_samples: int | None = None,
                      val_samples: int | None = None, bfm: str | Path | None = None,
                      data_root: str | Path | None = None,
                      model_config: ModelConfig | None = None,
                      synth_cache: str | Path | Sequence[str | Path] | None = None,
                      encoder: str | None = None,
                      landmark_weight: float | None = None,
                      glasses: float | None = None,
                      loose_hair: float | None = None,
                      pooling: str | None = None) -> TrainingSetup:
    """The model, loss and datasets of a preset, ready for :class:`Trainer`.

    Args:
        preset: a name of :data:`~facegcn_lib.train.trainer.PRESETS` or a :class:`Preset`.
        data: ``synthetic`` or ``300w-lp``.
        train_overrides: :class:`TrainConfig` fields to change (e.g. ``{"epochs": 2}``).
        decoder: ``gcn`` (the paper), ``uvmap`` or ``3dmm`` instead of the preset's.
        train_samples: training faces per epoch (synthetic data) instead of the preset's.
        val_samples: held-out synthetic faces instead of the preset's.
        bfm: the Basel Face Model file for ``300w-lp`` (face3d's ``BFM.mat``).
        data_root: the 300W-LP folder (default: the data directory's sample).
        model_config: a model configuration replacing the preset's entirely.
        synth_cache: synthetic data only: train on the faces of this ``facegcn data synth``
            folder, or of these folders (mirrored and re-cropped anew every epoch), instead of
            rendering faces on the fly.
        encoder: an encoder architecture (:data:`~facegcn_lib.config.ENCODER_ARCHS`) instead of
            the preset's.
        landmark_weight: the loss's landmark-term weight (:class:`~facegcn_lib.config.LossConfig`)
            instead of the preset's; 0 trains with the paper's loss alone.
        glasses: synthetic data only: the probability that a training face gets eyeglasses
            drawn on its crop (:mod:`facegcn_lib.data.glasses`) instead of the preset's.
        loose_hair: synthetic data only: the probability that a training face gets loose hair
            (a fringe, curtains) drawn over its crop (:mod:`facegcn_lib.data.loose_hair`)
            instead of the preset's.
        pooling: the encoder's pooling (:data:`~facegcn_lib.config.ENCODER_POOLINGS`) instead
            of the preset's.

    Raises:
        TrainConfigError: an unknown preset or data source, or a bad override.
        MissingBasisError: ``300w-lp`` without a usable ``bfm`` file.
    """
    p = resolve_preset(preset)
    if data not in DATA_SOURCES:
        raise TrainConfigError(f"unknown data source {data!r}: choose one of {DATA_SOURCES}")
    try:
        cfg = replace(p.train, **dict(train_overrides or {}))
    except TypeError as err:
        raise TrainConfigError(f"bad training override: {err}") from err
    loss_cfg = p.loss
    if landmark_weight is not None:
        try:
            loss_cfg = replace(loss_cfg, landmark_weight=landmark_weight)
        except ValueError as err:
            raise TrainConfigError(str(err)) from err
    mcfg = model_config or p.model
    if decoder is not None:
        mcfg = replace(mcfg, decoder=decoder)
    if encoder is not None or pooling is not None:
        try:
            mcfg = replace(mcfg, encoder=replace(mcfg.encoder, arch=encoder or mcfg.encoder.arch,
                                                 pooling=pooling or mcfg.encoder.pooling))
        except ValueError as err:
            raise TrainConfigError(str(err)) from err
    for option, prob, what in (("--glasses", glasses, "eyeglasses"),
                               ("--loose-hair", loose_hair, "loose hair")):
        if prob is not None and not 0.0 <= prob <= 1.0:
            raise TrainConfigError(f"{option} is a probability: give a number in [0, 1], not {prob}")
        if prob is not None and prob > 0 and data != "synthetic":
            raise TrainConfigError(f"{option} draws {what} on synthetic faces (from their "
                                   "landmarks): use it with --data synthetic")
    if synth_cache is not None and data != "synthetic":
        raise TrainConfigError("a synthetic-face cache is training data of its own: use it "
                               "with --data synthetic")
    if synth_cache is not None and train_samples is not None:
        raise TrainConfigError("--train-samples sets how many faces are rendered per epoch; with "
                               "--synth-cache an epoch is one pass over the cached faces: drop "
                               "one of the two")
    if data == "300w-lp" and mcfg.mesh.topology != "bfm":
        mcfg = replace(mcfg, mesh=MeshConfig(topology="bfm", n_levels=mcfg.mesh.n_levels,
                                             factor=mcfg.mesh.factor))
    if data == "300w-lp":
        _require_basis(bfm)  # before the slow model build
    glasses_prob = p.glasses_prob if glasses is None else glasses
    loose_hair_prob = p.loose_hair_prob if loose_hair is None else loose_hair
    n_train = train_samples or p.train_samples
    n_val = val_samples or p.val_samples
    p = replace(p, train=cfg, model=mcfg, train_samples=n_train, val_samples=n_val, loss=loss_cfg,
                glasses_prob=glasses_prob, loose_hair_prob=loose_hair_prob)

    from facegcn_lib.nn.model import build_model
    from facegcn_lib.pipeline import reported_landmarks
    from facegcn_lib.train.losses import MeshLoss

    seed_everything(cfg.seed)
    model = build_model(mcfg)
    target = model.target
    landmarks = reported_landmarks(target) if loss_cfg.landmark_weight > 0 else None
    loss = MeshLoss.from_faces(target.faces, target.n_verts, loss_cfg, landmarks)
    size = mcfg.encoder.image_size
    if data == "synthetic":
        if mcfg.mesh.topology != "ict-face":
            raise TrainConfigError(f"synthetic faces are ICT faces, but the model regresses the "
                                   f"{mcfg.mesh.topology!r} mesh: use the ict-face topology")
        train_set, val_set = _synthetic_sets(cfg, size, n_train, n_val, glasses_prob,
                                             loose_hair_prob)
        if synth_cache is not None:
            folders = [synth_cache] if isinstance(synth_cache, (str, Path)) else list(synth_cache)
            train_set = _cached_train_set(cfg, size, folders, glasses_prob, loose_hair_prob)
    else:
        train_set, val_set = _w300lp_sets(cfg, size, bfm, data_root, target.n_verts)
    per_epoch = getattr(train_set, "epoch_length", None) or len(train_set)  # type: ignore[arg-type]
    info = {"preset": p.name, "data": data, "model_config": to_dict(mcfg),
            "loss_config": to_dict(loss_cfg), "glasses_prob": glasses_prob,
            "loose_hair_prob": loose_hair_prob,
            "samples_per_epoch": per_epoch, "val_samples": len(val_set)}  # type: ignore[arg-type]
    return TrainingSetup(p, cfg, model, loss, train_set, val_set, dense_nme_metric, info)


def export_models(setup: TrainingSetup, result: FitResult, out_dir: str | Path) -> dict[str, Path]:
    """Write the best and the last weights as model files (:mod:`facegcn_lib.train.checkpoint`).

    With a weight average (``TrainConfig.ema_decay``) ``model_best.pt`` and ``model_last.pt``
    hold the averaged weights, and ``model_last_raw.pt`` the last step's own.

    Returns:
        ``{"best": path, "last": path}`` (``best`` only when there was a validation), and
        ``"last_raw"`` with a weight average.
    """
    from facegcn_lib.nn.model import FaceGCN
    from facegcn_lib.train.checkpoint import save_checkpoint
    from facegcn_lib.train.train_state import load_train_state

    out = Path(out_dir)
    model = setup.model
    if not isinstance(model, FaceGCN):
        raise TypeError(f"model files hold a FaceGCN, not a {type(model).__name__}")
    paths: dict[str, Path] = {}
    meta = {"preset": setup.preset.name, "data": setup.run_info.get("data"),
            "train_config": to_dict(setup.train)}
    model = model.cpu()
    files = {"last": LAST_MODEL, "best": BEST_MODEL, "last_raw": LAST_RAW_MODEL}
    for name, ckpt in (("last", result.last_checkpoint), ("best", result.best_checkpoint),
                       ("last_raw", result.last_checkpoint)):
        if ckpt is None:
            continue
        state = load_train_state(ckpt)
        average = state.get("ema")
        if name == "last_raw" and average is None:
            continue  # without a weight average the last weights are the raw ones
        model.load_state_dict(average["model"] if average is not None and name != "last_raw"
                              else state["model"])
        meta_i = {**meta, f"val_{METRIC_NAME}": state["best_metric"] if name == "best" else None,
                  "weights": "raw" if average is None or name == "last_raw" else "average"}
        paths[name] = save_checkpoint(out / files[name], model, step=int(state["step"]),
                                      metadata=meta_i)
    return paths
