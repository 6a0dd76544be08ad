"""ONNX export of a whole model, and its check against torch with onnxruntime.

ONNX has no sparse matrix product, and :class:`~facegcn_lib.nn.cheb_conv.ChebConv` computes its
Chebyshev recurrence with CSR products inside a custom autograd function. For export,
:func:`export_kernels` temporarily swaps every ``ChebConv`` for a :class:`GatherChebConv` that
shares its weights and evaluates the same recurrence with a dense product (small meshes) or
gathers (:func:`facegcn_lib.nn.resample.ell_matmul`, large meshes), and switches every
:class:`~facegcn_lib.nn.resample.VertexResample` to the same kernels. The model's outputs do not
change (up to float round-off); the exported graph has only ``Gather``, ``MatMul``, ``Add``,
``InstanceNormalization`` and the encoder's convolutions.

See :doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from facegcn_lib.config import ExportConfig
from facegcn_lib.nn.cheb_conv import ChebConv
from facegcn_lib.nn.resample import VertexResample, ell_arrays, ell_matmul
from facegcn_lib.nn.resgcn import VertexNorm

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAME = "verts"


class ExportMismatchError(ValueError):
    """The exported model's output differs from torch's by more than the tolerance."""


def _matrix_key(m: sp.csr_matrix, dense: bool) -> str:
    h = hashlib.sha256(repr((m.shape, dense)).encode())
    for arr in (m.indptr, m.indices, m.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _to_scipy(laplacian: torch.Tensor) -> sp.csr_matrix:
    coo = laplacian.detach().to_sparse_coo().coalesce().cpu()
    idx = coo.indices().numpy()
    return sp.csr_matrix((coo.values().double().numpy(), (idx[0], idx[1])), shape=tuple(coo.shape))


class GatherChebConv(nn.Module):
    """A :class:`~facegcn_lib.nn.cheb_conv.ChebConv` evaluated with ONNX-exportable operators.

    Shares ``conv``'s weight and bias (not copies). The Laplacian products are one dense
    ``MatMul`` when the mesh has at most ``dense_max_verts`` vertices, else gathers.

    Args:
        conv: the layer to mirror.
        dense_max_verts: the largest mesh whose Laplacian is used densely.
        shared: a cache of Laplacian buffers by content, so that the layers on one mesh
            share one copy (:func:`export_kernels` passes one).
    """

    lap_dense: torch.Tensor
    ell_index: torch.Tensor
    ell_value: torch.Tensor

    def __init__(self, conv: ChebConv, dense_max_verts: int,
                 shared: dict[str, tuple[torch.Tensor, ...]] | None = None) -> None:
        super().__init__()
        self.conv = conv
        # sizes as plain ints: the tracer cannot read a sparse tensor's shape
        self.num_verts, self.in_channels, self.K = conv.num_verts, conv.in_channels, conv.K
        self.dense = self.num_verts <= dense_max_verts
        lap = _to_scipy(conv.laplacian)
        key = _matrix_key(lap, self.dense)
        cache = shared if shared is not None else {}
        if key not in cache:  # convolutions on one mesh share one copy in the exported file
            device, dtype = conv.weight.device, conv.weight.dtype
            if self.dense:
                cache[key] = (torch.from_numpy(lap.toarray()).to(device, dtype),)
            else:
                index, value = ell_arrays(lap)
                cache[key] = (index.to(device), value.to(device, dtype))
        if self.dense:
            self.register_buffer("lap_dense", cache[key][0], persistent=False)
        else:
            self.register_buffer("ell_index", cache[key][0], persistent=False)
            self.register_buffer("ell_value", cache[key][1], persistent=False)

    def _lap(self, x: torch.Tensor) -> torch.Tensor:
        if self.dense:
            out: torch.Tensor = self.lap_dense.to(x.dtype) @ x
            return out
        return ell_matmul(self.ell_index, self.ell_value, x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, V, F_in) -> (B, V, F_out)``, equal to ``conv(x)``."""
        conv = self.conv
        v, f_in = self.num_verts, self.in_channels
        x0 = x.transpose(0, 1).reshape(v, -1)
        terms = [x0]
        if self.K > 1:
            terms.append(self._lap(x0))
        for _ in range(2, self.K):
            terms.append(2.0 * self._lap(terms[-1]) - terms[-2])
        weight = conv.weight.to(x.dtype)
        out = terms[0].reshape(v, -1, f_in) @ weight[0]
        for k in range(1, self.K):
            out = out + terms[k].reshape(v, -1, f_in) @ weight[k]
        if conv.bias is not None:
            out = out + conv.bias.to(x.dtype)
        return out.transpose(0, 1)


@contextlib.contextmanager
def export_kernels(model: nn.Module, cfg: ExportConfig | None = None) -> Iterator[nn.Module]:
    """Within the block, ``model`` uses ONNX-exportable kernels (restored afterwards).

    Every ``ChebConv`` child is replaced by a :class:`GatherChebConv` sharing its weights; every
    :class:`~facegcn_lib.nn.resample.VertexResample` uses the ``dense`` or ``gather`` kernel, and
    every instance :class:`~facegcn_lib.nn.resgcn.VertexNorm` ``InstanceNormalization`` (the
    TorchScript exporter mis-wires its hand-written form when two norms have equal weights).
    """
    c = cfg or ExportConfig()
    swapped: list[tuple[nn.Module, str, ChebConv]] = []
    kernels: list[tuple[VertexResample, Any]] = []
    shared: dict[str, tuple[torch.Tensor, ...]] = {}
    norms: list[VertexNorm] = []
    try:
        for parent in list(model.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, ChebConv):
                    setattr(parent, name, GatherChebConv(child, c.dense_max_verts, shared))
                    swapped.append((parent, name, child))
                elif isinstance(child, VertexNorm):
                    norms.append(child)
                    child.native = True
                elif isinstance(child, VertexResample):
                    kernels.append((child, child.kernel))
                    small = max(child.shape) <= c.dense_max_verts
                    child.set_kernel("dense" if small else "gather")
        yield model
    finally:
        for parent, name, conv in swapped:
            setattr(parent, name, conv)
        for resample, kernel in kernels:
            resample.set_kernel(kernel)
        for norm in norms:
            norm.native = False


def export_onnx(model: nn.Module, path: str | Path, image_size: int,
                cfg: ExportConfig | None = None) -> Path:
    """Export ``model`` (images ``(B, 3, S, S)`` -> vertices ``(B, V, 3)``) to an ONNX file.

    The batch size is dynamic. The model is exported in evaluation mode (its mode is restored).

    Args:
        model: e.g. a :class:`~facegcn_lib.nn.model.FaceGCN`.
        path: the ``.onnx`` file to write.
        image_size: S, the crop side the model takes.
        cfg: opset and kernel choice.
    """
    c = cfg or ExportConfig()
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    param = next(model.parameters())
    example = torch.rand(1, 3, image_size, image_size, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    tmp = p.with_name(p.name + ".tmp")
    try:
        with export_kernels(model, c), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(model, (example,), str(tmp), dynamo=False, opset_version=c.opset,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}})
    finally:
        model.train(was_training)
    tmp.replace(p)
    log.info("exported %s (%.1f MB)", p, p.stat().st_size / 1e6)
    return p


def onnx_session(path: str | Path, threads: int | None = None, spin: bool = False) -> Any:
    """An onnxruntime CPU ``InferenceSession`` for an exported model (``threads``: intra-op).

    Its idle threads sleep rather than spin-wait unless ``spin`` (see
    :class:`~facegcn_lib.nn.runtime.RuntimeConfig`).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads is not None:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, images: torch.Tensor | np.ndarray) -> np.ndarray:
    """Vertices ``(B, V, 3)`` float32 from an onnxruntime session on images ``(B, 3, S, S)``."""
    x = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
    out: np.ndarray = session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(x, dtype=np.float32)})[0]
    return out


def check_onnx(model: nn.Module, path: str | Path, images: torch.Tensor,
               cfg: ExportConfig | None = None) -> float:
    """The largest absolute difference between torch and onnxruntime on ``images``.

    Raises:
        ExportMismatchError: it exceeds ``cfg.atol``.
    """
    c = cfg or ExportConfig()
    was_training = model.training
    model.eval()
    with torch.no_grad():
        ref = model(images).detach().cpu().numpy()
    model.train(was_training)
    got = run_onnx(onnx_session(path), images)
    diff = float(np.abs(got - ref).max())
    if diff > c.atol:
        raise ExportMismatchError(f"{path}: onnxruntime differs from torch by {diff:.2e} "
                                  f"(> {c.atol:.0e})")
    return diff
