"""Small meshes shared by the tests."""

from __future__ import annotations

import numpy as np


def grid_mesh(rows: int, cols: int, bumped: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A (rows x cols)-vertex triangulated grid: an open mesh with a boundary (degrees 2 to 6).

    Args:
        rows: vertices per column.
        cols: vertices per row.
        bumped: lift the vertices to ``z = sin(x + y)`` instead of the plane ``z = 0``.

    Returns:
        ``(verts (rows * cols, 3) float64, faces (2 (rows - 1) (cols - 1), 3) int64)``.
    """
    ii, jj = np.meshgrid(np.arange(rows - 1), np.arange(cols - 1), indexing="ij")
    a = (ii * cols + jj).ravel()
    b, c, d = a + 1, a + cols, a + cols + 1
    faces = np.concatenate([np.stack([a, b, d], 1), np.stack([a, d, c], 1)])
    y, x = np.divmod(np.arange(rows * cols), cols)
    z = np.sin(x + y) if bumped else np.zeros_like(x)
    verts = np.stack([x, y, z], 1).astype(np.float64)
    return verts, faces.astype(np.int64)
