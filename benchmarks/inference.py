"""Inference latency of the encoders and the three decoders, in torch and onnxruntime, on CPU.

For each mesh (the ICT face, 9,409 vertices, and the paper's BFM mesh, 53,215 vertices), each
decoder (ResGCN, UV position map, 3DMM regression) and each encoder (ResNet-50, ResNet-18,
MobileNetV3-Large), at batch 1 and batch 32: the median latency of the encoder and of the
decoder, their sum and the decoder's share of it, in torch and in onnxruntime. Encoders and
decoders are timed (and exported) separately: ``model.encoder`` on images, ``model.decode`` on
codes. The headline model (ResNet-50 + ResGCN decoder, BFM mesh, batch 1) is also timed whole
and exported whole, and its onnxruntime output is checked against torch.

The BFM mesh has no morphable basis in the data directory: its 3DMM decoder uses a random basis
of the ICT model's size (100 identity + 53 expression modes), which costs the same time.

Timings interleave the contenders (one run of each in turn, repeated) and report medians, so
that load from other processes on a shared machine hits all of them alike: read the ratios.
Run as ``python benchmarks/inference.py`` (``--quick``: batch 1, no ONNX, fewer runs). The
last line is ``RESULT gcn_decoder_share=<x> onnx_speedup=<y>`` (ResNet-50, BFM, batch 1).
Chapter 4 imports :func:`run` and :func:`format_tables` for a small table of its own.

Unless the environment says otherwise, torch's OpenMP threads wait passively
(``OMP_WAIT_POLICY=PASSIVE``): on a machine shared with other jobs, threads that spin-wait at
the end of every operator burn the cores the other threads need, which multiplied the time of
the decoder's many small operators (far more than the encoder's few large ones) and made the
decoder's share swing from run to run. Set ``OMP_WAIT_POLICY`` yourself to measure another policy.
"""

from __future__ import annotations

import os
import sys

# only before torch loads (OpenMP reads it once); an explicit setting in the environment wins
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import logging
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from facegcn_lib.config import EncoderConfig, ModelConfig
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.encoders import ImageEncoder
from facegcn_lib.nn.export import export_kernels, export_onnx, onnx_session, run_onnx
from facegcn_lib.nn.model import FaceGCN, count_parameters
from facegcn_lib.nn.target_mesh import TargetMesh, load_target_mesh

THREADS = 2
IMAGE = 256
CODE = 256
TARGET_SHARE = 0.25
SYNTH_ID, SYNTH_EXP = 100, 53
#: the mesh configurations: the ICT face (five levels) and the paper's BFM decoder
MESHES = {"ict-face": ModelConfig(), "bfm": ModelConfig.paper()}
BACKENDS = ("torch", "onnx")


@dataclass(frozen=True)
class BenchConfig:
    """What to time."""

    meshes: tuple[str, ...] = ("ict-face", "bfm")
    encoders: tuple[str, ...] = ("resnet50", "resnet18", "mobilenet_v3_large")
    decoders: tuple[str, ...] = ("gcn", "uvmap", "3dmm")
    batches: tuple[int, ...] = (1, 32)
    onnx: bool = True
    headline: bool = True
    min_runs: int = 3
    budget_s: float = 3.0


@dataclass
class Timings:
    """Median milliseconds and parameter counts, keyed by what was timed."""

    cfg: BenchConfig
    encoder_ms: dict[tuple[str, str, int], float] = field(default_factory=dict)
    decoder_ms: dict[tuple[str, str, str, int], float] = field(default_factory=dict)
    encoder_params: dict[str, int] = field(default_factory=dict)
    decoder_params: dict[tuple[str, str], int] = field(default_factory=dict)
    headline: dict[str, float] = field(default_factory=dict)


def with_synthetic_basis(model: MorphableModel, seed: int = 0) -> MorphableModel:
    """``model`` with a random basis of the ICT model's size (to time the 3DMM decoder)."""
    rng = np.random.default_rng(seed)
    v = model.num_verts
    return replace(model, id_basis=rng.normal(0, 1, (SYNTH_ID, v, 3)).astype(np.float32),
                   exp_basis=rng.normal(0, 1, (SYNTH_EXP, v, 3)).astype(np.float32),
                   exp_names=(), id_std=np.zeros(0), exp_std=np.zeros(0), _torch_cache={})


def time_interleaved(fns: dict[str, Callable[[], object]], min_runs: int,
                     budget_s: float) -> dict[str, float]:
    """Median seconds per call of each function, run in turn (after one warm-up call each)."""
    for fn in fns.values():
        fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}
    start = time.perf_counter()
    runs = 0
    while runs < min_runs or (time.perf_counter() - start < budget_s and runs < 50):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
        runs += 1
    return {k: statistics.median(v) for k, v in samples.items()}


class _Decode(nn.Module):
    """``model.decode`` as a module (codes in, vertices out), for export."""

    def __init__(self, model: FaceGCN) -> None:
        super().__init__()
        self.model = model

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.model.decode(code)


def _session(module: nn.Module, example: torch.Tensor, path: Path) -> Any:
    """Export a module (exportable kernels, dynamic batch) and open an onnxruntime session."""
    with export_kernels(module), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (example,), str(path), dynamo=False, opset_version=17,
                          input_names=["images"], output_names=["verts"],
                          dynamic_axes={"images": {0: "batch"}, "verts": {0: "batch"}})
    return onnx_session(path, threads=torch.get_num_threads())


def _no_grad(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return fn(x)


def build(cfg: ModelConfig, target: TargetMesh, decoder: str) -> FaceGCN:
    """The model of ``cfg`` with ``decoder``, a random basis for a 3DMM on a basis-less mesh."""
    morph = with_synthetic_basis(target.model) if decoder == "3dmm" and target.model.num_id == 0 else None
    return FaceGCN(replace(cfg, decoder=decoder), target, morphable=morph).eval()


def _time_pair(module: Callable[[torch.Tensor], torch.Tensor], session: Any, x: torch.Tensor,
               cfg: BenchConfig) -> dict[str, float]:
    fns: dict[str, Callable[[], object]] = {"torch": lambda: _no_grad(module, x)}
    if session is not None:
        fns["onnx"] = lambda: run_onnx(session, x)
    t = time_interleaved(fns, cfg.min_runs, cfg.budget_s)
    return {b: 1e3 * t.get(b, float("nan")) for b in BACKENDS}


def run(cfg: BenchConfig, log: Callable[[str], None] = print) -> Timings:
    """Time everything ``cfg`` asks for; ``log`` reports progress."""
    out = Timings(cfg)
    tmp = Path(tempfile.mkdtemp(prefix="facegcn-bench-"))
    for arch in cfg.encoders:
        enc = ImageEncoder(EncoderConfig(arch=arch, code_dim=CODE, image_size=IMAGE)).eval()
        out.encoder_params[arch] = count_parameters(enc)
        sess = _session(enc, torch.rand(1, 3, IMAGE, IMAGE), tmp / f"{arch}.onnx") if cfg.onnx else None
        for b in cfg.batches:
            t = _time_pair(enc, sess, torch.rand(b, 3, IMAGE, IMAGE), cfg)
            for backend in BACKENDS:
                out.encoder_ms[(arch, backend, b)] = t[backend]
        log(f"timed encoder {arch}")
    for mesh in cfg.meshes:
        mcfg = replace(MESHES[mesh], encoder=EncoderConfig(arch="mobilenet_v3_small", code_dim=CODE))
        target = load_target_mesh(mcfg.mesh)
        for decoder in cfg.decoders:
            model = build(mcfg, target, decoder)
            out.decoder_params[(mesh, decoder)] = count_parameters(model.decoder)
            sess = (_session(_Decode(model), torch.randn(1, CODE), tmp / f"{mesh}-{decoder}.onnx")
                    if cfg.onnx else None)
            for b in cfg.batches:
                t = _time_pair(model.decode, sess, torch.randn(b, CODE), cfg)
                for backend in BACKENDS:
                    out.decoder_ms[(mesh, decoder, backend, b)] = t[backend]
            log(f"timed decoder {decoder} on {mesh}")
    if cfg.headline:
        out.headline = _headline(cfg, tmp)
    return out


def _headline(cfg: BenchConfig, tmp: Path) -> dict[str, float]:
    """ResNet-50 + ResGCN on the BFM mesh at batch 1: whole model, decoder alone, onnxruntime."""
    mcfg = MESHES["bfm"]
    model = build(mcfg, load_target_mesh(mcfg.mesh), "gcn")
    x = torch.rand(1, 3, IMAGE, IMAGE)
    code = torch.randn(1, CODE)
    fns: dict[str, Callable[[], object]] = {"whole": lambda: _no_grad(model, x),
                                            "decoder": lambda: _no_grad(model.decode, code)}
    result: dict[str, float] = {}
    if cfg.onnx:
        path = export_onnx(model, tmp / "resnet50-gcn-bfm.onnx", IMAGE)
        sess = onnx_session(path, threads=torch.get_num_threads())
        result["max_abs_diff"] = float(np.abs(run_onnx(sess, x) - _no_grad(model, x).numpy()).max())
        fns["onnx"] = lambda: run_onnx(sess, x)
    t = time_interleaved(fns, cfg.min_runs + 2, 2 * cfg.budget_s)
    result.update({f"{k}_ms": 1e3 * v for k, v in t.items()})
    result["share"] = t["decoder"] / t["whole"]
    result["onnx_speedup"] = t["whole"] / t["onnx"] if "onnx" in t else float("nan")
    return result


def format_tables(t: Timings) -> str:
    """The encoder, decoder and whole-model tables as text."""
    c = t.cfg
    backends = BACKENDS if c.onnx else BACKENDS[:1]
    cols = "".join(f"{f'{be} b{b}':>12}" for b in c.batches for be in backends)
    lines = [f"CPU, threads: {torch.get_num_threads()}, {IMAGE}x{IMAGE} crops, {CODE}-d code; "
             "medians in ms (a shared machine: read the ratios); "
             f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}", "",
             f"{'encoder':<20}{'params':>12}{cols}"]
    for arch in c.encoders:
        lines.append(f"{arch:<20}{t.encoder_params[arch]:>12,}" + "".join(
            f"{t.encoder_ms[(arch, be, b)]:>12.1f}" for b in c.batches for be in backends))
    lines += ["", f"{'mesh':<10}{'decoder':<10}{'params':>12}{cols}"]
    for mesh in c.meshes:
        for dec in c.decoders:
            lines.append(f"{mesh:<10}{dec:<10}{t.decoder_params[(mesh, dec)]:>12,}" + "".join(
                f"{t.decoder_ms[(mesh, dec, be, b)]:>12.1f}" for b in c.batches for be in backends))
    lines += ["", "whole model = encoder + decoder, ms (the decoder's share)",
              f"{'mesh':<10}{'decoder':<10}{'encoder':<20}"
              + "".join(f"{f'{be} b{b}':>18}" for b in c.batches for be in backends)]
    for mesh in c.meshes:
        for dec in c.decoders:
            for arch in c.encoders:
                row = f"{mesh:<10}{dec:<10}{arch:<20}"
                for b in c.batches:
                    for be in backends:
                        e, d = t.encoder_ms[(arch, be, b)], t.decoder_ms[(mesh, dec, be, b)]
                        row += f"{e + d:>11.1f} ({d / (e + d):>4.0%})"
                lines.append(row)
    if t.headline:
        h = t.headline
        onnx = (f"onnxruntime {h['onnx_ms']:.1f} ms (max |onnx - torch| = {h['max_abs_diff']:.1e})"
                if "onnx_ms" in h else "onnxruntime not run")
        lines += ["", f"ResNet-50 + ResGCN, BFM mesh, batch 1, whole model: torch {h['whole_ms']:.1f} ms, "
                  f"decoder alone {h['decoder_ms']:.1f} ms = {h['share']:.0%} of it (target <= "
                  f"{TARGET_SHARE:.0%}); {onnx}"]
    return "\n".join(lines)


def result_line(t: Timings) -> str:
    """``RESULT gcn_decoder_share=<x> onnx_speedup=<y>`` from the headline measurement."""
    h = t.headline
    return f"RESULT gcn_decoder_share={h['share']:.3f} onnx_speedup={h['onnx_speedup']:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 1, no ONNX, fewer runs")
    parser.add_argument("--budget", type=float, default=BenchConfig.budget_s,
                        help="seconds of timing per measurement")
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="torch and onnxruntime intra-op threads (the target: 2 cores)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    cfg = BenchConfig(budget_s=args.budget)
    if args.quick:
        cfg = replace(cfg, batches=(1,), onnx=False, min_runs=2)
    timings = run(cfg, log=lambda msg: print(msg, flush=True))
    print()
    print(format_tables(timings))
    print(result_line(timings))


if __name__ == "__main__":
    main()
