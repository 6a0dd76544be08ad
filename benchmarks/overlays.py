"""Benchmark: what the crop overlays (glasses, loose hair) cost per face, on the CPU.

Overlays are drawn in the data worker on every face that gets one
(:mod:`facegcn_lib.data.overlays`). This script renders a few synthetic faces at the cpu
preset's input size (128 px) once, then times, on the same crops, ``draw_glasses`` and
``draw_loose_hair`` (each always drawn), in CPU milliseconds per face, and compares them with
the CPU time of one training step of the cpu preset as measured elsewhere
(``benchmarks/training.py``; pass ``--step-ms``). The last line is ``RESULT glasses_ms=<x>
loose_hair_ms=<y>`` followed by their share of a step at probability 0.3 and batch 32.

Usage::

    FACEGCN_DATA=/path/to/data python benchmarks/overlays.py [--faces 16] [--repeats 20] [--step-ms 850]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    from facegcn_lib.data.glasses import draw_glasses
    from facegcn_lib.data.loose_hair import draw_loose_hair
    from facegcn_lib.data.synth import SynthConfig, SyntheticFaces

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--step-ms", type=float, default=850.0,
                    help="one cpu-preset training step (batch 32), ms (default: about v7's run)")
    args = ap.parse_args()
    faces = SyntheticFaces(SynthConfig(image_size=args.size), seed=11, length=args.faces)
    crops = []
    for i in range(args.faces):
        s = faces[i]
        crops.append((np.ascontiguousarray(s["image"].permute(1, 2, 0).numpy()),
                      s["vertices"].numpy(), s["landmarks"].numpy()))
    rng = np.random.default_rng(0)

    def per_face(draw: str) -> float:
        t0 = time.process_time()
        for _ in range(args.repeats):
            for image, verts, lmks in crops:
                if draw == "glasses":
                    draw_glasses(image, verts, lmks, rng)
                else:
                    draw_loose_hair(image, lmks, rng)
        return 1e3 * (time.process_time() - t0) / (args.repeats * len(crops))

    glasses, hair = per_face("glasses"), per_face("loose hair")
    share = lambda ms: 0.3 * 32 * ms / args.step_ms  # noqa: E731
    print(f"{args.faces} synthetic faces at {args.size} px, {args.repeats} repeats, CPU ms per face")
    print(f"glasses     {glasses:6.2f} ms  ({100 * share(glasses):.1f} % of a {args.step_ms:.0f} ms step at p=0.3)")
    print(f"loose hair  {hair:6.2f} ms  ({100 * share(hair):.1f} % of a step at p=0.3)")
    print(f"RESULT glasses_ms={glasses:.2f} loose_hair_ms={hair:.2f} "
          f"glasses_step_share={share(glasses):.3f} loose_hair_step_share={share(hair):.3f}")


if __name__ == "__main__":
    main()
