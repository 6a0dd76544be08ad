"""Training throughput (samples per second) of each preset and decoder, on this machine.

Three measurements, side by side in one run:

1. **Model step**: one optimiser step (forward, the paper's loss, backward, Adam) of every
   preset (``cpu``: MobileNetV3-Large at 128 x 128; ``paper``: ResNet-50 at 256 x 256) with each
   decoder (ResGCN, UV position map, 3DMM regression) on random crops and targets, so that only
   the model counts. The configurations are timed round-robin (one step of each in turn,
   repeated) and the median is kept, so that load from other processes on a shared machine
   hits all of them alike. On a CPU the ``paper`` preset is timed at a smaller batch
   (``--paper-cpu-batch``, default 8: a batch of 50 takes minutes on 2 cores); per-sample CPU
   throughput hardly depends on the batch size.
2. **Memory layout**: the ``cpu`` preset's model step with the encoder's weights and the images
   in the default (NCHW) layout and in the channels-last (NHWC) one that
   :class:`~facegcn_lib.train.trainer.TrainConfig` ``channels_last`` (on by default) trains
   with, round-robin; the line ``channels_last_speedup=<ratio>`` is the NCHW median over the
   NHWC one.
3. **Data**: synthetic faces rendered per second by one process at each preset's size
   (:class:`facegcn_lib.data.synth.SyntheticFaces`): what data-loader workers must supply.
4. **End to end**: the ``cpu`` preset's real training loop (:func:`build_from_preset` and
   :class:`Trainer`, data rendered on the fly by its data-loader worker, validation off) for
   ``--steps`` steps after a warm-up step. This is the headline figure: the CPU preset plans its
   steps from it to fit its time budget.

The end-to-end loop also runs with one torch thread (``--threads``): on a 2-core machine the
data-loader worker and other jobs compete with PyTorch's own threads, and one thread
(``OMP_NUM_THREADS=1``) was 2.2 to 2.6 times faster on the project's shared machine.

The device is CUDA when one is visible (the GPU is named in the table), else the CPU. The last
line is ``RESULT cpu_samples_per_second=<x> cpu_samples_per_second_1thread=<y>`` (the
end-to-end CPU-preset figure with this process's thread count, then with one thread).

Usage::

    FACEGCN_DATA=/path/to/data python benchmarks/training.py [--steps 6] [--repeats 3]
        [--device auto|cpu|cuda] [--threads 1 2] [--quick]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from facegcn_lib.config import ModelConfig
from facegcn_lib.train.allocator import keep_freed_memory
from facegcn_lib.train.build import build_from_preset
from facegcn_lib.train.device import pick_device, pick_precision
from facegcn_lib.train.trainer import PRESETS, Trainer

DECODERS = ("gcn", "uvmap", "3dmm")


@dataclass
class Contender:
    """One (preset, decoder) model step to time."""

    preset: str
    decoder: str
    batch: int
    size: int
    step: Callable[[], None]
    times: list[float]


def _model_step(mcfg: ModelConfig, batch: int, device: torch.device,
                precision: str, channels_last: bool = False) -> Callable[[], None]:
    from facegcn_lib.nn.model import build_model
    from facegcn_lib.train.losses import MeshLoss

    torch.manual_seed(0)
    model = build_model(mcfg).to(device).train()
    loss = MeshLoss.from_faces(model.target.faces, model.target.n_verts).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    plan = pick_precision(device, precision)
    size = mcfg.encoder.image_size
    images = torch.rand(batch, 3, size, size, device=device)
    if channels_last:  # as the Trainer does with TrainConfig.channels_last
        model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    target = model.template.expand(batch, -1, -1) + 0.05 * torch.randn(
        batch, model.target.n_verts, 3, device=device)

    def step() -> None:
        with plan.autocast(device):
            pred = model(images)
        total = loss(pred.float(), target).total
        total.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step


def bench_models(device: torch.device, repeats: int, paper_cpu_batch: int,
                 decoders: tuple[str, ...]) -> list[Contender]:
    """Time one training step of every preset x decoder, round-robin."""
    contenders = []
    for name in ("cpu", "paper"):
        preset = PRESETS[name]
        batch = preset.train.batch_size
        if name == "paper" and device.type == "cpu":
            batch = min(batch, paper_cpu_batch)
        precision = preset.train.precision
        for dec in decoders:
            mcfg = replace(preset.model, decoder=dec)
            step = _model_step(mcfg, batch, device, precision)
            step()  # warm-up
            contenders.append(Contender(name, dec, batch, mcfg.encoder.image_size, step, []))
    for _ in range(repeats):
        for c in contenders:
            t0 = time.perf_counter()
            c.step()
            c.times.append(time.perf_counter() - t0)
    return contenders


def bench_layouts(device: torch.device, repeats: int) -> dict[str, float]:
    """Median seconds of the ``cpu`` preset's step in each memory layout, round-robin."""
    preset = PRESETS["cpu"]
    steps = {name: _model_step(preset.model, preset.train.batch_size, device,
                               preset.train.precision, channels_last=name == "channels_last")
             for name in ("contiguous", "channels_last")}
    times: dict[str, list[float]] = {name: [] for name in steps}
    for step in steps.values():
        step()  # warm-up
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def bench_data(sizes: tuple[int, ...], n: int) -> dict[int, float]:
    """Synthetic faces rendered per second by this process at each size."""
    from facegcn_lib.data.synth import SynthConfig, SyntheticFaces

    out = {}
    for size in sizes:
        ds = SyntheticFaces(SynthConfig(image_size=size), seed=0, length=n + 1)
        ds[0]  # loads the model and the per-process caches
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            ds[i]
        out[size] = n / (time.perf_counter() - t0)
    return out


def bench_end_to_end(steps: int, device_name: str, out_dir: str) -> float:
    """Samples per second of the ``cpu`` preset's real loop (after one warm-up step)."""
    preset = PRESETS["cpu"]
    setup = build_from_preset(
        "cpu", val_samples=preset.train.batch_size,
        train_overrides={"max_steps": steps + 1, "max_minutes": None, "progress": False,
                         "tensorboard": False, "checkpoint_every": 10 * steps,
                         "device": device_name})
    setup.val_set = None  # validation is not training throughput
    stamps: list[float] = []
    trainer: Trainer = setup.trainer(out_dir, callbacks=[lambda t: stamps.append(time.perf_counter())])
    trainer.fit()
    return steps * setup.train.batch_size / (stamps[-1] - stamps[0])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--repeats", type=int, default=3, help="timed steps per model (median)")
    p.add_argument("--steps", type=int, default=6, help="timed steps of the end-to-end run")
    p.add_argument("--paper-cpu-batch", type=int, default=8)
    p.add_argument("--data-samples", type=int, default=8, help="faces rendered per size")
    p.add_argument("--threads", type=int, nargs="*", default=[1],
                   help="also run the end-to-end loop with these torch thread counts "
                        "(default: 1, as OMP_NUM_THREADS=1 sets)")
    p.add_argument("--quick", action="store_true", help="a smoke run: gcn only, fewer steps")
    a = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    keep_freed_memory()  # as `facegcn train` does (benchmarks/allocator.py measures its effect)
    if a.quick:
        a.repeats, a.steps, a.data_samples = 1, 2, 2
    device = pick_device(a.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device: {where}; load average at start {load:.1f} (other processes share the "
          "machine: absolute figures are noisy, the ratios within one run are what to read)\n")

    contenders = bench_models(device, a.repeats, a.paper_cpu_batch,
                              ("gcn",) if a.quick else DECODERS)
    print(f"{'preset':<7} {'decoder':<7} {'image':>6} {'batch':>6} {'s/step':>8} "
          f"{'samples/s':>10} {'vs gcn':>7}")
    gcn_rate = {}
    for c in contenders:
        med = statistics.median(c.times)
        rate = c.batch / med
        if c.decoder == "gcn":
            gcn_rate[c.preset] = rate
        print(f"{c.preset:<7} {c.decoder:<7} {c.size:>6} {c.batch:>6} {med:>8.3f} {rate:>10.2f} "
              f"{rate / gcn_rate[c.preset]:>7.2f}")

    layouts = bench_layouts(device, max(a.repeats, 5))
    ratio = layouts["contiguous"] / layouts["channels_last"]
    print(f"\ncpu preset step by memory layout: NCHW {layouts['contiguous']:.3f} s, "
          f"channels-last {layouts['channels_last']:.3f} s; channels_last_speedup={ratio:.2f}")

    sizes = tuple(sorted({PRESETS[n].model.encoder.image_size for n in ("cpu", "paper")}))
    data = bench_data(sizes, a.data_samples)
    print("\nsynthetic faces rendered per second, one process: "
          + ", ".join(f"{s}x{s}: {r:.1f}" for s, r in data.items()))

    import tempfile

    default_threads = torch.get_num_threads()
    rates = {}
    for threads in [default_threads, *[t for t in a.threads if t != default_threads]]:
        torch.set_num_threads(threads)
        with tempfile.TemporaryDirectory() as tmp:
            rates[threads] = bench_end_to_end(a.steps, device.type, tmp)
    torch.set_num_threads(default_threads)
    e2e = rates[default_threads]
    cpu = PRESETS["cpu"]
    print(f"\ncpu preset end to end ({device.type}, batch {cpu.train.batch_size}, "
          f"{cpu.train.num_workers} data worker(s)):")
    for threads, rate in rates.items():
        print(f"  {threads} torch thread(s): {rate:.2f} samples/s ({rate / gcn_rate['cpu']:.2f} x "
              f"the model-only rate); {cpu.train.max_minutes:.0f} minutes at this rate: "
              f"{int(rate * 60 * (cpu.train.max_minutes or 0)):,} samples")
    extra = "".join(f" cpu_samples_per_second_{t}thread={r:.3f}" for t, r in rates.items()
                    if t != default_threads)
    print(f"RESULT cpu_samples_per_second={e2e:.3f}{extra}")


if __name__ == "__main__":
    main()
