"""The programme's scorer (tools/gap_step.py): one row per step, replaced in place, and the
shipped table it wrote."""

from __future__ import annotations

import csv
from pathlib import Path

from tests.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]
gap_step = load_tool("gap_step")


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
    v1, v2, shipped = rows["v1"], rows["v2 + flip"], rows["v8, glasses + flip"]
    for col in ("aflw_mean", "menpo_contour"):  # the two development sets of the issue
        assert float(shipped[col]) < float(v2[col]) < float(v1[col])
