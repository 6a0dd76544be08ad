"""Videos: reconstruct every frame, follow faces between frames by box overlap, smooth meshes.

There is no tracker beyond matching: each frame's faces are paired with the previous frames'
faces by the intersection-over-union of their detector boxes (Hungarian assignment), and each
chain of matched faces (a *track*) keeps a temporal filter on its vertices. Two filters:

* ``ema``: an exponential moving average, ``s_t = a x_t + (1 - a) s_{t-1}``: steady but
  it lags behind fast head motion;
* ``one-euro``: the 1-euro filter (Casiez, Roussel and Vogel, CHI 2012), a low-pass filter
  whose cut-off frequency rises with the speed, ``f_c = f_min + beta |dx/dt|``: strong
  smoothing of jitter when the head is still, little lag when it moves. Speeds are measured
  per vertex in face sizes per second, so the setting does not depend on the resolution.

Landmarks and pose are recomputed from the smoothed vertices.

See :doc:`chapter 7 </chapters/07_in_the_wild>`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.detect import iou
from facegcn_lib.face import Face, draw_faces

if TYPE_CHECKING:  # pragma: no cover
    from facegcn_lib.pipeline import Reconstructor

log = logging.getLogger(__name__)

SMOOTHING_METHODS = ("none", "ema", "one-euro")
#: Frame rate assumed when a video file does not state one.
DEFAULT_FPS = 30.0
#: FourCC of the overlay videos (MPEG-4 part 2: every OpenCV build writes it).
OVERLAY_FOURCC = "mp4v"


class VideoReadError(ValueError):
    """A video file that OpenCV cannot open or that has no readable frame."""


class SmoothingConfigError(ValueError):
    """An invalid :class:`SmoothingConfig` value; the message names the field."""


@dataclass(frozen=True)
class SmoothingConfig:
    """Temporal smoothing of video meshes.

    Attributes:
        method: ``none``, ``ema`` or ``one-euro`` (see the module docstring).
        ema_weight: the EMA's weight ``a`` of the newest frame, in (0, 1].
        min_cutoff_hz: the 1-euro filter's cut-off frequency at rest.
        beta: the 1-euro filter's cut-off increase per (face size per second) of speed.
        d_cutoff_hz: cut-off frequency of the 1-euro filter's speed estimate.
        match_iou: faces in consecutive frames whose boxes overlap at least this much are
            the same face.
        max_missed: a track is dropped after this many frames without its face.
    """

    method: str = "one-euro"
    ema_weight: float = 0.5
    min_cutoff_hz: float = 1.0
    beta: float = 5.0
    d_cutoff_hz: float = 1.0
    match_iou: float = 0.3
    max_missed: int = 5

    def __post_init__(self) -> None:
        if self.method not in SMOOTHING_METHODS:
            raise SmoothingConfigError(f"SmoothingConfig.method={self.method!r} is not one of "
                                       f"{SMOOTHING_METHODS}")
        if not 0 < self.ema_weight <= 1:
            raise SmoothingConfigError(f"SmoothingConfig.ema_weight must be in (0, 1], got {self.ema_weight}")


def _lowpass_weight(cutoff_hz: NDArray | float, dt: float) -> NDArray[np.float64]:
    """The exponential filter's weight of a new sample for a cut-off frequency and a time step."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff_hz, dtype=np.float64))
    return np.asarray(1.0 / (1.0 + tau / dt))


@dataclass
class OneEuroFilter:
    """The 1-euro filter on arrays ``(N, D)``: one adaptive cut-off per row (e.g. per vertex).

    Args:
        min_cutoff_hz, beta, d_cutoff_hz: see :class:`SmoothingConfig`.
        scale: speeds are divided by this (e.g. the face size in pixels) before ``beta``.
    """

    min_cutoff_hz: float
    beta: float
    d_cutoff_hz: float
    value: NDArray[np.float64] | None = None
    speed: NDArray[np.float64] | None = None

    def __call__(self, x: NDArray, dt: float, scale: float = 1.0) -> NDArray[np.float64]:
        """Filter the next sample ``x`` (N, D), taken ``dt`` seconds after the previous one."""
        x = np.asarray(x, dtype=np.float64)
        if self.value is None or self.speed is None or dt <= 0:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x
        raw_speed = (x - self.value) / dt
        a_d = _lowpass_weight(self.d_cutoff_hz, dt)
        self.speed = a_d * raw_speed + (1.0 - a_d) * self.speed
        magnitude = np.linalg.norm(self.speed, axis=-1, keepdims=True) / max(scale, 1e-12)
        a = _lowpass_weight(self.min_cutoff_hz + self.beta * magnitude, dt)
        self.value = a * x + (1.0 - a) * self.value
        return self.value


@dataclass
class EmaFilter:
    """An exponential moving average ``s_t = weight x_t + (1 - weight) s_{t-1}``."""

    weight: float
    value: NDArray[np.float64] | None = None

    def __call__(self, x: NDArray, dt: float = 0.0, scale: float = 1.0) -> NDArray[np.float64]:
        """Filter the next sample (``dt`` and ``scale`` are ignored)."""
        x = np.asarray(x, dtype=np.float64)
        self.value = x.copy() if self.value is None else self.weight * x + (1 - self.weight) * self.value
        return self.value


def match_boxes(prev: NDArray, new: NDArray, min_iou: float) -> list[tuple[int, int]]:
    """Pairs ``(i, j)`` of boxes ``prev[i]`` and ``new[j]`` (``(N, 4)`` ``[x0, y0, x1, y1]``)
    maximising the total overlap, each pair overlapping at least ``min_iou``."""
    from scipy.optimize import linear_sum_assignment

    if len(prev) == 0 or len(new) == 0:
        return []
    overlap = np.stack([iou(np.asarray(p, dtype=np.float64), np.asarray(new, dtype=np.float64))
                        for p in prev])
    rows, cols = linear_sum_assignment(-overlap)
    return [(int(i), int(j)) for i, j in zip(rows, cols, strict=True) if overlap[i, j] >= min_iou]


@dataclass
class _Track:
    ident: int
    box: NDArray[np.float64]
    filter: OneEuroFilter | EmaFilter
    last_time: float
    missed: int = 0


@dataclass
class FaceSmoother:
    """Match faces across frames and smooth each one's vertices (see the module docstring).

    Args:
        reconstructor: recomputes landmarks and pose of smoothed vertices.
        config: the filter and matching settings.
    """

    reconstructor: Reconstructor
    config: SmoothingConfig = field(default_factory=SmoothingConfig)
    tracks: list[_Track] = field(default_factory=list)
    next_id: int = 0

    def _new_filter(self) -> OneEuroFilter | EmaFilter:
        c = self.config
        if c.method == "ema":
            return EmaFilter(c.ema_weight)
        return OneEuroFilter(c.min_cutoff_hz, c.beta, c.d_cutoff_hz)

    def update(self, faces: list[Face], time_s: float) -> list[Face]:
        """The faces of the frame at ``time_s`` seconds, smoothed, with ``track`` metadata."""
        boxes = np.array([f.box for f in faces]).reshape(-1, 4)
        previous = np.array([t.box for t in self.tracks]).reshape(-1, 4)
        pairs = {j: i for i, j in match_boxes(previous, boxes, self.config.match_iou)}
        seen: set[int] = set()
        out: list[Face] = []
        for j, face in enumerate(faces):
            if j in pairs:
                track = self.tracks[pairs[j]]
            else:
                track = _Track(self.next_id, face.box, self._new_filter(), time_s)
                self.next_id += 1
                self.tracks.append(track)
            seen.add(track.ident)
            meta = {**face.metadata, "track": track.ident}
            if self.config.method == "none":
                out.append(replace(face, metadata=meta))
            else:
                verts = track.filter(face.verts_img, time_s - track.last_time, max(face.size, 1.0))
                out.append(self.reconstructor.face_from_verts(verts, face.box, face.score, meta))
            track.box, track.last_time, track.missed = face.box, time_s, 0
        for t in self.tracks:
            if t.ident not in seen:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.config.max_missed]
        return out


def read_frames(path: str | Path) -> Iterator[NDArray[np.uint8]]:
    """The frames of a video file as ``(H, W, 3) uint8`` RGB.

    Raises:
        VideoReadError: OpenCV cannot open the file or reads no frame from it.
    """
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoReadError(f"cannot open the video {path}: not a video OpenCV can decode")
    n = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            yield np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    if n == 0:
        raise VideoReadError(f"no frame could be read from the video {path}: it is empty or corrupt")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself: frame rate, frame count (0 if unknown), size."""

    fps: float
    frames: int
    width: int
    height: int


def video_info(path: str | Path) -> VideoInfo:
    """Read a video's frame rate, frame count and size without decoding it."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoReadError(f"cannot open the video {path}: not a video OpenCV can decode")
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        return VideoInfo(fps if fps > 0 and math.isfinite(fps) else DEFAULT_FPS,
                         max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
                         int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    finally:
        cap.release()


@dataclass(frozen=True)
class VideoResult:
    """What :func:`reconstruct_video` did.

    Attributes:
        frames: frames read; faces: faces reconstructed over all frames;
        tracks: distinct faces (tracks) seen; overlay: the overlay video;
        frame_dir: the folder of per-frame files.
    """

    frames: int
    faces: int
    tracks: int
    overlay: Path
    frame_dir: Path


def reconstruct_video(path: str | Path, reconstructor: Reconstructor, out_dir: str | Path,
                      smoothing: SmoothingConfig | None = None, progress: bool = True,
                      stem: str | None = None) -> VideoResult:
    """Reconstruct every frame of a video and write per-frame files and an overlay video.

    Writes ``<out_dir>/<stem>/frame<NNNNNN>_face<TT>.*`` (:meth:`Face.save`'s files; ``TT`` the
    track number, the same face keeping its number across frames) and
    ``<out_dir>/<stem>_overlay.mp4``.

    Args:
        path: the video file.
        reconstructor: the reconstructor.
        out_dir: the output folder.
        smoothing: temporal smoothing (default: the 1-euro filter; ``method="none"`` for raw).
        progress: show a progress bar.
        stem: the outputs' name (default: the video's file stem).
    Raises:
        VideoReadError: the file cannot be decoded.
    """
    from tqdm.auto import tqdm

    info = video_info(path)
    name = stem or Path(path).stem
    out = Path(out_dir)
    frame_dir = out / name
    frame_dir.mkdir(parents=True, exist_ok=True)
    overlay = out / f"{name}_overlay.mp4"
    writer: cv2.VideoWriter | None = None
    smoother = FaceSmoother(reconstructor, smoothing or SmoothingConfig())
    n_frames = n_faces = 0
    try:
        bar = tqdm(read_frames(path), total=info.frames or None, desc=Path(path).name,
                   unit="frame", disable=not progress, leave=False)
        for idx, rgb in enumerate(bar):
            faces = smoother.update(
                [_with_frame(f, idx) for f in reconstructor(rgb)], idx / info.fps)
            for face in faces:
                face.save(frame_dir, f"frame{idx:06d}_face{face.metadata['track']:02d}", rgb)
            if writer is None:
                h, w = rgb.shape[:2]
                writer = cv2.VideoWriter(str(overlay), cv2.VideoWriter.fourcc(*OVERLAY_FOURCC),
                                         info.fps, (w, h))
                if not writer.isOpened():
                    raise OSError(f"OpenCV cannot write the overlay video {overlay}")
            writer.write(cv2.cvtColor(draw_faces(rgb, faces), cv2.COLOR_RGB2BGR))
            n_frames += 1
            n_faces += len(faces)
    finally:
        if writer is not None:
            writer.release()
    log.info("%s: %d frames, %d faces, %d tracks", path, n_frames, n_faces, smoother.next_id)
    return VideoResult(n_frames, n_faces, smoother.next_id, overlay, frame_dir)


def _with_frame(face: Face, index: int) -> Face:
    return replace(face, metadata={**face.metadata, "frame": index})
