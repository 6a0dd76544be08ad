"""The template meshes: the BFM mean (the paper's mesh) and the ICT neutral head."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from facegcn_lib.morphable.bfm import load_bfm_mean
from facegcn_lib.morphable.ict import FACE_VERTS, ICT_LMKS68, ict_zip, load_ict_neutral


def test_bfm_mean(data_root: Path) -> None:
    bfm = load_bfm_mean(data_root)
    assert bfm.verts.shape == (53215, 3) and bfm.faces.shape == (105840, 3)
    assert bfm.faces.min() == 0 and bfm.faces.max() == 53214
    width_mm = np.ptp(bfm.verts[:, 0])
    assert 140 < width_mm < 220, "a face is about 18 cm wide"
    assert bfm.lmks68.shape == (68,)


def test_ict_neutral_head_and_face(data_root: Path) -> None:
    head = load_ict_neutral(data_root)
    assert head.verts.shape == (26719, 3)
    face = load_ict_neutral(data_root, region="face")
    assert face.verts.shape == (FACE_VERTS, 3) and face.faces.max() < FACE_VERTS
    assert np.array_equal(face.verts, head.verts[:FACE_VERTS])
    assert face.lmks68.max() < FACE_VERTS


def test_ict_landmarks_match_the_readme(data_root: Path) -> None:
    with zipfile.ZipFile(ict_zip(data_root)) as zf:
        readme = zf.read("ICT-FaceKit-master/README.md").decode()
    line = readme.split("Multi-PIE 68 point facial landmarks indices:")[1].strip().splitlines()[0]
    assert tuple(int(x) for x in line.split(",")) == ICT_LMKS68
