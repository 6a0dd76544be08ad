"""Robust image loading: EXIF orientation, any pixel mode to 8-bit RGB, clear errors on bad files.

Every dataset reads its pictures through :func:`load_image`, so a grayscale JPEG, an RGBA PNG
or a phone photo rotated by its EXIF tag all arrive as ``(H, W, 3) uint8`` RGB in display
orientation, and a truncated or non-image file raises :class:`ImageLoadError` naming the file.

See :doc:`chapter 3 </chapters/03_faces_as_data>`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

#: Maximum of a 16-bit sample, for scaling ``I;16`` / ``I`` images to 8 bits.
_UINT16_MAX = 65535.0


class ImageLoadError(ValueError):
    """An image file exists but cannot be decoded; the message names the file."""


def _to_rgb(img: object, background: tuple[int, int, int]) -> NDArray[np.uint8]:
    from PIL import Image

    assert isinstance(img, Image.Image)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit / int / float grayscale
        arr = np.asarray(img, dtype=np.float64)
        hi = _UINT16_MAX if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.round(arr / hi * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("LA", "La", "RGBa", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":  # composite over the background, not just dropping alpha
        bg = Image.new("RGBA", img.size, (*background, 255))
        img = Image.alpha_composite(bg, img)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def load_image(path: str | Path, *, exif_transpose: bool = True,
               background: tuple[int, int, int] = (0, 0, 0)) -> NDArray[np.uint8]:
    """Read an image as ``(H, W, 3) uint8`` RGB.

    Args:
        path: any format Pillow reads (JPEG, PNG, PPM, ...).
        exif_transpose: apply the EXIF orientation tag, so the array is what a viewer shows.
        background: RGB colour that transparent pixels are composited over.
    Raises:
        FileNotFoundError: there is no such file.
        ImageLoadError: the file is not a readable image (corrupt, truncated, not an image).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        with Image.open(p) as img:
            img.load()
            shown = ImageOps.exif_transpose(img) if exif_transpose else img
            return _to_rgb(shown, background)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageLoadError(f"cannot read the image {p}: {err}. The file is corrupt, truncated "
                             "or not an image; replace it or remove it from the dataset.") from err


def image_to_tensor(image: NDArray[np.uint8]) -> torch.Tensor:
    """``(H, W, 3) uint8`` numpy -> ``(3, H, W) uint8`` torch (torchvision's layout)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def tensor_to_image(image: torch.Tensor) -> NDArray[np.uint8]:
    """``(3, H, W) uint8`` torch -> ``(H, W, 3) uint8`` numpy."""
    return np.ascontiguousarray(image.detach().cpu().numpy().transpose(1, 2, 0))
