"""Tests of facegcn_lib.nn.flip (test-time flip averaging)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegcn_lib.nn.flip import AsymmetricMeshError, flip_average, mirror_permutation, unflip


def symmetric_points(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    half = rng.uniform(0.1, 1.0, size=(n, 3))
    middle = np.column_stack([np.zeros(5), rng.uniform(-1, 1, (5, 2))])
    other = half * [-1, 1, 1]
    return np.concatenate([half, middle, other])[rng.permutation(2 * n + 5)]


def test_mirror_permutation_is_the_reflection_and_an_involution() -> None:
    pts = symmetric_points()
    perm = mirror_permutation(pts)
    assert np.allclose(pts[perm], pts * [-1, 1, 1])
    assert np.array_equal(perm[perm], np.arange(len(pts)))
    slow = [int(np.argmin(np.linalg.norm(pts - p * [-1, 1, 1], axis=1))) for p in pts]
    assert perm.tolist() == slow


def test_asymmetric_meshes_are_refused() -> None:
    pts = symmetric_points()
    with pytest.raises(AsymmetricMeshError, match="not left-right symmetric"):
        mirror_permutation(pts + np.array([0.3, 0.0, 0.0]))  # not centred on its plane
    with pytest.raises(AsymmetricMeshError, match=r"\(V, 3\)"):
        mirror_permutation(pts[:, :2])


def test_a_mirror_equivariant_network_is_unchanged_and_errors_cancel() -> None:
    pts = torch.from_numpy(symmetric_points()).float()
    mirror = torch.from_numpy(mirror_permutation(pts.numpy()))
    shape = pts + 0.2 * torch.randn(pts.shape, generator=torch.Generator().manual_seed(1))  # asymmetric
    assert torch.allclose(unflip(unflip(shape[None], mirror), mirror), shape[None])  # an involution
    images = torch.rand(3, 3, 8, 8)

    def exact(x: torch.Tensor) -> torch.Tensor:
        # the same face for every crop; a flipped crop gets the mirror image of that face
        flipped = torch.tensor([any(torch.equal(im, o.flip(-1)) for o in images) for im in x])
        out = shape.expand(len(x), -1, -1).clone()
        out[flipped] = unflip(out[flipped], mirror)
        return out

    assert torch.allclose(flip_average(exact, images, mirror), shape.expand(3, -1, -1))

    def biased(x: torch.Tensor) -> torch.Tensor:  # always 0.1 too far right
        return exact(x) + torch.tensor([0.1, 0.0, 0.0])

    assert torch.allclose(flip_average(biased, images, mirror), shape.expand(3, -1, -1), atol=1e-6)


def test_the_ict_face_is_symmetric(data_root: object) -> None:
    from facegcn_lib.morphable.ict import load_ict_neutral

    face = load_ict_neutral(region="face")
    perm = mirror_permutation(face.verts)
    assert len(np.unique(perm)) == len(perm)
    left = face.verts[:, 0] > 1.0
    assert np.all(face.verts[perm[left], 0] < -1.0)


def test_the_pipeline_averages_with_the_mirror_image(checkpoint: object, data_root: object) -> None:
    from pathlib import Path

    from facegcn_lib.data.images import load_image
    from facegcn_lib.paths import data_dir
    from facegcn_lib.pipeline import PipelineConfig, Reconstructor
    from tests.tiny_reconstructor import PHOTO

    assert PipelineConfig().flip  # on by default (see its docstring)
    photo = load_image(data_dir() / PHOTO)
    plain = Reconstructor(Path(str(checkpoint)), config=PipelineConfig(flip=False))
    flip = Reconstructor(Path(str(checkpoint)))
    a, b = plain(photo), flip(photo)
    assert len(a) == len(b) == 1
    assert a[0].verts_img.shape == b[0].verts_img.shape
    assert not np.allclose(a[0].verts_img, b[0].verts_img)
    # the same crop, by hand: the mean of the crop's and the mirrored crop's predictions
    crops = torch.rand(2, 3, flip.size, flip.size)
    mirror = torch.from_numpy(mirror_permutation(flip.model.target.template_in_crop()))
    by_hand = 0.5 * (flip.network(crops) + unflip(flip.network(crops.flip(-1)), mirror))
    assert torch.allclose(flip_average(flip.network, crops, mirror), by_hand, atol=1e-5)
