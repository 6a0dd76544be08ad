"""MorphableModel: the ICT Face Model's bases, sampling, regions, caching and persistence."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.morphable.bfm import load_bfm_mean, load_bfm_mean_model
from facegcn_lib.morphable.ict import (
    FACE_VERTS,
    ICT_LMKS68,
    ICT_PREFIX,
    ict_zip,
    load_ict_model,
    load_ict_neutral,
)
from facegcn_lib.morphable.model import CoeffSampling, MorphableModel, MorphableModelError


def _tiny_model(exp_kind: str = "pca") -> MorphableModel:
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(6, 3))
    faces = np.array([[0, 1, 2], [2, 3, 4], [3, 4, 5]], dtype=np.int64)
    return MorphableModel(
        name="tiny-all", faces=faces, mean=verts,
        id_basis=rng.normal(size=(4, 6, 3)).astype(np.float32),
        exp_basis=rng.normal(size=(2, 6, 3)).astype(np.float32), exp_names=("a", "b"),
        regions={"all": (0, 6), "front": (0, 4), "back": (4, 6)},
        exp_kind="blendshape" if exp_kind == "blendshape" else "pca")


@pytest.fixture(scope="module")
def ict(data_root: Path) -> MorphableModel:
    return load_ict_model(data_root)


def test_ict_model_shapes(ict: MorphableModel, data_root: Path) -> None:
    assert ict.num_verts == 26719 and ict.num_id == 100 and ict.num_exp == 53
    assert ict.exp_kind == "blendshape" and ict.exp_names[0] == "browDown_L"
    assert "jawOpen" in ict.exp_names and tuple(ict.lmks68) == ICT_LMKS68
    assert ict.face_uvs.shape == ict.faces.shape and ict.face_uvs.max() < len(ict.uvs)
    assert ict.uvs.min() >= 0 and ict.uvs[:, 1].max() <= 1  # UDIM tiles: u in [0, 7)
    neutral = load_ict_neutral(data_root)
    np.testing.assert_allclose(ict.mean, neutral.verts)
    assert np.array_equal(ict.faces, neutral.faces)


def test_ict_modes_are_differences_from_the_neutral_mesh(ict: MorphableModel, data_root: Path) -> None:
    with zipfile.ZipFile(ict_zip(data_root)) as zf:
        def verts(member: str) -> np.ndarray:  # plain reference parse of the 'v' records
            lines = zf.read(ICT_PREFIX + member).decode().splitlines()
            return np.array([ln.split()[1:4] for ln in lines if ln.startswith("v ")], dtype=float) * 10.0
        neutral = verts("generic_neutral_mesh.obj")
        np.testing.assert_allclose(ict.id_basis[7], verts("identity007.obj") - neutral, atol=1e-4)
        k = ict.exp_names.index("jawOpen")
        np.testing.assert_allclose(ict.exp_basis[k], verts("jawOpen.obj") - neutral, atol=1e-4)
    # the identity modes are scaled principal components: decreasing magnitude, mm-sized
    norms = np.linalg.norm(ict.id_basis[:, :FACE_VERTS], axis=2).max(axis=1)
    assert 3 < norms[0] < 30 and norms[-1] < norms[0] / 5


def test_ict_cached_load_is_fast(ict: MorphableModel, data_root: Path) -> None:
    t0 = time.perf_counter()
    again = load_ict_model(data_root)
    assert time.perf_counter() - t0 < 2.0
    assert np.array_equal(again.id_basis, ict.id_basis)


def test_ict_face_region(ict: MorphableModel) -> None:
    face = ict.region("face")
    assert face.num_verts == FACE_VERTS and face.faces.max() < FACE_VERTS
    assert face.name == "ict-face" and face.id_basis.shape == (100, FACE_VERTS, 3)
    assert len(face.faces) == len(face.face_uvs) and set(face.regions) == {"all", "face"}
    a, b = ict.random_coeffs(torch.Generator().manual_seed(1), 2)
    assert (face.sample(a, b) - ict.sample(a, b)[:, :FACE_VERTS]).abs().max() < 1e-4
    with pytest.raises(MorphableModelError, match="starts at vertex"):
        ict.region("teeth")
    with pytest.raises(MorphableModelError, match="unknown region"):
        ict.region("nose")


def test_sample_matches_numpy_reference() -> None:
    m = _tiny_model()
    a = torch.tensor([[0.5, -1.0, 2.0, 0.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[0.3, 0.1], [0.0, -2.0]], dtype=torch.float64)
    out = m.sample(a, b)
    assert out.shape == (2, 6, 3) and out.dtype == torch.float64
    for i in range(2):
        ref = m.mean + sum(a[i, k].item() * m.id_basis[k] for k in range(4)) \
            + sum(b[i, j].item() * m.exp_basis[j] for j in range(2))
        np.testing.assert_allclose(out[i].numpy(), ref, atol=1e-6)
        np.testing.assert_allclose(m.sample_numpy(a[i].numpy(), b[i].numpy()), ref, atol=1e-6)
    # fewer coefficients than modes: the rest are zero; none: the mean
    torch.testing.assert_close(m.sample(a[:, :2]), m.sample(torch.cat([a[:, :2], torch.zeros(2, 2, dtype=a.dtype)], 1)))
    np.testing.assert_allclose(m.sample()[0].numpy(), m.mean, atol=1e-6)
    with pytest.raises(MorphableModelError, match="id_coeffs"):
        m.sample(torch.zeros(2, 5))


def test_sample_is_differentiable() -> None:
    m = _tiny_model()
    a = torch.zeros(1, 4, requires_grad=True)
    m.sample(a).sum().backward()
    assert a.grad is not None
    np.testing.assert_allclose(a.grad[0].numpy(), m.id_basis.sum(axis=(1, 2)), rtol=1e-5)


def test_random_coeffs() -> None:
    m = _tiny_model("blendshape")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a1, b1 = m.random_coeffs(g1, 500)
    a2, b2 = m.random_coeffs(g2, 500)
    assert torch.equal(a1, a2) and torch.equal(b1, b2)
    assert a1.shape == (500, 4) and b1.shape == (500, 2)
    assert abs(a1.std().item() - 1.0) < 0.1
    assert b1.min() >= 0 and b1.max() <= 1
    assert 0.05 < (b1 > 0).float().mean().item() < 0.3
    _, b3 = m.random_coeffs(g1, 500, CoeffSampling(blend_max=0.5, blend_active_prob=1.0))
    assert (b3 > 0).all() and b3.max() <= 0.5


def test_save_load_round_trip(tmp_path: Path) -> None:
    m = _tiny_model("blendshape").region("front")
    back = MorphableModel.load(m.save(tmp_path / "m.npz"))
    for name in ("faces", "mean", "id_basis", "exp_basis", "lmks68", "uvs", "face_uvs", "id_std"):
        assert np.array_equal(getattr(back, name), getattr(m, name)), name
    assert back.regions == m.regions and back.exp_names == m.exp_names
    assert back.exp_kind == "blendshape" and back.name == "tiny-front"


def test_bad_models_are_refused() -> None:
    m = _tiny_model()
    with pytest.raises(MorphableModelError, match="id_basis"):
        MorphableModel(name="x", faces=m.faces, mean=m.mean, id_basis=m.id_basis[:, :5],
                       exp_basis=m.exp_basis)
    with pytest.raises(MorphableModelError, match="does not exist"):
        MorphableModel(name="x", faces=m.faces + 10, mean=m.mean, id_basis=m.id_basis,
                       exp_basis=m.exp_basis)
    with pytest.raises(MorphableModelError, match="68"):
        m.landmarks(torch.zeros(6, 3))


def test_bfm_mean_model(data_root: Path) -> None:
    model = load_bfm_mean_model(data_root)
    mesh = load_bfm_mean(data_root)
    assert model.num_id == 0 and model.num_exp == 0 and model.num_verts == 53215
    np.testing.assert_allclose(model.sample()[0].numpy(), mesh.verts, atol=1e-3)
    assert model.landmarks(torch.as_tensor(mesh.verts)).shape == (68, 3)
    tmpl = model.template()
    assert np.array_equal(tmpl.faces, mesh.faces) and np.array_equal(tmpl.lmks68, mesh.lmks68)
