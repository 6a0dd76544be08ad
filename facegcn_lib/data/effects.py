"""What happens between the face and the training image: occluders and camera effects.

Real photographs of faces have hands, hair, microphones and glasses in front of the face,
and come from cameras that blur, add noise, compress and shift colours. These functions add
the same to a rendered image: random textured polygons and ellipses over the face, defocus
and motion blur, Gaussian and signal-dependent noise, colour jitter, and JPEG artefacts. See
:doc:`chapter 3 </chapters/03_faces_as_data>`.

Images are (H, W, 3) float32 sRGB in [0, 1] unless a name says ``uint8``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numba
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.data.backgrounds import BackgroundConfig, pixel_grid, random_background

#: Luma weights (Rec. 601) of grayscale conversion and colour jitter.
_LR, _LG, _LB = 0.299, 0.587, 0.114
#: Length of the table of Gaussian noise that sensor noise is read from (see :func:`noise_table`).
NOISE_TABLE_SIZE = 1 << 21
_NOISE_TABLE_SEED = 20240601
#: Entries of the table through which the gamma curve is evaluated (linear interpolation).
_GAMMA_LUT_SIZE = 4097
_SHOT_NOISE_FLOOR = 0.02
_SHOT_NOISE_REF = 0.5


@dataclass(frozen=True)
class OccluderConfig:
    """Random occluders in front of the face.

    Attributes:
        prob: probability that a sample has occluders.
        count: range of their number (inclusive, exclusive).
        size: range of an occluder's size as a fraction of the face box's side.
        textured_prob: probability that an occluder is filled with a background texture
            (else a flat colour with a shading gradient).
        skin_prob: probability of a skin-coloured occluder (like a hand).
    """

    prob: float = 0.35
    count: tuple[int, int] = (1, 3)
    size: tuple[float, float] = (0.15, 0.5)
    textured_prob: float = 0.5
    skin_prob: float = 0.2


@dataclass(frozen=True)
class CameraConfig:
    """Camera effects (each applied with its own probability).

    Attributes:
        blur_prob: probability of a Gaussian (defocus) blur.
        blur_sigma: its sigma range, in pixels.
        motion_prob: probability of a linear motion blur.
        motion_len: its length range, in pixels.
        noise_prob: probability of sensor noise.
        noise_std: range of the Gaussian noise's std (sRGB units).
        jitter_prob: probability of colour jitter.
        brightness: range of the brightness factor.
        contrast: range of the contrast factor.
        saturation: range of the saturation factor.
        gamma: range of the gamma exponent.
        gray_prob: probability of a grayscale image.
        jpeg_prob: probability of JPEG compression.
        jpeg_quality: its quality range.
    """

    blur_prob: float = 0.3
    blur_sigma: tuple[float, float] = (0.3, 1.8)
    motion_prob: float = 0.1
    motion_len: tuple[int, int] = (3, 11)
    noise_prob: float = 0.5
    noise_std: tuple[float, float] = (0.003, 0.04)
    jitter_prob: float = 0.8
    brightness: tuple[float, float] = (0.65, 1.35)
    contrast: tuple[float, float] = (0.7, 1.3)
    saturation: tuple[float, float] = (0.7, 1.3)
    gamma: tuple[float, float] = (0.8, 1.25)
    gray_prob: float = 0.05
    jpeg_prob: float = 0.6
    jpeg_quality: tuple[int, int] = (25, 95)


def _occluder_fill(size: int, rng: np.random.Generator, cfg: OccluderConfig,
                   skin_srgb: NDArray) -> NDArray[np.float32]:
    if rng.random() < cfg.skin_prob:
        base = np.asarray(skin_srgb, dtype=np.float32) * np.float32(rng.uniform(0.8, 1.15))
        fill = np.broadcast_to(base, (size, size, 3)).astype(np.float32)
    elif rng.random() < cfg.textured_prob:
        return random_background(size, rng, BackgroundConfig(blur_prob=0.0))
    else:
        fill = np.broadcast_to(rng.random(3).astype(np.float32), (size, size, 3)).astype(np.float32)
    ang = rng.uniform(0.0, 2.0 * np.pi)
    rows, cols = pixel_grid(size)
    yy, xx = rows / size - 0.5, cols / size - 0.5
    c, s = float(np.cos(ang)), float(np.sin(ang))  # Python floats keep the arithmetic float32
    shade = 1.0 + rng.uniform(0.1, 0.6) * (xx * c + yy * s)
    return np.asarray(np.clip(fill * shade[..., None], 0.0, 1.0), dtype=np.float32)


def add_occluders(image: NDArray[np.float32], face_box: tuple[float, float, float, float],
                  rng: np.random.Generator, cfg: OccluderConfig | None = None,
                  skin_srgb: NDArray | None = None) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Draw random occluders that overlap the face box.

    Args:
        image: (H, W, 3) float32 image (not modified).
        face_box: ``(x0, y0, x1, y1)`` pixels of the face.
        rng: the random generator.
        skin_srgb: (3,) a skin colour for hand-like occluders (default: a mid tone).

    Returns:
        ``(image, alpha)``: the new image and the (H, W) float32 occluder coverage in [0, 1].
    """
    c = cfg or OccluderConfig()
    h, w = image.shape[:2]
    alpha = np.zeros((h, w), dtype=np.float32)
    if rng.random() >= c.prob:
        return image, alpha
    out = image.copy()
    skin = np.asarray(skin_srgb if skin_srgb is not None else (0.75, 0.55, 0.45), dtype=np.float32)
    x0, y0, x1, y1 = face_box
    side = max(x1 - x0, y1 - y0, 1.0)
    for _ in range(int(rng.integers(*c.count))):
        r = 0.5 * side * rng.uniform(*c.size)
        cx = rng.uniform(x0, x1)
        cy = rng.uniform(y0, y1)
        m = np.zeros((h, w), dtype=np.uint8)
        if rng.random() < 0.5:
            axes = (max(int(r), 1), max(int(r * rng.uniform(0.3, 1.0)), 1))
            cv2.ellipse(m, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0.0, 360.0, 255, -1,
                        cv2.LINE_AA)
        else:
            n = int(rng.integers(3, 9))
            ang = np.sort(rng.uniform(0.0, 2.0 * np.pi, n))
            rad = r * rng.uniform(0.5, 1.0, n)
            pts = np.stack([cx + rad * np.cos(ang), cy + rad * np.sin(ang)], axis=1).astype(np.int32)
            if rng.random() < 0.3:  # an elongated bar (a microphone, a pen, a strand of hair)
                pts = pts.astype(np.float64)
                pts[:, 1] = cy + (pts[:, 1] - cy) * rng.uniform(0.1, 0.3)
                rot = rng.uniform(0.0, np.pi)
                d = pts - (cx, cy)
                pts = np.stack([cx + d[:, 0] * np.cos(rot) - d[:, 1] * np.sin(rot),
                                cy + d[:, 0] * np.sin(rot) + d[:, 1] * np.cos(rot)], 1).astype(np.int32)
            cv2.fillPoly(m, [pts], 255, cv2.LINE_AA)
        fill = _occluder_fill(max(h, w), rng, c, skin)[:h, :w]
        bx, by, bw, bh = cv2.boundingRect(m)  # blend only where the mask is (the same result)
        box = (slice(by, by + bh), slice(bx, bx + bw))
        a = m[box].astype(np.float32) / np.float32(255.0)
        out[box] = out[box] * (1.0 - a[..., None]) + fill[box] * a[..., None]
        alpha[box] = np.maximum(alpha[box], a)
    return out.astype(np.float32, copy=False), alpha


def _motion_kernel(length: int, angle: float) -> NDArray[np.float32]:
    k = np.zeros((length, length), dtype=np.float32)
    c = (length - 1) / 2.0
    d = np.array([np.cos(angle), np.sin(angle)])
    for t in np.linspace(-c, c, 2 * length):
        x, y = np.round(c + t * d).astype(int)
        k[y, x] = 1.0
    out: NDArray[np.float32] = k / k.sum()
    return out


@lru_cache(maxsize=1)
def noise_table() -> NDArray[np.float32]:
    """(NOISE_TABLE_SIZE,) float32 standard normal samples, the same in every process.

    Drawing a fresh Gaussian per pixel costs more than the rest of the camera model together;
    each image instead reads its noise from a random offset into this fixed table (8 MiB, made
    once per process from a fixed seed). Within an image the noise is independent from pixel
    to pixel; the offset, drawn from the sample's generator, keeps samples reproducible.
    """
    return np.random.default_rng(_NOISE_TABLE_SEED).standard_normal(NOISE_TABLE_SIZE, dtype=np.float32)


@numba.njit(cache=True, nogil=True)
def _luma_mean(img: NDArray[np.float32]) -> float:  # pragma: no cover - compiled
    h, w = img.shape[0], img.shape[1]
    acc = 0.0
    for i in range(h):
        for j in range(w):
            acc += _LR * float(img[i, j, 0]) + _LG * float(img[i, j, 1]) + _LB * float(img[i, j, 2])
    return float(acc / (h * w))


@numba.njit(cache=True, nogil=True, inline="always")
def _jitter(v: float, y: float, saturation: float, contrast: float, brightness: float, mean: float,
            gamma_lut: NDArray[np.float32]) -> float:  # pragma: no cover - compiled
    """One channel ``v`` of luma ``y``: saturation, contrast, brightness, gamma (by table)."""
    steps = gamma_lut.shape[0] - 1
    v = y + (v - y) * saturation
    v = (mean + (v - mean) * contrast) * brightness
    v = min(max(v, 0.0), 1.0) * steps
    t = min(int(v), steps - 1)
    lo, hi = float(gamma_lut[t]), float(gamma_lut[t + 1])
    return float(lo + (v - t) * (hi - lo))


@numba.njit(cache=True, nogil=True, inline="always")
def _expose(v: float, noise_std: float, n: float) -> np.uint8:  # pragma: no cover - compiled
    """Shot noise (brighter pixels are noisier), then rounding to 8 bits."""
    if noise_std > 0.0:
        v += noise_std * np.sqrt(min(max(v, _SHOT_NOISE_FLOOR), 1.0) / _SHOT_NOISE_REF) * n
    return np.uint8(min(max(v * 255.0 + 0.5, 0.0), 255.0))


@numba.njit(cache=True, nogil=True)
def _develop_kernel(img: NDArray[np.float32], jitter: bool, saturation: float, contrast: float,
                    brightness: float, mean: float, gamma_lut: NDArray[np.float32], gray: bool,
                    noise_std: float, noise: NDArray[np.float32],
                    out: NDArray[np.uint8]) -> None:  # pragma: no cover - compiled
    h, w = img.shape[0], img.shape[1]
    k = 0
    noisy = noise_std > 0.0
    for i in range(h):
        for j in range(w):
            r, g, b = float(img[i, j, 0]), float(img[i, j, 1]), float(img[i, j, 2])
            if jitter:
                y = _LR * r + _LG * g + _LB * b
                r = _jitter(r, y, saturation, contrast, brightness, mean, gamma_lut)
                g = _jitter(g, y, saturation, contrast, brightness, mean, gamma_lut)
                b = _jitter(b, y, saturation, contrast, brightness, mean, gamma_lut)
            if gray:
                r = g = b = _LR * r + _LG * g + _LB * b
            nr = ng = nb = 0.0
            if noisy:
                nr, ng, nb = noise[k], noise[k + 1], noise[k + 2]
                k += 3
            out[i, j, 0] = _expose(r, noise_std, nr)
            out[i, j, 1] = _expose(g, noise_std, ng)
            out[i, j, 2] = _expose(b, noise_std, nb)


def develop(image: NDArray[np.float32], *, saturation: float | None = None, contrast: float = 1.0,
            brightness: float = 1.0, gamma: float = 1.0, gray: bool = False,
            noise_std: float = 0.0, noise: NDArray[np.float32] | None = None) -> NDArray[np.uint8]:
    """Colour jitter, grayscale, shot noise and quantisation of an image, in one pass.

    Per pixel, in this order (each step optional): colour jitter (saturation about the pixel's
    luma, contrast about the image's mean luma, brightness, then ``clip(x, 0, 1) ** gamma``,
    the power through a 4097-entry table), grayscale (luma), signal-dependent Gaussian noise
    ``noise_std * sqrt(clip(x, 0.02, 1) / 0.5) * n``, and rounding to uint8.

    Args:
        image: (H, W, 3) float32 sRGB in [0, 1].
        saturation: the jitter's saturation factor; ``None``: no colour jitter (the contrast,
            brightness and gamma are then ignored).
        contrast: the jitter's contrast factor.
        brightness: the jitter's brightness factor.
        gamma: the jitter's gamma exponent.
        gray: convert to grayscale.
        noise_std: the noise's std at mid-grey (0: none).
        noise: (>= H * W * 3,) float32 standard normal samples, read in (row, column,
            channel) order; needed when ``noise_std > 0``.

    Returns:
        (H, W, 3) uint8.
    """
    img = np.ascontiguousarray(image, dtype=np.float32)
    h, w = img.shape[:2]
    n = np.zeros(1, dtype=np.float32) if noise is None else np.ascontiguousarray(noise, dtype=np.float32)
    if noise_std > 0.0 and len(n) < img.size:
        raise ValueError(f"noise needs {img.size} samples for a {h}x{w} image, got {len(n)}")
    jitter = saturation is not None
    mean = _luma_mean(img) if jitter else 0.0
    lut = np.power(np.linspace(0.0, 1.0, _GAMMA_LUT_SIZE), float(gamma)).astype(np.float32)
    out = np.empty((h, w, 3), dtype=np.uint8)
    _develop_kernel(img, jitter, float(saturation or 1.0), float(contrast), float(brightness), mean,
                    lut, bool(gray), float(noise_std), n, out)
    return out


def camera_effects(image: NDArray[np.float32], rng: np.random.Generator,
                   cfg: CameraConfig | None = None) -> NDArray[np.uint8]:
    """Blur, noise, colour jitter and JPEG compression of an (H, W, 3) float32 image.

    Blurs are OpenCV filters; colour jitter, grayscale, noise and quantisation are one pass of
    :func:`develop` (the noise read from :func:`noise_table`).

    Returns:
        (H, W, 3) uint8 RGB.
    """
    c = cfg or CameraConfig()
    img = np.asarray(image, dtype=np.float32)
    if rng.random() < c.blur_prob:
        img = np.asarray(cv2.GaussianBlur(img, (0, 0), float(rng.uniform(*c.blur_sigma))),
                         dtype=np.float32)
    if rng.random() < c.motion_prob:
        kernel = _motion_kernel(int(rng.integers(*c.motion_len)), float(rng.uniform(0.0, np.pi)))
        img = np.asarray(cv2.filter2D(img, -1, kernel), dtype=np.float32)
    jitter: dict[str, float] = {}
    if rng.random() < c.jitter_prob:
        jitter = dict(saturation=float(rng.uniform(*c.saturation)), contrast=float(rng.uniform(*c.contrast)),
                      brightness=float(rng.uniform(*c.brightness)), gamma=float(rng.uniform(*c.gamma)))
    gray = bool(rng.random() < c.gray_prob)
    noise_std, noise = 0.0, None
    if rng.random() < c.noise_prob:
        noise_std = float(rng.uniform(*c.noise_std))
        table = noise_table()
        start = int(rng.integers(0, len(table) - img.size + 1))
        noise = table[start:start + img.size]
    out = develop(img, **jitter, gray=gray, noise_std=noise_std, noise=noise)
    if rng.random() < c.jpeg_prob:
        quality = int(rng.integers(*c.jpeg_quality))
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = np.ascontiguousarray(decoded[:, :, ::-1], dtype=np.uint8)
    return out
