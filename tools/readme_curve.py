"""Draw the shipped model's training curve for the README from its metrics CSV.

Usage: ``python tools/readme_curve.py [facegcn_lib/resources/facegcn_cpu_metrics.csv] [docs/images/training_curve.png]``
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(src: Path, dst: Path) -> None:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    with open(src) as fh:
        for row in csv.DictReader(fh):
            series[row["name"]].append((int(row["step"]), float(row["value"])))
    fig, ax = plt.subplots(figsize=(7, 3.2), dpi=110)
    loss_label = ("training loss (L1 + 0.1 smoothness + landmark term)" if "train/landmark" in series
                  else "training loss (L1 + 0.1 smoothness)")
    for name, label in (("train/loss", loss_label), ("val/nme", "validation dense 3D NME")):
        steps, values = zip(*series[name], strict=True)
        ax.plot(steps, values, label=label, marker="o" if name == "val/nme" else None, ms=3)
    lr = series.get("train/lr", [])
    for (step, now), (_, before) in zip(lr[1:], lr, strict=False):
        if now > before:  # the learning rate restarted: a second, fine-tuning run
            ax.axvline(step, color="grey", ls=":", lw=1)
            ax.text(step + 8, ax.get_ylim()[1] * 0.9, "fine-tuning run", fontsize=8, color="grey")
    ax.set_xlabel("optimiser step (batch 32)")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(dst)
    print(f"wrote {dst}")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "facegcn_lib/resources/facegcn_cpu_metrics.csv"),
         Path(args[1] if len(args) > 1 else "docs/images/training_curve.png"))
