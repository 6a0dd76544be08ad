"""The placement diagnostic (tools/placement_share.py): one line per model, shares in [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tools import load_tool

placement_share = load_tool("placement_share")


def test_measures_a_checkpoint_and_prints_one_line_per_model(
        data_root: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = placement_share.measure(str(checkpoint), n_synthetic=6)
    assert 0 < m["photos_shape_nme"] <= m["photos_nme"]  # the best similarity never adds error
    assert 0 < m["rendered_shape_nme"] <= m["rendered_nme"]
    assert 0 <= m["photos_share"] < 1 and 0 <= m["rendered_share"] < 1
    assert -1 <= m["lean"] <= 1 or np.isnan(m["lean"])
    assert all(np.isfinite(m[k]) for k in ("size_gain", "x_gain", "y_gain"))
    seen: list[tuple[str, int]] = []
    monkeypatch.setattr(placement_share, "measure", lambda c, n: seen.append((c, n)) or m)
    assert placement_share.main([str(checkpoint), "other.pt", "--synthetic", "6"]) == 0
    assert seen == [(str(checkpoint), 6), ("other.pt", 6)]
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and all("after the best similarity" in line for line in lines)
    assert all("gains: size" in line for line in lines)


def test_gains_of_a_model_that_reads_the_true_landmarks_are_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that follows every crop exactly has gains of 1 (slow reference: the windows'
    true landmarks themselves)."""
    from types import SimpleNamespace

    rng = np.random.default_rng(0)
    size = 32
    lmks = rng.uniform(8, 24, size=(5, 68, 2)) + rng.normal(0, 1, size=(5, 1, 2))
    images = rng.integers(0, 255, size=(5, size, size, 3), dtype=np.uint8)
    calls: list[int] = []

    def exact(model: object, windows: np.ndarray) -> tuple[np.ndarray, None]:
        side, sx, sy = placement_share.WINDOWS[len(calls)]
        calls.append(1)
        w = side * size
        x0, y0 = (size - w) / 2 + sx * size, (size - w) / 2 + sy * size
        return (lmks - [x0, y0]) * size / w, None

    monkeypatch.setattr(placement_share, "predict_crops", exact)
    monkeypatch.setattr(placement_share, "reported_landmarks",
                        lambda target: SimpleNamespace(apply=lambda v: v))
    g = placement_share.gains(SimpleNamespace(model=SimpleNamespace(target=None)), images, lmks)
    assert len(calls) == len(placement_share.WINDOWS)
    assert g == pytest.approx({"size_gain": 1.0, "x_gain": 1.0, "y_gain": 1.0})
