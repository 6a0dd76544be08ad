"""Tests of the ONNX export: exportable kernels equal torch's, onnxruntime parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.config import ExportConfig
from facegcn_lib.nn.cheb_conv import ChebConv
from facegcn_lib.nn.export import (
    GatherChebConv,
    check_onnx,
    export_kernels,
    export_onnx,
    onnx_session,
    run_onnx,
)
from facegcn_lib.nn.model import FaceGCN
from facegcn_lib.nn.resample import VertexResample
from facegcn_lib.nn.resgcn import VertexNorm
from facegcn_lib.nn.target_mesh import TargetMesh
from tests.nn.tiny_mesh import tiny_config


@pytest.mark.parametrize("dense_max_verts", [0, 10_000])
def test_gather_cheb_conv_equals_cheb_conv(tiny_target: TargetMesh, dense_max_verts: int) -> None:
    torch.manual_seed(0)
    conv = ChebConv(5, 4, tiny_target.pyramid.laplacian(0), K=3)
    torch.nn.init.normal_(conv.bias)
    mirror = GatherChebConv(conv, dense_max_verts)
    assert mirror.dense == (dense_max_verts > 0)
    x = torch.randn(3, tiny_target.n_verts, 5)
    torch.testing.assert_close(mirror(x), conv(x), atol=1e-5, rtol=1e-5)


def test_export_kernels_swaps_and_restores(tiny_target: TargetMesh) -> None:
    model = FaceGCN(tiny_config("gcn"), tiny_target).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = model(x)
        with export_kernels(model, ExportConfig(dense_max_verts=40)):
            assert not any(isinstance(m, ChebConv) and not isinstance(p, GatherChebConv)
                           for p in model.modules() for m in p.children())
            assert all(m.native for m in model.modules() if isinstance(m, VertexNorm))
            kernels = {m.kernel for m in model.modules() if isinstance(m, VertexResample)}
            assert kernels == {"gather", "dense"}  # 36 -> 144 is gathered, 9 -> 36 dense
            torch.testing.assert_close(model(x), ref, atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, GatherChebConv) for m in model.modules())
    assert not any(m.native for m in model.modules() if isinstance(m, VertexNorm))
    assert {m.kernel for m in model.modules() if isinstance(m, VertexResample)} == {"sparse"}


@pytest.mark.parametrize("decoder", ["gcn", "uvmap", "3dmm"])
def test_onnxruntime_matches_torch(tmp_path: Path, tiny_target: TargetMesh, decoder: str) -> None:
    torch.manual_seed(1)
    model = FaceGCN(tiny_config(decoder), tiny_target).eval()
    with torch.no_grad():  # outputs far from the template: the parity check means something
        for p in model.decoder.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    cfg = ExportConfig(dense_max_verts=40)  # exercise both kernels on the tiny pyramid
    path = export_onnx(model, tmp_path / f"{decoder}.onnx", image_size=64, cfg=cfg)
    images = torch.rand(3, 3, 64, 64)  # another batch size than the export's example
    with torch.no_grad():
        assert (model(images) - model.template).abs().max() > 0.05
    assert check_onnx(model, path, images, cfg) < 1e-4
    out = run_onnx(onnx_session(path, threads=1), images[:1].numpy())
    assert out.shape == (1, tiny_target.n_verts, 3) and np.isfinite(out).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{decoder}.onnx"]
