"""Faces per second, photo file in to 3D faces out, for the default model and the fast encoder.

Runs :class:`facegcn_lib.pipeline.Reconstructor` over the demo photos in the data directory
(``photos/``: one portrait, a group photo with two dozen faces, a photo without a face),
end to end: reading and decoding the file, detection (BlazeFace, with its tiles on large
photos), the crop-and-predict passes (one by default; all faces of a photo in one batch),
landmarks and pose.
Writing the output files is timed separately (``save s``, not part of the rate).

Four configurations run side by side, interleaved round-robin so that load from other
processes hits them alike:

* ``default``: the pretrained model's architecture (the ``cpu`` training preset: MobileNetV3-Large
  at 128 x 128, the ResGCN decoder on the 9,409-vertex ICT face); the pretrained weights when
  they are installed, else an untrained model (the same speed);
* ``fast``: the same with the MobileNetV3-Small encoder (:data:`~facegcn_lib.pipeline.FAST_ENCODER`);
* ``shifted``: the default model with test-time crop averaging
  (``PipelineConfig(crop_shift=TRAINING_CROP_SHIFT)``, ``--crop-shift 0.03``: five crops a face);
* ``pair``: the ensemble of the default model and its seed-1 twin (``--model pair``,
  :mod:`facegcn_lib.nn.ensemble`: both networks read every crop, their meshes are averaged).

It prints a table (median seconds per pass over the photos, split into reading, detection and
the network passes, faces per second, and the process's CPU seconds with faces per CPU-second:
on a machine shared with other jobs, wall-clock time, and with it the rate, depends on their
load, while CPU time much less so) and, last,
``RESULT faces_per_second=<default> fast_faces_per_second=<fast>
shifted_faces_per_second=<shifted> crop_shift_cost=<default / shifted>
pair_faces_per_second=<pair> pair_cost=<default / pair>`` (target: 10 or more
faces per second on 2 CPU cores, for the default). Run as
``FACEGCN_DATA=/path/to/data python benchmarks/reconstruct.py [--threads 2]
[--repeats 3] [--device cpu] [--backend auto|onnx|torch] [--passes 1]``.

The detector and the encoder run on the pipeline's backend (``--backend``, default: onnxruntime
when it is installed, :mod:`facegcn_lib.nn.runtime`), the decoder in torch. Unless the
environment says otherwise, torch's OpenMP threads wait passively (``OMP_WAIT_POLICY=PASSIVE``):
on a machine shared with other jobs, threads that spin-wait at the end of every operator burn
the cores the other threads need, and the decoder's many small operators then took 5 to 20
times their CPU time here. Set ``OMP_WAIT_POLICY`` yourself to measure another policy.
"""

from __future__ import annotations

import os
import sys

# only before torch loads (OpenMP reads it once); an explicit setting in the environment wins
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from facegcn_lib.data.images import load_image
from facegcn_lib.face import Face
from facegcn_lib.nn.ensemble import FaceGCNEnsemble
from facegcn_lib.nn.runtime import BACKENDS, RuntimeConfig
from facegcn_lib.paths import require
from facegcn_lib.pipeline import (
    TRAINING_CROP_SHIFT,
    PipelineConfig,
    Reconstructor,
    build_untrained,
    default_checkpoint_path,
    default_model_config,
    fast_model_config,
    load_pretrained,
    pretrained_checkpoints,
)

PHOTOS = ("photos/Tom_Cruise_avp_2014_4.jpg", "photos/bald_guys.jpg", "photos/dogs.jpg")
TARGET_FACES_PER_SECOND = 10.0


@dataclass
class Run:
    """Seconds of each stage over the photos, one entry per repeat."""

    read: list[float] = field(default_factory=list)
    detect: list[float] = field(default_factory=list)
    network: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    faces: int = 0

    @property
    def total(self) -> list[float]:
        return [a + b + c for a, b, c in zip(self.read, self.detect, self.network, strict=True)]


def one_pass(rec: Reconstructor, paths: list[Path], run: Run | None) -> list[list[Face]]:
    """Reconstruct every photo once; add the stage times to ``run`` (when given)."""
    read = detect = network = 0.0
    out = []
    cpu0 = time.process_time()
    for p in paths:
        t0 = time.perf_counter()
        image = load_image(p)
        t1 = time.perf_counter()
        boxes = rec.detect(image)
        t2 = time.perf_counter()
        out.append(rec.reconstruct_boxes(image, boxes))
        t3 = time.perf_counter()
        read, detect, network = read + t1 - t0, detect + t2 - t1, network + t3 - t2
    if run is not None:
        run.read.append(read)
        run.detect.append(detect)
        run.network.append(network)
        run.cpu.append(time.process_time() - cpu0)
        run.faces = sum(len(f) for f in out)
    return out


def main() -> None:
    """Parse the command line, time both models, print the table and the RESULT line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed passes per model (default 3)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default="auto", choices=BACKENDS,
                   help="what runs the detector and the encoder (default: auto)")
    p.add_argument("--passes", type=int, default=PipelineConfig.passes,
                   help="network passes per face (default: the pipeline's, %(default)s)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    paths = [require(rel) for rel in PHOTOS]

    pretrained = default_checkpoint_path().is_file()
    default = (load_pretrained(device=a.device) if pretrained
               else build_untrained(default_model_config()))
    second = (load_pretrained(pretrained_checkpoints("pair")[1], device=a.device) if pretrained
              else build_untrained(default_model_config(), seed=1))
    config = PipelineConfig(passes=a.passes, runtime=RuntimeConfig(backend=a.backend))
    models = {"default": Reconstructor(model=default, device=a.device, config=config),
              "fast": Reconstructor(model=build_untrained(fast_model_config()), device=a.device,
                                    config=config),
              "shifted": Reconstructor(model=default, device=a.device,
                                       config=replace(config, crop_shift=TRAINING_CROP_SHIFT)),
              "pair": Reconstructor(model=FaceGCNEnsemble([default, second]), device=a.device,
                                    config=config)}
    runs = {name: Run() for name in models}
    saved: dict[str, list[list[Face]]] = {}
    for name, rec in models.items():  # warm-up (first-call allocations, numba compilation)
        saved[name] = one_pass(rec, paths, None)
    for _ in range(a.repeats):
        for name, rec in models.items():
            one_pass(rec, paths, runs[name])

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        images = [load_image(p) for p in paths]
        for k, (faces, image) in enumerate(zip(saved["default"], images, strict=True)):
            for j, face in enumerate(faces):
                face.save(tmp, f"photo{k}_face{j:02d}", image)
    n_saved = sum(len(f) for f in saved["default"])
    save_s = time.perf_counter() - t0

    rec0 = models["default"]
    print(f"{len(paths)} photos, {runs['default'].faces} faces; {a.threads} threads on {a.device}; "
          f"default weights: {'pretrained' if pretrained else 'untrained'}; medians of {a.repeats}")
    print(f"{rec0.config.passes} network pass(es) per face; detector on {rec0.detector.backend}, "
          f"encoder on {rec0.backend}, decoder on torch; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}")
    print(f"{'model':<8} {'encoder':<20} {'read s':>7} {'detect s':>9} {'network s':>10} "
          f"{'total s':>8} {'faces/s':>8} {'cpu s':>7} {'faces/cpu-s':>12}")
    rates = {}
    for name, rec in models.items():
        r = runs[name]
        total = statistics.median(r.total)
        rates[name] = r.faces / total
        print(f"{name:<8} {rec.model.cfg.encoder.arch:<20} {statistics.median(r.read):>7.2f} "
              f"{statistics.median(r.detect):>9.2f} {statistics.median(r.network):>10.2f} "
              f"{total:>8.2f} {rates[name]:>8.1f} {statistics.median(r.cpu):>7.2f} "
              f"{r.faces / statistics.median(r.cpu):>12.2f}")
    print(f"writing the {n_saved} faces' files (obj, ply, json, png): {save_s:.2f} s "
          f"({n_saved / save_s:.1f} faces/s); target {TARGET_FACES_PER_SECOND:g} faces/s")
    print(f"RESULT faces_per_second={rates['default']:.2f} fast_faces_per_second={rates['fast']:.2f} "
          f"shifted_faces_per_second={rates['shifted']:.2f} "
          f"crop_shift_cost={rates['default'] / rates['shifted']:.2f} "
          f"pair_faces_per_second={rates['pair']:.2f} pair_cost={rates['default'] / rates['pair']:.2f}")


if __name__ == "__main__":
    main()
