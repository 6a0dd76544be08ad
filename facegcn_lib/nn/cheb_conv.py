r"""The Chebyshev spectral graph convolution on a fixed mesh (the paper's Eq. 1-2).

A spectral filter ``g`` acts on a signal ``x`` over the mesh's vertices through the graph
Fourier basis ``Phi`` (the eigenvectors of the normalized Laplacian ``L = Phi Lambda Phi^T``):
``y = Phi g(Lambda) Phi^T x``. Choosing ``g`` as a polynomial of degree ``K - 1`` in Chebyshev form
(Defferrard et al., 2016) removes the eigendecomposition:

.. math::

    g_\theta(\tilde L) = \sum_{k=0}^{K-1} \theta_k T_k(\tilde L), \qquad
    \tilde L = \frac{2 L}{\lambda_{\max}} - I,                                   \qquad (1)

    T_0 = I, \quad T_1 = \tilde L, \quad T_k = 2 \tilde L T_{k-1} - T_{k-2},       \qquad (2)

so that ``y = sum_k T_k(L~) x theta_k`` costs ``K - 1`` sparse products. With ``F_in`` input and
``F_out`` output channels each ``theta_k`` is an ``(F_in, F_out)`` matrix.

See :doc:`chapter 1 </chapters/01_spectral_convolution>`.
"""

from __future__ import annotations

import copy
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from numpy.typing import NDArray
from torch import nn
from torch.autograd.function import once_differentiable

from facegcn_lib.mesh.graph import mesh_graph
from facegcn_lib.nn.sparse import (
    Layout,
    is_symmetric,
    sparse_addmm,
    sparse_addmm_,
    sparse_mm,
    to_torch_sparse,
)

#: The paper's Chebyshev order (filters are polynomials of degree K - 1 = 2: 2-ring support).
PAPER_K = 3
#: How many Laplacian tensors :func:`cheb_laplacian` keeps.
LAPLACIAN_CACHE_SIZE = 32
#: At inference, a layer with fewer output channels than this mixes its K terms in one
#: product with the transposed output, ``(K F_out, F_in) @ (F_in, V B)``: BLAS is several
#: times slower on a tall product with so few columns (e.g. the decoder's last layer, to x, y, z).
NARROW_OUTPUT = 8
#: The weight gradient ``T_k^T G`` reduces over B * V rows; split into up to this many blocks,
#: it runs as a batched product on every thread (one long reduction runs on one thread).
WEIGHT_GRAD_SPLIT = 16


class ChebConvError(ValueError):
    """Bad arguments or input to :class:`ChebConv`; the message says what was expected."""


# --- the math, as plain tensor functions ------------------------------------------------------

def chebyshev_basis(laplacian: torch.Tensor, x: torch.Tensor, K: int) -> list[torch.Tensor]:
    """The Chebyshev terms ``T_k(L~) x`` for ``k = 0 .. K-1`` (Eq. 2), without autograd.

    Args:
        laplacian: (V, V) sparse scaled Laplacian ``L~``.
        x: (V, N) dense signals, one per column.
        K: the number of terms.

    Returns:
        ``K`` tensors (V, N); the first is ``x`` itself.
    """
    terms = [x]
    if K > 1:
        terms.append(sparse_mm(laplacian, x))
    for _ in range(2, K):
        terms.append(sparse_addmm(terms[-2], laplacian, terms[-1], beta=-1.0, alpha=2.0))
    return terms


def chebyshev_transpose_sum(laplacian: torch.Tensor, coeffs: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k T_k(L~) c_k`` by Clenshaw's recurrence (``K - 1`` sparse products), no autograd.

    With ``b_K = b_{K+1} = 0`` and ``b_k = c_k + 2 L~ b_{k+1} - b_{k+2}``, the sum is
    ``c_0 + L~ b_1 - b_2``. For a symmetric ``L~`` this is the adjoint of
    :func:`chebyshev_basis`, i.e. the backward pass of the layer.

    Args:
        laplacian: (V, V) sparse scaled Laplacian.
        coeffs: ``K`` dense (V, N) tensors ``c_k``.
    """
    return _clenshaw(laplacian, coeffs, sparse_addmm)


def _clenshaw(laplacian: torch.Tensor, coeffs: list[torch.Tensor],
              addmm: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Clenshaw's recurrence for ``sum_k T_k(L~) c_k``, its products ``c + alpha L~ b`` by ``addmm``."""
    K = len(coeffs)
    if K == 1:
        return coeffs[0]
    b2: torch.Tensor | None = None
    b1 = coeffs[K - 1]
    for k in range(K - 2, 0, -1):
        nxt = addmm(coeffs[k], laplacian, b1, alpha=2.0)
        if b2 is not None:
            nxt = nxt.sub_(b2)
        b2, b1 = b1, nxt
    out = addmm(coeffs[0], laplacian, b1)
    return out.sub_(b2) if b2 is not None else out


def chebyshev_sum_(laplacian: torch.Tensor, coeffs: list[torch.Tensor]) -> torch.Tensor:
    """``sum_k T_k(L~) c_k`` by Clenshaw's recurrence, overwriting the ``c_k``; no autograd.

    :func:`chebyshev_transpose_sum` for inference: on the CPU every sparse product
    accumulates into a ``c_k`` in place (:func:`~facegcn_lib.nn.sparse.sparse_addmm_`), so
    the sum needs no buffer of its own. The ``c_k`` must be contiguous (V, N) tensors that
    the caller no longer needs; the result may share memory with ``c_0``.
    """
    return _clenshaw(laplacian, coeffs, sparse_addmm_)


def cheb_conv_inference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                        laplacian: torch.Tensor) -> torch.Tensor:
    """``sum_k T_k(L~) x W_k + b`` without autograd, in the cheaper of two orders.

    With fewer output than input channels (or as many), the channels are mixed first,
    ``c_k = x W_k`` (one product per term, the bias folded into ``c_0``), and Clenshaw's
    recurrence sums ``T_k(L~) c_k`` (:func:`chebyshev_sum_`): the sparse products run on
    ``F_out`` columns instead of ``F_in``, in place. Otherwise the Chebyshev basis of ``x`` is
    built first, as in training. The result equals the training forward up to round-off.

    Args:
        x: (B, V, F_in). weight: (K, F_in, F_out). bias: (F_out,) or ``None``.
        laplacian: (V, V) sparse, symmetric.

    Returns:
        (B, V, F_out), a (B, V) view of a vertex-major buffer (like :class:`ChebConv`'s).
    """
    B, V, F_in = x.shape
    K, _, F_out = weight.shape
    if F_out > F_in or K == 1:
        x0 = x.transpose(0, 1).reshape(V, B * F_in)
        terms = chebyshev_basis(laplacian, x0, K)
        rows = [t.reshape(V * B, F_in) for t in terms]
        out = torch.addmm(bias, rows[0], weight[0]) if bias is not None else rows[0] @ weight[0]
        for k in range(1, K):
            out.addmm_(rows[k], weight[k])
    else:
        rows0 = x.transpose(0, 1).reshape(V * B, F_in)
        if F_out < NARROW_OUTPUT:  # all K products at once, transposed: (K F_out, V B)
            mixed = weight.transpose(1, 2).reshape(K * F_out, F_in) @ rows0.t()
            coeffs = [mixed[k * F_out:(k + 1) * F_out].t().contiguous().view(V, B * F_out)
                      for k in range(K)]
            if bias is not None:
                coeffs[0].view(V * B, F_out).add_(bias)
        else:
            # (F_out, F_in) weights passed transposed: MKL's kernel for a tall product is up
            # to twice as fast with the small operand in this layout
            w_t = weight.transpose(1, 2).contiguous()
            coeffs = [(torch.addmm(bias, rows0, w_t[k].t()) if k == 0 and bias is not None
                       else rows0 @ w_t[k].t()).view(V, B * F_out) for k in range(K)]
        out = chebyshev_sum_(laplacian, coeffs)
    return out.view(V, B, F_out).transpose(0, 1)


def _split_rows(n: int, most: int = WEIGHT_GRAD_SPLIT) -> int:
    """The largest divisor of ``n`` that is at most ``most``."""
    return next(c for c in range(min(most, n), 0, -1) if n % c == 0)


def _weight_grad(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``t^T g`` for tall (N, F_in) ``t`` and (N, F_out) ``g``, reduced blockwise over N."""
    n, c = t.shape[0], _split_rows(t.shape[0])
    blocks = torch.bmm(t.view(c, n // c, -1).transpose(1, 2), g.view(c, n // c, -1))
    return blocks.sum(dim=0)


class _ChebConvFunction(torch.autograd.Function):
    """``y = sum_k T_k(L~) x W_k + b`` with a hand-written backward.

    Batch and channels are folded into columns, so each Chebyshev step is one sparse product
    on a (V, B * F_in) matrix, and each term is mixed by one dense product with ``W_k``
    accumulated into the output (cheaper than stacking the terms for one wide product). The
    backward uses ``L~^T = L~`` (symmetric): the input's gradient is Clenshaw's sum of
    ``T_k(L~)`` applied to the output gradient mixed by ``W_k^T``, again ``K - 1`` sparse
    products.
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                laplacian: torch.Tensor) -> torch.Tensor:
        B, V, F_in = x.shape
        K, _, F_out = weight.shape
        x0 = x.transpose(0, 1).reshape(V, B * F_in)  # (V, B*F_in); free if x came from us
        terms = chebyshev_basis(laplacian, x0, K)
        rows = [t.reshape(V * B, F_in) for t in terms]  # row v*B + b: vertex v of sample b
        out = torch.addmm(bias, rows[0], weight[0]) if bias is not None else rows[0] @ weight[0]
        for k in range(1, K):
            out.addmm_(rows[k], weight[k])
        ctx.save_for_backward(weight, laplacian, *terms)
        ctx.shape = (B, V, F_in, F_out, K)
        return out.view(V, B, F_out).transpose(0, 1)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        weight, laplacian, *terms = ctx.saved_tensors
        B, V, F_in, F_out, K = ctx.shape
        need_x, need_w, need_b, _ = ctx.needs_input_grad
        g = grad_out.transpose(0, 1).reshape(V * B, F_out)  # free for our own (B, V) views
        grad_x = grad_w = grad_b = None
        if need_b:
            grad_b = g.sum(dim=0)
        if need_w:
            grad_w = torch.stack([_weight_grad(t.reshape(V * B, F_in), g) for t in terms])
        if need_x:
            coeffs = [(g @ weight[k].T).view(V, B * F_in) for k in range(K)]
            gx = chebyshev_transpose_sum(laplacian, coeffs)
            grad_x = gx.view(V, B, F_in).transpose(0, 1)
        return grad_x, grad_w, grad_b, None


# --- the module -----------------------------------------------------------------------------

def _as_laplacian_tensor(laplacian: Any) -> torch.Tensor:
    if isinstance(laplacian, torch.Tensor):
        if laplacian.layout not in (torch.sparse_csr, torch.sparse_coo):
            raise ChebConvError("laplacian must be sparse (torch sparse CSR/COO or scipy.sparse), "
                                f"got a {laplacian.layout} tensor; convert it with "
                                "facegcn_lib.nn.sparse.to_torch_sparse")
        t = laplacian.detach() if laplacian.requires_grad else laplacian
        dtype = t.dtype if t.is_floating_point() else torch.get_default_dtype()
        return t.coalesce().to(dtype) if t.layout == torch.sparse_coo else t.to(dtype)
    if sp.issparse(laplacian):
        return to_torch_sparse(laplacian, layout="csr")
    raise ChebConvError(f"laplacian must be a torch sparse tensor or a scipy.sparse matrix, got "
                        f"{type(laplacian).__name__}; build one with cheb_laplacian(verts, faces)")


class ChebConv(nn.Module):
    r"""Chebyshev graph convolution over a fixed mesh, on batches of per-vertex features.

    .. math::

        Y_b = \sum_{k=0}^{K-1} T_k(\tilde L) X_b \Theta_k + \mathbf{1} \beta^T,
        \qquad T_0 = I,\ T_1 = \tilde L,\ T_k = 2 \tilde L T_{k-1} - T_{k-2}

    for each sample ``b``, with ``L~ = 2 L / lambda_max - I`` the scaled normalized Laplacian
    (the paper's Eq. 1-2, Defferrard et al. 2016). ``T_k(L~)`` only mixes vertices up to ``k``
    edges apart, so the filter is ``K - 1``-hop local. Equal, for the same weights, to
    ``torch_geometric.nn.ChebConv(F_in, F_out, K)`` given the same ``lambda_max``.

    Args:
        in_channels: F_in, features per vertex in.
        out_channels: F_out, features per vertex out.
        laplacian: the (V, V) *scaled* Laplacian ``L~`` (symmetric), as a scipy.sparse matrix
            or a torch sparse CSR/COO tensor; see :func:`cheb_laplacian`. It is stored as the
            non-persistent buffer ``laplacian`` (it follows ``.to(device)`` and ``.double()``,
            and stays out of the ``state_dict``: rebuild the layer from its mesh to load weights).
        K: Chebyshev order, the number of terms (the paper: 3). ``K = 1`` is a per-vertex linear map.
        bias: learn an additive bias ``beta`` (F_out,).

    Shapes:
        - input ``x``: (B, V, F_in), or (V, F_in) for one sample.
        - output: (B, V, F_out), or (V, F_out); same dtype and device as ``x``.

    Attributes:
        weight: (K, F_in, F_out), ``weight[k]`` is ``Theta_k``; Glorot-uniform per ``k``.
        bias: (F_out,) zeros at initialisation, or ``None``.

    Notes:
        CSR is the fast layout (CPU: MKL, CUDA: cuSPARSE); float32, float64 and bfloat16 work on
        both (on the CPU the sparse products of half/bfloat16 inputs run in float32). The output
        is a (B, V)-ordered view of a vertex-major buffer: the next ``ChebConv`` reads it without
        a copy, elementwise ops keep that layout, and ``.contiguous()`` gives a packed tensor.
        The backward is hand-written (first derivatives only, no double backward). When no
        gradient is needed (``torch.no_grad``, inference mode, or nothing requiring one) the
        forward is :func:`cheb_conv_inference`: the same result, with fewer and cheaper products.

    See :doc:`chapter 1 </chapters/01_spectral_convolution>`.
    """

    laplacian: torch.Tensor

    def __init__(self, in_channels: int, out_channels: int, laplacian: Any, K: int = PAPER_K,
                 bias: bool = True) -> None:
        super().__init__()
        for name, val in (("in_channels", in_channels), ("out_channels", out_channels), ("K", K)):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ChebConvError(f"{name} must be a positive int, got {val!r}")
        lap = _as_laplacian_tensor(laplacian)
        if lap.dim() != 2 or lap.shape[0] != lap.shape[1]:
            raise ChebConvError(f"laplacian must be a square (V, V) matrix, got {tuple(lap.shape)}")
        if not is_symmetric(lap):
            raise ChebConvError("laplacian must be symmetric (the scaled Laplacian of an undirected "
                                "mesh); build it with cheb_laplacian(verts, faces)")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.K = K
        self.register_buffer("laplacian", lap, persistent=False)
        self.weight = nn.Parameter(torch.empty(K, in_channels, out_channels))
        if bias:
            self.bias: nn.Parameter | None = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    @classmethod
    def from_mesh(cls, in_channels: int, out_channels: int, verts: NDArray | int,
                  faces: NDArray, K: int = PAPER_K, bias: bool = True,
                  exact: bool = True) -> ChebConv:
        """A layer over the mesh ``(verts, faces)`` (see :func:`cheb_laplacian`)."""
        return cls(in_channels, out_channels, cheb_laplacian(verts, faces, exact=exact), K, bias)

    def __deepcopy__(self, memo: dict[int, Any]) -> ChebConv:
        # torch cannot deep-copy a sparse CSR tensor; clone it (once per shared tensor) ourselves
        lap = self._buffers["laplacian"]
        if lap is not None and id(lap) not in memo:
            memo[id(lap)] = lap.clone()
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            new.__dict__[name] = copy.deepcopy(value, memo)
        return new

    @property
    def num_verts(self) -> int:
        """V, the number of mesh vertices."""
        return int(self.laplacian.shape[0])

    def reset_parameters(self) -> None:
        """Glorot-uniform ``Theta_k`` (fan-in F_in, fan-out F_out) and a zero bias, as PyG."""
        bound = math.sqrt(6.0 / (self.in_channels + self.out_channels))
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Filter ``x`` (B, V, F_in) or (V, F_in) -> (B, V, F_out) or (V, F_out)."""
        single = x.dim() == 2
        xb = x.unsqueeze(0) if single else x
        if xb.dim() != 3 or xb.shape[1] != self.num_verts or xb.shape[2] != self.in_channels:
            raise ChebConvError(
                f"{self.__class__.__name__} expects x of shape (B, {self.num_verts}, "
                f"{self.in_channels}) or ({self.num_verts}, {self.in_channels}), got "
                f"{tuple(x.shape)}")
        if not xb.is_floating_point():
            raise ChebConvError(f"x must be a floating tensor, got {x.dtype}")
        if xb.device != self.weight.device or xb.device != self.laplacian.device:
            raise ChebConvError(f"x is on {xb.device} but the layer is on {self.weight.device}; "
                                "move one with .to(device)")
        weight = self.weight.to(xb.dtype)
        bias = self.bias.to(xb.dtype) if self.bias is not None else None
        # the layer computes in x's dtype: autocast must not recast its dense products
        with torch.autocast(xb.device.type, enabled=False):
            out: torch.Tensor
            if torch.is_grad_enabled() and (xb.requires_grad or self.weight.requires_grad or (
                    self.bias is not None and self.bias.requires_grad)):
                out = _ChebConvFunction.apply(xb, weight, bias, self.laplacian)
            else:  # inference: no terms kept for a backward, the cheaper order of products
                out = cheb_conv_inference(xb, weight, bias, self.laplacian)
        return out[0] if single else out

    def extra_repr(self) -> str:
        layout = str(self.laplacian.layout).removeprefix("torch.sparse_")
        return (f"{self.in_channels}, {self.out_channels}, K={self.K}, "
                f"num_verts={self.num_verts}, bias={self.bias is not None}, laplacian={layout}")


# --- building the Laplacian of a mesh ---------------------------------------------------------

_TENSOR_CACHE: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
_TENSOR_CACHE_LOCK = threading.Lock()


def cheb_laplacian(verts: NDArray | int, faces: NDArray, *, exact: bool = True,
                   layout: Layout = "csr", dtype: torch.dtype | None = None,
                   device: torch.device | str | None = None) -> torch.Tensor:
    """The scaled Laplacian ``2 L / lambda_max - I`` of a mesh, ready for :class:`ChebConv`.

    Built once per mesh topology and cached (the scipy matrices by
    :func:`facegcn_lib.mesh.graph.mesh_graph`, the tensor here): a second call with the same
    triangles returns the same tensor. Do not modify it in place.

    Args:
        verts: (V, 3) vertex positions (only their number V is used: the Laplacian depends on
            the connectivity alone), or V itself.
        faces: (F, 3) int triangles, 0-based.
        exact: scale by the exact ``lambda_max`` of the normalized Laplacian (a Lanczos
            iteration, :func:`~facegcn_lib.mesh.graph.lambda_max`: a fraction of a second for
            53,215 vertices) or by its bound 2 (PyG's default).
        layout: ``"csr"`` (fast) or ``"coo"``.
        dtype: values' dtype (default :func:`torch.get_default_dtype`).
        device: where to put it (default CPU).

    Returns:
        (V, V) torch sparse tensor.
    """
    n_verts = int(verts) if isinstance(verts, (int, np.integer)) else len(verts)
    graph = mesh_graph(faces, n_verts)
    dtype = dtype or torch.get_default_dtype()
    key = (graph.key, exact, layout, dtype, str(torch.device(device or "cpu")))
    with _TENSOR_CACHE_LOCK:
        hit = _TENSOR_CACHE.get(key)
        if hit is not None:
            _TENSOR_CACHE.move_to_end(key)
            return hit
    tensor = to_torch_sparse(graph.scaled_laplacian(exact), layout=layout, dtype=dtype,
                             device=device)
    with _TENSOR_CACHE_LOCK:
        tensor = _TENSOR_CACHE.setdefault(key, tensor)
        _TENSOR_CACHE.move_to_end(key)
        while len(_TENSOR_CACHE) > LAPLACIAN_CACHE_SIZE:
            _TENSOR_CACHE.popitem(last=False)
    return tensor
