"""Face detection on photos: MediaPipe's BlazeFace (full range) run by a small torch interpreter.

The detector ships inside the package (``resources/face_detection_full_range.tflite``,
Apache-2.0, see ``resources/BLAZEFACE_NOTICE``), so detection works offline right after
``pip install`` and runs wherever torch runs (CPU or CUDA): :class:`TFLiteGraph` reads the
unchanged ``.tflite`` file and executes its ten kinds of operators with ``torch.nn.functional``.
The detector only has to find a rough box: the pipeline refines the crop from the model's own
landmarks.

Large photos are scanned as the whole image plus overlapping tiles, so that small faces in a
group photo are still seen at a size the network knows; detections are merged by MediaPipe's
weighted non-maximum suppression.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch import nn

from facegcn_lib.nn.runtime import RuntimeConfig, onnx_module_or_none
from facegcn_lib.paths import file_sha256

log = logging.getLogger(__name__)

MODEL_FILE = "face_detection_full_range.tflite"
N_KEYPOINTS = 6  # right eye, left eye, nose tip, mouth centre, right ear, left ear (subject's)
RAW_SCORE_CLIP = 80.0  # logits are clipped before the sigmoid, as MediaPipe does


class DetectorError(RuntimeError):
    """The detector model could not be loaded or run."""


# --------------------------------------------------------------------------------------------
# A minimal TFLite interpreter in torch
# --------------------------------------------------------------------------------------------
_TFL_DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}
_OPTION_ATTRS = ("Padding", "StrideW", "StrideH", "FusedActivationFunction", "DepthMultiplier",
                 "FilterWidth", "FilterHeight", "Axis", "AlignCorners", "HalfPixelCenters",
                 "DilationWFactor", "DilationHFactor")
_SAME, _RELU, _RELU6 = 0, 1, 3  # tflite enums: Padding.SAME, ActivationFunctionType.RELU/RELU6


def parse_tflite(path: Path) -> tuple[dict[str, Any], dict[int, NDArray]]:
    """Read a float ``.tflite`` model: its operators (JSON-able) and constant tensors.

    ``DEQUANTIZE`` operators (float16 weights) are resolved into float32 constants here.
    """
    import tflite

    buf = path.read_bytes()
    model = tflite.Model.GetRootAsModel(buf, 0)
    graph = model.Subgraphs(0)
    names = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
    option_classes = {
        "CONV_2D": tflite.Conv2DOptions, "DEPTHWISE_CONV_2D": tflite.DepthwiseConv2DOptions,
        "MAX_POOL_2D": tflite.Pool2DOptions, "ADD": tflite.AddOptions,
        "CONCATENATION": tflite.ConcatenationOptions, "RESIZE_BILINEAR": tflite.ResizeBilinearOptions,
    }

    def const(i: int) -> NDArray | None:
        t = graph.Tensors(i)
        b = model.Buffers(t.Buffer())
        if b is None or b.DataLength() == 0:
            return None
        raw = b.DataAsNumpy().tobytes()
        return np.frombuffer(raw, dtype=_TFL_DTYPES[t.Type()]).reshape(t.ShapeAsNumpy())

    consts: dict[int, NDArray] = {}
    ops: list[dict[str, Any]] = []
    for k in range(graph.OperatorsLength()):
        op = graph.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = names[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]
        ins = [int(x) for x in op.InputsAsNumpy()]
        outs = [int(x) for x in op.OutputsAsNumpy()]
        for i in ins:
            if i >= 0 and i not in consts and (c := const(i)) is not None:
                consts[i] = c
        if name == "DEQUANTIZE":
            consts[outs[0]] = consts[ins[0]].astype(np.float32)
            continue
        opt: dict[str, Any] = {}
        table = op.BuiltinOptions()
        if table is not None and name in option_classes:
            o = option_classes[name]()
            o.Init(table.Bytes, table.Pos)
            opt = {a: int(getattr(o, a)()) for a in _OPTION_ATTRS if hasattr(o, a)}
        if name == "RESHAPE":
            opt["NewShape"] = [int(x) for x in graph.Tensors(outs[0]).ShapeAsNumpy()]
        ops.append({"op": name, "in": ins, "out": outs, "opt": opt})
    meta = {"ops": ops, "inputs": [int(x) for x in graph.InputsAsNumpy()],
            "outputs": [int(x) for x in graph.OutputsAsNumpy()],
            "input_shape": [int(x) for x in graph.Tensors(int(graph.Inputs(0))).ShapeAsNumpy()]}
    return meta, consts


def _same_pad(size: int, k: int, s: int, d: int = 1) -> tuple[int, int]:
    """TensorFlow's SAME padding (extra pixel at the end) for one axis."""
    eff = (k - 1) * d + 1
    out = math.ceil(size / s)
    total = max((out - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


class TFLiteGraph(nn.Module):
    """Execute a float TFLite graph (convolutions, pooling, pads, adds, reshapes) with torch.

    Supports the operators of MediaPipe's BlazeFace models: ``CONV_2D``,
    ``DEPTHWISE_CONV_2D``, ``MAX_POOL_2D``, ``ADD``, ``RELU``, ``PAD``, ``RESHAPE``,
    ``CONCATENATION``, ``RESIZE_BILINEAR`` (and ``DEQUANTIZE``, resolved at load).

    Shapes:
        input: (B, 3, H, W) float32 (NCHW; the graph's NHWC layout is handled inside)
        output: the graph's outputs, each (B, ...) as in the ``.tflite`` file
    """

    SUPPORTED = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "ADD", "RELU", "PAD",
                           "RESHAPE", "CONCATENATION", "RESIZE_BILINEAR"})
    #: operators whose output is a new tensor (never a view of an input)
    _FRESH = frozenset({"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"})

    def __init__(self, meta: dict[str, Any], consts: dict[int, NDArray]) -> None:
        super().__init__()
        unknown = {op["op"] for op in meta["ops"]} - self.SUPPORTED
        if unknown:
            raise DetectorError(f"unsupported TFLite operators {sorted(unknown)}")
        self.meta = meta
        self.params: dict[int, Any] = {}
        for op in meta["ops"]:
            kind, ins = op["op"], op["in"]
            if kind == "CONV_2D":  # [out, kh, kw, in] -> [out, in, kh, kw]
                self._register(ins[1], consts[ins[1]].transpose(0, 3, 1, 2))
            elif kind == "DEPTHWISE_CONV_2D":  # [1, kh, kw, C] -> [C, 1, kh, kw]
                self._register(ins[1], consts[ins[1]].transpose(3, 0, 1, 2))
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D") and len(ins) > 2 and ins[2] >= 0:
                self._register(ins[2], consts[ins[2]])
            for i in ins:  # small integer constants (paddings, sizes) stay as Python values
                if i in consts and consts[i].dtype.kind in "iu":
                    self.params[i] = consts[i].tolist()
            for i in ins:  # float constants used by ADD and the like
                if i in consts and consts[i].dtype.kind == "f" and i not in self.params:
                    self._register(i, consts[i])
        # a RELU may overwrite its input when that is a fresh result read by nothing else
        readers: dict[int, int] = {}
        for i in [j for op in meta["ops"] for j in op["in"]] + list(meta["outputs"]):
            readers[i] = readers.get(i, 0) + 1
        fresh = {op["out"][0] for op in meta["ops"] if op["op"] in self._FRESH}
        self.inplace_relu = {k for k, op in enumerate(meta["ops"]) if op["op"] == "RELU"
                             and op["in"][0] in fresh and readers[op["in"][0]] == 1}

    def _register(self, idx: int, value: NDArray) -> None:
        name = f"t{idx}"
        if name not in self._buffers:
            self.register_buffer(name, torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32)))
        self.params[idx] = name

    def _const(self, idx: int) -> Any:
        p = self.params[idx]
        return self._buffers[p] if isinstance(p, str) else p

    @staticmethod
    def _act(x: torch.Tensor, code: int) -> torch.Tensor:
        """A fused activation, in place on ``x`` (a fresh result) when no gradient is recorded."""
        inplace = not (torch.is_grad_enabled() and x.requires_grad)
        if code == _RELU:
            return F.relu(x, inplace=inplace)
        if code == _RELU6:
            return F.relu6(x, inplace=inplace)
        return x

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        vals: dict[int, torch.Tensor] = {self.meta["inputs"][0]: x}

        def get(i: int) -> torch.Tensor:
            return vals[i] if i in vals else self._const(i)

        for n, op in enumerate(self.meta["ops"]):
            kind, ins, opt = op["op"], op["in"], op["opt"]
            a = get(ins[0])
            if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self._const(ins[1])
                b = self._const(ins[2]) if len(ins) > 2 and ins[2] >= 0 else None
                s, d = (opt["StrideH"], opt["StrideW"]), (opt.get("DilationHFactor", 1), opt.get("DilationWFactor", 1))
                pad = (0, 0)
                if opt["Padding"] == _SAME:
                    ph = _same_pad(a.shape[2], w.shape[2], s[0], d[0])
                    pw = _same_pad(a.shape[3], w.shape[3], s[1], d[1])
                    if ph[0] == ph[1] and pw[0] == pw[1]:  # symmetric: the convolution pads
                        pad = (ph[0], pw[0])
                    else:
                        a = F.pad(a, (pw[0], pw[1], ph[0], ph[1]))
                groups = a.shape[1] if kind == "DEPTHWISE_CONV_2D" else 1
                y = F.conv2d(a, w, b, stride=s, padding=pad, dilation=d, groups=groups)
                y = self._act(y, opt.get("FusedActivationFunction", 0))
            elif kind == "MAX_POOL_2D":
                k, s = (opt["FilterHeight"], opt["FilterWidth"]), (opt["StrideH"], opt["StrideW"])
                if opt["Padding"] == _SAME:
                    ph, pw = _same_pad(a.shape[2], k[0], s[0]), _same_pad(a.shape[3], k[1], s[1])
                    a = F.pad(a, (pw[0], pw[1], ph[0], ph[1]), value=float("-inf"))
                y = self._act(F.max_pool2d(a, k, s), opt.get("FusedActivationFunction", 0))
            elif kind == "ADD":
                y = self._act(a + get(ins[1]), opt.get("FusedActivationFunction", 0))
            elif kind == "RELU":
                y = self._act(a, _RELU) if n in self.inplace_relu else F.relu(a)
            elif kind == "PAD":  # paddings are NHWC [[n0,n1],[h0,h1],[w0,w1],[c0,c1]]
                p = self._const(ins[1])
                y = F.pad(a, (p[2][0], p[2][1], p[1][0], p[1][1], p[3][0], p[3][1]))
            elif kind == "RESIZE_BILINEAR":
                size = self._const(ins[1])
                y = F.interpolate(a, size=(size[0], size[1]), mode="bilinear",
                                  align_corners=bool(opt.get("AlignCorners", 0)))
            elif kind == "RESHAPE":
                src = a.permute(0, 2, 3, 1) if a.dim() == 4 else a  # back to NHWC order
                y = src.reshape([x.shape[0], *opt["NewShape"][1:]])
            elif kind == "CONCATENATION":
                parts = [get(i) for i in ins]
                axis = opt["Axis"] % parts[0].dim()
                if parts[0].dim() == 4:
                    axis = {0: 0, 1: 2, 2: 3, 3: 1}[axis]
                y = self._act(torch.cat(parts, dim=axis), opt.get("FusedActivationFunction", 0))
            else:  # pragma: no cover - rejected in __init__
                raise DetectorError(f"unsupported operator {kind}")
            vals[op["out"][0]] = y
        return [vals[i] for i in self.meta["outputs"]]


# --------------------------------------------------------------------------------------------
# BlazeFace: anchors, decoding, weighted NMS
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of :class:`FaceDetector`.

    Attributes:
        min_score: detections below this confidence are dropped (MediaPipe: 0.5 to 0.6).
        nms_iou: boxes overlapping more than this are merged (weighted NMS).
        anchor_stride: the full-range model's single feature map stride (192 / 48).
        tile_overlap: overlap of neighbouring tiles, as a fraction of a tile's side.
        tile_min_side: images whose shorter side exceeds ``1.5 x`` this are also scanned in
            overlapping square tiles of at least this many pixels (0 turns tiling off).
        max_faces: at most this many faces are returned, best first.
    """

    min_score: float = 0.5
    nms_iou: float = 0.3
    anchor_stride: int = 4
    tile_overlap: float = 0.25
    tile_min_side: int = 384
    max_faces: int = 64


@dataclass(frozen=True)
class FaceBox:
    """A detected face in image pixels.

    Attributes:
        x0, y0, x1, y1: the box.
        score: confidence in [0, 1].
        keypoints: (6, 2) float: the subject's right eye, left eye, nose tip, mouth centre,
            right ear tragion, left ear tragion.
    """

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    keypoints: NDArray[np.float64] = field(default_factory=lambda: np.zeros((N_KEYPOINTS, 2)))

    @property
    def size(self) -> float:
        """The box's mean side length in pixels."""
        return 0.5 * ((self.x1 - self.x0) + (self.y1 - self.y0))

    def as_array(self) -> NDArray[np.float64]:
        """``(4,)`` float ``[x0, y0, x1, y1]``."""
        return np.array([self.x0, self.y0, self.x1, self.y1], dtype=np.float64)


def iou(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """Intersection over union of box ``a`` (4,) with boxes ``b`` (N, 4), ``[x0, y0, x1, y1]``."""
    x0, y0 = np.maximum(a[0], b[:, 0]), np.maximum(a[1], b[:, 1])
    x1, y1 = np.minimum(a[2], b[:, 2]), np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return np.asarray(inter / (area_a + area_b - inter + 1e-12), dtype=np.float64)


def weighted_nms(boxes: NDArray[np.float64], scores: NDArray[np.float64], kps: NDArray[np.float64],
                 iou_max: float) -> list[tuple[NDArray, float, NDArray]]:
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their score-weighted mean.

    Args:
        boxes: (N, 4); scores: (N,); kps: (N, K, 2).
    Returns:
        ``(box (4,), score, keypoints (K, 2))`` per face, best first.
    """
    order = np.argsort(-scores, kind="stable")
    out = []
    while order.size:
        overlap = iou(boxes[order[0]], boxes[order])
        members = order[overlap > iou_max]
        w = scores[members][:, None]
        box = (boxes[members] * w).sum(0) / w.sum()
        kp = (kps[members] * w[:, :, None]).sum(0) / w.sum()
        out.append((box, float(scores[order[0]]), kp))
        order = order[overlap <= iou_max]
    return out


@lru_cache(maxsize=2)
def _load_graph(path: str) -> TFLiteGraph:
    meta, consts = parse_tflite(Path(path))
    return TFLiteGraph(meta, consts).eval()


def default_model_path() -> Path:
    """The BlazeFace full-range model file that ships with the package."""
    return Path(str(resources.files("facegcn_lib").joinpath(f"resources/{MODEL_FILE}")))


class FaceDetector:
    """Find faces in a photo.

    Args:
        config: thresholds, tiling, the number of faces.
        device: where the torch backend runs.
        model_path: a BlazeFace full-range ``.tflite`` file (default: the bundled one).
        runtime: the backend (:class:`~facegcn_lib.nn.runtime.RuntimeConfig`; by default
            onnxruntime on the CPU when it is installed, else torch).

    Example:
        >>> faces = FaceDetector()(image)   # image: (H, W, 3) uint8 RGB; a list of FaceBox
    """

    def __init__(self, config: DetectorConfig | None = None, device: str | torch.device = "cpu",
                 model_path: Path | None = None, runtime: RuntimeConfig | None = None) -> None:
        self.config = config or DetectorConfig()
        path = model_path or default_model_path()
        if not path.is_file():
            raise DetectorError(f"face detector model not found at {path}; reinstall facegcn")
        self.device = torch.device(device)
        graph = _load_graph(str(path))
        # our own copy (the parsed graph is shared); channels-last is faster on the CPU
        self._layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.net = copy.deepcopy(graph).to(self.device).to(memory_format=self._layout)
        self.input_size = int(self.net.meta["input_shape"][1])
        self.onnx = onnx_module_or_none(
            graph, torch.zeros(1, 3, self.input_size, self.input_size), "blazeface",
            runtime or RuntimeConfig(), self.device, key=(file_sha256(path),))
        grid = self.input_size // self.config.anchor_stride
        c = (np.arange(grid) + 0.5) / grid
        ax, ay = np.meshgrid(c, c)
        self.anchors = np.stack([ax.ravel(), ay.ravel()], axis=1)  # (grid*grid, 2), fixed size 1

    def _views(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """Square windows ``(x0, y0, side)`` to scan: the whole image, then tiles of large images."""
        views = [(0, 0, max(h, w))]
        tile = self.config.tile_min_side
        if tile and min(h, w) > 1.5 * tile:
            side = max(tile, min(h, w) // 2)
            step = max(1, int(side * (1 - self.config.tile_overlap)))
            ys = list(range(0, max(h - side, 0) + 1, step)) or [0]
            xs = list(range(0, max(w - side, 0) + 1, step)) or [0]
            if ys[-1] + side < h:
                ys.append(h - side)
            if xs[-1] + side < w:
                xs.append(w - side)
            views += [(x, y, side) for y in ys for x in xs]
        return views

    @torch.inference_mode()
    def __call__(self, image: NDArray[np.uint8]) -> list[FaceBox]:
        """Detect faces.

        Args:
            image: (H, W, 3) uint8 RGB, or (H, W) uint8 grayscale.
        Returns:
            Faces in the input image's pixels, best score first (empty when there is none).
        """
        if image.ndim == 2:
            image = np.repeat(image[:, :, None], 3, axis=2)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        views = self._views(h, w)
        # (1, 3, H, W) in the channels-last layout; the CPU resizes uint8 pixels (several times
        # faster than float, the same filter up to rounding), other devices float ones
        img = torch.from_numpy(np.array(image, copy=True)).to(self.device).permute(2, 0, 1)[None]
        if self.device.type != "cpu":
            img = img.float()
        batch = []
        for x0, y0, side in views:
            crop = img[:, :, y0:y0 + side, x0:x0 + side]
            if crop.shape[2] != side or crop.shape[3] != side:  # pad right/bottom
                crop = F.pad(crop, (0, side - crop.shape[3], 0, side - crop.shape[2]))
            batch.append(F.interpolate(crop.contiguous(memory_format=torch.channels_last),
                                       size=(self.input_size, self.input_size),
                                       mode="bilinear", antialias=True, align_corners=False))
        x = torch.cat(batch).float() / 127.5 - 1.0
        if self.onnx is not None:
            regressors, logits = self.onnx(x)
        else:
            regressors, logits = self.net(x.contiguous(memory_format=self._layout))
        scores = torch.sigmoid(logits[..., 0].clamp(-RAW_SCORE_CLIP, RAW_SCORE_CLIP)).cpu().numpy()
        raw = regressors.cpu().numpy().astype(np.float64) / self.input_size
        all_boxes, all_scores, all_kps = [], [], []
        for v, (x0, y0, side) in enumerate(views):
            keep = scores[v] >= self.config.min_score
            if not keep.any():
                continue
            r, anc = raw[v][keep], self.anchors[keep]
            cx, cy = r[:, 0] + anc[:, 0], r[:, 1] + anc[:, 1]
            bw, bh = r[:, 2], r[:, 3]
            box = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1) * side
            box += np.array([x0, y0, x0, y0])
            kp = (r[:, 4:4 + 2 * N_KEYPOINTS].reshape(-1, N_KEYPOINTS, 2) + anc[:, None, :]) * side
            kp += np.array([x0, y0])
            all_boxes.append(box)
            all_scores.append(scores[v][keep])
            all_kps.append(kp)
        if not all_boxes:
            return []
        merged = weighted_nms(np.concatenate(all_boxes), np.concatenate(all_scores).astype(np.float64),
                              np.concatenate(all_kps), self.config.nms_iou)
        log.debug("%d views, %d faces", len(views), len(merged))
        faces = [FaceBox(float(b[0]), float(b[1]), float(b[2]), float(b[3]), score=s, keypoints=k)
                 for b, s, k in merged]
        return faces[: self.config.max_faces]

    @property
    def backend(self) -> str:
        """``"onnx"`` or ``"torch"``: what runs the network (see :mod:`facegcn_lib.nn.runtime`)."""
        return "torch" if self.onnx is None else "onnx"

    def __repr__(self) -> str:
        return (f"FaceDetector(BlazeFace full range {self.input_size}px, {self.backend}, "
                f"{self.config})")


def graph_summary(net: TFLiteGraph) -> str:
    """A one-line count of the graph's operators, for logs and the book."""
    counts: dict[str, int] = {}
    for op in net.meta["ops"]:
        counts[op["op"]] = counts.get(op["op"], 0) + 1
    return json.dumps(counts)
