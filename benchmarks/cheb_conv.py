"""Benchmark: facegcn's ChebConv against torch_geometric's ChebConv and against the bare products.

On the paper's 53,215-vertex BFM mean mesh, batch 8, K = 3, channels 16->16 and 32->32, forward
(inference, no autograd) and forward+backward (gradients of the input, the weights and the bias),
it times side by side, interleaved round-robin so that a busy machine slows all alike:

- ``facegcn csr``: :class:`facegcn_lib.nn.cheb_conv.ChebConv` (CSR Laplacian, the default);
- ``facegcn coo``: the same layer on a COO Laplacian (why CSR is the default);
- ``pyg``: ``torch_geometric.nn.ChebConv`` on the same graph, weights and ``lambda_max``;
- ``floor``: the bare chain of products the layer cannot avoid, on inputs already laid out
  vertex-major, with no module, autograd or copies: the ``K - 1`` sparse products of the
  Chebyshev recursion and the ``K`` weight products (backward: the ``K - 1`` sparse products of
  the transposed chain and the ``2 K`` weight-gradient and input-gradient products);
- ``sparse only``: just the sparse products of the floor (the part no dense kernel can hide).

Before the RESULT line, one more pair, on the CPU: the sparse product ``L~ @ X`` (16 channels)
by ``torch.mm(L, X, out=...)`` and by :func:`facegcn_lib.nn.sparse.sparse_mm` (an ``addmm``
with ``beta = 0`` into the same kind of buffer), with the line ``sparse product: ... ratio``:
on this project's machine (torch 2.14.1) ``torch.mm`` was several times slower for the same
product, which is why ``sparse_mm`` does not call it on the CPU.

It prints a table (best and median of the repeats, in ms) and, last, the line
``RESULT speedup_vs_pyg=<x> ratio_to_floor=<y> ratio_to_sparse_only=<z>`` for forward+backward,
16->16 (the issue's targets: ``speedup_vs_pyg >= 3`` and ``ratio_to_floor <= 1.3``).

Usage::

    FACEGCN_DATA=/path/to/data python benchmarks/cheb_conv.py [--mesh bfm|ict-face]
        [--batch 8] [--repeats 7] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from facegcn_lib.mesh.graph import mesh_graph
from facegcn_lib.nn.cheb_conv import (
    ChebConv,
    cheb_laplacian,
    chebyshev_basis,
    chebyshev_transpose_sum,
)
from facegcn_lib.nn.sparse import sparse_addmm, sparse_mm

#: Agreement asked between facegcn's and PyG's outputs before timing (float32, relative).
PARITY_RTOL = 1e-4


@dataclass(frozen=True)
class BenchConfig:
    """What to time.

    Attributes:
        mesh: ``"bfm"`` (the paper's 53,215-vertex mesh) or ``"ict-face"`` (9,409 vertices).
        batch: B, meshes per batch.
        channels: (F_in, F_out) pairs.
        K: Chebyshev order.
        repeats: timed runs of each case (after one warm-up run).
        device: ``"cpu"`` or ``"cuda"``.
        seed: for the inputs and the weights.
    """

    mesh: str = "bfm"
    batch: int = 8
    channels: tuple[tuple[int, int], ...] = ((16, 16), (32, 32))
    K: int = 3
    repeats: int = 7
    device: str = "cpu"
    seed: int = 0


@dataclass(frozen=True)
class Timing:
    """The timings of one implementation on one case, in milliseconds."""

    impl: str
    channels: tuple[int, int]
    mode: str
    best_ms: float
    median_ms: float


def load_mesh(name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(verts, faces)`` of a named template mesh from the data directory."""
    if name == "bfm":
        from facegcn_lib.morphable.bfm import load_bfm_mean

        m = load_bfm_mean()
    elif name == "ict-face":
        from facegcn_lib.morphable.ict import load_ict_neutral

        m = load_ict_neutral(region="face")
    else:
        raise SystemExit(f"unknown mesh {name!r}: use bfm or ict-face")
    return m.verts, m.faces


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _floor_forward(lap: torch.Tensor, x0: torch.Tensor, w: torch.Tensor,
                   b: torch.Tensor, rows: int) -> list[torch.Tensor]:
    """The forward's products: the Chebyshev chain on (V, B*F_in), then ``sum_k T_k W_k + b``."""
    terms = chebyshev_basis(lap, x0, w.shape[0])
    f_in = w.shape[1]
    out = torch.addmm(b, x0.view(rows, f_in), w[0])
    for k in range(1, w.shape[0]):
        out.addmm_(terms[k].view(rows, f_in), w[k])
    return terms


def _floor_backward(lap: torch.Tensor, terms: list[torch.Tensor], w: torch.Tensor,
                    g: torch.Tensor) -> None:
    """The backward's products: bias and weight gradients, then the transposed chain."""
    rows, f_in = g.shape[0], w.shape[1]
    blocks = next(c for c in range(16, 0, -1) if rows % c == 0)
    g.sum(dim=0)
    for t in terms:
        tb = t.view(blocks, rows // blocks, f_in).transpose(1, 2)
        torch.bmm(tb, g.view(blocks, rows // blocks, -1)).sum(dim=0)
    chebyshev_transpose_sum(lap, [(g @ w[k].T).view(terms[0].shape) for k in range(w.shape[0])])


def _sparse_only(lap: torch.Tensor, x0: torch.Tensor, n_products: int) -> None:
    prev, cur = x0, sparse_mm(lap, x0)
    for _ in range(1, n_products):
        prev, cur = cur, sparse_addmm(prev, lap, cur, beta=-1.0, alpha=2.0)


def kernel_line(verts: np.ndarray, faces: np.ndarray, cfg: BenchConfig) -> str:
    """``torch.mm(L, X, out=...)`` against :func:`sparse_mm`, round-robin, 16 channels (CPU)."""
    lap = cheb_laplacian(verts, faces)
    x = torch.randn(len(verts), cfg.batch * 16)
    buffer = torch.empty(len(verts), x.shape[1])
    times = time_cases({"torch.mm": lambda: torch.mm(lap, x, out=buffer),
                        "sparse_mm": lambda: sparse_mm(lap, x)}, cfg.repeats, torch.device("cpu"))
    mm, ours = (1e3 * min(times[k]) for k in ("torch.mm", "sparse_mm"))
    return (f"sparse product ({len(verts)} x {len(verts)}) @ ({len(verts)} x {x.shape[1]}), best "
            f"of {cfg.repeats}: torch.mm {mm:.2f} ms, facegcn sparse_mm {ours:.2f} ms, "
            f"ratio {mm / ours:.2f}")


def build_cases(verts: np.ndarray, faces: np.ndarray, cfg: BenchConfig, f_in: int, f_out: int
                ) -> dict[str, dict[str, Callable[[], None]]]:
    """mode -> implementation -> a closure running it once (inputs built here, outside timing)."""
    import torch_geometric.nn as pyg_nn

    dev = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    n_verts, batch, K = len(verts), cfg.batch, cfg.K
    ours = ChebConv(f_in, f_out, cheb_laplacian(verts, faces), K=K).to(dev)
    ours_coo = ChebConv(f_in, f_out, cheb_laplacian(verts, faces, layout="coo"), K=K).to(dev)
    with torch.no_grad():
        ours.weight.copy_(torch.randn(K, f_in, f_out, generator=gen) / np.sqrt(f_in))
        ours.bias.copy_(torch.randn(f_out, generator=gen))  # type: ignore[union-attr]
        ours_coo.load_state_dict(ours.state_dict())
    pyg = pyg_nn.ChebConv(f_in, f_out, K).to(dev)
    with torch.no_grad():
        for k, lin in enumerate(pyg.lins):
            lin.weight.copy_(ours.weight[k].T)
        pyg.bias.copy_(ours.bias)  # type: ignore[arg-type]
    adj = mesh_graph(faces, n_verts).adjacency.tocoo()
    edge_index = torch.from_numpy(np.vstack([adj.row, adj.col]).astype(np.int64)).to(dev)
    lmax = torch.tensor(mesh_graph(faces, n_verts).lambda_max(), device=dev)

    x = torch.randn(batch, n_verts, f_in, generator=gen).to(dev)
    gy = torch.randn(batch, n_verts, f_out, generator=gen).to(dev)
    with torch.no_grad():
        y_ours, y_pyg = ours(x), pyg(x, edge_index, lambda_max=lmax)
    scale = float(y_pyg.abs().max())
    err = float((y_ours - y_pyg).abs().max())
    if err > PARITY_RTOL * scale:
        raise SystemExit(f"facegcn and PyG disagree: max |diff| {err:.3g} (scale {scale:.3g})")

    lap = ours.laplacian
    w, b = ours.weight.detach(), ours.bias.detach()  # type: ignore[union-attr]
    rows = n_verts * batch
    x0 = x.transpose(0, 1).reshape(n_verts, batch * f_in).contiguous()
    g0 = gy.transpose(0, 1).reshape(rows, f_out).contiguous()
    xg = x.clone().requires_grad_()

    def fwd_bwd(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            xg.grad = None
            fn(xg).backward(gy)
        return run

    def floor_fb() -> None:
        _floor_backward(lap, _floor_forward(lap, x0, w, b, rows), w, g0)

    def no_grad(fn: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            with torch.no_grad():
                fn()
        return run

    return {
        "fwd": {
            "facegcn csr": no_grad(lambda: ours(x)),
            "facegcn coo": no_grad(lambda: ours_coo(x)),
            "pyg": no_grad(lambda: pyg(x, edge_index, lambda_max=lmax)),
            "floor": no_grad(lambda: _floor_forward(lap, x0, w, b, rows)),
            "sparse only": no_grad(lambda: _sparse_only(lap, x0, K - 1)),
        },
        "fwd+bwd": {
            "facegcn csr": fwd_bwd(ours),
            "facegcn coo": fwd_bwd(ours_coo),
            "pyg": fwd_bwd(lambda t: pyg(t, edge_index, lambda_max=lmax)),
            "floor": floor_fb,
            "sparse only": no_grad(lambda: _sparse_only(lap, x0, 2 * (K - 1))),
        },
    }


def time_cases(cases: dict[str, Callable[[], None]], repeats: int, device: torch.device
               ) -> dict[str, list[float]]:
    """Run every case once to warm up, then ``repeats`` rounds, round-robin; seconds per run."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()
    _sync(device)
    for _ in range(repeats):
        for name, fn in cases.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return times


def run(verts: np.ndarray, faces: np.ndarray, cfg: BenchConfig) -> list[Timing]:
    """Time every implementation on every case of ``cfg``."""
    out: list[Timing] = []
    for f_in, f_out in cfg.channels:
        for mode, cases in build_cases(verts, faces, cfg, f_in, f_out).items():
            for impl, ts in time_cases(cases, cfg.repeats, torch.device(cfg.device)).items():
                out.append(Timing(impl, (f_in, f_out), mode, 1e3 * min(ts),
                                  1e3 * statistics.median(ts)))
    return out


def _best(timings: list[Timing], impl: str, channels: tuple[int, int], mode: str) -> float:
    return next(t.best_ms for t in timings
                if t.impl == impl and t.channels == channels and t.mode == mode)


def format_table(timings: list[Timing]) -> str:
    """A plain-text table with each row's speed-up over PyG and ratio to the floor (best times)."""
    head = (f"{'channels':>9} {'mode':>8} {'implementation':>14} {'best ms':>9} "
            f"{'median ms':>10} {'PyG / this':>11} {'this / floor':>13}")
    lines = [head, "-" * len(head)]
    for t in timings:
        pyg = _best(timings, "pyg", t.channels, t.mode)
        floor = _best(timings, "floor", t.channels, t.mode)
        lines.append(f"{t.channels[0]:>4}->{t.channels[1]:<4} {t.mode:>8} {t.impl:>14} "
                     f"{t.best_ms:9.1f} {t.median_ms:10.1f} {pyg / t.best_ms:11.2f} "
                     f"{t.best_ms / floor:13.2f}")
    return "\n".join(lines)


def result_line(timings: list[Timing], channels: tuple[int, int] = (16, 16)) -> str:
    """``RESULT speedup_vs_pyg=.. ratio_to_floor=.. ratio_to_sparse_only=..`` (fwd+bwd)."""
    ours = _best(timings, "facegcn csr", channels, "fwd+bwd")
    return (f"RESULT speedup_vs_pyg={_best(timings, 'pyg', channels, 'fwd+bwd') / ours:.2f} "
            f"ratio_to_floor={ours / _best(timings, 'floor', channels, 'fwd+bwd'):.2f} "
            f"ratio_to_sparse_only={ours / _best(timings, 'sparse only', channels, 'fwd+bwd'):.2f}")


def main(argv: list[str] | None = None) -> None:
    """Parse the command line, time, print the table and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mesh", default=BenchConfig.mesh, choices=["bfm", "ict-face"])
    p.add_argument("--batch", type=int, default=BenchConfig.batch)
    p.add_argument("--channels", default="16x16,32x32",
                   help="comma-separated F_in x F_out pairs; the RESULT line needs 16x16")
    p.add_argument("--repeats", type=int, default=BenchConfig.repeats)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    try:
        channels = tuple((int(a), int(b)) for a, b in
                         (pair.split("x") for pair in args.channels.split(",")))
    except ValueError:
        p.error(f"--channels wants pairs like 16x16,32x32, got {args.channels!r}")
    if (16, 16) not in channels:
        p.error("--channels must include 16x16 (the RESULT line reports it)")
    cfg = BenchConfig(mesh=args.mesh, batch=args.batch, channels=channels, repeats=args.repeats,
                      device=args.device)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch_geometric's jit notices
    verts, faces = load_mesh(cfg.mesh)
    t0 = time.perf_counter()
    cheb_laplacian(verts, faces)
    cheb_laplacian(verts, faces, layout="coo")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"mesh {cfg.mesh}: {len(verts)} vertices, {len(faces)} triangles; Laplacian built in "
          f"{time.perf_counter() - t0:.2f} s; batch {cfg.batch}, K={cfg.K}, device {cfg.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, load average {load:.1f} "
          f"on {os.cpu_count()} CPUs; {cfg.repeats} repeats, round-robin")
    timings = run(verts, faces, cfg)
    print(format_table(timings))
    if cfg.device == "cpu":
        print(kernel_line(verts, faces, cfg))
    print(result_line(timings))


if __name__ == "__main__":
    main()
