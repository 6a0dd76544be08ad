"""OBJ/PLY reading and writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facegcn_lib.mesh.io import MeshFormatError, parse_obj, read_obj, read_ply, write_obj, write_ply

QUAD_OBJ = """# a unit square as one quad plus a triangle
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
v 2 0 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
f 1/1 2/2 3/3 4/4
f 2 5 3
"""


def test_quads_are_fan_triangulated() -> None:
    obj = parse_obj(QUAD_OBJ)
    assert obj.verts.shape == (5, 3)
    np.testing.assert_array_equal(obj.faces, [[0, 1, 2], [0, 2, 3], [1, 4, 2]])
    np.testing.assert_array_equal(obj.poly_face, [0, 0, 1])
    np.testing.assert_array_equal(obj.face_uvs[:2], [[0, 1, 2], [0, 2, 3]])
    assert (obj.face_uvs[2] == -1).all()


@pytest.mark.parametrize("text", ["", "v 0 0 0\n", "v 0 0 0\nf 1 2 3\n", "v a b c\nf 1 1 1\n"])
def test_bad_obj_raises(text: str) -> None:
    with pytest.raises(MeshFormatError):
        parse_obj(text)


def test_obj_round_trip(tmp_path: Path) -> None:
    obj = parse_obj(QUAD_OBJ)
    colors = np.linspace(0, 1, 15).reshape(5, 3)
    back = read_obj(write_obj(tmp_path / "m.obj", obj.verts, obj.faces, colors))
    np.testing.assert_allclose(back.verts, obj.verts, atol=1e-6)
    np.testing.assert_array_equal(back.faces, obj.faces)


def test_obj_text_is_what_savetxt_writes(tmp_path: Path) -> None:
    import io

    rng = np.random.default_rng(0)
    verts, colors = rng.normal(size=(7, 3)), rng.integers(0, 256, (7, 3), dtype=np.uint8)
    faces = rng.integers(0, 7, (5, 3))
    ref = io.StringIO()
    np.savetxt(ref, np.hstack([verts, colors / 255.0]), fmt="v %.6f %.6f %.6f %.4f %.4f %.4f")
    np.savetxt(ref, faces + 1, fmt="f %d %d %d")
    assert write_obj(tmp_path / "m.obj", verts, faces, colors).read_text() == ref.getvalue()
    empty = write_obj(tmp_path / "e.obj", np.zeros((0, 3)), np.zeros((0, 3), dtype=int))
    assert empty.read_text() == ""


def test_ply_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    verts = rng.normal(size=(20, 3)).astype(np.float32)
    faces = rng.integers(0, 20, size=(30, 3))
    colors = rng.integers(0, 256, size=(20, 3)).astype(np.uint8)
    v, f, c = read_ply(write_ply(tmp_path / "m.ply", verts, faces, colors))
    np.testing.assert_array_equal(v, verts)
    np.testing.assert_array_equal(f, faces)
    assert c is not None
    np.testing.assert_array_equal(c, colors)
    v2, _, c2 = read_ply(write_ply(tmp_path / "n.ply", verts, faces))
    assert c2 is None and np.array_equal(v2, verts)


def test_missing_file() -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        read_obj("/nonexistent/mesh.obj")
