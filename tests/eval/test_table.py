"""Tests of facegcn_lib.eval.table: the markdown results table."""

from __future__ import annotations

import pytest

from facegcn_lib.eval.metrics import MEAN_OF_BINS, MetricInputError, nme_by_yaw
from facegcn_lib.eval.table import MISSING, EvalTable


def test_markdown_exact() -> None:
    table = EvalTable(title="AFLW2000-3D, 2D NME (%)")
    table.add("3DDFA", {"[0, 30]": 0.0363, "(30, 60]": 0.0461, "(60, 90]": 0.0643,
                        MEAN_OF_BINS: 0.0489, "extra": 1.0})
    table.add("ours", nme_by_yaw([0.02, 0.04, 0.06], [0.0, 45.0, 80.0]))
    assert table.to_markdown() == "\n".join([
        "**AFLW2000-3D, 2D NME (%)**",
        "",
        "| Method | [0, 30] | (30, 60] | (60, 90] | Mean |",
        "|:--|--:|--:|--:|--:|",
        "| 3DDFA | 3.63 | 4.61 | 6.43 | 4.89 |",
        "| ours | **2.00** | **4.00** | **6.00** | **4.00** |",
    ])
    assert str(table) == table._repr_markdown_() == table.to_markdown()


def test_missing_nan_highlight_and_names() -> None:
    table = EvalTable(columns=("auc", "nme"), scale=1.0, digits=3, highlight="max",
                      headers={"auc": "AUC@7%"})
    table.add("a", {"auc": 0.5}).add("b", {"auc": 0.75, "nme": float("nan")})
    lines = table.to_markdown().splitlines()
    assert lines[0] == "| Method | AUC@7% | nme |"
    assert lines[2] == f"| a | 0.500 | {MISSING} |"
    assert lines[3] == f"| b | **0.750** | {MISSING} |"
    single = EvalTable(columns=("x",)).add("only", {"x": 0.01})
    assert single.to_markdown().splitlines()[-1] == "| only | 1.00 |"  # nothing to compare
    parts = EvalTable(columns=("x",), row_header="part").add("eyes", {"x": 0.01})
    assert parts.to_markdown().splitlines()[0] == "| part | x |"
    with pytest.raises(MetricInputError, match="name"):
        table.add("a|b", {})
