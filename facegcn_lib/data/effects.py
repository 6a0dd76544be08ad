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

import cv2
import numpy as np
from numpy.typing import NDArray

from facegcn_lib.data.backgrounds import BackgroundConfig, random_background
from facegcn_lib.render.shading import matmul_rows

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


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
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    shade = 1.0 + rng.uniform(0.1, 0.6) * (xx * np.cos(ang) + yy * np.sin(ang))
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
        a = m.astype(np.float32) / 255.0
        fill = _occluder_fill(max(h, w), rng, c, skin)[:h, :w]
        out = out * (1.0 - a[..., None]) + fill * a[..., None]
        alpha = np.maximum(alpha, a)
    return out.astype(np.float32), alpha


def _motion_kernel(length: int, angle: float) -> NDArray[np.float32]:
    k = np.zeros((length, length), dtype=np.float32)
    c = (length - 1) / 2.0
    d = np.array([np.cos(angle), np.sin(angle)])
    for t in np.linspace(-c, c, 2 * length):
        x, y = np.round(c + t * d).astype(int)
        k[y, x] = 1.0
    out: NDArray[np.float32] = k / k.sum()
    return out


def camera_effects(image: NDArray[np.float32], rng: np.random.Generator,
                   cfg: CameraConfig | None = None) -> NDArray[np.uint8]:
    """Blur, noise, colour jitter and JPEG compression of an (H, W, 3) float32 image.

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
    if rng.random() < c.jitter_prob:
        gray = matmul_rows(img, _LUMA)[..., None].astype(np.float32)
        img = gray + (img - gray) * np.float32(rng.uniform(*c.saturation))
        mean = float(gray.mean())
        img = mean + (img - mean) * np.float32(rng.uniform(*c.contrast))
        img = img * np.float32(rng.uniform(*c.brightness))
        img = np.power(np.clip(img, 0.0, 1.0), np.float32(rng.uniform(*c.gamma)))
    if rng.random() < c.gray_prob:
        img = np.repeat(matmul_rows(img, _LUMA)[..., None], 3, axis=2).astype(np.float32)
    if rng.random() < c.noise_prob:
        std = float(rng.uniform(*c.noise_std))
        sigma = std * np.sqrt(np.clip(img, 0.02, 1.0) / 0.5)  # brighter pixels, more shot noise
        img = img + sigma * rng.standard_normal(img.shape, dtype=np.float32)
    out: NDArray[np.uint8] = np.clip(img * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)
    if rng.random() < c.jpeg_prob:
        quality = int(rng.integers(*c.jpeg_quality))
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, quality])
        decoded = cv2.imdecode(buf, cv2.IMREAD_COLOR) if ok else None
        if decoded is not None:
            out = np.ascontiguousarray(decoded[:, :, ::-1], dtype=np.uint8)
    return out
