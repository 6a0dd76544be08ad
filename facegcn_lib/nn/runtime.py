"""Fast inference: a network run by onnxruntime from a cached ONNX export, or by an optimised torch copy.

The photo pipeline (:class:`~facegcn_lib.pipeline.Reconstructor`) and the face detector
(:class:`~facegcn_lib.detect.FaceDetector`) run their convolutional networks through one of two
backends, chosen by :func:`resolve_backend`:

* ``"onnx"``: :class:`OnnxModule` exports the module once to ONNX, keeps the file in the cache
  directory under a key made of its weights, its input shape and the library's and torch's
  versions (:func:`module_digest`), checks onnxruntime's output against torch's, and runs it
  with onnxruntime, whose CPU kernels are several times faster than torch's on small batches
  of small images. Its threads do not spin-wait by default: on a machine shared with other
  processes, spinning threads burn the cores the others need (``RuntimeConfig.spin``).
* ``"torch"``: :func:`inference_copy` makes an evaluation copy with each batch normalisation
  folded into the convolution before it and, for convolutional networks, the channels-last
  memory layout; it runs anywhere torch runs (CPU, CUDA, MPS).

``"auto"`` picks ``"onnx"`` on the CPU when ``onnxruntime`` and ``onnx`` are installed (the
``fast`` extra: ``pip install "facegcn[fast]"``), and ``"torch"`` otherwise. Both give the
original module's outputs up to float round-off (``tests/nn/test_runtime.py``).

See :doc:`chapter 7 </chapters/07_in_the_wild>` and
:doc:`chapter 4 </chapters/04_resgcn_decoder>`.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias

import numpy as np
import torch
from torch import nn

from facegcn_lib._version import __version__
from facegcn_lib.paths import cache_file

log = logging.getLogger(__name__)

#: A backend's name as the user gives it.
Backend: TypeAlias = Literal["auto", "onnx", "torch"]
#: All of them.
BACKENDS: tuple[Backend, ...] = ("auto", "onnx", "torch")
#: Part of every exported file's cache key: raise it when the exported graphs change.
EXPORT_REVISION = 1
#: The batch normalisations :func:`inference_copy` folds.
_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


class BackendUnavailableError(ValueError):
    """The backend asked for cannot run here (e.g. onnxruntime missing, or a GPU device)."""


class RuntimeMismatchError(ValueError):
    """onnxruntime's output differs from torch's by more than the tolerance."""


@dataclass(frozen=True)
class RuntimeConfig:
    """How networks are run for inference.

    Attributes:
        backend: ``"auto"``, ``"onnx"`` or ``"torch"`` (see the module docstring).
        threads: onnxruntime's intra-op threads (``None``: as many as torch uses,
            :func:`torch.get_num_threads`). Torch's own thread count is the caller's to set.
        spin: let onnxruntime's idle threads spin-wait for work: a little faster on an idle
            machine, much slower (and a waste of CPU) on a busy one.
        opset: the ONNX opset of the exports.
        rtol: an export is accepted when ``max |onnxruntime - torch| <= rtol * max(1, max |torch|)``
            on a random input.
        cache: keep exported files in the cache directory (else every start exports again,
            into a temporary file).
    """

    backend: Backend = "auto"
    threads: int | None = None
    spin: bool = False
    opset: int = 17
    rtol: float = 1e-4
    cache: bool = True

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"RuntimeConfig.backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"RuntimeConfig.threads must be at least 1, got {self.threads}")


def onnxruntime_available() -> bool:
    """Whether ``onnxruntime`` (to run) and ``onnx`` (needed by torch's exporter) are installed."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))


def resolve_backend(backend: str, device: torch.device | str) -> Literal["onnx", "torch"]:
    """The backend that runs: ``"auto"`` becomes ``"onnx"`` on the CPU when onnxruntime is
    installed, else ``"torch"``.

    Raises:
        BackendUnavailableError: ``"onnx"`` asked for on another device than the CPU, or
            without onnxruntime installed.
        ValueError: an unknown backend name.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return "torch"
    dev = torch.device(device)
    if dev.type != "cpu":
        if backend == "onnx":
            raise BackendUnavailableError(f"the onnx backend runs on the CPU only, not on {dev}: "
                                          "use backend 'auto' or 'torch' there")
        return "torch"
    if not onnxruntime_available():
        if backend == "onnx":
            raise BackendUnavailableError("the onnx backend needs onnxruntime and onnx: "
                                          "pip install 'facegcn[fast]', or use backend 'torch'")
        return "torch"
    return "onnx"


def module_digest(module: nn.Module, *extra: object) -> str:
    """A SHA-256 of a module's architecture (its ``repr``), its state and ``extra`` values.

    Two modules with the same digest compute the same function, so an export can be cached
    under it. Non-persistent buffers are not part of the state; pass what they depend on in
    ``extra``.
    """
    h = hashlib.sha256(repr(module).encode())
    for name, t in module.state_dict().items():
        flat = t.detach().to("cpu").contiguous().reshape(-1)
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b"")
    for part in extra:
        h.update(repr(part).encode())
    return h.hexdigest()


# --- onnxruntime -----------------------------------------------------------------------------
def ort_session(path: str | Path, cfg: RuntimeConfig | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` with ``cfg``'s threads and spinning policy."""
    import onnxruntime as ort

    c = cfg or RuntimeConfig()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = c.threads or torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3  # errors only
    if not c.spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def export_module(module: nn.Module, example: torch.Tensor, path: str | Path, n_outputs: int,
                  opset: int = RuntimeConfig.opset) -> Path:
    """Export ``module`` (one input, ``n_outputs`` outputs, dynamic batch) to an ONNX file.

    The ChebConv and resampling layers use their exportable kernels
    (:func:`facegcn_lib.nn.export.export_kernels`). The file is written under a temporary
    name and renamed, so a concurrent reader never sees half of it.
    """
    from facegcn_lib.nn.export import export_kernels

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    outputs = [f"output{i}" for i in range(n_outputs)]
    axes = {name: {0: "batch"} for name in ("input", *outputs)}
    tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
    was_training = module.training
    module.eval()
    try:
        with export_kernels(module), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(module, (example,), str(tmp), dynamo=False, opset_version=opset,
                              input_names=["input"], output_names=outputs, dynamic_axes=axes)
        tmp.replace(p)
    finally:
        module.train(was_training)
        tmp.unlink(missing_ok=True)
    return p


def _as_outputs(out: Any) -> list[torch.Tensor]:
    return [out] if isinstance(out, torch.Tensor) else list(out)


class OnnxModule:
    """A torch module's forward, exported to ONNX once and run by onnxruntime.

    The export is cached as ``<cache>/onnx-<name>-<key>.onnx`` (see :func:`module_digest`);
    each construction checks onnxruntime against torch on a random input of ``example``'s
    shape, so a stale or damaged file is never used silently.

    Args:
        module: the network (its weights are read now: later changes are not seen).
        example: an input of batch 1; every dimension but the batch is fixed by it.
        name: the cache file's stem, e.g. ``"encoder"``.
        cfg: threads, spinning, opset, tolerance, caching.
        key: values besides the weights and the input shape that the export depends on.

    Raises:
        RuntimeMismatchError: onnxruntime's output differs from torch's (the file is removed).

    Example:
        >>> run = OnnxModule(model.encoder, torch.rand(1, 3, 128, 128), "encoder")
        >>> (codes,) = run(images)      # (B, code_dim) torch tensor on the CPU
    """

    def __init__(self, module: nn.Module, example: torch.Tensor, name: str,
                 cfg: RuntimeConfig | None = None, key: tuple[object, ...] = ()) -> None:
        import tempfile

        self.cfg = cfg or RuntimeConfig()
        module = module.eval()
        example = example.detach().to("cpu", torch.float32)
        with torch.no_grad():
            self.n_outputs = len(_as_outputs(module(example)))
        digest = module_digest(module, tuple(example.shape[1:]), self.n_outputs, key,
                               self.cfg.opset, EXPORT_REVISION, __version__, torch.__version__)
        self._tmpdir = None if self.cfg.cache else tempfile.TemporaryDirectory(prefix="facegcn-onnx-")
        self.path = (cache_file(f"onnx-{name}", ".onnx", digest) if self._tmpdir is None
                     else Path(self._tmpdir.name) / f"{name}.onnx")
        if not self.path.is_file():
            log.info("exporting %s to %s (once)", name, self.path)
            export_module(module, example, self.path, self.n_outputs, self.cfg.opset)
        self.session = ort_session(self.path, self.cfg)
        self.max_abs_diff = self._check(module, torch.rand_like(example))

    def _check(self, module: nn.Module, x: torch.Tensor) -> float:
        with torch.no_grad():
            ref = _as_outputs(module(x))
        got = self(x)
        diff = max(float((g - r.float()).abs().max()) for g, r in zip(got, ref, strict=True))
        scale = max([1.0] + [float(r.abs().max()) for r in ref])
        if not diff <= self.cfg.rtol * scale:
            self.path.unlink(missing_ok=True)
            raise RuntimeMismatchError(f"{self.path.name}: onnxruntime differs from torch by "
                                       f"{diff:.2e} (> {self.cfg.rtol:.0e} x {scale:.3g})")
        return diff

    def __call__(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The module's outputs for a batch ``x`` (CPU float32 tensors)."""
        arr = np.ascontiguousarray(x.detach().to("cpu", torch.float32).numpy())
        return [torch.from_numpy(o) for o in self.session.run(None, {"input": arr})]

    def __repr__(self) -> str:
        return f"OnnxModule({self.path.name}, {self.n_outputs} outputs)"


def onnx_module_or_none(module: nn.Module, example: torch.Tensor, name: str,
                        cfg: RuntimeConfig, device: torch.device | str,
                        key: tuple[object, ...] = ()) -> OnnxModule | None:
    """An :class:`OnnxModule` when ``cfg.backend`` resolves to ``"onnx"`` on ``device``, else ``None``.

    With ``"auto"``, a failure to export or a mismatch is logged and ``None`` returned (the
    caller runs torch); with ``"onnx"`` it is raised.
    """
    if resolve_backend(cfg.backend, device) != "onnx":
        return None
    try:
        return OnnxModule(module, example, name, cfg, key)
    except Exception as err:  # any exporter or onnxruntime failure: torch still works
        if cfg.backend == "onnx":
            raise
        log.warning("running %s with torch: its onnxruntime export failed (%s)", name, err)
        return None


# --- torch -----------------------------------------------------------------------------------
def fold_batch_norms(module: nn.Module) -> nn.Module:
    """Fold every evaluation-mode batch normalisation into the convolution or linear layer
    before it, in place where possible; returns the module (or its replacement).

    Uses :func:`torch.fx.experimental.optimization.fuse` on the largest submodules that
    torch.fx can trace (a forward with data-dependent Python control flow cannot be traced;
    its children are tried instead). The function computed does not change (up to round-off).
    """
    from torch.fx.experimental.optimization import fuse

    if not any(isinstance(m, _BATCH_NORMS) for m in module.modules()):
        return module
    try:
        fused: nn.Module = fuse(module, inplace=True)
        return fused
    except Exception as err:  # whatever torch.fx cannot trace: try the children instead
        log.debug("fx cannot trace %s (%s); folding its children", type(module).__name__, err)
    for name, child in list(module.named_children()):
        setattr(module, name, fold_batch_norms(child))
    return module


def inference_copy(module: nn.Module, channels_last: bool = True) -> nn.Module:
    """An evaluation-mode copy of ``module`` for fast torch inference (the original is unchanged).

    Batch normalisations are folded into the layers before them (:func:`fold_batch_norms`),
    and with ``channels_last`` the 4-D weights use the channels-last memory layout (pass
    inputs in it too, ``x.contiguous(memory_format=torch.channels_last)``; any layout gives
    the same result). Parameters stop requiring gradients.
    """
    new = copy.deepcopy(module).eval()
    for p in new.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        new = fold_batch_norms(new)
    if channels_last:
        new = new.to(memory_format=torch.channels_last)
    return new
