"""Tests of the whole model: encoder + each decoder, frames, predict, configs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegcn_lib.config import DECODER_KINDS, ConfigError, ModelConfig, from_dict, to_dict
from facegcn_lib.geometry.rotations import euler_to_rotation
from facegcn_lib.nn.model import FaceGCN, count_parameters, crop_to_normalized, normalized_to_crop
from facegcn_lib.nn.target_mesh import TargetMesh
from tests.nn.tiny_mesh import tiny_config

SIZE = 64


@pytest.fixture(scope="module", params=DECODER_KINDS)
def model(request: pytest.FixtureRequest, tiny_target: TargetMesh) -> FaceGCN:
    torch.manual_seed(0)
    return FaceGCN(tiny_config(request.param), tiny_target)


def test_shapes_and_template_offset(model: FaceGCN, tiny_target: TargetMesh) -> None:
    images = torch.rand(2, 3, SIZE, SIZE)
    out = model(images)
    assert out.shape == (2, tiny_target.n_verts, 3)
    assert model.adds_template == (model.cfg.decoder != "3dmm")
    code = torch.zeros(1, model.cfg.encoder.code_dim)
    if model.cfg.decoder == "3dmm":  # a zero code gives the bias's pose: the placed mean face
        np.testing.assert_allclose(model.decode(code)[0].detach().numpy(),
                                   tiny_target.template_in_crop(), atol=1e-4)


def test_every_parameter_gets_a_gradient(model: FaceGCN) -> None:
    model.train()
    model.zero_grad()
    model(torch.rand(2, 3, SIZE, SIZE)).square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_batched_equals_per_sample(model: FaceGCN) -> None:
    model.eval()
    images = torch.rand(3, 3, SIZE, SIZE)
    with torch.no_grad():
        torch.testing.assert_close(model(images), torch.cat([model(images[i:i + 1]) for i in range(3)]),
                                   atol=1e-4, rtol=1e-4)


def test_dtype_and_device_moves(tiny_target: TargetMesh) -> None:
    m = FaceGCN(tiny_config("gcn"), tiny_target).double().eval()
    with torch.no_grad():
        out = m(torch.rand(1, 3, SIZE, SIZE, dtype=torch.float64))
    assert out.dtype == torch.float64
    m = m.float()
    if torch.cuda.is_available():
        assert m.cuda()(torch.rand(1, 3, SIZE, SIZE, device="cuda")).device.type == "cuda"


def test_normalised_frame_round_trip() -> None:
    v = torch.randn(5, 3, dtype=torch.float64)
    torch.testing.assert_close(crop_to_normalized(normalized_to_crop(v, 256), 256), v)
    corners = normalized_to_crop(torch.tensor([[-1.0, -1.0, 2.0], [1.0, 1.0, 0.0]]), 256)
    torch.testing.assert_close(corners, torch.tensor([[-0.5, -0.5, 256.0], [255.5, 255.5, 0.0]]))


def test_predict_maps_to_the_image_with_landmarks_and_pose(tiny_target: TargetMesh) -> None:
    """A decoder replaced by a known rotated template: predict must recover image coordinates
    through the crop affine and the pose of the rotation."""
    m = FaceGCN(tiny_config("gcn"), tiny_target)
    yaw, pitch, roll = 0.3, -0.2, 0.1
    rot = euler_to_rotation(yaw, pitch, roll)
    scale, centre = tiny_target.placement()
    crop_verts = scale * (tiny_target.model.mean - centre) @ rot.T * [1.0, -1.0, 1.0]
    fixed = torch.tensor(crop_verts, dtype=torch.float32)[None]
    m.decode = lambda code: fixed.expand(code.shape[0], -1, -1)  # type: ignore[method-assign]
    crop_to_image = torch.tensor([[[2.0, 0.0, 100.0], [0.0, 2.0, 50.0], [0.0, 0.0, 1.0]]]).repeat(2, 1, 1)
    pred = m.predict(torch.rand(2, 3, SIZE, SIZE), crop_to_image)
    px = normalized_to_crop(fixed, SIZE)[0]
    expect = torch.stack([2 * px[:, 0] + 100, 2 * px[:, 1] + 50, 2 * px[:, 2]], dim=-1)
    torch.testing.assert_close(pred.verts[1], expect, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(pred.lmks68[0], pred.verts[0, tiny_target.lmks68])
    np.testing.assert_allclose(pred.pose[0], [yaw, pitch, roll], atol=1e-4)


def test_config_round_trip_and_validation() -> None:
    cfg = ModelConfig.paper()
    assert cfg.gcn.channels == (128, 64, 32, 32, 16, 16) and cfg.mesh.n_levels == 6
    import json

    assert from_dict(ModelConfig, json.loads(json.dumps(to_dict(cfg)))) == cfg
    with pytest.raises(ConfigError, match="one channel count per level"):
        ModelConfig(gcn=cfg.gcn)  # six channels, five ICT levels
    with pytest.raises(ConfigError, match="no field"):
        from_dict(ModelConfig, {"encoder": {"arch": "resnet18", "depth": 3}})
    with pytest.raises(ConfigError, match="decoder"):
        ModelConfig(decoder="mlp")


def test_parameter_counts_add_up(model: FaceGCN) -> None:
    assert count_parameters(model) == count_parameters(model.encoder) + count_parameters(model.decoder)


def test_the_ict_face_model_builds_from_its_config(data_root: object) -> None:
    """The default configuration on the real ICT face: pyramid sizes, documented counts, shapes."""
    from facegcn_lib.config import EncoderConfig
    from facegcn_lib.nn.model import build_model

    cfg = ModelConfig(encoder=EncoderConfig(arch="mobilenet_v3_small", image_size=64))
    model = build_model(cfg).eval()
    assert model.target.level_sizes == (9409, 2353, 589, 148, 37)
    assert count_parameters(model.decoder) == 1_378_595  # ResGCNDecoder's docstring
    with torch.no_grad():
        out = model(torch.rand(1, 3, 64, 64))
    assert out.shape == (1, 9409, 3)
    # an untrained model outputs the template plus offsets of a few millimetres
    scale, _ = model.target.placement()
    assert float((out[0] - model.template).norm(dim=-1).max()) / scale < 20.0
