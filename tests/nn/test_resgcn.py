"""Tests of the residual block, the ResGCN decoder and the vertex resampling."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from facegcn_lib.config import ConfigError, DecoderConfig
from facegcn_lib.nn.model import count_parameters
from facegcn_lib.nn.resample import VertexResample, ell_arrays, ell_matmul
from facegcn_lib.nn.resgcn import ResGCNBlock, ResGCNDecoder, VertexNorm
from facegcn_lib.nn.target_mesh import TargetMesh

CODE = 16


def _dense(lap: sp.csr_matrix) -> torch.Tensor:
    return torch.from_numpy(lap.toarray())


def _slow_cheb(x: torch.Tensor, lap: torch.Tensor, conv: torch.nn.Module) -> torch.Tensor:
    """sum_k T_k(L) x W_k + b with dense T_k built explicitly."""
    n = lap.shape[0]
    t = [torch.eye(n, dtype=torch.float64), lap]
    while len(t) < conv.K:
        t.append(2 * lap @ t[-1] - t[-2])
    out = sum(t[k] @ x.double() @ conv.weight[k].double() for k in range(conv.K))
    return out + conv.bias.double()


def _slow_instance_norm(x: torch.Tensor, norm: VertexNorm) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.double() + norm.bias.double()


@pytest.mark.parametrize(("c_in", "c_out"), [(8, 8), (8, 5)])
def test_block_matches_slow_reference(tiny_target: TargetMesh, c_in: int, c_out: int) -> None:
    torch.manual_seed(0)
    lap = tiny_target.pyramid.laplacian(1)
    block = ResGCNBlock(c_in, c_out, lap, K=3).double()
    for p in block.parameters():  # non-trivial norm affines
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(2, lap.shape[0], c_in, dtype=torch.float64)
    ld = _dense(lap)
    act = torch.nn.functional.leaky_relu
    h = act(_slow_instance_norm(_slow_cheb(x, ld, block.conv1), block.norm1), 0.2)
    h = _slow_instance_norm(_slow_cheb(h, ld, block.conv2), block.norm2)
    skip = x if c_in == c_out else x @ block.shortcut.weight.T
    ref = act(h + skip, 0.2)
    torch.testing.assert_close(block(x), ref)
    assert isinstance(block.shortcut, torch.nn.Identity) == (c_in == c_out)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize(("c_in", "c_out"), [(6, 6), (6, 4)])
def test_block_inference_equals_training_forward(tiny_target: TargetMesh, norm: str,
                                                 residual: bool, c_in: int, c_out: int) -> None:
    # without autograd the block works in place on its intermediate results
    torch.manual_seed(3)
    lap = tiny_target.pyramid.laplacian(0)
    block = ResGCNBlock(c_in, c_out, lap, norm=norm, residual=residual).double().eval()
    for p in block.parameters():
        torch.nn.init.normal_(p, std=0.5)
    x = torch.randn(3, lap.shape[0], c_in, dtype=torch.float64)
    before = x.clone()
    with torch.no_grad():
        fast = block(x)
    assert torch.equal(x, before)
    torch.testing.assert_close(fast, block(x.requires_grad_()).detach(), rtol=1e-12, atol=1e-12)


def test_decoder_inference_equals_training_forward(tiny_target: TargetMesh) -> None:
    torch.manual_seed(4)
    dec = ResGCNDecoder(CODE, DecoderConfig(channels=(16, 8, 8)), tiny_target.pyramid).double()
    for p in dec.parameters():
        torch.nn.init.normal_(p, std=0.3)
    code = torch.randn(2, CODE, dtype=torch.float64)
    with torch.no_grad():
        fast = dec(code)
    torch.testing.assert_close(fast, dec(code).detach(), rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("norm", ["instance", "batch", "none"])
@pytest.mark.parametrize("residual", [True, False])
def test_block_options(tiny_target: TargetMesh, norm: str, residual: bool) -> None:
    lap = tiny_target.pyramid.laplacian(0)
    block = ResGCNBlock(4, 6, lap, norm=norm, residual=residual).eval()
    y = block(torch.randn(3, lap.shape[0], 4))
    assert y.shape == (3, lap.shape[0], 6)
    assert (block.shortcut is not None) == residual
    n_params = count_parameters(block)
    expected = 3 * 4 * 6 + 6 + 3 * 6 * 6 + 6 + (2 * 2 * 6 if norm != "none" else 0) \
        + (4 * 6 if residual else 0)
    assert n_params == expected


def test_instance_norm_equals_torch() -> None:
    norm = VertexNorm(5, "instance", n_verts=40)
    torch.nn.init.normal_(norm.weight)
    torch.nn.init.normal_(norm.bias)
    ref = torch.nn.InstanceNorm1d(5, affine=True)
    ref.load_state_dict({"weight": norm.weight.detach(), "bias": norm.bias.detach()})
    x = torch.randn(3, 40, 5) * 3 + 10
    torch.testing.assert_close(norm(x), ref(x.transpose(1, 2)).transpose(1, 2))
    vertex_major = x.transpose(0, 1).contiguous().transpose(0, 1)  # the convolutions' layout
    torch.testing.assert_close(norm(vertex_major), ref(x.transpose(1, 2)).transpose(1, 2))


def test_batch_norm_equals_torch() -> None:
    norm, ref = VertexNorm(5, "batch"), torch.nn.BatchNorm1d(5)
    x = torch.randn(3, 40, 5)
    torch.testing.assert_close(norm(x), ref(x.transpose(1, 2)).transpose(1, 2))
    norm.eval(), ref.eval()
    torch.testing.assert_close(norm(x), ref(x.transpose(1, 2)).transpose(1, 2))


def test_bad_norm_is_a_clear_error(tiny_target: TargetMesh) -> None:
    with pytest.raises(ConfigError, match="normalisation"):
        VertexNorm(4, "layer")
    with pytest.raises(ConfigError, match="norm"):
        DecoderConfig(norm="layer")


def test_decoder_shapes_per_level(tiny_target: TargetMesh) -> None:
    cfg = DecoderConfig(channels=(16, 8, 4))
    dec = ResGCNDecoder(CODE, cfg, tiny_target.pyramid)
    code = torch.randn(2, CODE)
    levels = dec.levels(code)
    sizes = tiny_target.level_sizes
    assert [tuple(f.shape) for f in levels] == [(2, sizes[2], 16), (2, sizes[1], 8), (2, sizes[0], 4)]
    assert dec(code).shape == (2, tiny_target.n_verts, 3)


def test_decoder_channels_must_match_levels(tiny_target: TargetMesh) -> None:
    with pytest.raises(ConfigError, match="one per level"):
        ResGCNDecoder(CODE, DecoderConfig(channels=(16, 8)), tiny_target.pyramid)


def decoder_parameter_count(code: int, channels: tuple[int, ...], coarse: int, K: int = 3) -> int:
    """The documented count (ResGCNDecoder's docstring)."""
    total = code * coarse * channels[0] + coarse * channels[0]
    prev = channels[0]
    for c in channels:
        total += K * prev * c + c + K * c * c + c + 4 * c + (prev * c if prev != c else 0)
        prev = c
    c = channels[-1]
    return total + K * c * c + c + K * c * 3 + 3


def test_decoder_parameter_count(tiny_target: TargetMesh) -> None:
    cfg = DecoderConfig(channels=(16, 8, 8))
    dec = ResGCNDecoder(CODE, cfg, tiny_target.pyramid)
    assert count_parameters(dec) == decoder_parameter_count(CODE, cfg.channels,
                                                            tiny_target.level_sizes[-1])


def test_documented_parameter_counts() -> None:
    """The counts in ResGCNDecoder's docstring (the ICT face and the paper's BFM decoder)."""
    from facegcn_lib.mesh.pyramid import level_sizes

    ict = decoder_parameter_count(256, (128, 64, 32, 16, 16), level_sizes(9409, 4, 5)[-1])
    bfm = decoder_parameter_count(256, (128, 64, 32, 32, 16, 16), level_sizes(53215, 4, 6)[-1])
    assert (ict, bfm) == (1_378_595, 1_878_371)
    assert "1,378,595" in (ResGCNDecoder.__doc__ or "") and "1,878,371" in (ResGCNDecoder.__doc__ or "")


def test_every_parameter_gets_a_gradient(tiny_target: TargetMesh) -> None:
    torch.manual_seed(1)
    dec = ResGCNDecoder(CODE, DecoderConfig(channels=(16, 8, 8), norm="batch"), tiny_target.pyramid)
    dec(torch.randn(3, CODE)).square().sum().backward()
    for name, p in dec.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_batched_equals_per_sample(tiny_target: TargetMesh, norm: str) -> None:
    torch.manual_seed(2)
    dec = ResGCNDecoder(CODE, DecoderConfig(channels=(16, 8, 8), norm=norm), tiny_target.pyramid)
    dec.eval()
    code = torch.randn(4, CODE)
    with torch.no_grad():
        batched = dec(code)
        single = torch.cat([dec(code[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(batched, single, atol=1e-5, rtol=1e-5)


def test_decoder_dtype_and_device_moves(tiny_target: TargetMesh) -> None:
    dec = ResGCNDecoder(CODE, DecoderConfig(channels=(16, 8, 8)), tiny_target.pyramid).double()
    out = dec(torch.randn(2, CODE, dtype=torch.float64))
    assert out.dtype == torch.float64
    if torch.cuda.is_available():
        assert dec.float().cuda()(torch.randn(2, CODE, device="cuda")).device.type == "cuda"


# --- vertex resampling -----------------------------------------------------------------------

def _random_sparse(rows: int, cols: int, seed: int = 0) -> sp.csr_matrix:
    m = sp.random(rows, cols, density=0.2, random_state=seed, format="lil")
    m[0] = 0  # an empty row
    return sp.csr_matrix(m)


def test_ell_matmul_equals_dense() -> None:
    m = _random_sparse(30, 20)
    index, value = ell_arrays(m)
    assert index.shape[0] == np.diff(m.indptr).max()
    x = torch.randn(20, 7, dtype=torch.float64)
    torch.testing.assert_close(ell_matmul(index, value.double(), x),
                               torch.from_numpy(m.toarray()) @ x, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kernel", ["sparse", "gather", "dense"])
def test_resample_kernels_forward_and_backward(kernel: str) -> None:
    m = _random_sparse(30, 20, seed=3)
    res = VertexResample(m, kernel=kernel)  # type: ignore[arg-type]
    x = torch.randn(3, 20, 5, requires_grad=True)
    y = res(x)
    dense = torch.from_numpy(m.toarray()).float()
    ref = torch.einsum("rc,bcf->brf", dense, x)
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(y)
    (gx,) = torch.autograd.grad(y, x, g)
    torch.testing.assert_close(gx, torch.einsum("rc,brf->bcf", dense, g), atol=1e-5, rtol=1e-5)


def test_resample_rejects_wrong_vertex_count() -> None:
    res = VertexResample(_random_sparse(30, 20))
    with pytest.raises(ValueError, match=r"\(B, 20, F\)"):
        res(torch.randn(1, 21, 3))
