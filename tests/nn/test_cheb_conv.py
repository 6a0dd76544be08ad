"""Tests of ChebConv: against spectral filtering done the slow way, PyG, and gradcheck."""

from __future__ import annotations

import copy
import io
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from facegcn_lib.mesh.graph import mesh_graph, normalized_laplacian
from facegcn_lib.nn.cheb_conv import (
    ChebConv,
    ChebConvError,
    cheb_laplacian,
    chebyshev_basis,
    chebyshev_transpose_sum,
)
from tests.meshes import grid_mesh

VERTS, FACES = grid_mesh(5, 6, bumped=True)
V = len(VERTS)


def make_layer(f_in: int = 3, f_out: int = 4, K: int = 3, bias: bool = True,
               seed: int = 0, **lap_kw: object) -> ChebConv:
    torch.manual_seed(seed)
    lap = cheb_laplacian(VERTS, FACES, dtype=torch.float64, **lap_kw)  # type: ignore[arg-type]
    layer = ChebConv(f_in, f_out, lap, K=K, bias=bias)
    if layer.bias is not None:
        torch.nn.init.normal_(layer.bias)  # non-zero, so that the bias is tested too
    return layer.double()


def spectral_reference(layer: ChebConv, x: torch.Tensor, exact: bool = True) -> torch.Tensor:
    """``sum_k U T_k(Lambda~) U^T x Theta_k + b`` from a full eigendecomposition of L."""
    lap = normalized_laplacian(FACES, V).toarray()
    lam, U = np.linalg.eigh(lap)
    lmax = lam[-1] if exact else 2.0
    lam_s = 2.0 * lam / lmax - 1.0
    out = np.zeros((*x.shape[:-1], layer.out_channels))
    xs = x.detach().double().numpy()
    for k in range(layer.K):
        g = np.polynomial.chebyshev.chebval(lam_s, np.eye(layer.K)[k])  # T_k(lambda~)
        filt = U @ np.diag(g) @ U.T
        out += np.einsum("uv,bvf,fo->buo", filt, xs, layer.weight[k].detach().double().numpy())
    if layer.bias is not None:
        out += layer.bias.detach().double().numpy()
    return torch.from_numpy(out)


@pytest.mark.parametrize("K", [1, 2, 3, 5])
@pytest.mark.parametrize("exact", [True, False])
def test_equals_spectral_filtering_the_slow_way(K: int, exact: bool) -> None:
    layer = make_layer(K=K, exact=exact)
    x = torch.randn(2, V, 3, dtype=torch.float64)
    torch.testing.assert_close(layer(x), spectral_reference(layer, x, exact), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize(("f_in", "f_out"), [(3, 4), (4, 4), (6, 4), (16, 3), (5, 1)])
@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_inference_equals_spectral_filtering_and_the_training_forward(
        f_in: int, f_out: int, K: int, bias: bool) -> None:
    # without autograd the layer mixes channels first where F_out <= F_in (Clenshaw's sum, in
    # place; one transposed product below NARROW_OUTPUT channels) and builds the basis otherwise
    layer = make_layer(f_in, f_out, K=K, bias=bias)
    x = torch.randn(3, V, f_in, dtype=torch.float64)
    with torch.no_grad():
        fast = layer(x)
        single = layer(x[1])
    train = layer(x.requires_grad_())
    assert train.requires_grad and not fast.requires_grad
    torch.testing.assert_close(fast, train.detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast, spectral_reference(layer, x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(single, fast[1], rtol=1e-12, atol=1e-12)


def test_inference_leaves_its_input_alone_and_runs_in_float32() -> None:
    layer = make_layer(4, 4).float()
    x = torch.randn(2, V, 4)
    before = x.clone()
    with torch.no_grad():
        y = layer(x)
    assert torch.equal(x, before) and y.dtype == torch.float32
    torch.testing.assert_close(y.double(), spectral_reference(layer, x.double()).float().double(),
                               rtol=1e-4, atol=1e-4)


def test_batched_equals_per_sample_and_unbatched() -> None:
    layer = make_layer()
    x = torch.randn(4, V, 3, dtype=torch.float64)
    y = layer(x)
    for b in range(4):
        torch.testing.assert_close(y[b], layer(x[b : b + 1])[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(y[b], layer(x[b]), rtol=1e-12, atol=1e-12)
    assert layer(x[0]).shape == (V, 4)


def test_non_contiguous_input_and_stacking() -> None:
    layer, nxt = make_layer(3, 3), make_layer(3, 2, seed=1)
    x = torch.randn(V, 2, 3, dtype=torch.float64).transpose(0, 1)  # a (B, V, F) view
    y = nxt(torch.relu(layer(x)))
    ref = nxt(torch.relu(layer(x.contiguous())).contiguous())
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    assert y.contiguous().view(2, -1).shape == (2, V * 2)


@pytest.mark.parametrize("K", [1, 2, 3, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_float64(K: int, bias: bool) -> None:
    layer = make_layer(2, 3, K=K, bias=bias)
    x = torch.randn(2, V, 2, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, *params: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, dict(zip(names, params, strict=True)), (x,))

    names = [n for n, _ in layer.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in layer.named_parameters())
    assert torch.autograd.gradcheck(fn, (x, *params), fast_mode=True)


def test_gradcheck_float64_full_jacobian_on_a_tiny_mesh() -> None:
    verts, faces = grid_mesh(3, 3, bumped=True)
    lap = cheb_laplacian(verts, faces, dtype=torch.float64)
    layer = ChebConv(2, 2, lap, K=3).double()
    x = torch.randn(1, len(verts), 2, dtype=torch.float64, requires_grad=True)
    weight = layer.weight.detach().clone().requires_grad_()
    bias = torch.randn(2, dtype=torch.float64, requires_grad=True)

    def fn(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    assert torch.autograd.gradcheck(fn, (x, weight, bias))


def test_backward_matches_dense_autograd() -> None:
    layer = make_layer(3, 4)
    x = torch.randn(3, V, 3, dtype=torch.float64, requires_grad=True)
    gy = torch.randn(3, V, 4, dtype=torch.float64)
    layer(x).backward(gy)
    got = (x.grad, layer.weight.grad, layer.bias.grad)  # type: ignore[union-attr]
    lap = layer.laplacian.to_dense()
    x2 = x.detach().clone().requires_grad_()
    w2 = layer.weight.detach().clone().requires_grad_()
    b2 = layer.bias.detach().clone().requires_grad_()  # type: ignore[union-attr]
    terms = [x2, lap @ x2]
    terms.append(2 * lap @ terms[1] - terms[0])
    (sum(t @ w2[k] for k, t in enumerate(terms)) + b2).backward(gy)
    for a, b in zip(got, (x2.grad, w2.grad, b2.grad), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_clenshaw_is_the_adjoint_of_the_basis() -> None:
    lap = cheb_laplacian(VERTS, FACES, dtype=torch.float64)
    x = torch.randn(V, 5, dtype=torch.float64)
    cs = [torch.randn(V, 5, dtype=torch.float64) for _ in range(4)]
    lhs = sum((t * c).sum() for t, c in zip(chebyshev_basis(lap, x, 4), cs, strict=True))
    rhs = (x * chebyshev_transpose_sum(lap, cs)).sum()
    torch.testing.assert_close(lhs, rhs)


@pytest.mark.parametrize("exact", [True, False])
def test_equals_torch_geometric(exact: bool) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        from torch_geometric.nn import ChebConv as PygChebConv

    layer = make_layer(3, 4, K=3, exact=exact)
    pyg = PygChebConv(3, 4, K=3).double()
    with torch.no_grad():
        for k, lin in enumerate(pyg.lins):
            lin.weight.copy_(layer.weight[k].T)
        pyg.bias.copy_(layer.bias)
    w = mesh_graph(FACES, V).adjacency.tocoo()
    edge_index = torch.from_numpy(np.vstack([w.row, w.col]).astype(np.int64))
    x = torch.randn(2, V, 3, dtype=torch.float64)
    # PyG scales by 2 * max(edge weight) = 2 unless lambda_max is given
    lmax = torch.tensor(mesh_graph(FACES, V).lambda_max(), dtype=torch.float64) if exact else None
    torch.testing.assert_close(layer(x), pyg(x, edge_index, lambda_max=lmax), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-5), (torch.float64, 1e-12),
                                            (torch.bfloat16, 5e-2)])
def test_dtypes(dtype: torch.dtype, tol: float) -> None:
    ref_layer = make_layer()
    x = torch.randn(2, V, 3, dtype=torch.float64)
    ref = ref_layer(x).detach()
    layer = copy.deepcopy(ref_layer).to(dtype)
    assert layer.laplacian.dtype == dtype and layer.weight.dtype == dtype
    xd = x.to(dtype).requires_grad_()
    y = layer(xd)
    assert y.dtype == dtype and y.shape == (2, V, 4)
    torch.testing.assert_close(y.double(), ref, rtol=tol, atol=tol * float(ref.abs().max()))
    y.float().square().sum().backward()
    assert xd.grad is not None and xd.grad.dtype == dtype and torch.isfinite(xd.grad).all()
    assert layer.weight.grad is not None and layer.weight.grad.dtype == dtype


def test_float64_input_to_float32_layer_computes_in_input_dtype() -> None:
    layer = make_layer().float()
    x = torch.randn(2, V, 3, dtype=torch.float64)
    assert layer(x).dtype == torch.float64


def test_coo_and_scipy_laplacians_give_the_same_output() -> None:
    layer = make_layer()
    x = torch.randn(2, V, 3, dtype=torch.float64)
    coo = ChebConv(3, 4, cheb_laplacian(VERTS, FACES, layout="coo", dtype=torch.float64), K=3)
    scipy_lap = ChebConv(3, 4, mesh_graph(FACES, V).scaled_laplacian(), K=3)
    for other, tol in ((coo.double(), 1e-12), (scipy_lap.double(), 1e-6)):  # scipy -> float32
        other.load_state_dict(layer.state_dict())
        torch.testing.assert_close(other(x), layer(x), rtol=tol, atol=tol)
    assert coo.laplacian.layout == torch.sparse_coo
    assert scipy_lap.laplacian.layout == torch.sparse_csr


def test_repr() -> None:
    layer = ChebConv(16, 32, cheb_laplacian(VERTS, FACES), K=3)
    assert repr(layer) == "ChebConv(16, 32, K=3, num_verts=30, bias=True, laplacian=csr)"
    assert "bias=False" in repr(ChebConv(1, 2, cheb_laplacian(VERTS, FACES), bias=False))
    assert ChebConv.__doc__ is not None and "Eq. 1-2" in ChebConv.__doc__


def test_deepcopy_and_pickle_keep_a_shared_laplacian_shared() -> None:
    lap = cheb_laplacian(VERTS, FACES)
    model = torch.nn.Sequential(ChebConv(3, 4, lap), torch.nn.ReLU(), ChebConv(4, 2, lap))
    clone = copy.deepcopy(model)
    assert clone[0].laplacian is clone[2].laplacian
    assert clone[0].laplacian is not lap
    x = torch.randn(2, V, 3)
    torch.testing.assert_close(clone(x), model(x))
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    torch.testing.assert_close(torch.load(buf, weights_only=False)(x), model(x))


def test_buffer_follows_module_moves_and_stays_out_of_state_dict() -> None:
    layer = ChebConv(3, 4, cheb_laplacian(VERTS, FACES), K=3)
    assert "laplacian" in dict(layer.named_buffers())
    assert set(layer.state_dict()) == {"weight", "bias"}
    moved = layer.to(torch.float64).cpu()
    assert moved.laplacian.dtype == torch.float64 and moved.laplacian.device.type == "cpu"
    assert moved.laplacian.layout == torch.sparse_csr
    fresh = ChebConv(3, 4, cheb_laplacian(VERTS, FACES), K=3).double()
    fresh.load_state_dict(moved.state_dict())
    x = torch.randn(1, V, 3, dtype=torch.float64)
    torch.testing.assert_close(fresh(x), moved(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_matches_cpu(dtype: torch.dtype) -> None:
    layer = make_layer().float()
    x = torch.randn(2, V, 3)
    ref = layer(x)
    gpu = copy.deepcopy(layer).to("cuda", dtype)
    assert gpu.laplacian.is_cuda
    xg = x.to("cuda", dtype).requires_grad_()
    y = gpu(xg)
    y.float().sum().backward()
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(y.float().cpu(), ref, rtol=tol, atol=tol * float(ref.abs().max()))


def test_cheb_laplacian_is_cached_and_scaled() -> None:
    a = cheb_laplacian(VERTS, FACES)
    assert cheb_laplacian(VERTS.copy(), FACES.copy()) is a
    assert cheb_laplacian(V, FACES) is a
    assert cheb_laplacian(VERTS, FACES, exact=False) is not a
    np.testing.assert_allclose(a.to_dense().numpy(),
                               mesh_graph(FACES, V).scaled_laplacian().toarray(), atol=1e-6)
    eig = np.linalg.eigvalsh(a.to_dense().double().numpy())
    assert eig[0] == pytest.approx(-1.0, abs=1e-5) and eig[-1] == pytest.approx(1.0, abs=1e-5)
    layer = ChebConv.from_mesh(3, 4, VERTS, FACES)
    assert layer.laplacian is a and layer.K == 3


@pytest.mark.parametrize(("f_in", "f_out", "K", "match"), [
    (0, 4, 3, "in_channels"),
    (3, 2.0, 3, "out_channels"),
    (3, 4, 0, "K must be"),
])
def test_bad_arguments(f_in: int, f_out: int, K: int, match: str) -> None:
    with pytest.raises(ChebConvError, match=match):
        ChebConv(f_in, f_out, cheb_laplacian(VERTS, FACES), K=K)


def test_bad_laplacians_and_inputs() -> None:
    with pytest.raises(ChebConvError, match="symmetric"):
        ChebConv(3, 4, sp.csr_matrix(np.triu(np.ones((V, V)))))
    with pytest.raises(ChebConvError, match="sparse"):
        ChebConv(3, 4, torch.eye(V))
    with pytest.raises(ChebConvError, match="square"):
        ChebConv(3, 4, sp.csr_matrix(np.ones((V, V + 1))))
    layer = make_layer()
    with pytest.raises(ChebConvError, match=r"\(B, 30, 3\)"):
        layer(torch.randn(2, V + 1, 3, dtype=torch.float64))
    with pytest.raises(ChebConvError, match=r"\(B, 30, 3\)"):
        layer(torch.randn(2, V, 5, dtype=torch.float64))
    with pytest.raises(ChebConvError, match="floating"):
        layer(torch.ones(2, V, 3, dtype=torch.int64))


def test_runs_under_cpu_autocast_bfloat16() -> None:
    """Mixed precision on the CPU: autocast must not recast the layer's own products."""
    layer = make_layer().float()
    x = torch.randn(2, V, 3, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = torch.nn.functional.linear(x, torch.eye(3))  # an autocast op: h is bfloat16
        y = layer(h)
    assert y.dtype == torch.bfloat16
    y.float().square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()
