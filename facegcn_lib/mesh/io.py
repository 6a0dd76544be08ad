"""Read and write triangle meshes as OBJ and PLY files (``(verts, faces)`` arrays in and out).

Polygons with more than three corners are triangulated as fans (a quad ``a b c d`` becomes
``a b c`` and ``a c d``), which is how the ICT Face Model's quads become triangles.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray


class MeshFormatError(ValueError):
    """A mesh file could not be parsed; the message names the file and the problem."""


@dataclass(frozen=True)
class ObjMesh:
    """A parsed OBJ file.

    Attributes:
        verts: (V, 3) float64 vertex positions.
        faces: (F, 3) int64 triangles (0-based), polygons fan-triangulated.
        uvs: (T, 2) float64 texture coordinates (empty when absent).
        face_uvs: (F, 3) int64 indices into ``uvs`` per triangle corner (-1 when absent).
        poly_face: (F,) int64 index of the source polygon of each triangle.
    """

    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    uvs: NDArray[np.float64]
    face_uvs: NDArray[np.int64]
    poly_face: NDArray[np.int64]


def _fan(polys: list[list[int]]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    tris: list[tuple[int, int, int]] = []
    owner: list[int] = []
    for k, poly in enumerate(polys):
        for j in range(1, len(poly) - 1):
            tris.append((poly[0], poly[j], poly[j + 1]))
            owner.append(k)
    return np.asarray(tris, dtype=np.int64).reshape(-1, 3), np.asarray(owner, dtype=np.int64)


def parse_obj(text: str, name: str = "<obj>") -> ObjMesh:
    """Parse OBJ text (``v``, ``vt`` and ``f`` records; others are ignored)."""
    verts: list[list[float]] = []
    uvs: list[list[float]] = []
    polys: list[list[int]] = []
    poly_uvs: list[list[int]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line or line[0] not in "vf":
            continue
        parts = line.split()
        tag = parts[0]
        try:
            if tag == "v":
                verts.append([float(p) for p in parts[1:4]])
            elif tag == "vt":
                uvs.append([float(p) for p in parts[1:3]])
            elif tag == "f":
                corners = [p.split("/") for p in parts[1:]]
                polys.append([int(c[0]) for c in corners])
                poly_uvs.append([int(c[1]) if len(c) > 1 and c[1] else 0 for c in corners])
        except (ValueError, IndexError) as err:
            raise MeshFormatError(f"{name}:{lineno}: cannot parse {line!r} ({err})") from err
    if not verts or not polys:
        raise MeshFormatError(f"{name}: no vertices or no faces found; is this an OBJ mesh?")
    v = np.asarray(verts, dtype=np.float64)
    if v.shape[1] != 3:
        raise MeshFormatError(f"{name}: vertices must have three coordinates")
    nv, nt = len(v), len(uvs)
    # OBJ indices are 1-based; negative indices count from the end.
    polys = [[i - 1 if i > 0 else nv + i for i in p] for p in polys]
    poly_uvs = [[i - 1 if i > 0 else (nt + i if i < 0 else -1) for i in p] for p in poly_uvs]
    faces, owner = _fan(polys)
    face_uvs, _ = _fan(poly_uvs)
    if faces.min() < 0 or faces.max() >= nv:
        raise MeshFormatError(f"{name}: a face refers to a vertex that does not exist")
    return ObjMesh(v, faces, np.asarray(uvs, dtype=np.float64).reshape(-1, 2), face_uvs, owner)


def read_obj(path: str | Path) -> ObjMesh:
    """Read an OBJ file; see :func:`parse_obj`."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"mesh file not found: {p}")
    return parse_obj(p.read_text(errors="replace"), name=str(p))


def read_obj_verts(text: str) -> NDArray[np.float64]:
    """Only the (V, 3) vertex positions of OBJ text: a fast path for blendshape files."""
    lines = [ln[2:] for ln in text.splitlines() if ln.startswith("v ")]
    return np.loadtxt(io.StringIO("\n".join(lines)), dtype=np.float64, usecols=(0, 1, 2)).reshape(-1, 3)


def write_obj(path: str | Path, verts: NDArray, faces: NDArray,
              colors: NDArray | None = None) -> Path:
    """Write a triangle mesh as OBJ.

    Args:
        verts: (V, 3) float positions.
        faces: (F, 3) int, 0-based.
        colors: optional (V, 3) float in [0, 1] or uint8, written as ``v x y z r g b``.
    """
    p = Path(path)
    v = np.asarray(verts, dtype=np.float64)
    if colors is not None:
        c = np.asarray(colors)
        c = c / 255.0 if c.dtype == np.uint8 else c.astype(np.float64)
        text = _rows(np.hstack([v, c]), "v %.6f %.6f %.6f %.4f %.4f %.4f")
    else:
        text = _rows(v, "v %.6f %.6f %.6f")
    p.write_text(text + _rows(np.asarray(faces, dtype=np.int64) + 1, "f %d %d %d"))
    return p


def _rows(values: NDArray, fmt: str) -> str:
    """``np.savetxt``'s text (one ``fmt % row`` per line), formatted in one go (several times faster)."""
    return ((fmt + "\n") * len(values)) % tuple(values.ravel().tolist())


def write_ply(path: str | Path, verts: NDArray, faces: NDArray,
              colors: NDArray | None = None) -> Path:
    """Write a binary little-endian PLY (float32 positions, optional uint8 RGB colours)."""
    p = Path(path)
    v = np.asarray(verts, dtype=np.float32)
    f = np.asarray(faces, dtype=np.int32)
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(v)}",
              "property float x", "property float y", "property float z"]
    if colors is not None:
        c = np.asarray(colors)
        c = c if c.dtype == np.uint8 else np.clip(np.round(c * 255), 0, 255).astype(np.uint8)
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
        header += ["property uchar red", "property uchar green", "property uchar blue"]
    header += [f"element face {len(f)}", "property list uchar int vertex_indices", "end_header"]
    vrec = np.empty(len(v), dtype=fields)
    vrec["x"], vrec["y"], vrec["z"] = v[:, 0], v[:, 1], v[:, 2]
    if colors is not None:
        vrec["red"], vrec["green"], vrec["blue"] = c[:, 0], c[:, 1], c[:, 2]
    frec = np.empty(len(f), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    frec["n"], frec["i"] = 3, f
    with open(p, "wb") as out:
        out.write(("\n".join(header) + "\n").encode("ascii"))
        out.write(vrec.tobytes())
        out.write(frec.tobytes())
    return p


def read_ply(path: str | Path) -> tuple[NDArray[np.float32], NDArray[np.int64], NDArray[np.uint8] | None]:
    """Read a PLY written by :func:`write_ply`: ``(verts (V,3), faces (F,3), colors (V,3) | None)``."""
    p = Path(path)
    data = p.read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply") or end < 0:
        raise MeshFormatError(f"{p}: not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise MeshFormatError(f"{p}: only binary little-endian PLY files are supported")
    nv = int(next(h for h in header if h.startswith("element vertex")).split()[-1])
    nf = int(next(h for h in header if h.startswith("element face")).split()[-1])
    has_color = "property uchar red" in header
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")]
    if has_color:
        fields += [("red", "u1"), ("green", "u1"), ("blue", "u1")]
    off = end + len(b"end_header\n")
    vrec = np.frombuffer(data, dtype=fields, count=nv, offset=off)
    off += vrec.nbytes
    frec = np.frombuffer(data, dtype=[("n", "u1"), ("i", "<i4", (3,))], count=nf, offset=off)
    verts = np.stack([vrec["x"], vrec["y"], vrec["z"]], axis=1)
    colors = np.stack([vrec["red"], vrec["green"], vrec["blue"]], axis=1) if has_color else None
    return verts, frec["i"].astype(np.int64), colors
