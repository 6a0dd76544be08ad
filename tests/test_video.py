"""Videos: temporal filters against literal references, box matching, a tiny video end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from facegcn_lib.data.images import load_image
from facegcn_lib.pipeline import Reconstructor
from facegcn_lib.video import (
    EmaFilter,
    OneEuroFilter,
    SmoothingConfig,
    SmoothingConfigError,
    VideoReadError,
    match_boxes,
    read_frames,
    reconstruct_video,
)
from tests.tiny_reconstructor import PHOTO, save_tiny_checkpoint, shifted_frames, write_video

pytestmark = pytest.mark.usefixtures("one_thread")



def one_euro_reference(xs: list[float], dt: float, min_cutoff: float, beta: float,
                       d_cutoff: float) -> list[float]:
    """The 1-euro filter on a scalar signal, written out as in Casiez et al. (2012)."""

    def alpha(cutoff: float) -> float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    out = [xs[0]]
    x_prev, dx_prev = xs[0], 0.0
    for x in xs[1:]:
        dx = (x - x_prev) / dt
        a_d = alpha(d_cutoff)
        dx_hat = a_d * dx + (1 - a_d) * dx_prev
        cutoff = min_cutoff + beta * abs(dx_hat)
        a = alpha(cutoff)
        x_hat = a * x + (1 - a) * x_prev
        out.append(x_hat)
        x_prev, dx_prev = x_hat, dx_hat
    return out


def test_one_euro_matches_the_reference() -> None:
    rng = np.random.default_rng(0)
    xs = list(np.cumsum(rng.normal(0, 1, 40)) + rng.normal(0, 0.3, 40))
    ref = one_euro_reference(xs, 1 / 30, 1.0, 0.7, 1.0)
    f = OneEuroFilter(1.0, 0.7, 1.0)
    got = [float(f(np.array([[x]]), 1 / 30)[0, 0]) for x in xs]
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_one_euro_speed_is_per_row_and_scaled() -> None:
    f, g = OneEuroFilter(1.0, 2.0, 1.0), OneEuroFilter(1.0, 2.0, 1.0)
    a = np.array([[0.0, 0.0], [0.0, 0.0]])
    b = np.array([[3.0, 4.0], [0.0, 0.0]])
    f(a, 0.1)
    g(a * 10, 0.1)
    # the same motion at ten times the scale, with the scale given: the same relative output
    np.testing.assert_allclose(f(b, 0.1), g(b * 10, 0.1, scale=10.0) / 10)


def test_filters_reduce_jitter_and_one_euro_follows_motion() -> None:
    rng = np.random.default_rng(1)
    n, dt = 200, 1 / 30
    still = rng.normal(0, 1.0, (n, 1, 1))
    for filt in (EmaFilter(0.3), OneEuroFilter(1.0, 0.05, 1.0)):
        out = np.array([filt(x, dt) for x in still])
        assert out[20:].std() < 0.6 * still[20:].std()
    ramp = (np.arange(n) * 100.0 * dt)[:, None, None]  # 100 units per second
    one_euro, ema = OneEuroFilter(1.0, 0.05, 1.0), EmaFilter(0.3)
    lag_1e = ramp[-1] - [one_euro(x, dt) for x in ramp][-1]
    lag_ema = ramp[-1] - [ema(x, dt) for x in ramp][-1]
    assert abs(lag_1e.item()) < 0.5 * abs(lag_ema.item())


def test_match_boxes_pairs_the_overlapping_boxes() -> None:
    prev = np.array([[0, 0, 10, 10], [50, 50, 60, 60], [100, 0, 110, 10]], dtype=float)
    new = np.array([[51, 50, 61, 60], [300, 300, 310, 310], [1, 0, 11, 10]], dtype=float)
    assert sorted(match_boxes(prev, new, 0.3)) == [(0, 2), (1, 0)]
    assert match_boxes(prev[:0], new, 0.3) == []


def test_bad_smoothing_and_bad_video(tmp_path: Path) -> None:
    with pytest.raises(SmoothingConfigError, match="method"):
        SmoothingConfig(method="kalman")
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(VideoReadError, match=r"broken\.mp4"):
        list(read_frames(bad))


def test_a_tiny_video_end_to_end(data_root: Path, tmp_path: Path) -> None:
    rec = Reconstructor(save_tiny_checkpoint(tmp_path))
    frames = shifted_frames(load_image(data_root / PHOTO), 5)
    video = write_video(tmp_path / "clip.mp4", frames)
    result = reconstruct_video(video, rec, tmp_path / "out", SmoothingConfig("one-euro"),
                               progress=False)
    assert (result.frames, result.faces, result.tracks) == (5, 5, 1)
    names = sorted(p.name for p in result.frame_dir.glob("*_pose.json"))
    assert names == [f"frame{k:06d}_face00_pose.json" for k in range(5)]
    pose = json.loads((result.frame_dir / "frame000004_face00_pose.json").read_text())
    assert pose["frame"] == 4 and pose["track"] == 0
    cap = cv2.VideoCapture(str(result.overlay))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == frames[0].shape[1]
    cap.release()
    # smoothing: the raw meshes follow the shifts; the smoothed ones lag behind them
    raw = reconstruct_video(video, rec, tmp_path / "raw", SmoothingConfig("none"), progress=False)
    assert raw.faces == 5

    def centre(folder: Path, k: int) -> float:
        lm = json.loads((folder / f"frame{k:06d}_face00_lmks68.json").read_text())
        return float(np.mean(np.asarray(lm["landmarks"])[:, 0]))

    assert centre(result.frame_dir, 0) == pytest.approx(centre(raw.frame_dir, 0), abs=1e-3)
    moved_raw = centre(raw.frame_dir, 4) - centre(raw.frame_dir, 0)
    moved_smooth = centre(result.frame_dir, 4) - centre(result.frame_dir, 0)
    assert 0 < moved_smooth < moved_raw
