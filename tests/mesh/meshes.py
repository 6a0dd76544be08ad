"""Small test meshes that are not faces: a grid, a sphere with holes, a noisy scan-like patch."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

Mesh = tuple[NDArray[np.float64], NDArray[np.int64]]


def grid(n: int = 20, m: int | None = None, wave: float = 0.0) -> Mesh:
    """A ``n x m`` vertex grid on ``[0, 1]^2`` (z = ``wave`` * a smooth bump), diagonals alternating."""
    m = m or n
    x, y = np.meshgrid(np.linspace(0, 1, n), np.linspace(0, 1, m), indexing="xy")
    z = wave * np.sin(np.pi * x) * np.sin(np.pi * y)
    verts = np.stack([x.ravel(), y.ravel(), z.ravel()], axis=1)
    faces = []
    for j in range(m - 1):
        for i in range(n - 1):
            a, b, c, d = j * n + i, j * n + i + 1, (j + 1) * n + i + 1, (j + 1) * n + i
            if (i + j) % 2:
                faces += [(a, b, c), (a, c, d)]
            else:
                faces += [(a, b, d), (b, c, d)]
    return verts, np.asarray(faces, dtype=np.int64)


def icosphere(subdivisions: int = 3) -> Mesh:
    """A unit sphere: an icosahedron subdivided ``subdivisions`` times, outward-oriented."""
    t = (1 + 5 ** 0.5) / 2
    v = [(-1, t, 0), (1, t, 0), (-1, -t, 0), (1, -t, 0), (0, -1, t), (0, 1, t), (0, -1, -t),
         (0, 1, -t), (t, 0, -1), (t, 0, 1), (-t, 0, -1), (-t, 0, 1)]
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4),
         (11, 10, 2), (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8),
         (3, 8, 9), (4, 9, 5), (2, 4, 11), (6, 2, 10), (8, 6, 7), (9, 8, 1)]
    verts = [np.asarray(p, dtype=np.float64) / np.linalg.norm(p) for p in v]
    faces = f
    for _ in range(subdivisions):
        mid: dict[tuple[int, int], int] = {}

        def midpoint(a: int, b: int, mid: dict[tuple[int, int], int] = mid) -> int:
            key = (min(a, b), max(a, b))
            if key not in mid:
                p = verts[a] + verts[b]
                verts.append(p / np.linalg.norm(p))
                mid[key] = len(verts) - 1
            return mid[key]

        new = []
        for a, b, c in faces:
            ab, bc, ca = midpoint(a, b), midpoint(b, c), midpoint(c, a)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(verts), np.asarray(faces, dtype=np.int64)


def drop_unused(verts: NDArray, faces: NDArray) -> Mesh:
    """Remove the vertices no triangle uses and renumber."""
    used = np.unique(faces)
    index = np.full(len(verts), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return np.asarray(verts, dtype=np.float64)[used], index[faces]


def sphere_with_holes(subdivisions: int = 3) -> Mesh:
    """An icosphere with three round holes (caps around +z, +x and -y removed)."""
    verts, faces = icosphere(subdivisions)
    centre = verts[faces].mean(axis=1)
    centre /= np.linalg.norm(centre, axis=1, keepdims=True)
    holes = [((0, 0, 1), 0.9), ((1, 0, 0), 0.93), ((0, -1, 0), 0.85)]
    keep = np.ones(len(faces), dtype=bool)
    for axis, cos_radius in holes:
        keep &= centre @ np.asarray(axis, dtype=np.float64) < cos_radius
    return drop_unused(verts, faces[keep])


def noisy_scan(n: int = 900, noise: float = 0.004, seed: int = 0) -> Mesh:
    """A scan-like disk: jittered samples of a bumpy height field, Delaunay-triangulated, noisy.

    The samples are irregular (as a scanner's are) and the heights carry Gaussian noise; the
    rim is a circle of evenly spaced samples so that the triangulation has no hull slivers.
    """
    from scipy.spatial import Delaunay

    rng = np.random.default_rng(seed)
    n_rim = int(2 * np.sqrt(np.pi * n))
    spacing = np.sqrt(np.pi / n)
    theta = np.linspace(0, 2 * np.pi, n_rim, endpoint=False)
    rim = np.stack([np.cos(theta), np.sin(theta)], axis=1)
    side = np.arange(-1, 1, spacing)
    x, y = np.meshgrid(side, side)
    inner = np.stack([x.ravel(), y.ravel()], axis=1)
    inner += rng.uniform(-0.35, 0.35, size=inner.shape) * spacing
    inner = inner[np.linalg.norm(inner, axis=1) < 1 - 0.7 * spacing]
    xy = np.vstack([rim, inner])
    tri = Delaunay(xy).simplices.astype(np.int64)
    z = 0.3 * np.exp(-4 * (xy ** 2).sum(axis=1)) + 0.1 * np.sin(3 * xy[:, 0])
    z += rng.normal(scale=noise, size=len(z))
    verts = np.column_stack([xy, z])
    a, b, c = verts[tri[:, 0]], verts[tri[:, 1]], verts[tri[:, 2]]
    up = np.cross(b - a, c - a)[:, 2] > 0
    tri[~up] = tri[~up][:, [0, 2, 1]]
    return drop_unused(verts, tri)


def octahedron() -> Mesh:
    """A closed octahedron (6 vertices, 8 outward triangles)."""
    verts = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]],
                     dtype=np.float64)
    faces = np.array([[0, 2, 4], [2, 1, 4], [1, 3, 4], [3, 0, 4], [2, 0, 5], [1, 2, 5], [3, 1, 5],
                      [0, 3, 5]], dtype=np.int64)
    return verts, faces
