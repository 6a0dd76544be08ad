"""Down- and up-sampling matrices between a mesh and its decimation (CoMA's pooling).

Down-sampling keeps the coarse vertices, which are a subset of the fine ones, so ``D`` is a
selection: ``(D x)[j] = x[kept[j]]``. Up-sampling places each fine vertex at the closest point
of the coarse surface and interpolates there with barycentric weights, so each row of ``U``
has at most three non-zeros summing to 1; a fine vertex that is itself coarse gets weight 1
on itself, hence ``D U = I``. Both are scipy CSR matrices;
:func:`facegcn_lib.nn.sparse.to_torch_sparse` makes torch tensors of them. See
:doc:`chapter 2 </chapters/02_decimation>`, and Ranjan et al. (2018).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from facegcn_lib.mesh.proximity import closest_points


class SamplingError(ValueError):
    """The coarse mesh does not fit the fine one (indices out of range, repeated, ...)."""


def _check_kept(kept: NDArray, n_fine: int) -> NDArray[np.int64]:
    k = np.asarray(kept, dtype=np.int64).ravel()
    if len(k) == 0 or k.min() < 0 or k.max() >= n_fine:
        raise SamplingError(f"kept indices must lie in [0, {n_fine}); got {len(k)} indices")
    if len(np.unique(k)) != len(k):
        raise SamplingError("kept indices must not repeat: each coarse vertex is one fine vertex")
    return k


def down_matrix(kept: NDArray, n_fine: int) -> sp.csr_matrix:
    """The down-sampling (selection) matrix.

    Args:
        kept: (n,) int indices of the coarse vertices among the fine ones.
        n_fine: the number of fine vertices ``V``.

    Returns:
        (n, V) float64 CSR matrix with a single 1 per row, at column ``kept[j]``.
    """
    k = _check_kept(kept, n_fine)
    n = len(k)
    return sp.csr_matrix((np.ones(n), (np.arange(n), k)), shape=(n, n_fine))


def up_matrix(fine_verts: NDArray, coarse_verts: NDArray, coarse_faces: NDArray,
              kept: NDArray) -> sp.csr_matrix:
    """The up-sampling matrix: barycentric weights of each fine vertex's closest coarse point.

    Args:
        fine_verts: (V, 3) float fine positions.
        coarse_verts: (n, 3) float coarse positions (``fine_verts[kept]`` after decimation).
        coarse_faces: (m, 3) int coarse triangles.
        kept: (n,) int indices of the coarse vertices among the fine ones.

    Returns:
        (V, n) float64 CSR matrix; row ``i`` holds the weights (at most three, non-negative,
        summing to 1) of the coarse vertices whose triangle holds the point of the coarse
        surface closest to fine vertex ``i``; rows of kept vertices are one-hot.
    """
    fv = np.asarray(fine_verts, dtype=np.float64)
    cf = np.asarray(coarse_faces, dtype=np.int64)
    nv, n = len(fv), len(coarse_verts)
    k = _check_kept(kept, nv)
    if len(k) != n:
        raise SamplingError(f"{len(k)} kept indices for {n} coarse vertices")
    if cf.size and (cf.min() < 0 or cf.max() >= n):
        raise SamplingError("coarse faces index vertices that the coarse mesh does not have")
    cp = closest_points(fv, coarse_verts, cf)
    rows = np.repeat(np.arange(nv), 3)
    cols = cf[cp.faces].ravel()
    vals = cp.bary.ravel().copy()
    is_kept = np.zeros(nv, dtype=bool)
    is_kept[k] = True
    vals[np.repeat(is_kept, 3)] = 0.0
    rows = np.concatenate([rows, k])
    cols = np.concatenate([cols, np.arange(n)])
    vals = np.concatenate([vals, np.ones(n)])
    u = sp.csr_matrix((vals, (rows, cols)), shape=(nv, n))
    u.eliminate_zeros()
    u.sort_indices()
    return u
