"""Make the README's picture: ``facegcn reconstruct`` on the demo photos, composed into one PNG.

Runs the command line exactly as a user would (``facegcn reconstruct PHOTO ... --out TMP``,
with the pretrained model unless ``--checkpoint`` is given), then puts side by side, at one
height: the portrait's face overlay (mesh wireframe and 68 landmarks), its depth image
(colour-mapped, near is bright) and the group photo's overlay with every face. The result is
palette-quantised to stay small (the README is read on GitHub and PyPI).

Usage::

    FACEGCN_DATA=/path/to/data python tools/readme_figure.py [--out docs/images/readme_result.png]
        [--height 360] [--checkpoint FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PORTRAIT = "photos/Tom_Cruise_avp_2014_4.jpg"
GROUP = "photos/bald_guys.jpg"
#: Gap between panels and around the picture, in pixels, and its colour.
GAP = 8
BACKGROUND = (255, 255, 255)
#: Colours of the quantised PNG (fewer: smaller file).
COLORS = 192
MAX_BYTES = 300_000


def reconstruct(photos: list[Path], out: Path, checkpoint: str | None) -> None:
    """Run ``facegcn reconstruct`` on ``photos`` into ``out`` (raises if it fails)."""
    cmd = [sys.executable, "-m", "facegcn_lib.cli", "reconstruct", *map(str, photos),
           "--out", str(out), "--quiet"]
    if checkpoint:
        cmd += ["--checkpoint", checkpoint]
    print("$ facegcn", " ".join(cmd[3:]))
    subprocess.run(cmd, check=True)


def depth_rgb(path: Path) -> NDArray[np.uint8]:
    """A 16-bit depth PNG of ``Face.save`` as an RGB image: near bright, background black."""
    code = np.asarray(Image.open(path)).astype(np.float64)
    seen = code > 0
    grey = np.zeros(code.shape, dtype=np.uint8)
    if seen.any():
        lo, hi = code[seen].min(), code[seen].max()
        grey[seen] = np.round(40 + 215 * (code[seen] - lo) / max(hi - lo, 1.0)).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    rgb[~seen] = 0
    return np.asarray(rgb, dtype=np.uint8)


def at_height(image: NDArray[np.uint8], height: int) -> NDArray[np.uint8]:
    """``image`` scaled to ``height`` rows (area filter)."""
    h, w = image.shape[:2]
    size = (max(1, round(w * height / h)), height)
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def compose(panels: list[NDArray[np.uint8]], height: int) -> NDArray[np.uint8]:
    """Panels side by side at ``height`` rows, separated and framed by ``GAP`` pixels."""
    scaled = [at_height(p, height) for p in panels]
    width = sum(p.shape[1] for p in scaled) + GAP * (len(scaled) + 1)
    canvas = np.full((height + 2 * GAP, width, 3), BACKGROUND, dtype=np.uint8)
    x = GAP
    for p in scaled:
        canvas[GAP:GAP + height, x:x + p.shape[1]] = p
        x += p.shape[1] + GAP
    return canvas


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "readme_result.png")
    p.add_argument("--height", type=int, default=360, help="panel height in pixels")
    p.add_argument("--checkpoint", help="a model file (default: the pretrained model)")
    a = p.parse_args()

    from facegcn_lib.paths import require

    portrait, group = require(PORTRAIT), require(GROUP)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        reconstruct([portrait, group], out, a.checkpoint)
        face = out / f"{portrait.stem}_face00"
        panels = [np.asarray(Image.open(f"{face}_overlay.png").convert("RGB")),
                  depth_rgb(Path(f"{face}_depth.png")),
                  np.asarray(Image.open(out / f"{group.stem}_overlay.png").convert("RGB"))]
    picture = Image.fromarray(compose(panels, a.height))
    small = picture.quantize(colors=COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    small.save(a.out, optimize=True)
    size = a.out.stat().st_size
    print(f"wrote {a.out} ({picture.width} x {picture.height}, {size / 1e3:.0f} kB)")
    if size > MAX_BYTES:
        raise SystemExit(f"{a.out} is larger than {MAX_BYTES / 1e3:.0f} kB: lower --height")


if __name__ == "__main__":
    main()
