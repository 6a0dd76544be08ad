"""Tests of the 3DMM-regression and UV position-map baselines."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from facegcn_lib.config import ConfigError, MMRegressionConfig, UVMapConfig
from facegcn_lib.geometry.rotations import euler_to_rotation
from facegcn_lib.nn.baselines import (
    IDENTITY_6D,
    MMRegressionDecoder,
    UVPositionMapDecoder,
    rotation_6d_to_matrix,
)
from facegcn_lib.nn.model import count_parameters
from facegcn_lib.nn.target_mesh import MODEL_TO_CROP_FLIP, TargetMesh, per_vertex_uvs

CODE = 16


def test_rotation_6d_gives_rotations() -> None:
    torch.manual_seed(0)
    r = rotation_6d_to_matrix(torch.randn(5, 6, dtype=torch.float64))
    eye = torch.eye(3, dtype=torch.float64).expand(5, 3, 3)
    torch.testing.assert_close(r @ r.transpose(1, 2), eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close(rotation_6d_to_matrix(torch.tensor(IDENTITY_6D)), torch.eye(3))


@pytest.mark.parametrize("rotation", ["6d", "euler"])
def test_mm_decoder_matches_a_slow_reference(tiny_target: TargetMesh, rotation: str) -> None:
    torch.manual_seed(1)
    model = tiny_target.model
    dec = MMRegressionDecoder(CODE, MMRegressionConfig(n_id=4, n_exp=2, rotation=rotation),
                              model, tiny_target.placement()).double()
    torch.nn.init.normal_(dec.head.weight, std=0.3)
    code = torch.randn(2, CODE, dtype=torch.float64)
    verts = dec(code)
    p = dec.params(code)
    _, centre = tiny_target.placement()
    for b in range(2):
        a, e = p.id_coeffs[b].detach().numpy(), p.exp_coeffs[b].detach().numpy()
        shape = model.mean + np.tensordot(a, model.id_basis[:4], 1) + np.tensordot(e, model.exp_basis[:2], 1)
        rot = p.rotation[b].detach().numpy()
        if rotation == "euler":
            angles = dec.head(code)[b, 6:9].detach().numpy()
            np.testing.assert_allclose(rot, euler_to_rotation(*angles), atol=1e-12)
        ref = float(p.scale[b].detach()) * (shape - centre) @ rot.T * MODEL_TO_CROP_FLIP \
            + p.translation[b].detach().numpy()
        np.testing.assert_allclose(verts[b].detach().numpy(), ref, rtol=1e-5, atol=1e-6)


def test_untrained_mm_decoder_outputs_the_placed_template(tiny_target: TargetMesh) -> None:
    dec = MMRegressionDecoder(CODE, MMRegressionConfig(n_id=4, n_exp=3), tiny_target.model,
                              tiny_target.placement())
    torch.nn.init.zeros_(dec.head.weight)
    out = dec(torch.randn(1, CODE))[0].detach().numpy()
    np.testing.assert_allclose(out, tiny_target.template_in_crop(), atol=1e-5)


def test_mm_decoder_refuses_more_modes_than_the_model_has(tiny_target: TargetMesh) -> None:
    with pytest.raises(ConfigError, match="lower n_id"):
        MMRegressionDecoder(CODE, MMRegressionConfig(n_id=50, n_exp=3), tiny_target.model,
                            tiny_target.placement())


def test_uv_decoder_shapes_and_layers(tiny_target: TargetMesh) -> None:
    cfg = UVMapConfig(size=32, seed_size=4, max_channels=32, min_channels=8)
    dec = UVPositionMapDecoder(CODE, cfg, tiny_target.vertex_uvs())
    code = torch.randn(2, CODE)
    assert dec.position_map(code).shape == (2, 3, 32, 32)
    assert dec(code).shape == (2, tiny_target.n_verts, 3)
    convs = [m for m in dec.up if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(32, 16), (16, 8), (8, 8)]
    expected = CODE * 32 * 16 + 32 * 16 + sum(c.in_channels * c.out_channels * 16 + 3 * c.out_channels
                                              for c in convs) + 8 * 3 * 9 + 3
    assert count_parameters(dec) == expected
    with pytest.raises(ConfigError, match="power of two"):
        UVMapConfig(size=48, seed_size=4)


def test_uv_sampling_reads_the_map_at_the_vertex_uvs() -> None:
    """A position map that stores (u, v, u*v) must give back each vertex's own UV."""
    uvs = np.random.default_rng(0).uniform(0.05, 0.95, (50, 2))
    dec = UVPositionMapDecoder(CODE, UVMapConfig(size=64, seed_size=4, max_channels=8, min_channels=8), uvs)
    s = 64
    centres = (np.arange(s) + 0.5) / s
    u = np.tile(centres, (s, 1))
    v = np.tile(centres[::-1, None], (1, s))  # row 0 is v = 1
    pmap = torch.tensor(np.stack([u, v, u * v])[None], dtype=torch.float32)
    dec.position_map = lambda code: pmap  # type: ignore[method-assign]
    out = dec(torch.zeros(1, CODE))[0].numpy()
    np.testing.assert_allclose(out[:, :2], uvs, atol=1e-5)
    np.testing.assert_allclose(out[:, 2], uvs[:, 0] * uvs[:, 1], atol=1e-3)


def test_batched_equals_per_sample(tiny_target: TargetMesh) -> None:
    torch.manual_seed(2)
    decs = [UVPositionMapDecoder(CODE, UVMapConfig(size=16, max_channels=16), tiny_target.vertex_uvs()),
            MMRegressionDecoder(CODE, MMRegressionConfig(n_id=4, n_exp=3), tiny_target.model,
                                tiny_target.placement())]
    code = torch.randn(3, CODE)
    for dec in decs:
        dec.eval()
        with torch.no_grad():
            torch.testing.assert_close(dec(code), torch.cat([dec(code[i:i + 1]) for i in range(3)]),
                                       atol=1e-5, rtol=1e-5)


def test_every_parameter_gets_a_gradient(tiny_target: TargetMesh) -> None:
    torch.manual_seed(3)
    for dec in (UVPositionMapDecoder(CODE, UVMapConfig(size=16, max_channels=16), tiny_target.vertex_uvs()),
                MMRegressionDecoder(CODE, MMRegressionConfig(n_id=4, n_exp=3), tiny_target.model,
                                    tiny_target.placement())):
        dec(torch.randn(2, CODE)).square().sum().backward()
        for name, p in dec.named_parameters():
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_per_vertex_uvs_fill_the_unit_square(tiny_target: TargetMesh) -> None:
    uv = per_vertex_uvs(tiny_target.model)
    assert uv.min() >= 0 and uv.max() <= 1 + 1e-12
    np.testing.assert_allclose(uv, tiny_target.model.uvs, atol=1e-12)  # grid UVs already fill it
    from dataclasses import replace

    no_uv = replace(tiny_target.model, uvs=np.zeros((0, 2)), face_uvs=np.zeros((0, 3), dtype=np.int64))
    cyl = per_vertex_uvs(no_uv)
    assert cyl.shape == (tiny_target.n_verts, 2) and cyl.min() >= 0 and cyl.max() <= 1 + 1e-12
