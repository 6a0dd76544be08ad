"""Training step time with glibc's default ``malloc`` thresholds and with ``keep_freed_memory``.

:func:`facegcn_lib.train.allocator.keep_freed_memory` (which ``facegcn train`` calls) changes
process-wide ``malloc`` settings that cannot be undone cleanly, so each side runs in its own
fresh process: every round starts one child with the defaults and one with the settings, in
alternating order, so that a busy machine slows both alike. Each child builds the ``cpu``
preset's model (MobileNetV3-Large at 128 x 128 and the ResGCN decoder, channels-last, as
training runs it), times ``--steps`` optimiser steps (forward, the loss, backward, Adam) on
random crops after ``--warmup`` steps, and also counts the page faults of the timed steps (the
kernel's share of the cost: each is a fresh page, zero-filled).

Prints a table (median seconds per step and page faults per step of each side) and, last,
``RESULT malloc_speedup=<default / keep_freed_memory> fault_ratio=<default / keep_freed_memory>``.

Usage::

    FACEGCN_DATA=/path/to/data python benchmarks/allocator.py [--rounds 3] [--steps 5]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import runpy
import statistics
import subprocess
import sys
import time
from pathlib import Path

from facegcn_lib.train.allocator import MALLOC_ENV

SIDES = ("default", "keep_freed_memory")


def child(side: str, steps: int, warmup: int) -> None:
    """Time the cpu preset's training step in this process; print one JSON line."""
    import torch

    from facegcn_lib.train.allocator import keep_freed_memory
    from facegcn_lib.train.trainer import PRESETS

    applied = keep_freed_memory() if side == "keep_freed_memory" else False
    bench = runpy.run_path(str(Path(__file__).with_name("training.py")))
    preset = PRESETS["cpu"]
    step = bench["_model_step"](preset.model, preset.train.batch_size, torch.device("cpu"),
                                preset.train.precision, channels_last=True)
    for _ in range(warmup):
        step()
    faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0
    print(json.dumps({"side": side, "applied": applied, "times": times,
                      "faults_per_step": faults / steps}))


def run_child(side: str, steps: int, warmup: int) -> dict:
    """Run :func:`child` for ``side`` in a fresh process, without the user's malloc settings."""
    env = {k: v for k, v in os.environ.items() if k not in MALLOC_ENV}
    out = subprocess.run([sys.executable, __file__, "--child", side, "--steps", str(steps),
                          "--warmup", str(warmup)], env=env, check=True, capture_output=True,
                         text=True)
    result: dict = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> None:
    """Parse the command line; run the children round-robin; print the table and RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="children per side (default: 3)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per child (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    p.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.steps, args.warmup)
        return
    times: dict[str, list[float]] = {s: [] for s in SIDES}
    faults: dict[str, list[float]] = {s: [] for s in SIDES}
    for r in range(args.rounds):
        for side in (SIDES if r % 2 == 0 else SIDES[::-1]):
            res = run_child(side, args.steps, args.warmup)
            if side == "keep_freed_memory" and not res["applied"]:
                sys.exit("keep_freed_memory() did not apply here (not glibc?): nothing to compare")
            times[side] += res["times"]
            faults[side].append(res["faults_per_step"])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"cpu preset training step, {args.rounds} processes per side x {args.steps} steps, "
          f"alternating; load average {load:.1f} on {os.cpu_count()} CPUs")
    print(f"{'malloc':>18} {'median s/step':>14} {'best s/step':>12} {'page faults/step':>17}")
    for side in SIDES:
        print(f"{side:>18} {statistics.median(times[side]):14.3f} {min(times[side]):12.3f} "
              f"{statistics.median(faults[side]):17.0f}")
    speedup = statistics.median(times["default"]) / statistics.median(times["keep_freed_memory"])
    fault_ratio = (statistics.median(faults["default"])
                   / max(statistics.median(faults["keep_freed_memory"]), 1.0))
    print(f"RESULT malloc_speedup={speedup:.2f} fault_ratio={fault_ratio:.1f}")


if __name__ == "__main__":
    main()
