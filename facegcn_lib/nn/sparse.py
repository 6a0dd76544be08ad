"""Sparse matrices in torch: scipy -> torch conversion and fast sparse @ dense products.

The products here are the kernels of :class:`facegcn_lib.nn.cheb_conv.ChebConv`. They call
``torch.addmm`` (on the CPU also for a plain product: ``beta = 0`` into a new buffer) rather
than ``torch.sparse.mm`` or ``torch.mm``, which on the CPU zero-fill and copy their result or
take a slower path for the same product (``torch.mm(A, X, out=...)`` on the 9,409-vertex face
Laplacian with 512 columns: 3.4 times as long with torch 2.14.1, ``python
benchmarks/cheb_conv.py --mesh ict-face --batch 32``), and they compute half and bfloat16 products in float32 on the CPU,
where torch has no low-precision CSR kernel. They do not record autograd: differentiate through
them with a custom :class:`torch.autograd.Function` (as ``ChebConv`` does).

See :doc:`chapter 1 </chapters/01_spectral_convolution>`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any, Literal, TypeAlias

import numpy as np
import scipy.sparse as sp
import torch

#: The sparse layouts :func:`to_torch_sparse` produces.
Layout: TypeAlias = Literal["csr", "coo"]
_LAYOUTS: dict[str, torch.layout] = {"csr": torch.sparse_csr, "coo": torch.sparse_coo}
#: CSR index arrays are int32 while they fit (half the index traffic of int64).
_INT32_MAX = np.iinfo(np.int32).max
_LOW_PRECISION = (torch.float16, torch.bfloat16)


class SparseInputError(ValueError):
    """A matrix could not be used as a sparse operator; the message says what was expected."""


@contextlib.contextmanager
def _quiet_csr() -> Iterator[None]:
    """Silence torch's once-per-process 'CSR support is in beta' notice."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        yield


def to_torch_sparse(matrix: Any, layout: Layout = "csr", dtype: torch.dtype | None = None,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """A sparse matrix as a torch sparse tensor.

    Args:
        matrix: (R, C) scipy.sparse matrix or array, or a torch tensor (sparse of any layout,
            or dense).
        layout: ``"csr"`` (int32 indices while they fit, the fast layout for ``A @ X``) or
            ``"coo"`` (coalesced, int64 indices).
        dtype: floating dtype of the values (default: :func:`torch.get_default_dtype` for
            scipy input, the tensor's own dtype for torch input).
        device: where to put it (default: CPU for scipy input, the tensor's device otherwise).

    Returns:
        (R, C) torch tensor with layout ``torch.sparse_csr`` or ``torch.sparse_coo``.

    Raises:
        SparseInputError: an unknown layout, a non-floating dtype, or not a 2-D matrix.
    """
    if layout not in _LAYOUTS:
        raise SparseInputError(f"layout must be one of {sorted(_LAYOUTS)}, got {layout!r}")
    if dtype is not None and not dtype.is_floating_point:
        raise SparseInputError(f"dtype must be a floating dtype, got {dtype}")
    if isinstance(matrix, torch.Tensor):
        return _torch_to_sparse(matrix, layout, dtype, device)
    if not sp.issparse(matrix):
        raise SparseInputError(f"expected a scipy.sparse matrix or a torch tensor, got "
                               f"{type(matrix).__name__}")
    if matrix.ndim != 2:
        raise SparseInputError(f"expected a 2-D matrix, got shape {matrix.shape}")
    dtype = dtype or torch.get_default_dtype()
    shape = tuple(int(s) for s in matrix.shape)
    if layout == "coo":
        coo = sp.coo_matrix(matrix, copy=True)
        coo.sum_duplicates()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        val = torch.from_numpy(np.asarray(coo.data)).to(dtype)
        t = torch.sparse_coo_tensor(idx, val, shape, check_invariants=False).coalesce()
        return t.to(device) if device is not None else t
    csr = sp.csr_matrix(matrix, copy=True)  # a cached matrix may be read-only: never share it
    csr.sum_duplicates()  # also sorts the indices
    itype = np.int32 if max(csr.nnz, *shape) <= _INT32_MAX else np.int64
    crow = torch.from_numpy(csr.indptr.astype(itype))
    col = torch.from_numpy(csr.indices.astype(itype))
    val = torch.from_numpy(np.asarray(csr.data)).to(dtype)
    with _quiet_csr():
        t = torch.sparse_csr_tensor(crow, col, val, shape, check_invariants=False)
    return t.to(device) if device is not None else t


def _torch_to_sparse(t: torch.Tensor, layout: Layout, dtype: torch.dtype | None,
                     device: torch.device | str | None) -> torch.Tensor:
    if t.dim() != 2:
        raise SparseInputError(f"expected a 2-D matrix, got shape {tuple(t.shape)}")
    if dtype is None and not t.is_floating_point():
        dtype = torch.get_default_dtype()
    with _quiet_csr():
        if layout == "csr":
            out = t if t.layout == torch.sparse_csr else t.to_sparse_csr()
        else:
            out = t.to_sparse_coo().coalesce() if t.layout != torch.sparse_coo else t.coalesce()
        return out.to(device=device if device is not None else out.device,
                      dtype=dtype if dtype is not None else out.dtype)


def is_symmetric(a: torch.Tensor, rtol: float = 1e-6) -> bool:
    """Whether a (V, V) torch tensor (sparse or dense) equals its transpose.

    Entries may differ by ``rtol`` times the largest absolute entry (float32 round-off of a
    symmetric float64 matrix passes).
    """
    if a.dim() != 2 or a.shape[0] != a.shape[1]:
        return False
    m = a.detach()
    m = (m if m.layout == torch.sparse_coo else m.to_sparse_coo()).coalesce()
    if m.values().numel() == 0:
        return True
    scale = max(float(m.values().abs().max()), 1.0)
    diff = (m - m.t()).coalesce().values()
    return bool(diff.numel() == 0 or float(diff.abs().max()) <= rtol * scale)


def _compute_dtype(a: torch.Tensor, x: torch.Tensor) -> torch.dtype:
    """float32 for half/bfloat16 on the CPU (no CSR kernel there), else ``x``'s dtype."""
    if x.device.type == "cpu" and x.dtype in _LOW_PRECISION:
        return torch.float32
    return x.dtype


def sparse_mm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ X`` for a sparse (R, C) ``A`` and a dense (C, N) ``X``, into a new (R, N) tensor.

    The result has ``X``'s dtype; no autograd graph is recorded.
    """
    ct = _compute_dtype(a, x)
    if ct != x.dtype:
        return sparse_mm(a.to(ct), x.to(ct)).to(x.dtype)
    if a.dtype != x.dtype:
        a = a.to(x.dtype)
    out = torch.empty((a.shape[0], x.shape[1]), dtype=x.dtype, device=x.device)
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        if a.layout == torch.sparse_csr and x.device.type == "cpu":
            # beta = 0: ``out`` is written, never read (its garbage cannot leak in); on the CPU
            # this addmm is faster than torch.mm(a, x, out=out) for the same product
            # (python benchmarks/cheb_conv.py, its "sparse product" line)
            torch.addmm(out, a, x, beta=0.0, out=out)
        elif a.layout == torch.sparse_csr:
            torch.mm(a, x, out=out)
        else:
            out = torch.sparse.mm(a, x)
    return out


def sparse_addmm(c: torch.Tensor, a: torch.Tensor, x: torch.Tensor, beta: float = 1.0,
                 alpha: float = 1.0) -> torch.Tensor:
    """``beta C + alpha A @ X`` for a sparse (R, C) ``A`` and dense ``C`` (R, N), ``X`` (C, N).

    One fused kernel (the Chebyshev step ``2 L T_{k-1} - T_{k-2}`` is ``beta=-1, alpha=2``);
    the result is a new tensor with ``X``'s dtype; no autograd graph is recorded.
    """
    ct = _compute_dtype(a, x)
    if ct != x.dtype:
        return sparse_addmm(c.to(ct), a.to(ct), x.to(ct), beta, alpha).to(x.dtype)
    if a.dtype != x.dtype:
        a = a.to(x.dtype)
    # autocast would cast the float32 fallback back to bfloat16, which CPU sparse kernels lack
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return torch.addmm(c, a, x, beta=beta, alpha=alpha)


def sparse_addmm_(c: torch.Tensor, a: torch.Tensor, x: torch.Tensor,
                  alpha: float = 1.0) -> torch.Tensor:
    """``C + alpha A @ X`` into ``C``'s memory where possible; returns the result.

    On the CPU with a CSR ``A`` the product accumulates into ``C`` in place (no copy of ``C``,
    no new buffer: about a quarter faster than :func:`sparse_addmm` on a mesh Laplacian);
    elsewhere, and for half or bfloat16 on the CPU, it is :func:`sparse_addmm` (``C`` then
    stays unchanged). Use the return value either way. No autograd graph is recorded.
    """
    if (x.device.type != "cpu" or a.layout != torch.sparse_csr or c.dtype != x.dtype
            or _compute_dtype(a, x) != x.dtype or not c.is_contiguous()):
        return sparse_addmm(c, a, x, alpha=alpha)
    if a.dtype != x.dtype:
        a = a.to(x.dtype)
    with torch.no_grad(), torch.autocast(x.device.type, enabled=False):
        return torch.addmm(c, a, x, alpha=alpha, out=c)

