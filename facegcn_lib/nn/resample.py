"""Fixed sparse linear maps between vertex sets (pyramid up/down-sampling), trainable and exportable.

A :class:`VertexResample` applies a fixed (R, C) sparse matrix to per-vertex features
``(B, C, F) -> (B, R, F)``, e.g. the pyramid's up-sampling ``U_i`` from level ``i + 1`` to level
``i``. It has three interchangeable kernels:

* ``"sparse"`` (default, training): CSR products via :func:`facegcn_lib.nn.sparse.sparse_mm`,
  with a hand-written backward (the product with the stored transpose);
* ``"gather"`` (ONNX export of a large matrix): the matrix in ELLPACK form, each row's
  non-zeros padded to the longest row, applied as one ``Gather`` and multiply-add per padded
  column (operators every ONNX runtime has; sparse tensors have none);
* ``"dense"`` (ONNX export of a small matrix): one dense ``MatMul``.

:func:`ell_matmul` is the gather kernel on its own, shared with the exportable Chebyshev
convolution of :mod:`facegcn_lib.nn.export`. See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from facegcn_lib.nn.sparse import sparse_mm, to_torch_sparse

#: The kernels a :class:`VertexResample` can use.
Kernel: TypeAlias = Literal["sparse", "gather", "dense"]
#: All of them.
KERNELS: tuple[Kernel, ...] = ("sparse", "gather", "dense")


def ell_arrays(matrix: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """A sparse (R, C) matrix in ELLPACK form: ``(index (W, R) int64, value (W, R) float32)``.

    ``W`` is the largest number of non-zeros in a row; shorter rows are padded with column 0
    and value 0, so ``A @ x = sum_w value[w, :, None] * x[index[w]]``.
    """
    csr = sp.csr_matrix(matrix, dtype=np.float64)
    csr.sum_duplicates()
    counts = np.diff(csr.indptr)
    width = max(int(counts.max(initial=0)), 1)
    rows = np.repeat(np.arange(csr.shape[0]), counts)
    slot = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], counts)
    index = np.zeros((width, csr.shape[0]), dtype=np.int64)
    value = np.zeros((width, csr.shape[0]), dtype=np.float32)
    index[slot, rows] = csr.indices
    value[slot, rows] = csr.data
    return torch.from_numpy(index), torch.from_numpy(value)


def ell_matmul(index: torch.Tensor, value: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``A @ x`` for an ELLPACK matrix (see :func:`ell_arrays`) and dense ``x`` (C, N) -> (R, N).

    One ``index_select`` of all ``W`` neighbours of every row, then one batched product of each
    row's ``(1, W)`` values with its ``(W, N)`` gathered rows: two operators that every ONNX
    runtime has (``Gather``, ``MatMul``), and in onnxruntime about twice as fast at large
    ``N`` as a multiply-add per padded column. It needs ``R W N`` temporary floats.
    """
    width, rows = index.shape
    gathered = torch.index_select(x, 0, index.t().reshape(-1)).reshape(rows, width, -1)
    out = value.t().to(x.dtype).reshape(rows, 1, width) @ gathered
    return out.reshape(rows, -1)


class _SparseApply(torch.autograd.Function):
    """``Y = A X`` with ``dX = A^T dY`` (both CSR products, no autograd graph inside)."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: torch.Tensor, matrix: torch.Tensor,
                matrix_t: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(matrix_t)
        return sparse_mm(matrix, x)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (matrix_t,) = ctx.saved_tensors
        return (sparse_mm(matrix_t, grad) if ctx.needs_input_grad[0] else None), None, None


class VertexResample(nn.Module):
    """Apply a fixed sparse (R, C) matrix to features ``(B, C, F) -> (B, R, F)``.

    Args:
        matrix: (R, C) scipy.sparse matrix (e.g. ``MeshPyramid.up[i]``).
        kernel: ``"sparse"``, ``"gather"`` or ``"dense"`` (see the module docstring; switch
            later with :meth:`set_kernel`).

    The matrices are non-persistent buffers: they follow ``.to(device)``/``.double()`` and stay
    out of the ``state_dict`` (they are rebuilt from the mesh pyramid).
    """

    matrix: torch.Tensor
    matrix_t: torch.Tensor
    ell_index: torch.Tensor
    ell_value: torch.Tensor
    dense: torch.Tensor

    def __init__(self, matrix: Any, kernel: Kernel = "sparse") -> None:
        super().__init__()
        csr = sp.csr_matrix(matrix, dtype=np.float64)
        self.shape = (int(csr.shape[0]), int(csr.shape[1]))
        self._csr = csr
        self.register_buffer("matrix", to_torch_sparse(csr, layout="csr", dtype=torch.float32),
                             persistent=False)
        self.register_buffer("matrix_t", to_torch_sparse(csr.T.tocsr(), layout="csr",
                                                         dtype=torch.float32), persistent=False)
        self.kernel: Kernel = "sparse"
        self.set_kernel(kernel)

    def set_kernel(self, kernel: Kernel) -> VertexResample:
        """Switch the kernel (builds the gather or dense form on first use); returns ``self``."""
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, got {kernel!r}")
        device = self.matrix.device
        dtype = self.matrix.dtype
        if kernel == "gather" and not hasattr(self, "ell_index"):
            index, value = ell_arrays(self._csr)
            self.register_buffer("ell_index", index.to(device), persistent=False)
            self.register_buffer("ell_value", value.to(device=device, dtype=dtype), persistent=False)
        if kernel == "dense" and not hasattr(self, "dense"):
            dense = torch.from_numpy(self._csr.toarray()).to(device=device, dtype=dtype)
            self.register_buffer("dense", dense, persistent=False)
        self.kernel = kernel
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``matrix @ x[b]`` for each sample: ``(B, C, F) -> (B, R, F)``."""
        if x.dim() != 3 or x.shape[1] != self.shape[1]:
            raise ValueError(f"expected features (B, {self.shape[1]}, F), got {tuple(x.shape)}")
        _, c, f = x.shape
        flat = x.transpose(0, 1).reshape(c, -1)
        if self.kernel == "sparse":
            y = _SparseApply.apply(flat, self.matrix, self.matrix_t)
        elif self.kernel == "gather":
            y = ell_matmul(self.ell_index, self.ell_value, flat)
        else:
            y = self.dense.to(flat.dtype) @ flat
        out: torch.Tensor = y.reshape(self.shape[0], -1, f).transpose(0, 1)
        return out

    def extra_repr(self) -> str:
        return f"{self.shape[1]} -> {self.shape[0]} vertices, kernel={self.kernel}"
