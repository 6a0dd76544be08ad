"""Photo in, faces out: the Reconstructor on the demo photos with an untrained tiny model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from facegcn_lib.data.crop import CropBox, CropConfig, CropTransform
from facegcn_lib.data.images import ImageLoadError, load_image
from facegcn_lib.detect import FaceBox, iou
from facegcn_lib.face import Face, sample_colors
from facegcn_lib.mesh.io import read_obj, read_ply
from facegcn_lib.nn.ensemble import EnsembleError, FaceGCNEnsemble
from facegcn_lib.nn.model import FaceGCN
from facegcn_lib.nn.runtime import RuntimeConfig
from facegcn_lib.overlay import front_facing
from facegcn_lib.pipeline import (
    MAX_CROP_SHIFT,
    TRAINING_CROP_SHIFT,
    PipelineConfig,
    PipelineConfigError,
    PretrainedModelMissingError,
    Reconstructor,
    UnsupportedImageError,
    _shared_reconstructor,
    as_rgb,
    detector_crop_box,
    load_pretrained,
    pretrained_checkpoints,
    warp_local,
)
from tests.tiny_reconstructor import GROUP, PHOTO, save_tiny_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")




@pytest.fixture(scope="module")
def rec(checkpoint: Path) -> Reconstructor:
    return Reconstructor(checkpoint)


@pytest.fixture(scope="module")
def photo(data_root: Path) -> np.ndarray:
    return load_image(data_root / PHOTO)


@pytest.fixture(scope="module")
def photo_faces(rec: Reconstructor, photo: np.ndarray) -> list[Face]:
    return rec(photo)


def test_one_face_with_mesh_landmarks_pose_and_box(photo_faces: list[Face], photo: np.ndarray,
                                                   rec: Reconstructor) -> None:
    assert len(photo_faces) == 1
    f = photo_faces[0]
    v = rec.model.target.n_verts
    assert f.verts_img.shape == (v, 3) and f.verts_img.dtype == np.float32
    assert f.faces.shape == (len(rec.model.target.faces), 3)
    assert f.lmks68.shape == (68, 3) and np.isfinite(f.verts_img).all()
    assert len(f.pose) == 3 and all(np.isfinite(f.pose))
    # the untrained model puts a (noisy) mean face in the crop: on the detected face
    x0, y0, x1, y1 = f.box
    cx, cy = f.lmks68[:, :2].mean(axis=0)
    assert x0 < cx < x1 and y0 < cy < y1
    assert 0.3 < f.size / (x1 - x0) < 2.0
    assert 0.0 < f.score <= 1.0


def test_the_same_faces_from_a_path_an_array_and_a_pil_image(rec: Reconstructor, data_root: Path,
                                                             photo: np.ndarray,
                                                             photo_faces: list[Face]) -> None:
    from PIL import Image

    for source in (str(data_root / PHOTO), Image.fromarray(photo), photo.astype(np.float32) / 255.0):
        (f,) = rec(source)
        np.testing.assert_allclose(f.verts_img, photo_faces[0].verts_img, atol=1e-2)


def test_module_level_reconstruct_keeps_its_reconstructor(checkpoint: Path, photo: np.ndarray,
                                                            photo_faces: list[Face]) -> None:
    import facegcn_lib

    (f,) = facegcn_lib.reconstruct(photo, checkpoint=checkpoint)
    np.testing.assert_allclose(f.verts_img, photo_faces[0].verts_img, atol=1e-2)
    facegcn_lib.reconstruct(photo, checkpoint=checkpoint)
    assert _shared_reconstructor.cache_info().hits >= 1


def test_grayscale_photo(rec: Reconstructor, photo: np.ndarray) -> None:
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    assert as_rgb(gray).shape == (*gray.shape, 3)
    faces = rec(gray)
    assert len(faces) == 1 and np.isfinite(faces[0].verts_img).all()


def test_no_face_gives_an_empty_list(rec: Reconstructor) -> None:
    assert rec(np.full((300, 400, 3), 128, dtype=np.uint8)) == []  # dogs.jpg: the CLI tests


def test_bad_inputs_raise_clear_errors(rec: Reconstructor, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    with pytest.raises(ImageLoadError, match=r"broken\.jpg"):
        rec(bad)
    with pytest.raises(UnsupportedImageError, match="list"):
        rec([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(UnsupportedImageError, match="shape"):
        rec(np.zeros((4, 4, 2), dtype=np.uint8))
    with pytest.raises(FileNotFoundError):
        rec(tmp_path / "missing.png")


def test_many_faces_are_batched_like_single_ones(rec: Reconstructor, data_root: Path) -> None:
    image = load_image(data_root / GROUP)
    boxes = rec.detect(image)
    assert len(boxes) >= 10
    together = rec.reconstruct_boxes(image, boxes)
    for k in (0, len(boxes) - 1):
        (alone,) = rec.reconstruct_boxes(image, [boxes[k]])
        np.testing.assert_allclose(alone.verts_img, together[k].verts_img, atol=1e-2)
    centres = np.array([f.lmks68[:, :2].mean(axis=0) for f in together])
    inside = [b.x0 < c[0] < b.x1 and b.y0 < c[1] < b.y1 for b, c in zip(boxes, centres, strict=True)]
    assert all(inside)


def test_face_cut_by_the_border(rec: Reconstructor, photo: np.ndarray, tmp_path: Path) -> None:
    part = np.ascontiguousarray(photo[:, :400])  # the face's right part is outside the photo
    (f,) = rec(part)
    assert f.box[2] > part.shape[1] and np.isfinite(f.verts_img).all()
    paths = f.save(tmp_path, "cut", part)
    assert all(p.is_file() for p in paths.values())


def test_huge_photo(rec: Reconstructor, photo: np.ndarray, photo_faces: list[Face]) -> None:
    scale, dx = 5, 1500
    big = cv2.resize(photo, (photo.shape[1] * scale, photo.shape[0] * scale))
    canvas = np.zeros((4000, 6000, 3), dtype=np.uint8)
    canvas[:, dx:dx + big.shape[1]] = big
    faces = rec(canvas)
    expected = photo_faces[0].box * scale + np.array([dx, 0, dx, 0])
    assert len(faces) == 1
    assert iou(expected, faces[0].box[None])[0] > 0.5
    assert np.isfinite(faces[0].verts_img).all()


def test_save_writes_files_that_parse(photo_faces: list[Face], photo: np.ndarray,
                                      tmp_path: Path) -> None:
    from PIL import Image

    f = photo_faces[0]
    paths = f.save(tmp_path / "out", "tom_face00", photo)
    assert {p.name for p in paths.values()} == {
        "tom_face00.obj", "tom_face00.ply", "tom_face00_lmks68.json", "tom_face00_pose.json",
        "tom_face00_overlay.png", "tom_face00_depth.png"}
    obj = read_obj(paths["obj"])
    np.testing.assert_allclose(obj.verts, f.verts_img, atol=1e-4)
    np.testing.assert_array_equal(obj.faces, f.faces)
    verts, _, colors = read_ply(paths["ply"])
    np.testing.assert_allclose(verts, f.verts_img)
    assert colors is not None and colors.shape == verts.shape
    np.testing.assert_array_equal(colors, f.colors(photo))
    lmks = json.loads(paths["lmks68"].read_text())
    assert np.asarray(lmks["landmarks"]).shape == (68, 3) and "AFLW2000-3D" in lmks["convention"]
    pose = json.loads(paths["pose"].read_text())
    assert pose["units"] == "degrees" and len(pose["box"]) == 4
    assert [pose["yaw"], pose["pitch"], pose["roll"]] == pytest.approx(list(f.pose))
    overlay = np.asarray(Image.open(paths["overlay"]))
    x0, y0, x1, y1 = f.region(*photo.shape[:2])
    assert overlay.shape == (y1 - y0, x1 - x0, 3)
    depth = Image.open(paths["depth"])
    assert depth.size == (x1 - x0, y1 - y0) and int(depth.text["x0"]) == x0
    code = np.asarray(depth)
    assert code.dtype == np.uint16 and (code > 0).mean() > 0.2


def test_depth_of_a_triangle_is_its_plane() -> None:
    verts = np.array([[2.0, 2.0, 10.0], [40.0, 4.0, 20.0], [6.0, 30.0, 30.0]], dtype=np.float32)
    face = Face(verts, np.array([[0, 1, 2]]), np.repeat(verts[:1], 68, axis=0), (0.0, 0.0, 0.0),
                np.zeros(4), 1.0)
    d = face.depth(50, 60)
    ys, xs = np.nonzero(np.isfinite(d.z))
    assert len(xs) > 100
    # the plane through the corners, in image pixels: solve z = a x + b y + c
    a, b, c = np.linalg.solve(np.c_[verts[:, :2], np.ones(3)], verts[:, 2])
    np.testing.assert_allclose(d.z[ys, xs], a * (xs + d.x0) + b * (ys + d.y0) + c, atol=1e-3)
    code, lo, hi = d.encode()
    assert code[ys, xs].min() == 1 and code[ys, xs].max() == 65535
    assert lo == pytest.approx(d.z[ys, xs].min()) and hi == pytest.approx(d.z[ys, xs].max())


def test_sample_colors_is_bilinear() -> None:
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    pts = np.vstack([rng.uniform([-3, -3], [33, 23], (50, 2)), [[29, 19], [0, 0], [29.0, 0.5]]])
    got = sample_colors(image, pts)
    ref = np.stack([map_coordinates(image[:, :, c].astype(np.float64), [pts[:, 1], pts[:, 0]],
                                    order=1, mode="nearest") for c in range(3)], axis=1)
    np.testing.assert_array_equal(got, np.round(ref).astype(np.uint8))


def test_warp_local_matches_warping_the_whole_photo(photo: np.ndarray) -> None:
    for box in (CropBox(280.0, 460.0, 700.0), CropBox(10.0, 300.0, 120.0)):  # shrink / border
        tf = CropTransform.build(box, 64)
        full = tf.warp_image(photo).astype(np.int16)
        local = warp_local(photo, tf).astype(np.int16)
        assert np.abs(full - local).mean() < 1.5


def test_detector_box_maps_to_the_landmark_crop() -> None:
    cfg = PipelineConfig(crop=CropConfig(size=64))
    box = FaceBox(100.0, 200.0, 300.0, 400.0, 0.9)
    crop = detector_crop_box(box, cfg)
    side = cfg.detector_box_scale * 200.0 * cfg.crop.margin
    assert crop.side == pytest.approx(side)
    assert crop.cx == pytest.approx(200.0)
    assert crop.cy == pytest.approx(300.0 + cfg.detector_shift_y * 200.0 + cfg.crop.shift_y * side)


def test_more_passes_change_the_crop(rec: Reconstructor, photo: np.ndarray) -> None:
    assert rec.config.passes == 1  # the default
    two = Reconstructor(model=rec.model, config=PipelineConfig(passes=2))
    (a,) = two(photo)
    (b,) = rec(photo)
    assert not np.allclose(a.verts_img, b.verts_img)


def test_crop_shift_averages_the_meshes_of_five_shifted_crops(
        rec: Reconstructor, photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    assert rec.config.crop_shift == 0.0  # off by default
    shift = TRAINING_CROP_SHIFT
    five = Reconstructor(model=rec.model, config=PipelineConfig(crop_shift=shift))

    def five_crops(box: CropBox) -> list[CropBox]:
        return [CropBox(box.cx + dx * box.side, box.cy + dy * box.side, box.side)
                for dx, dy in ((0, 0), (-shift, 0), (shift, 0), (0, -shift), (0, shift))]

    box = CropBox(300.0, 260.0, 240.0)
    verts, lmks, pose = five._predict(photo, [box, box])  # two faces: each averaged alone
    by_hand = np.mean(rec._predict(photo, five_crops(box))[0], axis=0)
    assert verts.shape == (2, rec.model.target.n_verts, 3) and lmks.shape == (2, 68, 3)
    np.testing.assert_allclose(verts[0], by_hand, atol=1e-3)
    np.testing.assert_allclose(verts[1], by_hand, atol=1e-3)
    np.testing.assert_array_equal(lmks, verts[:, rec.model.lmks68.numpy()])
    assert pose.shape == (2, 3) and np.isfinite(pose).all()
    # the whole pipeline reads the detector's crop five times and averages (not: its result
    # differs from one crop's, which this untrained model, whose output hardly depends on the
    # pixels, cannot show)
    read = {"one": 0, "five": 0}

    def counting(name: str, network: Callable[[torch.Tensor], torch.Tensor]
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
        def run(crops: torch.Tensor) -> torch.Tensor:
            read[name] += len(crops)
            return network(crops)
        return run

    monkeypatch.setattr(rec, "network", counting("one", rec.network))
    monkeypatch.setattr(five, "network", counting("five", five.network))
    (a,) = five(photo)
    (b,) = rec(photo)
    assert read["five"] == 5 * read["one"] and a.verts_img.shape == b.verts_img.shape
    crop = detector_crop_box(rec.detect(photo)[0], rec.config)
    np.testing.assert_allclose(a.verts_img, np.mean(rec._predict(photo, five_crops(crop))[0], axis=0),
                               atol=1e-3)
    for bad in (-0.01, MAX_CROP_SHIFT):
        with pytest.raises(PipelineConfigError, match="crop_shift"):
            PipelineConfig(crop_shift=bad)


def test_torch_and_onnxruntime_backends_agree(rec: Reconstructor, checkpoint: Path,
                                              photo: np.ndarray) -> None:
    on_torch = Reconstructor(checkpoint, config=PipelineConfig(
        runtime=RuntimeConfig(backend="torch")))
    assert (rec.backend, rec.detector.backend) == ("onnx", "onnx")  # auto, onnxruntime installed
    assert (on_torch.backend, on_torch.detector.backend) == ("torch", "torch")
    crops = torch.rand(3, 3, rec.size, rec.size)
    with torch.no_grad():
        ref = rec.model(crops)
    torch.testing.assert_close(rec.network(crops), ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(on_torch.network(crops), ref, atol=1e-4, rtol=1e-4)
    (a,) = rec(photo)
    (b,) = on_torch(photo)
    np.testing.assert_allclose(a.box, b.box, atol=0.05)  # pixels
    np.testing.assert_allclose(a.verts_img, b.verts_img, atol=0.05)


def test_the_template_mesh_faces_the_camera(photo_faces: list[Face]) -> None:
    # the overlay draws front-facing triangles; a near-frontal face shows most of them
    f = photo_faces[0]
    assert front_facing(f.verts_img, f.faces).mean() > 0.6


def test_missing_pretrained_model_says_what_to_do(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setattr("facegcn_lib.pipeline.default_checkpoint_path",
                        lambda: tmp_path / "facegcn_cpu.pt")
    with pytest.raises(PretrainedModelMissingError, match="--checkpoint"):
        load_pretrained()


def test_an_ensemble_of_checkpoints_averages_their_meshes(rec: Reconstructor, checkpoint: Path,
                                                           photo: np.ndarray,
                                                           photo_faces: list[Face]) -> None:
    other = save_tiny_checkpoint(checkpoint.parent, seed=1)
    ens = Reconstructor([checkpoint, other])
    assert isinstance(ens.model, FaceGCNEnsemble) and ens.backend == "onnx"
    assert repr(ens).startswith("Reconstructor(2 x mobilenet_v3_small 64px")
    (f,) = ens(photo)
    (g,) = Reconstructor(other)(photo)
    # one detector box; the crop, the flip averaging and the placement are linear in the meshes
    mean = (photo_faces[0].verts_img + g.verts_img) / 2
    np.testing.assert_allclose(f.verts_img, mean, atol=0.05)  # pixels
    np.testing.assert_allclose(f.lmks68, rec.landmarks.apply(f.verts_img), atol=1e-3)
    (h,) = reconstruct_module_level(photo, [checkpoint, other])
    np.testing.assert_allclose(h.verts_img, f.verts_img, atol=1e-3)


def test_a_moment_pooling_checkpoint_reconstructs_a_photo(tmp_path: Path, photo: np.ndarray,
                                                          photo_faces: list[Face]) -> None:
    """A model trained with ``--pooling moments`` loads from its checkpoint and runs in onnxruntime."""
    from dataclasses import replace

    from facegcn_lib.nn.pooling import MomentPool
    from tests.tiny_reconstructor import TINY_CONFIG

    cfg = replace(TINY_CONFIG, encoder=replace(TINY_CONFIG.encoder, pooling="moments"))
    rec = Reconstructor(save_tiny_checkpoint(tmp_path, config=cfg))
    assert isinstance(rec.model.encoder.backbone.avgpool, MomentPool)
    assert rec.backend == "onnx"
    assert repr(rec).startswith("Reconstructor(mobilenet_v3_small (moments pooling) 64px")
    (f,) = rec(photo)
    assert f.verts_img.shape == photo_faces[0].verts_img.shape
    assert np.isfinite(f.verts_img).all()


def reconstruct_module_level(photo: np.ndarray, checkpoints: list[Path]) -> list[Face]:
    import facegcn_lib

    return facegcn_lib.reconstruct(photo, checkpoint=checkpoints)


def test_a_list_of_one_checkpoint_is_that_model_and_an_empty_one_is_refused(checkpoint: Path) -> None:
    model = load_pretrained([checkpoint])
    assert isinstance(model, FaceGCN) and not isinstance(model, FaceGCNEnsemble)
    with pytest.raises(EnsembleError, match="several for an ensemble"):
        load_pretrained([])


def test_the_pretrained_models_by_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (default,) = pretrained_checkpoints()
    pair = pretrained_checkpoints("pair")
    assert pair[0] == default and len(pair) == 2 and pair[1].name == "facegcn_cpu_seed1.pt"
    assert all(p.is_file() for p in pair)  # both ship in the package
    with pytest.raises(PretrainedModelMissingError, match=r"no pretrained model 'triple'.*'pair'"):
        pretrained_checkpoints("triple")
    monkeypatch.setattr("facegcn_lib.pipeline.default_checkpoint_path",
                        lambda: tmp_path / "facegcn_cpu.pt")
    with pytest.raises(PretrainedModelMissingError, match="'pair' is not fully installed"):
        pretrained_checkpoints("pair")
