"""Carrying the BFM (AFLW2000-3D) 68-point definition onto the ICT face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facegcn_lib.morphable.correspondence import (
    ANCHOR_LMKS,
    RegistrationConfig,
    SurfaceLandmarks,
    bfm_landmarks_on_ict,
    transfer_landmarks,
)
from facegcn_lib.morphable.ict import load_ict_neutral


def test_surface_landmarks_numpy_and_torch_agree() -> None:
    faces = np.array([[0, 1, 2], [1, 3, 2]])
    lm = SurfaceLandmarks(faces, np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]]), "t")
    verts = np.random.default_rng(0).normal(size=(2, 4, 3))
    expected = np.stack([0.2 * verts[:, 0] + 0.3 * verts[:, 1] + 0.5 * verts[:, 2], verts[:, 1]], axis=1)
    np.testing.assert_allclose(lm.apply(verts), expected)
    np.testing.assert_allclose(lm.apply(torch.from_numpy(verts)).numpy(), expected)
    on_vertex = SurfaceLandmarks.from_vertices(np.array([3, 0]), faces, "v")
    np.testing.assert_allclose(on_vertex.apply(verts[0]), verts[0, [3, 0]])


def test_transfer_onto_itself_is_the_identity(data_root: Path) -> None:
    face = load_ict_neutral(data_root, region="face")
    moved = face.verts * 1.1 + np.array([5.0, -3.0, 2.0])  # a similarity apart
    cfg = RegistrationConfig(stiffness=(20.0, 3.0), inner_iterations=2)
    lm = transfer_landmarks(moved, face.faces, face.lmks68, face.verts, face.faces, face.lmks68, "self", cfg)
    err = np.linalg.norm(lm.apply(face.verts) - face.verts[face.lmks68], axis=1)
    assert err.max() < 0.5, err  # millimetres


def test_bfm_definition_on_ict(data_root: Path) -> None:
    face = load_ict_neutral(data_root, region="face")
    lm = bfm_landmarks_on_ict(data_root)
    assert lm.faces.shape == (68, 3) and lm.faces.max() < len(face.verts)
    np.testing.assert_allclose(lm.bary.sum(axis=1), 1.0, atol=1e-9)
    assert (lm.bary >= -1e-9).all()
    offsets = lm.apply(face.verts) - face.verts[face.lmks68]
    anchors = np.asarray(ANCHOR_LMKS)
    # the points both conventions agree on stay within a few millimetres...
    assert np.linalg.norm(offsets[anchors], axis=1).mean() < 2.0
    # ...while AFLW2000-3D's brows sit lower than the ICT list's (the bias seen on photos)
    assert offsets[17:27, 1].mean() < -2.0
    # the definition is cached: a second call is the same
    again = bfm_landmarks_on_ict(data_root)
    np.testing.assert_array_equal(again.faces, lm.faces)
