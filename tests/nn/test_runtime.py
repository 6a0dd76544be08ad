"""Tests of the inference backends: onnxruntime and the optimised torch copy equal the module."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

import facegcn_lib.nn.runtime as runtime
from facegcn_lib.config import EncoderConfig
from facegcn_lib.nn.encoders import ImageEncoder
from facegcn_lib.nn.runtime import (
    BackendUnavailableError,
    OnnxModule,
    RuntimeConfig,
    RuntimeMismatchError,
    fold_batch_norms,
    inference_copy,
    module_digest,
    onnx_module_or_none,
    resolve_backend,
)
from facegcn_lib.paths import CACHE_ENV


class TinyCNN(nn.Module):
    """Convolutions with batch norms, a branch and two outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU())
        self.conv = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(x)
        h = torch.relu(self.bn(self.conv(h)))
        return self.head(h.mean(dim=(2, 3))), h


def _tiny(seed: int = 0) -> TinyCNN:
    torch.manual_seed(seed)
    net = TinyCNN()
    for m in net.modules():  # statistics and affine maps far from the identity
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    return net.eval()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    return tmp_path


def test_onnxruntime_equals_torch_and_the_export_is_cached(cache: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    net = _tiny()
    run = OnnxModule(net, torch.rand(1, 3, 16, 16), "tiny", RuntimeConfig(threads=1))
    assert run.path.parent == cache and run.path.is_file() and run.max_abs_diff < 1e-4
    x = torch.rand(4, 3, 16, 16)  # another batch size than the export's
    with torch.no_grad():
        ref = net(x)
    got = run(x)
    assert len(got) == 2
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-4, rtol=1e-4)
    exported = []
    monkeypatch.setattr(runtime, "export_module", lambda *a, **k: exported.append(a))
    again = OnnxModule(_tiny(), torch.rand(1, 3, 16, 16), "tiny", RuntimeConfig(threads=1))
    assert again.path == run.path and not exported  # same weights: the cached file
    other = _tiny(seed=1)
    assert module_digest(other) != module_digest(net)


def test_a_stale_export_is_refused_and_removed(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = OnnxModule(_tiny(0), torch.rand(1, 3, 16, 16), "tiny")
    monkeypatch.setattr(runtime, "module_digest", lambda *a: "same-key-for-every-module")
    stale = OnnxModule(_tiny(0), torch.rand(1, 3, 16, 16), "tiny")  # written under the fake key
    assert stale.path != first.path
    with pytest.raises(RuntimeMismatchError, match="differs from torch"):
        OnnxModule(_tiny(1), torch.rand(1, 3, 16, 16), "tiny")  # other weights, same key
    assert not stale.path.exists()


def test_resolve_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend("torch", "cpu") == "torch"
    assert resolve_backend("auto", "cuda") == "torch"  # no device needed: only its type counts
    with pytest.raises(BackendUnavailableError, match="CPU only"):
        resolve_backend("onnx", "cuda")
    with pytest.raises(ValueError, match="backend must be one of"):
        resolve_backend("tensorrt", "cpu")
    assert resolve_backend("auto", "cpu") == "onnx"  # the dev environment has onnxruntime
    monkeypatch.setattr(runtime, "onnxruntime_available", lambda: False)
    assert resolve_backend("auto", "cpu") == "torch"
    with pytest.raises(BackendUnavailableError, match=r"facegcn\[fast\]"):
        resolve_backend("onnx", "cpu")
    with pytest.raises(ValueError, match="threads"):
        RuntimeConfig(threads=0)


def test_auto_falls_back_to_torch_when_the_export_fails(cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(runtime, "OnnxModule", broken)
    x = torch.rand(1, 3, 16, 16)
    assert onnx_module_or_none(_tiny(), x, "tiny", RuntimeConfig(), "cpu") is None
    assert "exporter exploded" in caplog.text
    with pytest.raises(RuntimeError, match="exploded"):
        onnx_module_or_none(_tiny(), x, "tiny", RuntimeConfig(backend="onnx"), "cpu")
    assert onnx_module_or_none(_tiny(), x, "tiny", RuntimeConfig(backend="torch"), "cpu") is None


@pytest.mark.parametrize("channels_last", [False, True])
def test_folded_batch_norms_equal_the_original(channels_last: bool) -> None:
    net = _tiny()
    fast = inference_copy(net, channels_last=channels_last)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in net.modules())  # the original is unchanged
    x = torch.rand(3, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
        got = fast(x.contiguous(memory_format=torch.channels_last) if channels_last else x)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-5, rtol=1e-5)


def test_an_encoder_that_fx_cannot_trace_is_folded_in_its_children() -> None:
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(arch="mobilenet_v3_small", code_dim=8, image_size=32)).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = enc(x)
        fast = inference_copy(enc)
        assert isinstance(fast, ImageEncoder)  # its forward checks shapes: traced piece by piece
        assert not any(isinstance(m, nn.BatchNorm2d) for m in fast.modules())
        torch.testing.assert_close(fast(x), ref, atol=1e-5, rtol=1e-5)
    no_bn = nn.Linear(3, 2)
    assert fold_batch_norms(no_bn) is no_bn


def test_a_moment_pooling_encoder_runs_in_both_backends(cache: Path) -> None:
    """The moments are exported (the pixel centres become constants of the crop size)."""
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    enc = ImageEncoder(EncoderConfig(arch="mobilenet_v3_small", code_dim=8, image_size=32,
                                     pooling="moments")).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        ref = enc(x)
        torch.testing.assert_close(inference_copy(enc)(x), ref, atol=1e-5, rtol=1e-5)
    ort = OnnxModule(enc, x[:1], "moments", RuntimeConfig(backend="onnx"))
    torch.testing.assert_close(ort(x)[0], ref, atol=1e-4, rtol=1e-4)
