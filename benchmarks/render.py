"""Benchmark: how fast the synthetic-face generator feeds training, on the CPU.

It times, in one run:

- ``raster 256`` / ``raster 512``: the numba rasterizer alone on a posed ICT head (52k
  triangles, back faces culled), framed as a training crop (the face box is 1/1.5 of the image,
  so the head overflows it), at the output size and at the 2x supersampled size the generator
  uses;
- ``open3d raycast 512`` (when open3d is installed): Embree ray casting of the same view
  (a ready-made CPU ray caster, for comparison; scene building included, as a new mesh is
  needed per sample) and the fraction of pixels on which it finds the same triangle;
- ``sample (1 process)``: one whole sample (shape, hair, raster, appearance, lighting, shadows,
  background, occluders, camera effects, visibility), wall-clock and CPU time, and the same
  samples with hair geometry on every face (``HairConfig(prob=1)``; off by default),
  interleaved, with the ratio: what the hair costs;
- ``DataLoader, W workers``: the steady-state throughput of ``SyntheticFaces`` in a torch
  ``DataLoader`` with ``W`` worker processes (default 2: the target machine's cores), after the
  workers have loaded the model, and the CPU time the workers spent per image (with psutil).

The machine may be shared: CPU time per sample and the load average are printed next to the
wall-clock numbers, and ``projected`` is the throughput that the workers' CPU time per image
gives when each worker has a core of its own (what an idle machine would measure). The last
line is ``RESULT images_per_second=<x>`` (the DataLoader's throughput; the issue's target is
>= 50 at 256x256 on 2 cores) followed by the single-process, CPU-time and projected figures
and the hair's cost ratio.

Usage::

    FACEGCN_DATA=/path/to/data python benchmarks/render.py [--samples 96] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from facegcn_lib.data.hair import HairConfig
from facegcn_lib.data.synth import SynthConfig, SyntheticFaces
from facegcn_lib.geometry.rotations import euler_to_rotation
from facegcn_lib.render.raster import rasterize

MODEL_TO_CAM = np.diag([1.0, -1.0, -1.0])


def best_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best and median wall-clock milliseconds of ``repeats`` calls (after one warm-up)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times)


def posed_head(ds: SyntheticFaces, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Screen points of a head at yaw 30 framed like a training crop, its triangles, culling."""
    r = ds.renderer
    rot = MODEL_TO_CAM @ euler_to_rotation(np.radians(30.0), np.radians(10.0), 0.0)
    p = (r.model.mean - r.pivot) @ rot.T
    p[:, 2] += 1000.0
    norm = p[:, :2] / p[:, 2:3]
    lm = norm[r.lmks68]
    centre, side = (lm.max(0) + lm.min(0)) / 2, (lm.max(0) - lm.min(0)).max() * 1.5
    pts = np.column_stack([(norm - centre) / side * size + size / 2 - 0.5, p[:, 2]])
    return pts, r.faces, p


def open3d_raycast(p_cam: np.ndarray, faces: np.ndarray, pts: np.ndarray, size: int,
                   tri_ref: np.ndarray) -> tuple[float, float] | None:
    """Time Embree ray casting of the same view; return (best ms, agreement) or None."""
    try:
        import open3d as o3d
    except ImportError:
        return None
    # the pinhole camera that produced ``pts``: pixel = f * (x / z) + c
    f = (pts[1, 0] - pts[0, 0]) / (p_cam[1, 0] / p_cam[1, 2] - p_cam[0, 0] / p_cam[0, 2])
    cx = pts[0, 0] - f * p_cam[0, 0] / p_cam[0, 2]
    cy = pts[0, 1] - f * p_cam[0, 1] / p_cam[0, 2]
    jj, ii = np.meshgrid(np.arange(size), np.arange(size))
    dirs = np.stack([(jj - cx) / f, (ii - cy) / f, np.ones_like(jj, dtype=float)], -1)
    rays = np.concatenate([np.zeros_like(dirs), dirs], -1).astype(np.float32)
    verts = p_cam.astype(np.float32)
    tris = faces.astype(np.uint32)

    def cast() -> np.ndarray:
        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(verts), o3d.core.Tensor(tris))
        hit = scene.cast_rays(o3d.core.Tensor(rays))
        ids = hit["primitive_ids"].numpy().astype(np.int64)
        ids[ids == scene.INVALID_ID] = -1
        return ids

    ms, _ = best_ms(cast, 3)
    ids = cast()
    both = (ids >= 0) | (tri_ref >= 0)
    return ms, float((ids == tri_ref)[both].mean())


def workers_cpu_seconds(it: object) -> float | None:
    """User + system CPU seconds of a DataLoader iterator's worker processes (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    workers = getattr(it, "_workers", [])
    total = 0.0
    for w in workers:
        t = psutil.Process(w.pid).cpu_times()
        total += t.user + t.system
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--samples", type=int, default=96, help="samples through the DataLoader")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader worker processes")
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    cfg = SynthConfig()
    ds = SyntheticFaces(cfg, seed=0, length=args.samples + 64)
    rows: list[tuple[str, str]] = []

    for size in (cfg.image_size, cfg.image_size * cfg.supersample):
        pts, faces, p_cam = posed_head(ds, size)
        best, med = best_ms(lambda pts=pts, faces=faces, size=size: rasterize(pts, faces, size, size, True),
                            args.repeats)
        rows.append((f"raster {size}x{size} (culled)", f"best {best:7.2f} ms   median {med:7.2f} ms"))
    tri_ref = rasterize(pts, faces, size, size, False).tri
    o3d_result = open3d_raycast(p_cam, faces, pts, size, tri_ref)
    if o3d_result is not None:
        rows.append((f"open3d raycast {size}x{size}",
                     f"best {o3d_result[0]:7.2f} ms   same triangle on {100 * o3d_result[1]:.2f}% of pixels"))

    haired = SyntheticFaces(replace(cfg, hair=HairConfig(prob=1.0)), seed=0, length=args.samples + 64)
    ds.sample(0)
    haired.sample(0)
    n1 = max(args.repeats * 2, 10)
    wall_s, cpu_s = {"hair": 0.0, "bald": 0.0}, {"hair": 0.0, "bald": 0.0}
    for i in range(1, n1 + 1):  # interleaved, so that a load change hits both alike
        for name, source in (("bald", ds), ("hair", haired)):
            wall0, cpu0 = time.perf_counter(), time.process_time()
            source.sample(i)
            wall_s[name] += time.perf_counter() - wall0
            cpu_s[name] += time.process_time() - cpu0
    wall, cpu = wall_s["bald"] / n1 * 1e3, cpu_s["bald"] / n1 * 1e3
    rows.append(("sample (1 process)", f"wall {wall:7.1f} ms   cpu {cpu:7.1f} ms   "
                                       f"-> {1e3 / wall:5.1f} img/s wall, {1e3 / cpu:5.1f} img/s per cpu"))
    rows.append(("  the same with hair geometry",
                 f"cpu {cpu_s['hair'] / n1 * 1e3:7.1f} ms   (hair costs {cpu_s['hair'] / cpu_s['bald']:.2f}x)"))

    loader = DataLoader(SyntheticFaces(cfg, seed=1, length=args.samples + 32), batch_size=16,
                        num_workers=args.workers, shuffle=False, persistent_workers=args.workers > 0)
    it = iter(loader)
    next(it), next(it)  # workers start and load the model
    worker_cpu0 = workers_cpu_seconds(it)
    t0 = time.perf_counter()
    n = 0
    for batch in it:
        n += len(batch["image"])
    loader_ips = n / (time.perf_counter() - t0)
    worker_cpu1 = workers_cpu_seconds(it)
    rows.append((f"DataLoader, {args.workers} workers", f"{loader_ips:6.1f} images/s over {n} images"))
    projected = float("nan")
    if worker_cpu0 is not None and worker_cpu1 is not None and args.workers > 0:
        worker_ms = (worker_cpu1 - worker_cpu0) / n * 1e3
        projected = min(args.workers, os.cpu_count() or 1) * 1e3 / worker_ms
        rows.append(("  workers' cpu per image", f"{worker_ms:6.1f} ms   -> projected {projected:5.1f} images/s "
                                                 "with a core per worker"))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    rows.append(("load average (1 min)", f"{load:.1f} on {os.cpu_count()} cores"))
    width = max(len(k) for k, _ in rows)
    print(f"synthetic faces, {cfg.image_size}x{cfg.image_size}, supersample {cfg.supersample}, "
          f"torch threads {torch.get_num_threads()}")
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    print(f"RESULT images_per_second={loader_ips:.1f} single_process_images_per_second={1e3 / wall:.1f} "
          f"images_per_cpu_second={1e3 / cpu:.1f} projected_images_per_second={projected:.1f} "
          f"hair_cost_ratio={cpu_s['hair'] / cpu_s['bald']:.2f} load={load:.1f}")


if __name__ == "__main__":
    main()
