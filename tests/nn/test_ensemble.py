"""Tests of the ensemble: the members' meshes averaged, codes side by side, bad members refused."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.nn.ensemble import EnsembleEncoder, EnsembleError, FaceGCNEnsemble
from facegcn_lib.nn.model import FaceGCN
from facegcn_lib.nn.runtime import OnnxModule, RuntimeConfig
from facegcn_lib.nn.target_mesh import TargetMesh, load_target_mesh, register_topology
from tests.nn.tiny_mesh import grid_mesh, tiny_config

SIZE = 64
CODE = 16
OTHER_GRID = "tiny-test-grid-10"


def member(target: TargetMesh, seed: int) -> FaceGCN:
    torch.manual_seed(seed)
    return FaceGCN(tiny_config("gcn"), target).eval()


@pytest.fixture(scope="module")
def members(tiny_target: TargetMesh) -> list[FaceGCN]:
    return [member(tiny_target, seed) for seed in (0, 1, 2)]


@pytest.fixture(scope="module")
def ensemble(members: list[FaceGCN]) -> FaceGCNEnsemble:
    return FaceGCNEnsemble(members)


def test_the_output_is_the_mean_of_the_members(members: list[FaceGCN],
                                               ensemble: FaceGCNEnsemble) -> None:
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        slow = torch.stack([m(images) for m in members]).mean(dim=0)
        out = ensemble(images)
    assert out.shape == (2, members[0].target.n_verts, 3)
    torch.testing.assert_close(out, slow, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(out, members[0](images), atol=1e-4)  # the members differ


def test_codes_side_by_side_and_split_back(members: list[FaceGCN], ensemble: FaceGCNEnsemble) -> None:
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        codes = ensemble.encoder(images)
        assert codes.shape == (2, len(members) * CODE)
        torch.testing.assert_close(codes[:, CODE:2 * CODE], members[1].encoder(images))
        torch.testing.assert_close(ensemble.decode(codes), ensemble(images))


def test_batched_equals_per_sample(ensemble: FaceGCNEnsemble) -> None:
    images = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(ensemble(images),
                                   torch.cat([ensemble(images[i:i + 1]) for i in range(3)]),
                                   atol=1e-4, rtol=1e-4)


def test_predict_places_the_mean_mesh_like_a_member(members: list[FaceGCN],
                                                    ensemble: FaceGCNEnsemble) -> None:
    images = torch.rand(2, 3, SIZE, SIZE)
    crop_to_image = torch.tensor([[2.0, 0.0, 10.0], [0.0, 2.0, 5.0], [0.0, 0.0, 1.0]]).expand(2, 3, 3)
    pred = ensemble.predict(images, crop_to_image)
    each = [m.predict(images, crop_to_image) for m in members]
    # placement is affine, so it commutes with the mean
    torch.testing.assert_close(pred.verts, torch.stack([p.verts for p in each]).mean(0),
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pred.lmks68, pred.verts[:, members[0].lmks68])
    assert pred.pose.shape == (2, 3)


def test_one_member_is_that_member(members: list[FaceGCN]) -> None:
    images = torch.rand(1, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(FaceGCNEnsemble(members[:1])(images), members[0](images))


def test_the_encoder_exports_to_onnx(ensemble: FaceGCNEnsemble) -> None:
    pytest.importorskip("onnxruntime")
    run = OnnxModule(ensemble.encoder, torch.zeros(1, 3, SIZE, SIZE), "test-ensemble-encoder",
                     RuntimeConfig(backend="onnx", cache=False))
    images = torch.rand(2, 3, SIZE, SIZE)
    (codes,) = run(images)
    with torch.no_grad():
        torch.testing.assert_close(codes, ensemble.encoder(images), atol=1e-4, rtol=1e-4)


def test_repr_names_the_members(ensemble: FaceGCNEnsemble) -> None:
    assert repr(ensemble) == "FaceGCNEnsemble(3 x mobilenet_v3_small 64px, 144 vertices)"
    assert repr(ensemble.encoder) == "EnsembleEncoder(3 x mobilenet_v3_small)"
    assert isinstance(ensemble.encoder, EnsembleEncoder)


def _other_grid() -> MorphableModel:
    verts, faces, uv = grid_mesh(10)
    v = len(verts)
    return MorphableModel(name=OTHER_GRID, faces=faces, mean=verts,
                          id_basis=np.zeros((0, v, 3), np.float32),
                          exp_basis=np.zeros((0, v, 3), np.float32), lmks68=np.linspace(0, v - 1, 68).astype(np.int64), uvs=uv,
                          face_uvs=faces.copy())


def test_members_of_another_mesh_or_input_size_are_refused(members: list[FaceGCN]) -> None:
    with pytest.raises(EnsembleError, match="at least one"):
        FaceGCNEnsemble([])
    register_topology(OTHER_GRID, _other_grid)
    cfg = tiny_config("gcn")
    other_mesh = replace(cfg, mesh=replace(cfg.mesh, topology=OTHER_GRID))
    other = FaceGCN(other_mesh, load_target_mesh(other_mesh.mesh)).eval()
    with pytest.raises(EnsembleError, match=f"model 1 regresses another mesh .{OTHER_GRID}, 100"):
        FaceGCNEnsemble([members[0], other])
    bigger = replace(cfg, encoder=replace(cfg.encoder, image_size=96))
    with pytest.raises(EnsembleError, match="96-pixel crops, model 0 64-pixel"):
        FaceGCNEnsemble([members[0], FaceGCN(bigger, members[0].target)])
