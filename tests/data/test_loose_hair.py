"""Loose hair drawn from a face's landmarks: a fringe over the brows, curtains over the cheeks."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.data.loose_hair import (
    AddLooseHair,
    LooseHairConfig,
    LooseHairError,
    draw_loose_hair,
    face_frame_2d,
    hair_alpha,
    sample_style,
)
from facegcn_lib.data.reaugment import Reaugment, ReaugmentConfig
from tests.data.test_glasses import PLAIN, frontal_face, grey, sample_of

SIZE = 64
#: Always a fringe that comes down over the brows, opaque, never a curtain.
FRINGE = LooseHairConfig(prob=1.0, fringe_prob=1.0, curtain_prob=0.0, fringe_drop=(0.1, 0.1),
                         fringe_tilt=(0.0, 0.0), density=(1.0, 1.0), blur_px=(0.0, 0.0))
#: Always one curtain that reaches well into the face, opaque, down past the chin; no fringe.
CURTAIN = LooseHairConfig(prob=1.0, fringe_prob=0.0, curtain_prob=1.0, both_sides_prob=0.0,
                          curtain_depth=(0.3, 0.3), curtain_length=(2.5, 2.5),
                          curtain_width=(1.0, 1.0), density=(1.0, 1.0), blur_px=(0.0, 0.0))


def oval_face(size: int = SIZE) -> np.ndarray:
    """:func:`frontal_face`'s landmarks with the jaw on a U from beside the eyes to the chin."""
    lmks, _ = frontal_face(size)
    theta = np.linspace(np.pi, 0.0, 17)  # point 0 on the image's left, 8 the chin
    lmks[:17, 0] = size / 2 + 3 * size / 8 * np.cos(theta)
    lmks[:17, 1] = 0.45 * size + 0.45 * size * np.sin(theta)
    return lmks


def covered(lmks: np.ndarray, cfg: LooseHairConfig, seed: int = 0) -> tuple[np.ndarray, object]:
    rng = np.random.default_rng(seed)
    style = sample_style(rng, cfg)
    alpha, _ = hair_alpha(lmks, SIZE, style, rng)
    return alpha, style


def at(alpha: np.ndarray, point: np.ndarray) -> float:
    return float(alpha[round(float(point[1])), round(float(point[0]))])


def test_frame_is_the_eyes_and_points_down_the_face() -> None:
    lmks, _ = frontal_face()
    f = face_frame_2d(lmks)
    assert f.d == pytest.approx(SIZE / 4)
    np.testing.assert_allclose(f.u, [1, 0], atol=1e-12)
    np.testing.assert_allclose(f.w, [0, 1], atol=1e-12)  # y grows downwards, towards the mouth
    np.testing.assert_allclose(f.coords(lmks[48, :2]), [0, 0.3 * SIZE / f.d], atol=1e-12)
    upside_down = lmks.copy()
    upside_down[:, 1] = SIZE - upside_down[:, 1]
    np.testing.assert_allclose(face_frame_2d(upside_down).w, [0, -1], atol=1e-12)


def test_what_is_not_a_face_or_a_crop_is_refused() -> None:
    lmks, _ = frontal_face()
    with pytest.raises(LooseHairError, match=r"\(68, 2\+\)"):
        face_frame_2d(lmks[:30])
    with pytest.raises(LooseHairError, match=r"\(68, 2\+\)"):
        face_frame_2d(np.full((68, 3), np.nan))
    with pytest.raises(LooseHairError, match="coincide"):
        face_frame_2d(np.zeros((68, 2)))
    with pytest.raises(LooseHairError, match="uint8"):
        draw_loose_hair(grey().astype(np.float32), lmks, np.random.default_rng(0))


def test_bad_settings_say_which_one() -> None:
    with pytest.raises(LooseHairError, match="prob"):
        LooseHairConfig(prob=-0.1)
    with pytest.raises(LooseHairError, match="curtain_depth"):
        LooseHairConfig(curtain_depth=(0.5, 0.1))
    with pytest.raises(LooseHairError, match="density"):
        LooseHairConfig(density=(0.0, 1.0))
    with pytest.raises(LooseHairError, match="prob=0"):
        LooseHairConfig(fringe_prob=0.0, curtain_prob=0.0)


def test_a_style_has_a_fringe_or_a_curtain() -> None:
    rng = np.random.default_rng(0)
    rare = LooseHairConfig(fringe_prob=0.05, curtain_prob=0.05)
    for _ in range(50):
        style = sample_style(rng, rare)
        assert style.fringe or style.curtains
        assert set(style.curtains) <= {0, 1}


def test_a_fringe_hides_the_brows_and_not_the_eyes() -> None:
    lmks = oval_face()
    alpha, _ = covered(lmks, FRINGE)
    for brow in lmks[19:25]:  # the brows' middle: the ragged tips may spare their ends
        assert at(alpha, brow) > 0.5
    for point in (*lmks[36:48], lmks[30], lmks[48], lmks[8]):  # eyes, nose tip, mouth, chin
        assert at(alpha, point) == 0.0
    beside = np.array([lmks[26, 0] + 0.5 * SIZE / 4, 2.0])  # above and beyond the brow's end
    assert at(alpha, beside) == 0.0 and at(alpha, np.array([SIZE / 2, 2.0])) > 0.5


def test_a_curtain_hides_one_cheek_only() -> None:
    lmks = oval_face()
    for seed in range(6):
        alpha, style = covered(lmks, CURTAIN, seed)
        (side,) = style.curtains  # type: ignore[attr-defined]
        near, far = (lmks[2:6], lmks[11:15]) if side == 0 else (lmks[11:15], lmks[2:6])
        assert all(at(alpha, p) > 0.5 for p in near)  # the jaw's outline under the hair
        assert all(at(alpha, p) == 0.0 for p in far)
        assert at(alpha, lmks[30]) == 0.0 and at(alpha, lmks[48]) == 0.0


def test_a_turned_away_cheek_keeps_its_curtain_beside_the_face() -> None:
    """Squeeze one half of the face (a head turned away from that side): its curtain does not
    come over the cheek, it hangs outside the jaw's outline."""
    lmks = oval_face()
    turned = lmks.copy()
    ridge_x = lmks[27, 0]
    left = turned[:, 0] < ridge_x
    turned[left, 0] = ridge_x - 0.3 * (ridge_x - turned[left, 0])
    for seed in range(12):
        alpha, style = covered(turned, CURTAIN, seed)
        if style.curtains == (0,):  # type: ignore[attr-defined]
            assert all(at(alpha, p) == 0.0 for p in turned[2:7])
            return
    pytest.fail("no left curtain drawn in 12 seeds")


def test_hair_changes_only_pixels_and_is_seeded() -> None:
    lmks, _ = frontal_face()
    image = grey()
    before = image.copy()
    out = draw_loose_hair(image, lmks, np.random.default_rng(0), FRINGE)
    assert np.array_equal(image, before)  # the input is not modified
    assert out.shape == image.shape and out.dtype == np.uint8
    assert (out != image).any(-1).sum() > 100
    assert np.array_equal(out, draw_loose_hair(image, lmks, np.random.default_rng(0), FRINGE))


def test_hair_on_a_grey_crop_is_grey() -> None:
    lmks, _ = frontal_face()
    out = draw_loose_hair(grey(), lmks, np.random.default_rng(2), replace(FRINGE, blur_px=(1.0, 1.0)))
    assert np.ptp(out.astype(int), axis=-1).max() == 0


def test_add_loose_hair_keeps_the_targets() -> None:
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    assert AddLooseHair(replace(FRINGE, prob=0.0))(s) is s
    out = AddLooseHair(FRINGE, torch.Generator().manual_seed(0))(s)
    assert not torch.equal(out["image"], s["image"])
    for key in ("vertices", "landmarks", "pose"):
        assert out[key] is s[key]
    assert torch.equal(out["image"], AddLooseHair(FRINGE, torch.Generator().manual_seed(0))(s)["image"])
    assert "AddLooseHair" in repr(AddLooseHair(FRINGE))


def test_reaugment_draws_hair_last_and_keeps_the_view() -> None:
    """Hair comes after the mirror, the re-crop and the glasses: without it, those are the same
    draws as before (the glasses included), and with it the targets do not change."""
    lmks, verts = frontal_face()
    s = sample_of(lmks, verts)
    perm = np.arange(len(verts))

    def view(cfg: ReaugmentConfig) -> dict[str, torch.Tensor]:
        return Reaugment(perm, cfg, torch.Generator().manual_seed(5))(s)

    glasses = view(ReaugmentConfig(mirror_p=0.0, glasses=PLAIN))
    both = view(ReaugmentConfig(mirror_p=0.0, glasses=PLAIN, loose_hair=FRINGE))
    torch.testing.assert_close(both["vertices"], glasses["vertices"])
    torch.testing.assert_close(both["landmarks"], glasses["landmarks"])
    assert not torch.equal(both["image"], glasses["image"])


def test_loose_hair_on_rendered_faces(data_root: Path) -> None:
    """On real renders (any pose): the fringe covers the middle of the brows, never the mouth."""
    from facegcn_lib.data.synth import SynthConfig, SyntheticFaces

    low = replace(FRINGE, fringe_drop=(0.3, 0.3))  # a few pixels below the brows at this size
    faces = SyntheticFaces(SynthConfig(image_size=SIZE, supersample=1), seed=4, length=6)
    for i in range(len(faces)):
        s = faces[i]
        image = s["image"].permute(1, 2, 0).numpy().copy()
        lmks = s["landmarks"].numpy()
        out = draw_loose_hair(image, lmks, np.random.default_rng(i), low)
        assert (out != image).any()
        rng = np.random.default_rng(i)
        alpha, _ = hair_alpha(lmks, SIZE, sample_style(rng, low), rng)
        points = lmks[[19, 20, 21, 22, 23, 24, 48, 54, 57], :2]
        assert ((points >= 0) & (points < SIZE)).all()
        assert all(at(alpha, p) > 0.5 for p in points[:6])  # the brows' middle
        assert all(at(alpha, p) == 0.0 for p in points[6:])  # the mouth
