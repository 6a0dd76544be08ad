"""The programme's scorer (tools/gap_step.py): one row per step, replaced in place, and the
shipped table it wrote."""

from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("gap_step", ROOT / "tools" / "gap_step.py")
assert _spec is not None and _spec.loader is not None
gap_step = importlib.util.module_from_spec(_spec)
sys.modules["gap_step"] = gap_step
_spec.loader.exec_module(gap_step)


def row(step: str, value: str) -> dict[str, str]:
    return {c: value for c in gap_step.COLUMNS} | {"step": step}


def test_rows_are_replaced_by_step_and_keep_their_order(tmp_path: Path) -> None:
    out = tmp_path / "programme.csv"
    gap_step.write_row(out, row("a", "1"))
    gap_step.write_row(out, row("b", "2"))
    gap_step.write_row(out, row("a", "3"))  # scored again: replaced, moved last
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["b", "a"]
    assert rows[1]["aflw_mean"] == "3"
    assert not out.with_suffix(".tmp").exists()


def test_the_shipped_programme_has_every_column_and_improves_on_v1() -> None:
    with gap_step.DEFAULT_OUT.open(newline="") as fh:
        rows = {r["step"]: r for r in csv.DictReader(fh)}
    assert all(tuple(r) == gap_step.COLUMNS for r in rows.values())
    v1, shipped = rows["v1"], rows["v2 + flip"]
    for col in ("aflw_mean", "menpo_contour"):  # the two development sets of the issue
        assert float(shipped[col]) < float(v1[col])
