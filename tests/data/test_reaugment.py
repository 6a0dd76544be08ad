"""Mirrored and re-cropped cached faces: the points follow the pixels, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.data.crop import AugmentParams, CropTransform
from facegcn_lib.data.reaugment import (
    LMKS68_MIRROR,
    Reaugment,
    ReaugmentConfig,
    ReaugmentError,
    ict_face_mirror,
    mirror_sample,
    recrop_sample,
    whole_crop_box,
)

SIZE = 32


def dotted_sample(n_verts: int = 6, seed: int = 0) -> dict[str, torch.Tensor]:
    """A black crop with one white pixel under each vertex and landmark (integer positions)."""
    g = torch.Generator().manual_seed(seed)
    verts = torch.randint(4, SIZE - 4, (n_verts, 3), generator=g).float()
    lmks = torch.randint(4, SIZE - 4, (68, 3), generator=g).float()
    image = torch.zeros(3, SIZE, SIZE, dtype=torch.uint8)
    for x, y, _ in torch.cat([verts, lmks]).long().tolist():
        image[:, y, x] = 255
    return {"image": image, "vertices": verts, "landmarks": lmks,
            "pose": torch.tensor([0.3, -0.2, 0.1]), "visibility": torch.arange(n_verts) % 2 == 0}


def pair_mirror(n: int) -> np.ndarray:
    """The involution swapping 0<->1, 2<->3, ... (a stand-in for a mesh's mirror permutation)."""
    return np.arange(n) ^ 1


def lit(image: torch.Tensor, pts: torch.Tensor) -> bool:
    xy = pts[:, :2].round().long()
    return bool((image[0, xy[:, 1], xy[:, 0]] == 255).all())


def test_landmark_mirror_is_an_involution() -> None:
    p = np.asarray(LMKS68_MIRROR)
    assert sorted(p) == list(range(68))
    assert np.array_equal(p[p], np.arange(68))


def test_mirror_moves_points_with_pixels_and_undoes_itself() -> None:
    s = dotted_sample()
    perm = pair_mirror(6)
    m = mirror_sample(s, perm)
    assert lit(m["image"], m["vertices"]) and lit(m["image"], m["landmarks"])
    torch.testing.assert_close(m["vertices"][0, 0], SIZE - 1 - s["vertices"][1, 0])
    torch.testing.assert_close(m["vertices"][:, 2], s["vertices"][perm, 2])  # depth unchanged
    torch.testing.assert_close(m["pose"], torch.tensor([-0.3, -0.2, -0.1]))
    assert torch.equal(m["visibility"], s["visibility"][torch.from_numpy(perm)])
    back = mirror_sample(m, perm)
    for key in s:
        assert torch.equal(back[key], s[key]), key


def test_mirror_refuses_a_permutation_of_another_mesh() -> None:
    with pytest.raises(ReaugmentError, match="6 vertices"):
        mirror_sample(dotted_sample(), pair_mirror(8))
    with pytest.raises(ReaugmentError, match="involution"):
        Reaugment(np.array([1, 2, 0]))
    with pytest.raises(ReaugmentError, match="mirror_p"):
        ReaugmentConfig(mirror_p=1.5)


def test_recrop_moves_points_with_pixels() -> None:
    s = dotted_sample()
    tf = CropTransform.build(whole_crop_box(SIZE), SIZE, AugmentParams(angle_deg=90.0, tx=2.0))
    r = recrop_sample(s, tf)
    # a quarter turn and a whole-pixel shift map pixel centres onto pixel centres
    assert lit(r["image"], r["vertices"]) and lit(r["image"], r["landmarks"])
    identity = recrop_sample(s, CropTransform.build(whole_crop_box(SIZE), SIZE))
    assert torch.equal(identity["image"], s["image"])
    torch.testing.assert_close(identity["vertices"], s["vertices"])


def test_reaugment_is_seeded() -> None:
    s = dotted_sample()
    t = Reaugment(pair_mirror(6), ReaugmentConfig(mirror_p=0.5))
    draws = []
    for seed in (0, 0, 1, 2, 3):
        t.generator = torch.Generator().manual_seed(seed)
        draws.append(t(s))
    assert torch.equal(draws[0]["image"], draws[1]["image"])
    assert len({tuple(d["vertices"].flatten().tolist()) for d in draws}) == 4


def test_ict_face_mirror_maps_its_landmarks_like_the_68_point_mirror(data_root: Path) -> None:
    from facegcn_lib.morphable.ict import load_ict_neutral

    perm = ict_face_mirror()
    lmks = np.asarray(load_ict_neutral(region="face").lmks68)
    assert np.array_equal(perm[lmks], lmks[list(LMKS68_MIRROR)])
