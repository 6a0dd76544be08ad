"""The synthetic-face generator: reproducible, and its labels agree with its images."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facegcn_lib.data.effects import CameraConfig, OccluderConfig
from facegcn_lib.data.synth import ExpressionConfig, SynthConfig, SyntheticFaces
from facegcn_lib.geometry.umeyama import pose_from_mesh
from facegcn_lib.morphable.ict import FACE_VERTS, load_ict_model
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.render.raster import rasterize

SIZE = 96
#: no camera effects or occluders: the image is exactly the rendering
CLEAN = dict(camera=CameraConfig(blur_prob=0, motion_prob=0, noise_prob=0, jitter_prob=0, gray_prob=0,
                                 jpeg_prob=0),
             occluders=OccluderConfig(prob=0))
NEUTRAL = ExpressionConfig(active_prob=0, jaw_open_prob=0, eyes_closed_prob=0)


@pytest.fixture(scope="module")
def model(data_root: Path) -> MorphableModel:
    return load_ict_model(data_root)


def faces_at(model: MorphableModel, cfg: SynthConfig, seed: int = 0) -> SyntheticFaces:
    return SyntheticFaces(cfg, seed=seed, length=1000, model=model)


def test_samples_are_reproducible_and_order_free(model: MorphableModel) -> None:
    cfg = SynthConfig(image_size=SIZE, supersample=1)
    a = faces_at(model, cfg)
    first = [a[i] for i in (3, 1)]
    b = faces_at(model, cfg)
    again = [b[i] for i in (1, 3)][::-1]  # other instance, other order
    for x, y in zip(first, again, strict=True):
        assert x.keys() == y.keys()
        for k in x:
            assert (x[k] == y[k]).all(), k
    assert not (first[0]["image"] == first[1]["image"]).all()
    other_seed = faces_at(model, cfg, seed=1)[3]
    assert not (other_seed["vertices"] == first[0]["vertices"]).all()


def test_sample_shapes_and_ranges(model: MorphableModel) -> None:
    s = faces_at(model, SynthConfig(image_size=SIZE, supersample=1))[0]
    assert s["image"].shape == (3, SIZE, SIZE) and str(s["image"].dtype) == "torch.uint8"
    assert s["vertices"].shape == (FACE_VERTS, 3) and str(s["vertices"].dtype) == "torch.float32"
    assert s["landmarks"].shape == (68, 3)
    assert s["pose"].shape == (3,) and s["pose"].abs().max() <= np.pi
    assert s["visibility"].shape == (FACE_VERTS,) and str(s["visibility"].dtype) == "torch.bool"
    assert s["mask"].shape == (SIZE, SIZE)
    assert (s["landmarks"] == s["vertices"][model.lmks68]).all()
    assert s["image"].float().std() > 5  # not a blank image


def test_landmarks_fill_the_crop_and_yaw_covers_the_range(model: MorphableModel) -> None:
    cfg = SynthConfig(image_size=48, supersample=1, augment=None, **CLEAN)
    ds = faces_at(model, cfg)
    samples = [ds.sample(i) for i in range(24)]
    yaws = np.array([s.pose_deg[0] for s in samples])
    assert yaws.min() < -45 and yaws.max() > 45
    for s in samples:  # without augmentation, the landmark box is the crop's central 1/1.5
        xy = s.lmks68[:, :2]
        assert (xy > -0.5).all() and (xy < 47.5).all()
        extent = (xy.max(axis=0) - xy.min(axis=0)).max()
        assert extent == pytest.approx(48 / cfg.crop.margin, rel=1e-3)


def test_visibility_follows_the_pose(model: MorphableModel) -> None:
    frac = []
    for yaw in (0.0, 45.0, 90.0):
        cfg = SynthConfig(image_size=SIZE, yaw_deg=(yaw, yaw), pitch_deg=(0, 0), roll_deg=(0, 0),
                          augment=None, expression=NEUTRAL, id_std=0.0, **CLEAN)
        s = faces_at(model, cfg).sample(0)
        vis = s.visibility
        frac.append(vis.mean())
        if yaw == 0.0:
            assert vis[model.lmks68].all()  # a frontal neutral face shows all 68 landmarks
        if yaw == 90.0:  # turned to the image's left: the subject's right cheek is hidden
            assert not vis[model.lmks68[:5]].any()
            assert vis[model.lmks68[12:17]].all()
    assert frac[0] > frac[1] > frac[2] > 0.2


def test_rendered_face_is_where_its_vertices_project(model: MorphableModel) -> None:
    cfg = SynthConfig(image_size=SIZE, **CLEAN)
    ds = faces_at(model, cfg)
    face = model.region("face")
    for i in range(3):
        s = ds.sample(i)
        pts = s.verts_img.astype(np.float64).copy()
        pts[:, 2] *= -1  # towards the camera is nearer
        drawn = rasterize(pts, face.faces, SIZE, SIZE).mask
        rendered = s.mask > 0.5
        iou = (drawn & rendered).sum() / (drawn | rendered).sum()
        assert iou > 0.9, iou
        # visible vertices lie on rendered face pixels
        vis = s.verts_img[s.visibility]
        col = np.clip(np.round(vis[:, 0]).astype(int), 0, SIZE - 1)
        row = np.clip(np.round(vis[:, 1]).astype(int), 0, SIZE - 1)
        inside = (vis[:, 0] > 1) & (vis[:, 0] < SIZE - 2) & (vis[:, 1] > 1) & (vis[:, 1] < SIZE - 2)
        assert (s.mask[row, col] > 0)[inside].mean() > 0.97


def test_pose_label_matches_the_geometry(model: MorphableModel) -> None:
    cfg = SynthConfig(image_size=SIZE, supersample=1, expression=NEUTRAL, id_std=0.0,
                      yaw_deg=(-70, 70), distance_mm=(2000, 3000), **CLEAN)
    ds = faces_at(model, cfg)
    template = model.mean[:FACE_VERTS]
    for i in range(4):
        s = ds.sample(i)
        fit = pose_from_mesh(s.verts_img, template)
        got = np.degrees([fit.yaw, fit.pitch, fit.roll])
        diff = (got - s.pose_deg + 180) % 360 - 180
        assert np.abs(diff).max() < 2.0, (got, s.pose_deg)


def test_steps_for_figures(model: MorphableModel) -> None:
    ds = faces_at(model, replace(SynthConfig(image_size=32, supersample=1)))
    s = ds.sample(5, keep_steps=True)
    for key in ("gbuffer", "normals", "albedo", "shading", "background", "composite", "lighting"):
        assert key in s.steps
    assert (s.image == ds.sample(5).image).all()  # keeping the steps changes nothing
    with pytest.raises(IndexError):
        faces_at(model, SynthConfig())[1000]


def test_renderer_shapes_are_the_models(model: MorphableModel) -> None:
    # the renderer keeps the identity basis in 16 bits: within a micron of the model's shape
    r = faces_at(model, SynthConfig()).renderer
    rng = np.random.default_rng(0)
    for _ in range(3):
        id_c = rng.normal(size=model.num_id)
        exp_c = np.where(rng.random(model.num_exp) < 0.2, rng.random(model.num_exp), 0.0)
        ref = model.sample_numpy(id_coeffs=id_c, exp_coeffs=exp_c)
        assert np.abs(r.shape(id_c, exp_c) - ref).max() < 1e-3


def test_camera_kernels_match_numpy() -> None:
    from facegcn_lib.data.synth import _seen_frames, _to_camera, _to_image

    rng = np.random.default_rng(1)
    v = rng.normal(0, 80, (50, 3)).astype(np.float32)
    pivot, dist = rng.normal(0, 10, 3), 700.0
    view_rot, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    p_view = (v - pivot) @ view_rot.T + np.array([0.0, 0.0, dist])
    p_cam, depth = np.empty((50, 3)), np.empty(50)
    _to_camera(v, pivot, view_rot, q, dist, p_cam, depth)
    np.testing.assert_allclose(p_cam, p_view @ q.T, atol=1e-9)
    np.testing.assert_allclose(depth, p_view[:, 2], atol=1e-9)
    frame = rng.normal(size=(2, 3))
    pix, hi = np.empty((50, 3)), np.empty((50, 3))
    _to_image(p_cam, frame, 2, pix, hi)
    norm = p_cam[:, :2] / p_cam[:, 2:]
    np.testing.assert_allclose(pix[:, :2], norm @ frame[:, :2].T + frame[:, 2], atol=1e-9)
    np.testing.assert_allclose(hi[:, :2], (pix[:, :2] + 0.5) * 2 - 0.5, atol=1e-9)
    assert (pix[:, 2] == p_cam[:, 2]).all() and (hi[:, 2] == p_cam[:, 2]).all()
    idx = np.array([4, 0, 49])
    normals, dirs = np.empty((3, 3)), np.empty((3, 3))
    model_normals = rng.normal(size=(50, 3))
    _seen_frames(idx, model_normals, q, p_cam, normals, dirs)
    np.testing.assert_allclose(normals, model_normals[idx] @ q, atol=1e-12)
    np.testing.assert_allclose(dirs, -p_cam[idx] / np.linalg.norm(p_cam[idx], axis=1, keepdims=True))
