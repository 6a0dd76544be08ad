"""Write training metrics to a CSV file and to TensorBoard, consistently across resumed runs.

The CSV file is long-form, one row per value: ``step,epoch,name,value,time`` (e.g.
``120,2,train/loss,0.0134,1718000000.0``), so new metrics never change its columns; read it with
``pandas.read_csv(...).pivot_table(index="step", columns="name", values="value")``. When a run
is resumed from step ``s``, rows after ``s`` (written by the interrupted run after its last
checkpoint) are dropped from both logs, so they describe exactly one run.

See :doc:`chapter 5 </chapters/05_training>`.
"""

from __future__ import annotations

import csv
import logging
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CSV_COLUMNS = ("step", "epoch", "name", "value", "time")


class MetricsWriter:
    """Append scalar metrics to ``<out>/metrics.csv`` and TensorBoard events in ``<out>/tb``.

    Args:
        out_dir: the run's folder.
        resume_step: when resuming, the checkpoint's step: later rows are dropped.
        tensorboard: also write TensorBoard events (skipped with a warning when the
            ``tensorboard`` package is missing).
    """

    def __init__(self, out_dir: Path, resume_step: int | None = None,
                 tensorboard: bool = True) -> None:
        self.csv_path = Path(out_dir) / "metrics.csv"
        self.csv_path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.csv_path.exists():
            _truncate_after(self.csv_path, resume_step)
        new = not self.csv_path.exists() or self.csv_path.stat().st_size == 0
        self._file = self.csv_path.open("a", newline="", encoding="utf-8")
        self._csv = csv.writer(self._file)
        if new:
            self._csv.writerow(CSV_COLUMNS)
        self._tb: Any = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # pragma: no cover - tensorboard is in the dev extra
                log.warning("tensorboard is not installed: metrics go to %s only", self.csv_path)
            else:
                # TensorBoard purges the steps >= purge_step; the CSV keeps the checkpoint's own
                self._tb = SummaryWriter(log_dir=str(Path(out_dir) / "tb"),
                                         purge_step=None if resume_step is None else resume_step + 1)

    def scalars(self, step: int, epoch: int, values: dict[str, float]) -> None:
        """Record ``values`` (name -> number) at optimiser step ``step`` of epoch ``epoch``."""
        now = time.time()
        for name, value in values.items():
            self._csv.writerow((step, epoch, name, f"{float(value):.8g}", f"{now:.3f}"))
            if self._tb is not None:
                self._tb.add_scalar(name, float(value), global_step=step, walltime=now)
        self._file.flush()

    def close(self) -> None:
        """Flush and close both logs."""
        self._file.close()
        if self._tb is not None:
            self._tb.close()

    def __enter__(self) -> MetricsWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _truncate_after(path: Path, step: int) -> None:
    """Drop the rows of CSV ``path`` whose step is greater than ``step``."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= step]
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(kept)
    tmp.replace(path)


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """The metrics of a ``metrics.csv`` file: name -> [(step, value), ...] in file order."""
    out: dict[str, list[tuple[int, float]]] = {}
    with Path(path).open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            out.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return out
