"""The ``facegcn`` command: thin wrappers over the library (no logic of its own).

Each subcommand is one ``_add_<name>`` function that declares its arguments and binds a
handler; :func:`main` wires them up. Handlers return the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from facegcn_lib._version import __version__

log = logging.getLogger("facegcn")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


# --- facegcn data ---------------------------------------------------------------------------
def _data_check(args: argparse.Namespace) -> int:
    from facegcn_lib.download import Status, check
    from facegcn_lib.paths import data_dir

    root = Path(args.data_dir) if args.data_dir else data_dir()
    reports = check(root, args.only or None, deep=not args.quick)
    width = max(len(r.file.path) for r in reports)
    for r in reports:
        mark = {"ok": "ok", "missing": "MISSING", "corrupt": "CORRUPT"}[r.status.value]
        extra = f"  ({r.detail})" if r.status is Status.CORRUPT else ""
        print(f"{r.file.path:<{width}}  {mark}{extra}")
    bad = [r for r in reports if r.status is not Status.OK]
    print(f"\ndata directory: {root}")
    if bad:
        print(f"{len(bad)} of {len(reports)} files missing or corrupt: run `facegcn data download`.")
        return EXIT_FAILURE
    print(f"all {len(reports)} files present and intact.")
    return EXIT_OK


def _data_download(args: argparse.Namespace) -> int:
    from facegcn_lib.config import DownloadConfig
    from facegcn_lib.download import DownloadError, download
    from facegcn_lib.paths import data_dir

    cfg = DownloadConfig()
    root = Path(args.data_dir) if args.data_dir else data_dir()
    try:
        reports = download(root, args.only or None, base_url=args.mirror,
                           progress=not args.quiet, retries=cfg.retries, timeout=cfg.timeout_s)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except PermissionError as err:
        print(f"error: cannot write to the data directory: {err}. Set FACEGCN_DATA to a "
              "writable folder.", file=sys.stderr)
        return EXIT_FAILURE
    fetched = sum(r.detail == "downloaded" for r in reports)
    print(f"{fetched} file(s) downloaded, {len(reports) - fetched} already present, into {root}")
    return EXIT_OK


def _data_path(args: argparse.Namespace) -> int:
    from facegcn_lib.paths import cache_dir, data_dir

    print(f"data:  {data_dir()}\ncache: {cache_dir()}")
    return EXIT_OK


def _data_synth(args: argparse.Namespace) -> int:
    import os
    import time
    from dataclasses import replace

    from tqdm import tqdm

    from facegcn_lib.data.synth import SynthConfig
    from facegcn_lib.data.synth_cache import SynthCacheError, write_cache

    cfg = replace(SynthConfig(), image_size=args.size)
    if args.hair_prob is not None:
        cfg = replace(cfg, hair=replace(cfg.hair, prob=args.hair_prob))
    bar = tqdm(total=args.n, unit="img", disable=args.quiet, desc="rendering")

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    t0 = time.perf_counter()
    try:
        write_cache(args.out, args.n, cfg, seed=args.seed, shard_size=args.shard_size,
                    workers=args.workers or os.cpu_count() or 1, progress=progress)
    except SynthCacheError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        bar.close()
    secs = time.perf_counter() - t0
    print(f"{args.n} synthetic samples in {args.out} ({secs:.0f} s, {args.n / secs:.1f} images/s "
          "including resumed shards)")
    return EXIT_OK


def _add_synth(dsub: argparse._SubParsersAction) -> None:
    s = dsub.add_parser("synth", help="render a disk cache of synthetic faces (chapter 3)",
                        description="Render samples 0..N-1 of the synthetic-face generator into "
                                    "shards in OUT (resumes an interrupted run).")
    s.add_argument("--n", type=int, default=50_000, help="number of samples (default 50000)")
    s.add_argument("--out", required=True, help="the cache folder")
    s.add_argument("--seed", type=int, default=0, help="the generator's seed (default 0)")
    s.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    s.add_argument("--workers", type=int, default=0,
                   help="rendering processes (default 0: one per core)")
    s.add_argument("--shard-size", type=int, default=1000, help="samples per shard (default 1000)")
    s.add_argument("--hair-prob", type=_probability, metavar="P",
                   help="probability of hair geometry (fringes, curtains; chapter 3) per face "
                        "(default: HairConfig's, 0: measured on the real photos and not kept)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(handler=_data_synth)


def _probability(text: str) -> float:
    """An argparse type: a float in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {value}")
    return value


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and check the data files",
                       description="Fetch and check the data files (set FACEGCN_DATA to choose the folder).")
    dsub = p.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="the data directory (default: $FACEGCN_DATA or ~/.cache/facegcn/data)")
    common.add_argument("--only", nargs="*", metavar="GROUP", help="groups or files, e.g. bfm-mean-3ddfa")
    c = dsub.add_parser("check", parents=[common], help="say which files are present, missing or corrupt")
    c.add_argument("--quick", action="store_true", help="check presence only, not checksums")
    c.set_defaults(handler=_data_check)
    d = dsub.add_parser("download", parents=[common], help="fetch missing files from their public origins")
    d.add_argument("--mirror", help="a base URL with the data directory's layout, instead of the origins")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(handler=_data_download)
    pth = dsub.add_parser("path", help="print the data and cache directories")
    pth.set_defaults(handler=_data_path)
    _add_synth(dsub)


# --- facegcn reconstruct (issue 10) --------------------------------------------------------
_RECONSTRUCT_EPILOG = """\
Writes per face <stem>_faceNN.obj/.ply (vertex colours from the photo), _lmks68.json,
_pose.json (yaw, pitch, roll in degrees), _overlay.png and _depth.png; per photo
<stem>_overlay.png and <stem>_faces.json; per video a folder of per-frame files and
<stem>_overlay.mp4. Files that cannot be read are reported and skipped.

exit codes: 0 at least one face was reconstructed (warnings name unreadable files and photos
without faces); 1 no face was reconstructed from any input, or the model could not be
loaded; 2 usage error (bad option, missing input, unavailable device)."""


def _reconstruct(args: argparse.Namespace) -> int:
    from facegcn_lib.batch import InputNotFoundError, collect_inputs, reconstruct_files
    from facegcn_lib.detect import DetectorConfig
    from facegcn_lib.nn.ensemble import EnsembleError
    from facegcn_lib.pipeline import PipelineConfig, PipelineConfigError, Reconstructor
    from facegcn_lib.train.checkpoint import CheckpointError
    from facegcn_lib.train.device import DeviceUnavailableError
    from facegcn_lib.video import SmoothingConfig, SmoothingConfigError

    try:
        smoothing = SmoothingConfig(method=args.smooth)
        detector = DetectorConfig() if args.min_score is None else DetectorConfig(min_score=args.min_score)
        config = PipelineConfig(passes=args.passes, flip=args.flip, crop_shift=args.crop_shift)
        n_files = len(collect_inputs(args.inputs))
        rec = Reconstructor(_model_source(args), args.device, detector, config)
    except (InputNotFoundError, DeviceUnavailableError, SmoothingConfigError,
            PipelineConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, EnsembleError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    report = reconstruct_files(args.inputs, args.out, rec, smoothing, progress=not args.quiet)
    for r in report.failed:
        print(f"warning: skipped: {r.error}", file=sys.stderr)
    for r in report.without_faces:
        print(f"warning: no face found in {r.path}", file=sys.stderr)
    if report.faces == 0:
        print(f"error: no face was reconstructed from {n_files} input file(s)", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{report.faces} face(s) from {n_files - len(report.failed)} of {n_files} file(s) "
          f"written to {args.out}")
    return EXIT_OK


def _add_checkpoint_option(p: argparse.ArgumentParser) -> None:
    """``--checkpoint FILE`` (repeatable: an ensemble, the meshes averaged) or ``--model NAME``."""
    which = p.add_mutually_exclusive_group()
    which.add_argument("--checkpoint", action="append", metavar="FILE",
                       help="a model checkpoint (default: the pretrained model); repeat it for an "
                            "ensemble, whose meshes are averaged (the models' network time added up)")
    which.add_argument("--model", metavar="NAME",
                       help="a pretrained model of the package: default (one model) or pair (two "
                            "runs of its recipe, their meshes averaged: lower error on the book's "
                            "real photos, twice the network time)")


def _model_source(args: argparse.Namespace) -> list[str] | list[Path] | None:
    """The checkpoints ``--checkpoint`` or ``--model`` name (``None``: the default model).

    Raises:
        facegcn_lib.pipeline.PretrainedModelMissingError: an unknown ``--model`` or a missing file.
    """
    from facegcn_lib.pipeline import pretrained_checkpoints

    if args.model is not None:
        return pretrained_checkpoints(args.model)
    return list(args.checkpoint) if args.checkpoint else None


def _add_pipeline_options(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """``--flip/--no-flip``, ``--passes``, ``--crop-shift``: how the photo pipeline predicts (PipelineConfig)."""
    p.add_argument("--flip", action=argparse.BooleanOptionalAction, default=True,
                   help=prefix + "average each face with the prediction for its mirror image "
                        "(twice the network work; on by default, see the results page of the book)")
    p.add_argument("--passes", type=int, default=1,
                   help=prefix + "network passes per face, each later one re-cropping from the last "
                        "prediction (default: 1)")
    p.add_argument("--crop-shift", type=float, default=0.0, metavar="S",
                   help=prefix + "also read each face's crop shifted by S of its side left, right, up "
                        "and down and average the five meshes (five times the network work; "
                        "0.03 is the training's re-crop shift; with the shipped model it lowers "
                        "the error of every real development set; default: 0, off)")


def _add_reconstruct(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reconstruct", help="3D faces from photos, folders and videos",
                       description="Find every face in photos, folders of photos or videos and "
                                   "write its 3D mesh, 68 landmarks, pose, overlay and depth.",
                       epilog=_RECONSTRUCT_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="PHOTO_OR_FOLDER_OR_VIDEO")
    p.add_argument("--out", default="facegcn_out", help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"),
                   help="where the networks run (default: %(default)s)")
    _add_checkpoint_option(p)
    _add_pipeline_options(p)
    p.add_argument("--min-score", type=float,
                   help="detector confidence threshold (default: the detector's, 0.5)")
    p.add_argument("--smooth", nargs="?", const="one-euro", default="none", metavar="METHOD",
                   help="smooth video meshes over time: none, ema or one-euro; --smooth alone "
                        "means one-euro (default: none)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_reconstruct)


# --- facegcn train (issue 8) ------------------------------------------------------------------
_TRAIN_EPILOG = """\
Writes into --out: checkpoints/last.pt (the training state, every --checkpoint-every steps,
atomically; --resume continues from it exactly), checkpoints/best.pt (lowest validation NME),
model_best.pt and model_last.pt (model files for `facegcn reconstruct --checkpoint`; with
--ema they hold the weight average, and model_last_raw.pt the last step's own weights),
metrics.csv and tb/ (TensorBoard: tensorboard --logdir OUT/tb).

Ctrl-C (or SIGTERM) stops after the current step and saves the checkpoint. On a CPU shared
with other jobs, OMP_NUM_THREADS=1 is often faster. On Linux (glibc) the command keeps freed
memory blocks of up to 32 MiB mapped for reuse (facegcn_lib.train.allocator: less kernel time
per step); MALLOC_MMAP_THRESHOLD_ or MALLOC_TRIM_THRESHOLD_ in the environment leave malloc as
you set it.

Several GPUs or machines: torchrun --nproc_per_node N -m facegcn_lib.cli train ... (the batch
size is the global one, split over the processes).

exit codes: 0 trained; 1 the run failed (NaN loss, missing data or BFM file, checkpoint of
another run); 2 usage error (bad option, unavailable device)."""


def _train(args: argparse.Namespace) -> int:
    from facegcn_lib.train import allocator, distributed
    from facegcn_lib.train.build import build_from_preset, export_models
    from facegcn_lib.train.device import DeviceUnavailableError
    from facegcn_lib.train.train_state import TrainStateError
    from facegcn_lib.train.trainer import NonFiniteLossError, TrainConfigError

    names = {"epochs": "epochs", "max_steps": "max_steps", "batch_size": "batch_size",
             "lr": "lr", "max_minutes": "max_minutes", "device": "device",
             "precision": "precision", "workers": "num_workers", "seed": "seed",
             "checkpoint_every": "checkpoint_every"}
    overrides = {field: getattr(args, arg) for arg, field in names.items()
                 if getattr(args, arg) is not None}
    if args.max_minutes == 0:
        overrides["max_minutes"] = None
    if args.deterministic:
        overrides["deterministic"] = True
    if args.channels_last is not None:
        overrides["channels_last"] = args.channels_last
    if args.lr_schedule is not None:
        overrides["lr_schedule"] = args.lr_schedule
    if args.ema is not None:
        overrides["ema_decay"] = None if args.ema == 0 else args.ema
    if args.quiet:
        overrides["progress"] = False
    if args.no_tensorboard:
        overrides["tensorboard"] = False
    out = Path(args.out or f"runs/{args.preset}-{args.data}")
    allocator.keep_freed_memory()  # before the big tensors: less kernel time per step
    try:
        setup = build_from_preset(args.preset, data=args.data, train_overrides=overrides,
                                  decoder=args.decoder, train_samples=args.train_samples,
                                  val_samples=args.val_samples, bfm=args.bfm,
                                  data_root=args.data_root, synth_cache=args.synth_cache,
                                  encoder=args.encoder, landmark_weight=args.landmark_weight,
                                  glasses=args.glasses, loose_hair=args.loose_hair,
                                  pooling=args.pooling)
        if args.init:
            from facegcn_lib.train.checkpoint import init_from_checkpoint

            init_from_checkpoint(setup.model, args.init)  # type: ignore[arg-type]
        trainer = setup.trainer(out)
    except (TrainConfigError, DeviceUnavailableError, distributed.DistributedSetupError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = trainer.fit(resume=args.resume)
        if trainer.dist.is_main:
            models = export_models(setup, result, out)
    except (NonFiniteLossError, TrainConfigError, TrainStateError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    finally:
        distributed.cleanup()
    if trainer.dist.is_main:
        best = (f"best validation NME {100 * result.best_metric:.2f}% at step {result.best_step}"
                if result.best_metric is not None else "no validation")
        print(f"{result.steps} steps of {result.planned_steps} in {result.train_seconds / 60:.1f} "
              f"min, final loss {result.train_loss:.4g}, {best}.")
        for name, path in models.items():
            print(f"{name} model: {path}")
    return EXIT_OK


def _add_train(sub: argparse._SubParsersAction) -> None:
    from facegcn_lib.config import ENCODER_ARCHS as ENCODER_ARCHS_CHOICES
    from facegcn_lib.config import ENCODER_POOLINGS as ENCODER_POOLINGS_CHOICES
    from facegcn_lib.train.trainer import PRESETS

    presets = "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values())
    p = sub.add_parser("train", help="train the face model (a preset, on synthetic faces or 300W-LP)",
                       description=f"Train the face model. Presets: {presets}.",
                       epilog=_TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", required=True, choices=sorted(PRESETS))
    p.add_argument("--data", default="synthetic", choices=("synthetic", "300w-lp"),
                   help="training data (default: %(default)s)")
    p.add_argument("--out", help="run folder (default: runs/PRESET-DATA)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoints/last.pt (a new run if there is none)")
    p.add_argument("--init", metavar="MODEL.pt",
                   help="start from the weights of a model checkpoint (fine-tuning; same mesh)")
    p.add_argument("--max-minutes", type=float,
                   help="time budget: plan the steps to fit it (0: none; cpu preset: 55)")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    p.add_argument("--batch-size", type=int, help="global batch size (all processes together)")
    p.add_argument("--lr", type=float, help="initial learning rate")
    p.add_argument("--lr-schedule", choices=("staged", "cosine"),
                   help="staged: the rate halved every quarter of the run (the paper); cosine: "
                        "it falls smoothly to 0 over the run (default: the preset's)")
    p.add_argument("--ema", type=float, metavar="DECAY",
                   help="keep an exponential moving average of the weights with this decay "
                        "(e.g. 0.998: about the last 500 steps of a long run; a warm-up limits it to "
                        "about the last n/9 after n steps) and validate and export it; 0: "
                        "none (default: the preset's, none: after the cpu preset's cosine "
                        "schedule it changed nothing measurable)")
    p.add_argument("--decoder", choices=("gcn", "uvmap", "3dmm"),
                   help="the ResGCN (the paper, default) or a baseline decoder")
    p.add_argument("--device", choices=("auto", "cuda", "mps", "cpu"),
                   help="where to train (default: auto)")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"),
                   help="mixed precision (default: bf16 or fp16 on GPUs, fp32 on the CPU)")
    p.add_argument("--workers", type=int, help="data-loader processes per training process")
    p.add_argument("--seed", type=int, help="seeds the model, the data and their order")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels (bitwise repeatable; slower on GPUs)")
    p.add_argument("--checkpoint-every", type=int, help="steps between checkpoints")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=None,
                   help="train in the channels-last memory layout (the same arithmetic, 1.15x "
                        "faster steps of the cpu preset on 2 cores; on by default)")
    p.add_argument("--train-samples", type=int, help="synthetic training faces per epoch")
    p.add_argument("--synth-cache", metavar="DIR", nargs="+",
                   help="synthetic: train on the faces of `facegcn data synth` folders (mirrored "
                        "and re-cropped anew each epoch) instead of rendering them on the fly")
    p.add_argument("--encoder", choices=ENCODER_ARCHS_CHOICES,
                   help="the image encoder instead of the preset's")
    p.add_argument("--pooling", choices=ENCODER_POOLINGS_CHOICES,
                   help="how the encoder pools its last feature map: mean (global average, the "
                        "paper's) or moments (each channel's mean and where it fires; "
                        "facegcn_lib.nn.pooling); default: the preset's")
    p.add_argument("--landmark-weight", type=float, metavar="BETA",
                   help="weight of the loss's image-plane L1 term on the 68 landmarks (the cpu "
                        "preset: 1; 0: the paper's loss alone)")
    p.add_argument("--glasses", type=float, metavar="P",
                   help="probability that a synthetic training face gets eyeglasses drawn on "
                        "its crop (facegcn_lib.data.glasses; default: the preset's)")
    p.add_argument("--loose-hair", type=float, metavar="P",
                   help="probability that a synthetic training face gets loose hair (a fringe, "
                        "curtains over the cheeks) drawn over its crop "
                        "(facegcn_lib.data.loose_hair; default: the preset's)")
    p.add_argument("--val-samples", type=int, help="held-out synthetic faces")
    p.add_argument("--bfm", help="300w-lp: your Basel Face Model file (face3d's BFM.mat)")
    p.add_argument("--data-root", help="300w-lp: the 300W-LP folder (default: the sample)")
    p.add_argument("--no-tensorboard", action="store_true", help="metrics.csv only")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_train)


# --- facegcn pyramid (issue 5) --------------------------------------------------------------
def _pyramid(args: argparse.Namespace) -> int:
    import numpy as np

    from facegcn_lib.mesh.decimate import DecimationConfig, DecimationError
    from facegcn_lib.mesh.io import MeshFormatError, read_obj
    from facegcn_lib.mesh.pyramid import MeshPyramid, PyramidError
    from facegcn_lib.mesh.topology import boundary_mask
    from facegcn_lib.mesh.validate import InvalidMeshError

    try:
        if args.mesh == "bfm":
            from facegcn_lib.morphable.bfm import load_bfm_mean

            bfm = load_bfm_mean()
            verts, faces = bfm.verts, bfm.faces
        elif args.mesh == "ict-face":
            from facegcn_lib.morphable.ict import load_ict_neutral

            ict = load_ict_neutral(region="face")
            verts, faces = ict.verts, ict.faces
        else:
            obj = read_obj(args.mesh)
            verts, faces = obj.verts, obj.faces
        cfg = DecimationConfig(preserve_boundary=not args.no_boundary)
        if args.out:
            pyr = MeshPyramid.build(verts, faces, args.factor, args.levels, cfg)
            path = pyr.save(args.out)
        else:
            path = MeshPyramid.cache_path(verts, faces, args.factor, args.levels, cfg)
            pyr = MeshPyramid.cached(verts, faces, args.factor, args.levels, cfg)
    except (DecimationError, InvalidMeshError, PyramidError, MeshFormatError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(f"{'level':>5}  {'vertices':>8}  {'triangles':>9}  {'boundary':>8}")
    for i, (v, f) in enumerate(zip(pyr.verts, pyr.faces, strict=True)):
        n_b = int(np.count_nonzero(boundary_mask(f, len(v))))
        print(f"{i:>5}  {len(v):>8}  {len(f):>9}  {n_b:>8}")
    stages = ", ".join(f"{k} {v:.2f} s" for k, v in pyr.build_timings.items())
    how = f"built in {pyr.build_seconds:.2f} s: {stages}" if pyr.build_timings else "built"
    print(f"pyramid {' -> '.join(map(str, pyr.sizes))} ({how}) saved to {path}")
    return EXIT_OK


def _add_pyramid(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pyramid", help="build the decoder's mesh pyramid (decimation, D/U matrices)",
                       description="Decimate a mesh into a pyramid of levels (boundary-preserving "
                       "quadric edge collapse) with its down- and up-sampling matrices, and save it "
                       "(by default into the cache, where the library finds it).")
    p.add_argument("--mesh", default="bfm",
                   help="bfm (the 53,215-vertex BFM mean), ict-face (the ICT face region) or a "
                   "path to an .obj file (default: bfm)")
    p.add_argument("--factor", type=int, default=4, help="vertex reduction per level (default: 4)")
    p.add_argument("--levels", type=int, default=6,
                   help="number of levels, the full mesh included (default: 6)")
    p.add_argument("--no-boundary", action="store_true",
                   help="do not preserve the outline (for comparison only)")
    p.add_argument("--out", help="write the pyramid to this .npz file instead of the cache")
    p.set_defaults(handler=_pyramid)


# --- facegcn evaluate (issue 9) ---------------------------------------------------------------
_EVALUATE_EPILOG = """\
Benchmarks: synthetic (a fixed, yaw-balanced set of --n synthetic faces, rendered once and
cached; never seen in training), aflw2000 (the AFLW2000-3D images in the data directory, full
pipeline, 3DDFA's protocol), faces68 (the 68-point photos of faces-68/: NME with the model's
3D jaw, with the jaw moved to the visible outline, and over the 51 inner points).

Prints the table and writes into --out: <benchmark>.csv (one row per face),
<benchmark>_summary.csv and <benchmark>_ced.png (cumulative error distribution).

exit codes: 0 evaluated; 1 the model or a data file is missing or unreadable; 2 usage error
(bad option, unavailable device)."""


def _evaluate(args: argparse.Namespace) -> int:
    from facegcn_lib.eval.benchmarks import BenchmarkConfig, BenchmarkError, run_benchmark
    from facegcn_lib.nn.ensemble import EnsembleError
    from facegcn_lib.pipeline import PipelineConfig, PipelineConfigError
    from facegcn_lib.train.checkpoint import CheckpointError
    from facegcn_lib.train.device import DeviceUnavailableError

    if args.n < 3:
        print(f"error: --n must be at least 3 (one face per yaw bin), got {args.n}", file=sys.stderr)
        return EXIT_USAGE
    try:
        pipeline = PipelineConfig(passes=args.passes, flip=args.flip, crop_shift=args.crop_shift)
    except PipelineConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = run_benchmark(args.benchmark, _model_source(args), n=args.n,
                               annotations=args.annotations, device=args.device,
                               config=BenchmarkConfig(progress=not args.quiet), pipeline=pipeline)
    except (DeviceUnavailableError, BenchmarkError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, EnsembleError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    print(result.report())
    paths = result.save(args.out)
    print("\nwritten: " + ", ".join(str(p) for p in paths.values()))
    return EXIT_OK


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    from facegcn_lib.eval.benchmarks import BENCHMARKS

    p = sub.add_parser("evaluate", help="score a model on a benchmark (NME tables, CSV, CED plot)",
                       description="Score a model on the synthetic test set, AFLW2000-3D or the "
                                   "68-landmark photos.",
                       epilog=_EVALUATE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", required=True, choices=BENCHMARKS)
    _add_checkpoint_option(p)
    p.add_argument("--n", type=int, default=1000,
                   help="synthetic: number of faces, balanced over the yaw bins (default: %(default)s)")
    p.add_argument("--annotations", default="original", choices=("original", "reannotated"),
                   help="aflw2000: the ground-truth landmarks (default: %(default)s)")
    _add_pipeline_options(p, prefix="aflw2000, faces68: ")
    p.add_argument("--out", default="facegcn_eval", help="output folder (default: %(default)s)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda", "mps", "auto"),
                   help="where the network runs (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_evaluate)


# --- facegcn experiments (issue 9) ------------------------------------------------------------
_EXPERIMENTS_EPILOG = """\
Studies: table1 (the ResGCN decoder against a UV position map and 3DMM regression, the
paper's Table 1), alpha (the smoothness weight: 0, 0.01, 0.1, 1), norm (instance against batch
normalization), identity (the residual blocks without their identity path). Every decoder
reads the same frozen encoder's codes (the checkpoint's), is trained from scratch on the same
batches for the same number of steps with the paper's loss, and is scored on the synthetic
test set by yaw bin.

Writes into --out: decoders.csv (one row per variant), decoders_curves.csv (training loss per
step), decoders_showcase.npz (a few test faces as every variant predicts them) and
decoders_meta.json. The numbers shipped with the book were made with
`facegcn experiments --out facegcn_lib/resources/results` (about 50 minutes on 2 CPU cores).

exit codes: 0 done; 1 the model or a data file is missing, or training diverged; 2 usage error."""


def _experiments(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from facegcn_lib.eval.experiments import (
        STUDIES,
        ExperimentConfig,
        ExperimentError,
        Variant,
        run_experiments,
        variants_of,
    )
    from facegcn_lib.train.checkpoint import CheckpointError

    studies = STUDIES if args.study == "all" else (args.study,)
    variants: list[Variant] = []
    for study in studies:
        variants += [v for v in variants_of(study) if v.name not in {w.name for w in variants}]
    try:
        cfg = replace(ExperimentConfig(), **{k: v for k, v in (
            ("steps", args.steps), ("train_faces", args.train_faces),
            ("test_faces", args.test_faces), ("batch_size", args.batch_size)) if v is not None})
        rows = run_experiments(args.out, variants, cfg, args.checkpoint, progress=not args.quiet,
                               faces_dir=args.faces_dir)
    except ExperimentError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (CheckpointError, FloatingPointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    from facegcn_lib.eval.metrics import MEAN_OF_BINS

    print("NME (%), mean of the yaw bins      dense 3D   68 pts 2D   roughness")
    for row in rows:
        print(f"{row['name']:>32}  {row[f'dense_3d {MEAN_OF_BINS}']:8.2f}  "
              f"{row[f'nme_2d {MEAN_OF_BINS}']:10.2f}  {row['roughness_ratio']:10.2f}")
    print(f"\nwritten into {args.out}")
    return EXIT_OK


def _add_experiments(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("experiments", help="the paper's Table 1 and ablations at one budget",
                       description="Train the decoder variants of the paper's comparisons on the "
                                   "same frozen codes and score them on the synthetic test set.",
                       epilog=_EXPERIMENTS_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--study", default="all", choices=("all", "table1", "alpha", "norm", "identity"))
    p.add_argument("--out", default="facegcn_experiments", help="output folder (default: %(default)s)")
    p.add_argument("--checkpoint", help="the model whose encoder makes the codes (default: pretrained)")
    p.add_argument("--steps", type=int, help="training steps per variant (default: 150)")
    p.add_argument("--batch-size", type=int, help="faces per training step (default: 32)")
    p.add_argument("--train-faces", type=int, help="rendered training faces (default: 4000)")
    p.add_argument("--test-faces", type=int, help="synthetic test faces (default: 1000)")
    p.add_argument("--faces-dir", help="where the rendered training faces go (default: the cache)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=_experiments)


# --- registry of subcommands (later subcommands add an _add_<name> above and list it here) --
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_data,
    _add_reconstruct,
    _add_train,
    _add_pyramid,
    _add_evaluate,
    _add_experiments,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``facegcn`` command."""
    parser = argparse.ArgumentParser(
        prog="facegcn", description="3D dense face alignment with graph convolutions.")
    parser.add_argument("--version", action="version", version=f"facegcn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facegcn`` command; returns the exit code."""
    # torch's OpenMP threads wait passively for work instead of spinning: on a machine shared
    # with other jobs spinning costs several times the work itself (benchmarks/reconstruct.py).
    # It must be set before torch is first imported, which the subcommands do lazily.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except FileNotFoundError as err:  # DataMissingError included: its message says what to do
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
