"""The ICT Face Model (ICT-FaceKit, MIT): head, bases, regions and 68 landmarks, read from its zip."""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from facegcn_lib.mesh.io import parse_obj, read_obj_verts
from facegcn_lib.morphable.bfm import TemplateMesh
from facegcn_lib.morphable.model import MorphableModel
from facegcn_lib.paths import cache_file, require

log = logging.getLogger(__name__)

ICT_ZIP = "ict-facekit/ICT-FaceKit-master.zip"
ICT_PREFIX = "ICT-FaceKit-master/FaceXModel/"
MM_PER_CM = 10.0
#: Number of identity shapes (``identity000.obj`` ... ``identity099.obj``) in ICT Face Model Light.
ICT_NUM_IDENTITY = 100
_MODEL_CACHE_VERSION = "v1"

#: Vertex ranges [start, stop) of the head's regions (ICT-FaceKit README).
ICT_REGIONS: dict[str, tuple[int, int]] = {
    "face": (0, 9409),
    "head_and_neck": (9409, 11248),
    "mouth_socket": (11248, 13294),
    "eye_socket_left": (13294, 13678),
    "eye_socket_right": (13678, 14062),
    "gums_and_tongue": (14062, 17039),
    "teeth": (17039, 21451),
    "eyeball_left": (21451, 23021),
    "eyeball_right": (23021, 24591),
    "lacrimal_fluid_left": (24591, 24795),
    "lacrimal_fluid_right": (24795, 24999),
    "eye_blend_left": (24999, 25023),
    "eye_blend_right": (25023, 25047),
    "eye_occlusion_left": (25047, 25199),
    "eye_occlusion_right": (25199, 25351),
    "eyelashes_left": (25351, 26035),
    "eyelashes_right": (26035, 26719),
}
FACE_VERTS = ICT_REGIONS["face"][1]

#: The 0-indexed Multi-PIE 68-point landmark vertices of the ICT face (ICT-FaceKit README).
ICT_LMKS68: tuple[int, ...] = (
    1225, 1888, 1052, 367, 1719, 1722, 2199, 1447, 966, 3661, 4390, 3927, 3924, 2608, 3272, 4088,
    3443, 268, 493, 1914, 2044, 1401, 3615, 4240, 4114, 2734, 2509, 978, 4527, 4942, 4857, 1140,
    2075, 1147, 4269, 3360, 1507, 1542, 1537, 1528, 1518, 1511, 3742, 3751, 3756, 3721, 3725, 3732,
    5708, 5695, 2081, 0, 4275, 6200, 6213, 6346, 6461, 5518, 5957, 5841, 5702, 5711, 5533, 6216,
    6207, 6470, 5517, 5966,
)


def ict_zip(root: Path | None = None) -> Path:
    """The path of the ICT-FaceKit archive in the data directory."""
    return require(ICT_ZIP, root)


def read_ict_member(name: str, root: Path | None = None) -> str:
    """The text of ``FaceXModel/<name>`` inside the ICT-FaceKit archive."""
    with zipfile.ZipFile(ict_zip(root)) as zf:
        try:
            return zf.read(ICT_PREFIX + name).decode()
        except KeyError as err:
            raise FileNotFoundError(
                f"{ICT_PREFIX + name} is not in {ict_zip(root)}; the archive is incomplete: "
                "delete it and run `facegcn data download --only ict-facekit`"
            ) from err


def load_ict_neutral(root: Path | None = None, region: str | None = None) -> TemplateMesh:
    """The ICT neutral head in millimetres (x right, y up, z towards the viewer).

    Args:
        region: ``None`` for the whole head (26,719 vertices), or a key of
            :data:`ICT_REGIONS` whose range starts at 0 (``"face"``: 9,409 vertices, the
            region the network regresses).
    Returns:
        A :class:`TemplateMesh` (quads triangulated; landmarks from :data:`ICT_LMKS68`).
    """
    zpath = ict_zip(root)
    st = zpath.stat()
    cached = cache_file("ict-neutral", ".npz", st.st_size, st.st_mtime_ns, "v1")
    if cached.is_file():
        with np.load(cached) as z:
            verts, faces = z["verts"], z["faces"]
    else:
        obj = parse_obj(read_ict_member("generic_neutral_mesh.obj", root), "generic_neutral_mesh.obj")
        verts, faces = obj.verts * MM_PER_CM, obj.faces
        tmp = cached.with_suffix(".tmp.npz")
        np.savez(tmp, verts=verts, faces=faces)
        tmp.replace(cached)
    lmks = np.asarray(ICT_LMKS68, dtype=np.int64)
    if region is None:
        return TemplateMesh(verts, faces, lmks, "ict-head")
    start, stop = ICT_REGIONS[region]
    if start != 0:
        raise ValueError(f"region {region!r} does not start at vertex 0; only prefix regions can be cut")
    keep = (faces < stop).all(axis=1)
    return TemplateMesh(verts[:stop], faces[keep], lmks, f"ict-{region}")


def ict_expression_names(root: Path | None = None) -> tuple[str, ...]:
    """The 53 expression shape names in the order of ``vertex_indices.json`` (ARKit style)."""
    return tuple(json.loads(read_ict_member("vertex_indices.json", root))["expressions"])


def _build_ict_model(root: Path | None) -> MorphableModel:
    neutral = parse_obj(read_ict_member("generic_neutral_mesh.obj", root), "generic_neutral_mesh.obj")
    names = ict_expression_names(root)
    members = [f"identity{k:03d}.obj" for k in range(ICT_NUM_IDENTITY)] + [f"{n}.obj" for n in names]
    modes = np.empty((len(members), *neutral.verts.shape), dtype=np.float32)
    with zipfile.ZipFile(ict_zip(root)) as zf:
        for k, member in enumerate(tqdm(members, desc="parsing ICT shapes", leave=False)):
            verts = read_obj_verts(zf.read(ICT_PREFIX + member).decode())
            if verts.shape != neutral.verts.shape:
                raise ValueError(f"{ICT_PREFIX + member} has {len(verts)} vertices, the neutral mesh "
                                 f"{len(neutral.verts)}; the archive is corrupt: download it again")
            modes[k] = (verts - neutral.verts) * MM_PER_CM
    return MorphableModel(
        name="ict-head", faces=neutral.faces, mean=neutral.verts * MM_PER_CM,
        id_basis=modes[:ICT_NUM_IDENTITY], exp_basis=modes[ICT_NUM_IDENTITY:], exp_names=names,
        lmks68=np.asarray(ICT_LMKS68, dtype=np.int64),
        regions={"all": (0, len(neutral.verts)), **ICT_REGIONS}, exp_kind="blendshape",
        uvs=neutral.uvs, face_uvs=neutral.face_uvs)


def load_ict_model(root: Path | None = None, region: str | None = None) -> MorphableModel:
    """The ICT Face Model as a :class:`MorphableModel` in millimetres (model frame).

    The whole head (26,719 vertices, with eyes, mouth socket and teeth) is what gets rendered;
    ``region="face"`` (vertices 0-9408) is what the network regresses. 100 identity modes
    (principal components, already scaled: coefficients ~ N(0, 1)) and 53 expression
    blendshapes (weights in [0, 1]), each a difference from the neutral mesh; quads
    triangulated; per-corner UVs in ``uvs`` / ``face_uvs``.

    The first call parses the 154 OBJ files (tens of seconds) and caches the model as an
    uncompressed ``.npz`` in :func:`facegcn_lib.paths.cache_dir`; later calls load it in well
    under two seconds.

    Args:
        root: the data directory (default: :func:`facegcn_lib.paths.data_dir`).
        region: ``None`` for the whole head, or a prefix region of :data:`ICT_REGIONS`.
    """
    zpath = ict_zip(root)
    st = zpath.stat()
    cached = cache_file("ict-model", ".npz", st.st_size, st.st_mtime_ns, _MODEL_CACHE_VERSION)
    if cached.is_file():
        model = MorphableModel.load(cached)
    else:
        log.info("parsing the ICT Face Model from %s (once; cached as %s)", zpath, cached)
        model = _build_ict_model(root)
        model.save(cached)
    return model if region is None else model.region(region)
