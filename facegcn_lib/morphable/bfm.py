"""The Basel Face Model: the paper's mean mesh (53,215 vertices, from 3DDFA) and BFM 2009 files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from facegcn_lib.paths import require

if TYPE_CHECKING:
    from facegcn_lib.morphable.model import MorphableModel

BFM_DIR = "bfm-mean-3ddfa"
MICROMETRES_PER_MM = 1000.0


@dataclass(frozen=True)
class TemplateMesh:
    """A mesh topology with its mean shape and landmark vertices.

    Attributes:
        verts: (V, 3) float64 mean shape in millimetres (x right, y up, z towards the viewer).
        faces: (F, 3) int64 triangles, 0-based.
        lmks68: (68,) int64 vertex indices of the 68 landmarks.
        name: a short name for logs and cache keys.
    """

    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    lmks68: NDArray[np.int64]
    name: str


def load_bfm_mean(root: Path | None = None) -> TemplateMesh:
    """Load the BFM mean shape + mean expression, triangles and 68 keypoints.

    Reads ``u_shp.npy``, ``u_exp.npy`` (micrometres, interleaved x, y, z), ``tri.mat``
    (3 x F, 1-based) and ``keypoints_sim.npy`` (indices into the flat vector) from
    ``<data>/bfm-mean-3ddfa/``.

    Returns:
        A :class:`TemplateMesh` with 53,215 vertices and 105,840 triangles, in millimetres,
        triangles ordered counter-clockwise seen from the front (outward normals).
    """
    from scipy.io import loadmat

    shp = np.load(require(f"{BFM_DIR}/u_shp.npy", root)).astype(np.float64)
    exp = np.load(require(f"{BFM_DIR}/u_exp.npy", root)).astype(np.float64)
    verts = (shp + exp).reshape(-1, 3) / MICROMETRES_PER_MM
    tri = loadmat(require(f"{BFM_DIR}/tri.mat", root))["tri"]
    # 3DDFA's triangles turn clockwise seen from the front; reverse them so that normals point
    # out of the face (towards the viewer), as the ICT model's do.
    faces = np.ascontiguousarray(tri.T.astype(np.int64)[:, ::-1] - 1)
    flat_idx = np.load(require(f"{BFM_DIR}/keypoints_sim.npy", root))
    lmks68 = (flat_idx[0::3] // 3).astype(np.int64)
    return TemplateMesh(verts, faces, lmks68, "bfm-mean")


class BfmFormatError(ValueError):
    """A Basel Face Model ``.mat`` file lacks a key or has inconsistent shapes."""


def load_bfm_mean_model(root: Path | None = None) -> MorphableModel:
    """The paper's BFM mean mesh (:func:`load_bfm_mean`) as a model with empty bases."""
    from facegcn_lib.morphable.model import mean_only_model

    return mean_only_model(load_bfm_mean(root))


def _mat_fields(path: Path) -> dict[str, Any]:
    from scipy.io import loadmat

    try:
        mat = loadmat(path, squeeze_me=False, struct_as_record=False)
    except (ValueError, OSError, NotImplementedError) as err:
        raise BfmFormatError(f"{path}: cannot read it as a MATLAB file ({err}); BFM 2009's "
                             "01_MorphableModel.mat (v5 format) is expected") from err
    fields = {k: v for k, v in mat.items() if not k.startswith("__")}
    if "shapeMU" not in fields and "model" in fields:  # face3d's BFM.mat: one struct 'model'
        struct = np.asarray(fields["model"]).reshape(-1)[0]
        fields = {k: getattr(struct, k) for k in struct._fieldnames}
    return fields


def _triangles(raw: NDArray, path: Path) -> NDArray[np.int64]:
    tri = np.asarray(raw).astype(np.int64)
    if tri.ndim != 2 or 3 not in tri.shape:
        raise BfmFormatError(f"{path}: triangles must be (F, 3) or (3, F), got {tri.shape}")
    tri = tri if tri.shape[1] == 3 else tri.T
    return np.ascontiguousarray(tri - 1)  # MATLAB: 1-based


def load_bfm2009(path: str | Path, lmks68: ArrayLike | None = None) -> MorphableModel:
    """Load a Basel Face Model 2009 ``01_MorphableModel.mat`` as a :class:`MorphableModel`.

    Reads ``shapeMU`` (3V, 1), ``shapePC`` (3V, K) unit principal components, ``shapeEV``
    (K, 1) their standard deviations, and ``tl`` (F, 3) 1-based triangles; coordinates are
    micrometres, interleaved x, y, z (converted to millimetres). The identity basis is
    ``shapePC * shapeEV`` so coefficients are N(0, 1) and ``id_std = shapeEV`` converts a raw
    coefficient (300W-LP's ``Shape_Para``) to the model's. BFM 2009 has no expressions: the
    expression basis is empty, unless the file also has ``expMU``/``expPC``/``expEV``, as
    face3d's ``BFM.mat`` (a struct ``model`` with these keys, ``tri`` and 1-based
    ``kpt_ind``) does, which is read the same way.

    Args:
        path: the ``.mat`` file (the user's own copy; the BFM may not be redistributed).
        lmks68: 68 vertex indices (0-based) of the landmarks, when the file has no ``kpt_ind``.
    Raises:
        BfmFormatError: a key is missing or shapes disagree; the message names the file.
    """
    from facegcn_lib.morphable.model import MorphableModel

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"Basel Face Model file not found: {p}. The BFM 2009 is "
                                "distributed by the University of Basel after registration.")
    f = _mat_fields(p)
    missing = [k for k in ("shapeMU", "shapePC", "shapeEV") if k not in f]
    tri_key = "tl" if "tl" in f else "tri" if "tri" in f else None
    if missing or tri_key is None:
        raise BfmFormatError(f"{p}: missing keys {missing + ([] if tri_key else ['tl'])}; "
                             f"found {sorted(f)}")
    mu = np.asarray(f["shapeMU"], dtype=np.float64).reshape(-1)
    if len(mu) % 3:
        raise BfmFormatError(f"{p}: shapeMU has {len(mu)} entries, not a multiple of 3")
    nv = len(mu) // 3

    def basis(pc_key: str, ev_key: str) -> tuple[NDArray[np.float32], NDArray[np.float64]]:
        pc = np.asarray(f[pc_key], dtype=np.float64)
        ev = np.asarray(f[ev_key], dtype=np.float64).reshape(-1)
        if pc.ndim != 2 or pc.shape[0] != 3 * nv or pc.shape[1] != len(ev):
            raise BfmFormatError(f"{p}: {pc_key} is {pc.shape} and {ev_key} has {len(ev)} "
                                 f"entries; expected ({3 * nv}, K) and K")
        scaled = (pc * ev / MICROMETRES_PER_MM).T.reshape(len(ev), nv, 3)
        return scaled.astype(np.float32), ev

    id_basis, id_std = basis("shapePC", "shapeEV")
    has_exp = all(k in f for k in ("expPC", "expEV"))
    if has_exp:
        exp_basis, exp_std = basis("expPC", "expEV")
        if "expMU" in f:
            mu = mu + np.asarray(f["expMU"], dtype=np.float64).reshape(-1)
    else:
        exp_basis, exp_std = np.zeros((0, nv, 3), dtype=np.float32), np.zeros(0)
    if lmks68 is not None:
        lmks = np.asarray(lmks68, dtype=np.int64).reshape(-1)
    elif "kpt_ind" in f:
        lmks = np.asarray(f["kpt_ind"], dtype=np.int64).reshape(-1) - 1
    else:
        lmks = np.zeros(0, dtype=np.int64)
    return MorphableModel(
        name="bfm2009" if not has_exp else "bfm-exp", faces=_triangles(f[tri_key], p),
        mean=mu.reshape(nv, 3) / MICROMETRES_PER_MM, id_basis=id_basis, exp_basis=exp_basis,
        lmks68=lmks, regions={"all": (0, nv)}, exp_kind="pca", id_std=id_std, exp_std=exp_std)
