"""A results table of metrics per method, formatted as markdown for the CLI and the book."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from facegcn_lib.eval.metrics import (
    AFLW2000_YAW_BINS,
    MEAN_OF_BINS,
    OVERALL,
    STD_OF_BINS,
    MetricInputError,
)

#: Printed for a value a row does not have (or NaN).
MISSING = "–"
#: Multiplier that prints fractions as percentages.
PERCENT = 100.0

DEFAULT_HEADERS: Mapping[str, str] = {MEAN_OF_BINS: "Mean", STD_OF_BINS: "Std", OVERALL: "All"}


@dataclass
class EvalTable:
    """Named rows of results (e.g. :func:`~facegcn_lib.eval.metrics.nme_by_yaw` dicts), as markdown.

    Example::

        table = EvalTable(title="AFLW2000-3D, 68 landmarks, 2D NME (%)")
        table.add("ours", nme_by_yaw(nme(pred, gt), yaw))
        print(table.to_markdown())

    In a notebook the table displays itself as markdown (``_repr_markdown_``).

    Attributes:
        columns: keys of the row dicts to show, in order (default: the three yaw bins and the
            mean of the bin means).
        title: a bold line above the table ("" for none).
        scale: multiplier applied to every value (100 prints fractions as percentages).
        digits: decimals printed.
        highlight: bold the smallest (``"min"``) or largest (``"max"``) value of each column,
            or nothing (``None``).
        headers: display names of columns (a column without one shows its key).
        row_header: the header of the row names' column.
        rows: ``(name, values)`` pairs, added with :meth:`add`.
    """

    columns: tuple[str, ...] = (*AFLW2000_YAW_BINS.labels, MEAN_OF_BINS)
    title: str = ""
    scale: float = PERCENT
    digits: int = 2
    highlight: Literal["min", "max"] | None = "min"
    headers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_HEADERS))
    row_header: str = "Method"
    rows: list[tuple[str, dict[str, float]]] = field(default_factory=list)

    def add(self, name: str, values: Mapping[str, float]) -> EvalTable:
        """Append a row (``values`` may hold more keys than :attr:`columns`); returns ``self``."""
        if not name or "|" in name:
            raise MetricInputError(f"a row needs a non-empty name without '|', got {name!r}")
        self.rows.append((name, {k: float(v) for k, v in values.items()}))
        return self

    def _best(self, column: str) -> float | None:
        vals = [r[column] for _, r in self.rows if column in r and not math.isnan(r[column])]
        if self.highlight is None or len(vals) < 2:
            return None
        return min(vals) if self.highlight == "min" else max(vals)

    def _cell(self, value: float | None, best: float | None) -> str:
        if value is None or math.isnan(value):
            return MISSING
        text = f"{value * self.scale:.{self.digits}f}"
        return f"**{text}**" if best is not None and value == best else text

    def to_markdown(self) -> str:
        """The table as GitHub / MyST markdown (method names left, numbers right-aligned)."""
        names = [self.headers.get(c, c) for c in self.columns]
        lines = []
        if self.title:
            lines += [f"**{self.title}**", ""]
        lines.append("| " + " | ".join([self.row_header, *names]) + " |")
        lines.append("|:--" + "|--:" * len(names) + "|")
        bests = {c: self._best(c) for c in self.columns}
        for name, values in self.rows:
            cells = [self._cell(values.get(c), bests[c]) for c in self.columns]
            lines.append("| " + " | ".join([name, *cells]) + " |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.to_markdown()

    def __str__(self) -> str:
        return self.to_markdown()
