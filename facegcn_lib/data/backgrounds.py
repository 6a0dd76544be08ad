"""Backgrounds for synthetic faces: crops of photographs shipped with scikit-image, and noise.

A network trained on faces pasted over flat colours learns to find "the object in front of a
flat colour". So the synthetic faces stand in front of random crops of real photographs (the
sample images that come with the scikit-image package, minus those that show a person) and of
procedural textures: smooth multi-octave noise, gradients, stripes and checkers, and clutter of
random shapes. See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

#: scikit-image sample images used as backgrounds (files in ``skimage/data``). Left out:
#: ``astronaut``, ``camera`` and ``lfw_subset`` (they show human faces that carry no labels).
SKIMAGE_BACKGROUNDS = (
    "brick.png", "cell.png", "chelsea.png", "chessboard_RGB.png", "clock_motion.png", "coffee.png",
    "coins.png", "color.png", "grass.png", "gravel.png", "horse.png", "hubble_deep_field.jpg",
    "ihc.png", "logo.png", "microaneurysms.png", "moon.png", "motorcycle_left.png",
    "motorcycle_right.png", "page.png", "retina.jpg", "rocket.jpg", "text.png",
)
_KINDS = ("photo", "noise", "gradient", "stripes", "clutter")


class BackgroundError(FileNotFoundError):
    """No background photograph could be read from the scikit-image package."""


@dataclass(frozen=True)
class BackgroundConfig:
    """How backgrounds are drawn.

    Attributes:
        kind_probs: probabilities of photo, noise, gradient, stripes and clutter backgrounds.
        min_crop: smallest crop side as a fraction of the photograph's shorter side.
        blur_prob: probability of defocus blur of the background.
        blur_sigma: range of that blur's sigma, in output pixels.
        tint_std: log-normal std of a per-channel colour cast.
        clutter_shapes: range of the number of shapes in a clutter background.
    """

    kind_probs: tuple[float, float, float, float, float] = (0.55, 0.2, 0.1, 0.05, 0.1)
    min_crop: float = 0.2
    blur_prob: float = 0.4
    blur_sigma: tuple[float, float] = (0.5, 4.0)
    tint_std: float = 0.15
    clutter_shapes: tuple[int, int] = (5, 30)


@lru_cache(maxsize=1)
def background_photos() -> tuple[NDArray[np.uint8], ...]:
    """The scikit-image sample photographs as (H, W, 3) uint8 RGB (loaded once per process)."""
    import skimage
    from PIL import Image, UnidentifiedImageError

    root = Path(skimage.__file__).parent / "data"
    out = []
    for name in SKIMAGE_BACKGROUNDS:
        try:  # Pillow, not OpenCV: libpng would print warnings about some files' colour profiles
            with Image.open(root / name) as img:
                out.append(np.ascontiguousarray(np.asarray(img.convert("RGB")), dtype=np.uint8))
        except (OSError, UnidentifiedImageError):
            continue
    if not out:
        raise BackgroundError(f"none of the scikit-image sample images {SKIMAGE_BACKGROUNDS} is in "
                              f"{root}; reinstall scikit-image (`pip install -U scikit-image`)")
    return tuple(out)


def _photo(size: int, rng: np.random.Generator, cfg: BackgroundConfig) -> NDArray[np.float32]:
    photos = background_photos()
    img = photos[rng.integers(0, len(photos))]
    h, w = img.shape[:2]
    side = int(rng.uniform(cfg.min_crop, 1.0) * min(h, w))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(0, w - side + 1))
    crop = cv2.resize(img[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_AREA
                      if side > size else cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    # flipped and turned as uint8, then converted (one copy of a quarter the bytes)
    return np.rot90(crop, int(rng.integers(0, 4))).astype(np.float32) / np.float32(255.0)


def smooth_noise(size: int, rng: np.random.Generator, octaves: int = 4,
                 base_cells: int = 3) -> NDArray[np.float32]:
    """(size, size, 3) multi-octave value noise in [0, 1] (random low-res grids, upsampled)."""
    acc = np.zeros((size, size, 3))
    amp = 1.0
    cells = base_cells
    for _ in range(octaves):
        # float64: OpenCV's float32 bicubic upsampling of tiny grids is several times slower
        grid = rng.random((cells, cells, 3)).astype(np.float32).astype(np.float64)
        acc += amp * cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
        amp *= float(rng.uniform(0.35, 0.65))
        cells *= 2
    lo, hi = acc.min(), acc.max()  # normalised: the octaves' total weight cancels
    return np.asarray((acc - lo) / max(float(hi - lo), 1e-6), dtype=np.float32)


def pixel_grid(size: int) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Row and column coordinates ``(size, 1)`` and ``(1, size)`` float32, which broadcast like
    ``np.mgrid[0:size, 0:size]`` without building two full images."""
    r = np.arange(size, dtype=np.float32)
    return r[:, None], r[None, :]


def _colors(rng: np.random.Generator, n: int) -> NDArray[np.float32]:
    return rng.random((n, 3)).astype(np.float32)


def _gradient(size: int, rng: np.random.Generator) -> NDArray[np.float32]:
    a, b = _colors(rng, 2)
    ang = rng.uniform(0.0, 2.0 * np.pi)
    rows, cols = pixel_grid(size)
    yy, xx = rows / size, cols / size
    c, s = float(np.cos(ang)), float(np.sin(ang))  # Python floats keep the arithmetic float32
    t = np.clip(0.5 + (xx - 0.5) * c + (yy - 0.5) * s, 0.0, 1.0)[..., None]
    out = a * (1.0 - t) + b * t
    return np.asarray(out + 0.08 * (smooth_noise(size, rng) - 0.5), dtype=np.float32)


def _stripes(size: int, rng: np.random.Generator) -> NDArray[np.float32]:
    a, b = _colors(rng, 2)
    ang = rng.uniform(0.0, np.pi)
    period = rng.uniform(6.0, size / 2.0)
    yy, xx = pixel_grid(size)
    c, s = float(np.cos(ang)), float(np.sin(ang))  # Python floats keep the arithmetic float32
    u = xx * c + yy * s
    wave = np.sin(2.0 * np.pi * u / period)
    if rng.random() < 0.5:  # checkerboard
        v = -xx * s + yy * c
        wave = wave * np.sin(2.0 * np.pi * v / period)
    t = (wave > 0).astype(np.float32)[..., None] if rng.random() < 0.5 else (0.5 + 0.5 * wave)[..., None]
    return np.asarray(a * (1.0 - t) + b * t, dtype=np.float32)


def _clutter(size: int, rng: np.random.Generator, cfg: BackgroundConfig) -> NDArray[np.float32]:
    out = np.ascontiguousarray(_gradient(size, rng))
    for _ in range(int(rng.integers(*cfg.clutter_shapes))):
        color = tuple(float(c) for c in rng.random(3))
        cx, cy = (int(c) for c in rng.integers(0, size, 2))
        r = int(rng.integers(size // 20 + 1, size // 3 + 2))
        if rng.random() < 0.5:
            cv2.ellipse(out, (cx, cy), (r, int(rng.integers(1, r + 1))), float(rng.uniform(0, 180)),
                        0.0, 360.0, color, -1, cv2.LINE_AA)
        else:
            centre = np.array([cx, cy], dtype=np.float64)
            pts = (rng.normal(0.0, r, (int(rng.integers(3, 7)), 2)) + centre).astype(np.int32)
            cv2.fillPoly(out, [pts], color, cv2.LINE_AA)
    return out


def random_background(size: int, rng: np.random.Generator,
                      cfg: BackgroundConfig | None = None) -> NDArray[np.float32]:
    """A random (size, size, 3) float32 sRGB background in [0, 1]."""
    c = cfg or BackgroundConfig()
    p = np.asarray(c.kind_probs, dtype=np.float64)
    kind = _KINDS[int(rng.choice(len(_KINDS), p=p / p.sum()))]
    if kind == "photo":
        out = _photo(size, rng, c)
    elif kind == "noise":
        lo, hi = _colors(rng, 2)
        t = smooth_noise(size, rng, octaves=int(rng.integers(2, 6)), base_cells=int(rng.integers(2, 8)))
        out = lo * (1.0 - t) + hi * t
    elif kind == "gradient":
        out = _gradient(size, rng)
    elif kind == "stripes":
        out = _stripes(size, rng)
    else:
        out = _clutter(size, rng, c)
    out = out * np.exp(rng.normal(0.0, c.tint_std, 3)).astype(np.float32)
    if rng.random() < c.blur_prob:
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), float(rng.uniform(*c.blur_sigma))), dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
