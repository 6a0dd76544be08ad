"""Eyeglasses drawn from a face's 3D landmarks: placed on the eyes, hidden by the face, targets kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.data.glasses import (
    AddGlasses,
    GlassesConfig,
    GlassesError,
    draw_glasses,
    face_axes,
    face_depth,
    glasses_geometry,
    sample_shape,
)
from facegcn_lib.data.reaugment import Reaugment, ReaugmentConfig

SIZE = 64
#: Glasses that are always drawn, with a rim, clear lenses and no reflection: only the frame
#: and a faint tint change pixels.
PLAIN = GlassesConfig(prob=1.0, sunglasses_prob=0.0, reflection_prob=0.0, rimless_prob=0.0)


def frontal_face(size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """A flat frontal stand-in face: its 68 landmarks and a grid of vertices (crop pixels).

    The eyes are at x = size/2 -+ size/8, y = 0.4 size; the brows above them; the nose (ridge
    and tip) in front (larger z); the mouth below; the jaw's ends beside the eyes, further
    back; the vertices a plane z = 0 over the middle of the crop.
    """
    lmks = np.zeros((68, 3))
    cx, ey, half = size / 2, 0.4 * size, size / 8
    lmks[:17] = np.column_stack([np.linspace(cx - 3 * half, cx + 3 * half, 17),
                                 np.full(17, ey + 0.1 * size), np.full(17, -half)])
    lmks[17:27] = np.column_stack([np.linspace(cx - 2 * half, cx + 2 * half, 10),
                                   np.full(10, ey - 0.12 * size), np.zeros(10)])
    lmks[27:36] = [cx, ey + 0.1 * size, half]
    for first, x in ((36, cx - half), (42, cx + half)):
        ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
        lmks[first:first + 6] = np.column_stack([x + 0.05 * size * np.cos(ang),
                                                 ey + 0.02 * size * np.sin(ang), np.zeros(6)])
    lmks[48:] = [cx, ey + 0.3 * size, 0.0]
    grid = np.stack(np.meshgrid(np.arange(8.0, size - 8), np.arange(8.0, size - 8)), -1).reshape(-1, 2)
    verts = np.column_stack([grid, np.zeros(len(grid))])
    return lmks, verts


def grey(size: int = SIZE) -> np.ndarray:
    return np.full((size, size, 3), 128, dtype=np.uint8)


def test_face_axes_are_orthonormal_and_point_out_of_the_face() -> None:
    lmks, _ = frontal_face()
    ax = face_axes(lmks)
    assert ax.d == pytest.approx(SIZE / 4)
    np.testing.assert_allclose(ax.u, [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(ax.v, [0, -1, 0], atol=1e-12)  # y grows downwards: up is -y
    np.testing.assert_allclose(ax.n, [0, 0, 1], atol=1e-12)  # towards the camera, like the nose
    mirrored = lmks.copy()
    mirrored[:, 2] *= -1  # a face looking away: the nose tip decides where "out" is
    np.testing.assert_allclose(face_axes(mirrored).n, [0, 0, -1], atol=1e-12)


def test_face_axes_follow_a_pitched_head_whatever_its_brows() -> None:
    """The up axis comes from the mouth and the eyes: brows that stand forwards, as real brows
    do, do not tilt the frame (so the lenses do not slide down a face that looks down)."""
    lmks, _ = frontal_face()
    lmks[17:27, 2] = SIZE / 8  # brows in front of the eyes
    pitch = np.radians(25.0)
    rot = np.array([[1, 0, 0], [0, np.cos(pitch), -np.sin(pitch)], [0, np.sin(pitch), np.cos(pitch)]])
    centre = lmks.mean(0)
    ax = face_axes((lmks - centre) @ rot.T + centre)
    np.testing.assert_allclose(ax.n, rot @ [0.0, 0.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(ax.v, rot @ [0.0, -1.0, 0.0], atol=1e-12)


def test_face_axes_refuse_what_is_not_a_face() -> None:
    lmks, _ = frontal_face()
    with pytest.raises(GlassesError, match=r"\(68, 3\)"):
        face_axes(lmks[:, :2])
    with pytest.raises(GlassesError, match=r"\(68, 3\)"):
        face_axes(np.full((68, 3), np.nan))
    with pytest.raises(GlassesError, match="coincide"):
        face_axes(np.zeros((68, 3)))


def test_bad_settings_say_which_one() -> None:
    with pytest.raises(GlassesError, match="prob"):
        GlassesConfig(prob=1.5)
    with pytest.raises(GlassesError, match="lens_width"):
        GlassesConfig(lens_width=(0.5, 0.4))
    with pytest.raises(GlassesError, match="squareness"):
        GlassesConfig(squareness=(0.5, 2.0))
    with pytest.raises(GlassesError, match="uint8"):
        lmks, verts = frontal_face()
        draw_glasses(grey().astype(np.float32), verts, lmks, np.random.default_rng(0))


def test_lenses_sit_in_front_of_the_eyes_and_arms_reach_the_ears() -> None:
    lmks, _ = frontal_face()
    ax = face_axes(lmks)
    shape = sample_shape(np.random.default_rng(3), PLAIN)
    geo = glasses_geometry(ax, shape, lmks)
    ridge_z = lmks[27, 2]  # the nose's ridge stands half the eyes' distance in front of them
    assert ridge_z / ax.d > shape.offset
    for rim, eye in zip(geo.rims, ax.eyes, strict=True):
        centre = rim.mean(0)
        assert centre[2] == pytest.approx(ridge_z + 0.05 * ax.d)  # the lenses clear the nose
        assert np.ptp(rim[:, 0]) == pytest.approx(2 * shape.lens_width * ax.d, rel=1e-3)
        assert abs(centre[0] - eye[0]) < 1e-9
    for arm, jaw_end in zip(geo.arms, lmks[[0, 16]], strict=True):
        assert arm[-1, 2] < arm[0, 2]  # the arm goes back, towards the ear
        assert abs(arm[-1, 0] - jaw_end[0]) < 1e-9
    assert geo.bridge[0, 0] < SIZE / 2 < geo.bridge[-1, 0]
    flat = lmks.copy()
    flat[27:36, 2] = 0.0  # no nose: the lenses stand the drawn distance in front of the eyes
    for rim, eye in zip(glasses_geometry(ax, shape, flat).rims, ax.eyes, strict=True):
        assert rim.mean(0)[2] - eye[2] == pytest.approx(shape.offset * ax.d)


def test_glasses_change_only_the_pixels_around_the_eyes() -> None:
    lmks, verts = frontal_face()
    image = grey()
    before = image.copy()
    out = draw_glasses(image, verts, lmks, np.random.default_rng(0), PLAIN)
    assert np.array_equal(image, before)  # the input is not modified
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = (out != image).any(-1)
    rows = np.nonzero(changed.any(1))[0]
    assert changed.sum() > 50
    assert rows.min() > 0.1 * SIZE and rows.max() < 0.65 * SIZE  # the mouth and chin untouched
    again = draw_glasses(image, verts, lmks, np.random.default_rng(0), PLAIN)
    assert np.array_equal(out, again)  # the generator decides everything


def test_the_face_hides_what_is_behind_it() -> None:
    lmks, verts = frontal_face()
    depth = face_depth(verts, SIZE, face_axes(lmks).d)
    assert np.isfinite(depth[SIZE // 2, SIZE // 2]) and depth[0, 0] == -np.inf
    rng = np.random.default_rng(1)
    seen = draw_glasses(grey(), verts, lmks, rng, PLAIN)
    wall = verts.copy()
    wall[:, 2] = 10 * SIZE  # the face far in front of the glasses: the frame disappears
    hidden = draw_glasses(grey(), wall, lmks, np.random.default_rng(1), PLAIN)
    frame_seen = (np.abs(seen.astype(int) - 128) > 40).any(-1).sum()
    frame_hidden = (np.abs(hidden.astype(int) - 128) > 40).any(-1).sum()
    assert frame_seen > 30 and frame_hidden < frame_seen / 4  # what is left: the arms off the face


def sample_of(lmks: np.ndarray, verts: np.ndarray) -> dict[str, torch.Tensor]:
    return {"image": torch.full((3, SIZE, SIZE), 128, dtype=torch.uint8),
            "vertices": torch.from_numpy(verts).float(), "landmarks": torch.from_numpy(lmks).float(),
            "pose": torch.zeros(3)}


def test_add_glasses_transform_keeps_the_targets() -> None:
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    assert AddGlasses(replace(PLAIN, prob=0.0))(s) is s
    out = AddGlasses(PLAIN, torch.Generator().manual_seed(0))(s)
    assert out["image"].shape == s["image"].shape and not torch.equal(out["image"], s["image"])
    for key in ("vertices", "landmarks", "pose"):
        assert out[key] is s[key]
    same = AddGlasses(PLAIN, torch.Generator().manual_seed(0))(s)
    assert torch.equal(out["image"], same["image"])
    assert "AddGlasses" in repr(AddGlasses(PLAIN))


def test_reaugment_with_glasses_draws_the_same_view() -> None:
    """Glasses come last: the mirror and re-crop, and so the targets, are those without them."""
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    perm = np.arange(len(verts))
    plain = Reaugment(perm, ReaugmentConfig(mirror_p=0.0), torch.Generator().manual_seed(5))(s)
    worn = Reaugment(perm, ReaugmentConfig(mirror_p=0.0, glasses=PLAIN),
                     torch.Generator().manual_seed(5))(s)
    torch.testing.assert_close(worn["vertices"], plain["vertices"])
    torch.testing.assert_close(worn["landmarks"], plain["landmarks"])
    assert not torch.equal(worn["image"], plain["image"])


def test_glasses_on_rendered_faces(data_root: Path) -> None:
    """On real renders (any pose), glasses are drawn near the eyes and nowhere else."""
    from facegcn_lib.data.synth import SynthConfig, SyntheticFaces

    faces = SyntheticFaces(SynthConfig(image_size=SIZE, supersample=1), seed=4, length=6)
    for i in range(len(faces)):
        s = faces[i]
        image = s["image"].permute(1, 2, 0).numpy().copy()
        lmks = s["landmarks"].numpy()
        out = draw_glasses(image, s["vertices"].numpy(), lmks, np.random.default_rng(i), PLAIN)
        changed = np.argwhere((out != image).any(-1))
        assert len(changed) > 0
        eyes = face_axes(lmks)
        reach = 2.5 * eyes.d  # lenses, bridge and arms stay within the eyes' and ears' region
        dist = np.linalg.norm(changed[:, ::-1] - eyes.eyes[:, :2].mean(0), axis=1)
        assert np.quantile(dist, 0.95) < reach
