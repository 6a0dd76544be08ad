"""The Basel Face Model 2009 ``.mat`` loader, on small files of the same layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from facegcn_lib.morphable.bfm import BfmFormatError, load_bfm2009

NV, K = 12, 5


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    pc, _ = np.linalg.qr(rng.normal(size=(3 * NV, K)))  # orthonormal columns, like the BFM's
    return {
        "shapeMU": (rng.normal(size=(3 * NV, 1)) * 5e4).astype(np.float32),  # micrometres
        "shapePC": pc.astype(np.float32),
        "shapeEV": np.array([[9e5], [5e5], [3e5], [1e5], [5e4]], dtype=np.float32),
        "texMU": np.zeros((3 * NV, 1), dtype=np.float32),
        "tl": np.array([[1, 2, 3], [3, 4, 5], [5, 6, 7], [10, 11, 12]], dtype=np.int32),  # 1-based
    }


def test_bfm2009_layout(tmp_path: Path) -> None:
    arr = _arrays()
    path = tmp_path / "01_MorphableModel.mat"
    savemat(path, arr)
    m = load_bfm2009(path)
    assert m.num_verts == NV and m.num_id == K and m.num_exp == 0 and not m.has_landmarks
    np.testing.assert_allclose(m.mean, arr["shapeMU"].reshape(NV, 3) / 1000, rtol=1e-6)
    assert m.faces.tolist() == [[0, 1, 2], [2, 3, 4], [4, 5, 6], [9, 10, 11]]
    # a raw coefficient (applied to the unit PCs in micrometres) divided by shapeEV is the model's
    raw = np.array([2e5, -1e5, 0, 3e4, 1e4])
    ref = (arr["shapeMU"][:, 0] + arr["shapePC"].astype(np.float64) @ raw).reshape(NV, 3) / 1000
    got = m.sample(torch.as_tensor(raw / m.id_std)[None], dtype=torch.float64)[0].numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    assert m.id_std.tolist() == pytest.approx(arr["shapeEV"].ravel().tolist())


def test_face3d_bfm_struct_with_expressions(tmp_path: Path) -> None:
    arr = _arrays(1)
    rng = np.random.default_rng(2)
    model = {k: v for k, v in arr.items() if k != "tl"}
    model |= {"tri": arr["tl"].T.astype(np.float64), "expMU": np.ones((3 * NV, 1)) * 100,
              "expPC": rng.normal(size=(3 * NV, 3)), "expEV": np.array([[3.0], [2.0], [1.0]]),
              "kpt_ind": np.tile(np.arange(1, NV + 1), 6)[:68][None].astype(np.float64)}
    path = tmp_path / "BFM.mat"
    savemat(path, {"model": model})
    m = load_bfm2009(path)
    assert m.num_exp == 3 and m.exp_kind == "pca" and m.has_landmarks
    assert m.lmks68[0] == 0 and m.faces[0].tolist() == [0, 1, 2]
    np.testing.assert_allclose(m.mean, (arr["shapeMU"][:, 0] + 100).reshape(NV, 3) / 1000, rtol=1e-6)
    np.testing.assert_allclose(m.exp_basis[1], model["expPC"][:, 1].reshape(NV, 3) * 2 / 1000, rtol=1e-5)


def test_bfm2009_errors(tmp_path: Path) -> None:
    arr = _arrays()
    del arr["shapeEV"]
    path = tmp_path / "bad.mat"
    savemat(path, arr)
    with pytest.raises(BfmFormatError, match=r"bad\.mat.*shapeEV"):
        load_bfm2009(path)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all" * 10)
    with pytest.raises(BfmFormatError, match="junk"):
        load_bfm2009(junk)
    with pytest.raises(FileNotFoundError, match="registration"):
        load_bfm2009(tmp_path / "missing.mat")
