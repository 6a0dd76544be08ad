"""A triangle mesh as a graph: adjacency, degrees, Laplacians, ``lambda_max``, scaled Laplacian.

The graph of a mesh has one node per vertex and one edge per triangle edge. With the
adjacency ``W`` (``W_ij = 1`` when ``i != j`` share an edge) and the degree matrix
``D = diag(sum_j W_ij)``:

- the *normalized* Laplacian ``L = I - D^-1/2 W D^-1/2``, symmetric, positive semi-definite,
  with spectrum in ``[0, 2]`` (what the paper's spectral convolution filters);
- the *combinatorial* (unnormalized) Laplacian ``D - W``, whose rows sum to zero
  (``(D - W) y`` at a vertex is its degree times its offset from the mean of its neighbours,
  which the smoothness loss penalises);
- the *scaled* Laplacian ``2 L / lambda_max - I``, whose spectrum lies in ``[-1, 1]``, the domain
  of the Chebyshev polynomials of :class:`facegcn_lib.nn.cheb_conv.ChebConv`.

Everything here is scipy.sparse CSR in float64, canonical (sorted indices, no duplicates), and
torch-free; :func:`facegcn_lib.nn.sparse.to_torch_sparse` converts. :func:`mesh_graph` builds the
matrices of one mesh once and caches them, keyed by a hash of its triangles. ``lambda_max`` comes
from a Lanczos iteration in numba (:func:`lanczos_lambda_max`).

See :doc:`chapter 1 </chapters/01_spectral_convolution>`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from functools import cached_property
from typing import Any, TypeAlias

import numpy as np
import scipy.sparse as sp
from numba import njit
from numpy.typing import NDArray

log = logging.getLogger(__name__)

#: A sparse matrix as scipy returns it (matrix or array flavour).
SparseMatrix: TypeAlias = Any
#: A graph given either as its (V, V) adjacency matrix or as (F, 3) triangles.
GraphLike: TypeAlias = Any

#: Upper bound of the normalized Laplacian's spectrum, for any non-negative weights.
NORMALIZED_LAMBDA_MAX_BOUND = 2.0
#: Relative accuracy of :func:`lambda_max`: the Lanczos iteration stops once the residual of
#: its top Ritz pair is below this fraction of the Ritz value, which puts an eigenvalue within
#: that fraction of the result (the error is about its square over the spectral gap: machine
#: precision on meshes). The Chebyshev rescaling ``2 L / lambda_max - I`` needs only ~1e-3, but
#: 1e-8 costs just ~30% more Lanczos steps than 1e-3 (~0.15 s for the BFM mesh).
LAMBDA_MAX_RTOL = 1e-8
#: Lanczos steps between two convergence checks.
LANCZOS_CHUNK = 10
#: Lanczos steps before giving up and asking ARPACK (never reached on meshes: ~200 suffice).
LANCZOS_MAX_STEPS = 1000
#: Seed of the Lanczos start vector, so that ``lambda_max`` is reproducible to the last bit.
LANCZOS_SEED = 0
#: Below this many vertices a dense eigensolver is faster.
DENSE_EIGEN_MAX_VERTS = 256
#: How many meshes :func:`mesh_graph` keeps (least recently used ones are dropped).
GRAPH_CACHE_SIZE = 32
#: Tolerance of the symmetry check, relative to the largest entry.
SYMMETRY_RTOL = 1e-10


class MeshGraphError(ValueError):
    """Bad input to a graph function; the message says what was expected."""


# --- input checks --------------------------------------------------------------------------

def _check_faces(faces: NDArray, n_verts: int) -> NDArray[np.int64]:
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3:
        raise MeshGraphError(f"faces must be an (F, 3) array of triangles, got shape {f.shape}; "
                             "triangulate polygons first (facegcn_lib.mesh.io does on load)")
    if f.size and not np.issubdtype(f.dtype, np.integer):
        raise MeshGraphError(f"faces must hold integer vertex indices, got dtype {f.dtype}")
    if isinstance(n_verts, bool) or not isinstance(n_verts, (int, np.integer)) or n_verts < 1:
        raise MeshGraphError(f"n_verts must be a positive int (usually len(verts)), got {n_verts!r}")
    f = np.ascontiguousarray(f, dtype=np.int64)
    if f.size and (f.min() < 0 or f.max() >= n_verts):
        raise MeshGraphError(f"faces index vertices {int(f.min())}..{int(f.max())}, outside "
                             f"0..{n_verts - 1}; are they 1-based, or is n_verts wrong?")
    return f


def _check_square(mat: SparseMatrix, what: str) -> sp.csr_matrix:
    if not sp.issparse(mat):
        raise MeshGraphError(f"{what} must be a scipy.sparse matrix, got {type(mat).__name__}")
    if mat.ndim != 2 or mat.shape[0] != mat.shape[1]:
        raise MeshGraphError(f"{what} must be square (V, V), got shape {mat.shape}")
    return _canonical(sp.csr_matrix(mat, dtype=np.float64))


def _canonical(mat: SparseMatrix) -> sp.csr_matrix:
    """``mat`` as CSR float64 with sorted indices and no duplicate or explicit zero entries."""
    out = sp.csr_matrix(mat, dtype=np.float64, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def _as_adjacency(graph: GraphLike, n_verts: int | None) -> sp.csr_matrix:
    if sp.issparse(graph):
        return _check_square(graph, "the adjacency matrix")
    if n_verts is None:
        raise MeshGraphError("pass n_verts (usually len(verts)) along with faces, or pass the "
                             "(V, V) adjacency matrix from adjacency(faces, n_verts)")
    return adjacency(graph, n_verts)


def is_symmetric(mat: SparseMatrix, rtol: float = SYMMETRY_RTOL) -> bool:
    """Whether a sparse matrix equals its transpose, up to ``rtol`` times its largest entry."""
    m = sp.csr_matrix(mat)
    if m.shape[0] != m.shape[1]:
        return False
    diff = abs(m - m.T)
    scale = abs(m).max() if m.nnz else 0.0
    return bool(diff.nnz == 0 or diff.max() <= rtol * max(float(scale), 1.0))


# --- the matrices --------------------------------------------------------------------------

def adjacency(faces: NDArray, n_verts: int) -> sp.csr_matrix:
    """The binary adjacency matrix ``W`` of a triangle mesh.

    ``W_ij = 1`` when vertices ``i != j`` are the two ends of an edge of some triangle, else 0:
    an edge shared by two triangles counts once, and repeated corners of a degenerate triangle
    make no self-loop. A vertex in no triangle is an isolated node (a zero row).

    Args:
        faces: (F, 3) int triangles, 0-based.
        n_verts: V, the number of vertices (``len(verts)``).

    Returns:
        (V, V) float64 CSR, symmetric, zero diagonal, ``2 E`` stored entries for ``E`` edges.

    Raises:
        MeshGraphError: ``faces`` is not (F, 3) ints in ``0..V-1``.
    """
    f = _check_faces(faces, n_verts)
    rows = np.concatenate([f[:, 0], f[:, 1], f[:, 2], f[:, 1], f[:, 2], f[:, 0]])
    cols = np.concatenate([f[:, 1], f[:, 2], f[:, 0], f[:, 0], f[:, 1], f[:, 2]])
    off = rows != cols
    w = sp.csr_matrix((np.ones(int(off.sum())), (rows[off], cols[off])), shape=(n_verts, n_verts))
    w.sum_duplicates()
    w.data[:] = 1.0
    w.sort_indices()
    return w


def degree(graph: GraphLike, n_verts: int | None = None) -> sp.csr_matrix:
    """The degree matrix ``D = diag(sum_j W_ij)`` (for a mesh: the number of neighbours).

    Args:
        graph: the (V, V) adjacency ``W``, or (F, 3) int triangles (then pass ``n_verts``).
        n_verts: V, only with triangles.

    Returns:
        (V, V) float64 diagonal CSR; ``degree(W).diagonal()`` is the (V,) vector.
    """
    w = _as_adjacency(graph, n_verts)
    return _canonical(sp.diags(np.asarray(w.sum(axis=1)).ravel(), format="csr"))


def normalized_laplacian(graph: GraphLike, n_verts: int | None = None) -> sp.csr_matrix:
    """The symmetric normalized Laplacian ``L = I - D^-1/2 W D^-1/2``.

    ``L`` is symmetric positive semi-definite with eigenvalues in ``[0, 2]``; ``L_ii = 1`` and
    ``L_ij = -W_ij / sqrt(d_i d_j)``. An isolated vertex (``d_i = 0``) keeps ``L_ii = 1`` and no
    other entry (``D^-1/2`` taken as 0 there, as ``torch_geometric.utils.get_laplacian`` does).

    Args:
        graph: the (V, V) adjacency ``W`` (non-negative, symmetric), or (F, 3) int triangles
            (then pass ``n_verts``).
        n_verts: V, only with triangles.

    Returns:
        (V, V) float64 CSR.
    """
    w = _as_adjacency(graph, n_verts)
    d = np.asarray(w.sum(axis=1)).ravel()
    inv_sqrt = np.zeros_like(d)
    np.divide(1.0, np.sqrt(d), out=inv_sqrt, where=d > 0)
    s = sp.diags(inv_sqrt)
    return _canonical(sp.identity(w.shape[0], format="csr") - s @ w @ s)


def combinatorial_laplacian(graph: GraphLike, n_verts: int | None = None) -> sp.csr_matrix:
    """The combinatorial (unnormalized) Laplacian ``D - W``.

    Symmetric positive semi-definite, each row sums to 0, and ``((D - W) y)_i`` is ``d_i``
    times the offset of ``y_i`` from the mean of its neighbours (the smoothness loss's term).

    Args:
        graph: the (V, V) adjacency ``W``, or (F, 3) int triangles (then pass ``n_verts``).
        n_verts: V, only with triangles.

    Returns:
        (V, V) float64 CSR.
    """
    w = _as_adjacency(graph, n_verts)
    d = np.asarray(w.sum(axis=1)).ravel()
    return _canonical(sp.diags(d, format="csr") - w)


def lambda_max(laplacian: SparseMatrix, exact: bool = True) -> float:
    """The largest eigenvalue of a symmetric Laplacian, computed or bounded by 2.

    Args:
        laplacian: (V, V) symmetric sparse matrix.
        exact: compute it (a dense solver up to :data:`DENSE_EIGEN_MAX_VERTS` vertices, above
            that the Lanczos iteration of :func:`lanczos_lambda_max` to
            :data:`LAMBDA_MAX_RTOL`: about 0.1 s for the 53,215-vertex BFM mesh). ``False``
            returns :data:`NORMALIZED_LAMBDA_MAX_BOUND` (2), which bounds the spectrum of a
            *normalized* Laplacian; the matrix must then have a unit diagonal.

    Returns:
        ``lambda_max`` as a float.

    Raises:
        MeshGraphError: the matrix is not square and symmetric, or ``exact=False`` is asked of a
            matrix that is not a normalized Laplacian.
    """
    lap = _check_square(laplacian, "the Laplacian")
    if not is_symmetric(lap):
        raise MeshGraphError("lambda_max needs a symmetric Laplacian; build it with "
                             "normalized_laplacian() or combinatorial_laplacian()")
    n = lap.shape[0]
    if not exact:
        diag = lap.diagonal()
        if not np.allclose(diag, 1.0):
            raise MeshGraphError(
                f"the bound lambda_max <= 2 holds for a normalized Laplacian (unit diagonal), but "
                f"this matrix's diagonal spans {diag.min():g}..{diag.max():g}; pass exact=True")
        return NORMALIZED_LAMBDA_MAX_BOUND
    if n <= DENSE_EIGEN_MAX_VERTS:
        return float(np.linalg.eigvalsh(lap.toarray())[-1])
    return lanczos_lambda_max(lap)


@njit(cache=True)
def _lanczos_steps(indptr: NDArray[np.integer], indices: NDArray[np.integer],
                   data: NDArray[np.float64], v_prev: NDArray[np.float64],
                   v: NDArray[np.float64], alpha: NDArray[np.float64],
                   beta: NDArray[np.float64], start: int, stop: int) -> int:
    """Lanczos steps ``start..stop-1`` of a CSR matrix from ``(v_prev, v)``, in place.

    Step ``j`` writes ``alpha[j] = v^T A v`` and ``beta[j] = |A v - alpha v - beta[j-1] v_prev|``
    and moves on to the next unit vector. Returns the steps done (fewer on a breakdown,
    ``beta = 0``: the Krylov space is invariant and its eigenvalues exact).
    """
    n = len(v)
    w = np.empty(n)
    b_prev = beta[start - 1] if start > 0 else 0.0
    for j in range(start, stop):
        a = 0.0
        for i in range(n):
            acc = 0.0
            for k in range(indptr[i], indptr[i + 1]):
                acc += data[k] * v[indices[k]]
            w[i] = acc
            a += acc * v[i]
        nrm = 0.0
        for i in range(n):
            x = w[i] - a * v[i] - b_prev * v_prev[i]
            w[i] = x
            nrm += x * x
        b = math.sqrt(nrm)
        alpha[j] = a
        beta[j] = b
        if b == 0.0:
            return j + 1
        for i in range(n):
            v_prev[i] = v[i]
            v[i] = w[i] / b
        b_prev = b
    return stop


def lanczos_lambda_max(laplacian: SparseMatrix, rtol: float = LAMBDA_MAX_RTOL) -> float:
    """The largest eigenvalue of a symmetric sparse matrix by the Lanczos iteration.

    Plain Lanczos from a seeded random start vector, in numba, so that no BLAS threads are
    involved (on a busy machine they made ARPACK's ``eigsh`` take seconds for the BFM mesh). No
    reorthogonalization: in floating point its loss of orthogonality only adds spurious copies
    of Ritz values that have already converged, never one beyond the spectrum (Paige, 1980).
    Every :data:`LANCZOS_CHUNK` steps the top eigenpair ``(theta, s)`` of the tridiagonal
    matrix is checked: the residual of the Ritz pair is ``|beta_m s_m|``, and some eigenvalue
    lies within it of ``theta``. The iteration stops once it is below ``rtol * theta``.
    ``theta`` never exceeds ``lambda_max``; only a start vector orthogonal to the top
    eigenvector could make it settle on another eigenvalue, and a random one almost surely is
    not. Falls back to ARPACK after :data:`LANCZOS_MAX_STEPS` steps.

    Args:
        laplacian: (V, V) symmetric sparse matrix (not checked; see :func:`lambda_max`).
        rtol: relative residual at which to stop.

    Returns:
        ``lambda_max`` as a float.
    """
    from scipy.linalg import eigh_tridiagonal

    lap = sp.csr_matrix(laplacian, dtype=np.float64)
    n = lap.shape[0]
    v = np.random.default_rng(LANCZOS_SEED).standard_normal(n)
    v /= np.linalg.norm(v)
    v_prev = np.zeros(n)
    steps = min(LANCZOS_MAX_STEPS, n)
    alpha, beta = np.zeros(steps), np.zeros(steps)
    m = 0
    while m < steps:
        stop = min(m + LANCZOS_CHUNK, steps)
        m_new = int(_lanczos_steps(lap.indptr, lap.indices, lap.data, v_prev, v, alpha, beta, m,
                                   stop))
        top, vec = eigh_tridiagonal(alpha[:m_new], beta[:m_new - 1], select="i",
                                    select_range=(m_new - 1, m_new - 1))
        theta = float(top[0])
        residual = abs(beta[m_new - 1] * vec[-1, 0])
        if m_new < stop or residual <= rtol * abs(theta):
            return theta
        m = m_new
    from scipy.sparse.linalg import eigsh  # a safety net, never needed on meshes so far

    log.warning("Lanczos did not reach %g in %d steps; asking ARPACK", rtol, steps)
    return float(eigsh(lap, k=1, which="LA", tol=rtol, return_eigenvectors=False)[0])


def scaled_laplacian(laplacian: SparseMatrix, lmax: float) -> sp.csr_matrix:
    """The scaled Laplacian ``2 L / lambda_max - I``, with spectrum in ``[-1, 1]``.

    This is the ``L~`` of the Chebyshev recursion ``T_k(L~) = 2 L~ T_{k-1}(L~) - T_{k-2}(L~)``
    (the paper's Eq. 2).

    Args:
        laplacian: (V, V) sparse Laplacian ``L``.
        lmax: its largest eigenvalue, or an upper bound (see :func:`lambda_max`).

    Returns:
        (V, V) float64 CSR.
    """
    lap = _check_square(laplacian, "the Laplacian")
    if not np.isfinite(lmax) or lmax <= 0:
        raise MeshGraphError(f"lambda_max must be a positive finite number, got {lmax!r}")
    return _canonical((2.0 / float(lmax)) * lap - sp.identity(lap.shape[0], format="csr"))


# --- one mesh, built once --------------------------------------------------------------------

def _freeze(mat: sp.csr_matrix) -> sp.csr_matrix:
    """Make a cached matrix's arrays read-only, so a caller cannot corrupt the cache."""
    for arr in (mat.data, mat.indices, mat.indptr):
        arr.flags.writeable = False
    return mat


class MeshGraph:
    """The graph matrices of one triangle mesh, each built on first use and then kept.

    Get one with :func:`mesh_graph` (cached per mesh) rather than constructing it directly. The
    returned matrices are shared and read-only: copy one (``.copy()``) to modify it.

    Args:
        faces: (F, 3) int triangles, 0-based.
        n_verts: V, the number of vertices.

    Attributes:
        faces: (F, 3) int64 triangles (a read-only copy).
        n_verts: V.
        key: a hash of ``faces`` and ``n_verts`` naming this mesh's topology.
    """

    def __init__(self, faces: NDArray, n_verts: int) -> None:
        f = _check_faces(faces, n_verts).copy()
        f.flags.writeable = False
        self.faces: NDArray[np.int64] = f
        self.n_verts = int(n_verts)
        self.key = topology_key(f, self.n_verts)
        self._lmax: dict[bool, float] = {}
        self._scaled: dict[bool, sp.csr_matrix] = {}

    def __repr__(self) -> str:
        return f"MeshGraph(n_verts={self.n_verts}, n_faces={len(self.faces)}, key={self.key[:12]})"

    @cached_property
    def adjacency(self) -> sp.csr_matrix:
        """(V, V) binary adjacency ``W`` (see :func:`adjacency`)."""
        return _freeze(adjacency(self.faces, self.n_verts))

    @cached_property
    def degree(self) -> sp.csr_matrix:
        """(V, V) diagonal degree matrix ``D`` (see :func:`degree`)."""
        return _freeze(degree(self.adjacency))

    @cached_property
    def normalized_laplacian(self) -> sp.csr_matrix:
        """(V, V) ``I - D^-1/2 W D^-1/2`` (see :func:`normalized_laplacian`)."""
        return _freeze(normalized_laplacian(self.adjacency))

    @cached_property
    def combinatorial_laplacian(self) -> sp.csr_matrix:
        """(V, V) ``D - W`` (see :func:`combinatorial_laplacian`)."""
        return _freeze(combinatorial_laplacian(self.adjacency))

    def lambda_max(self, exact: bool = True) -> float:
        """The normalized Laplacian's largest eigenvalue, or the bound 2 (see :func:`lambda_max`)."""
        if exact not in self._lmax:
            self._lmax[exact] = lambda_max(self.normalized_laplacian, exact=exact)
        return self._lmax[exact]

    def scaled_laplacian(self, exact: bool = True) -> sp.csr_matrix:
        """(V, V) ``2 L / lambda_max - I`` of the normalized ``L`` (see :func:`scaled_laplacian`).

        Args:
            exact: scale by the exact ``lambda_max`` (spectrum exactly ``[-1, 1]``) or by the
                bound 2 (spectrum within ``[-1, 1]``, what PyG's ``ChebConv`` does by default).
        """
        if exact not in self._scaled:
            lap = scaled_laplacian(self.normalized_laplacian, self.lambda_max(exact))
            self._scaled[exact] = _freeze(lap)
        return self._scaled[exact]


def topology_key(faces: NDArray, n_verts: int) -> str:
    """A SHA-256 hex digest of (F, 3) triangles and the vertex count (a mesh's identity)."""
    f = np.ascontiguousarray(faces, dtype=np.int64)
    h = hashlib.sha256()
    h.update(repr((f.shape, int(n_verts))).encode())
    h.update(f.tobytes())
    return h.hexdigest()


_CACHE: OrderedDict[str, MeshGraph] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def mesh_graph(faces: NDArray, n_verts: int) -> MeshGraph:
    """The :class:`MeshGraph` of a mesh, shared by every caller with the same triangles.

    Keyed by :func:`topology_key`: calling this twice with equal ``faces`` (even different array
    objects) returns the same object, so each Laplacian and ``lambda_max`` is computed once.
    The :data:`GRAPH_CACHE_SIZE` most recently used meshes are kept.

    Args:
        faces: (F, 3) int triangles, 0-based.
        n_verts: V, the number of vertices.
    """
    f = _check_faces(faces, n_verts)
    key = topology_key(f, int(n_verts))
    with _CACHE_LOCK:
        graph = _CACHE.get(key)
        if graph is not None:
            _CACHE.move_to_end(key)
            return graph
    graph = MeshGraph(f, int(n_verts))
    with _CACHE_LOCK:
        graph = _CACHE.setdefault(key, graph)
        _CACHE.move_to_end(key)
        while len(_CACHE) > GRAPH_CACHE_SIZE:
            _CACHE.popitem(last=False)
    return graph


def clear_graph_cache() -> None:
    """Forget every cached :class:`MeshGraph` (frees their matrices)."""
    with _CACHE_LOCK:
        _CACHE.clear()
