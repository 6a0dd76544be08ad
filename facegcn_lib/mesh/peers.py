"""Other libraries' mesh decimators behind one interface, for side-by-side comparisons.

Each peer asks for a *triangle* count; :func:`peer_decimate` searches the triangle count that
gives the wanted *vertex* count (by Euler's formula, ``V = chi + F / 2 + B / 2`` for ``B``
boundary edges, refined on the result) and reports when a peer cannot get there (pyfqmr and
fast-simplification with border preservation freeze every boundary vertex, so they stall).
The peers are optional dependencies (the ``dev`` extra), imported only when used.
See :doc:`chapter 2 </chapters/02_decimation>`, and ``benchmarks/decimation.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from facegcn_lib.mesh.topology import edges, euler_characteristic

#: The peers by name: open3d's quadric decimation (moves vertices, no boundary constraint) and
#: the Fast-Quadric-Mesh-Simplification ports with their border preservation switched on.
PEERS = ("open3d", "pyfqmr", "fast_simplification")
#: Tries of the triangle-count search.
MAX_TRIES = 8
#: A result within this fraction of the wanted vertex count is accepted.
COUNT_RTOL = 0.01

Simplifier = Callable[[NDArray[np.float64], NDArray[np.int64], int],
                      tuple[NDArray[np.float64], NDArray[np.int64]]]


class PeerUnavailableError(ImportError):
    """A peer library is not installed (or cannot be loaded); the message says how to get it."""


@dataclass(frozen=True)
class PeerResult:
    """A peer's decimation.

    Attributes:
        name: the peer.
        verts: (n, 3) float64 positions (unreferenced vertices dropped).
        faces: (m, 3) int64 triangles.
        reached: whether ``n`` is within :data:`COUNT_RTOL` (or one vertex) of the wanted count.
        seconds: time of the last (accepted) call.
    """

    name: str
    verts: NDArray[np.float64]
    faces: NDArray[np.int64]
    reached: bool
    seconds: float


def _open3d(verts: NDArray[np.float64], faces: NDArray[np.int64], n_tri: int
            ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    import open3d as o3d

    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(verts),
                                     o3d.utility.Vector3iVector(faces.astype(np.int32)))
    out = mesh.simplify_quadric_decimation(target_number_of_triangles=int(n_tri))
    return np.asarray(out.vertices), np.asarray(out.triangles, dtype=np.int64)


def _pyfqmr(verts: NDArray[np.float64], faces: NDArray[np.int64], n_tri: int
            ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    import pyfqmr

    s = pyfqmr.Simplify()
    s.setMesh(verts, faces.astype(np.int32))
    s.simplify_mesh(target_count=int(n_tri), preserve_border=True, verbose=False)
    v, f, _ = s.getMesh()
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


def _fast_simplification(verts: NDArray[np.float64], faces: NDArray[np.int64], n_tri: int
                         ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    import fast_simplification

    v, f = fast_simplification.simplify(verts.astype(np.float32), faces.astype(np.int64),
                                        target_count=int(n_tri), preserve_border=True)
    return np.asarray(v, dtype=np.float64), np.asarray(f, dtype=np.int64)


_SIMPLIFIERS: dict[str, Simplifier] = {"open3d": _open3d, "pyfqmr": _pyfqmr,
                                       "fast_simplification": _fast_simplification}


def available(name: str) -> bool:
    """Whether peer ``name`` can be imported here."""
    try:
        _import(name)
    except PeerUnavailableError:
        return False
    return True


def _import(name: str) -> None:
    if name not in _SIMPLIFIERS:
        raise ValueError(f"unknown peer {name!r}; peers are {PEERS}")
    if name == "open3d":  # no web visualizer (and its banner) when imported in a notebook
        os.environ.setdefault("OPEN3D_DISABLE_WEB_VISUALIZER", "true")
    try:
        __import__(name)
    except ImportError as err:  # open3d also raises this when a system library is missing
        raise PeerUnavailableError(
            f"the peer {name} cannot be imported ({err}); install the dev extra "
            "(`pip install -e .[dev]`; open3d needs the system library libusb-1.0-0)") from err


def _compact(verts: NDArray[np.float64], faces: NDArray[np.int64]
             ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    used = np.unique(faces)
    index = np.full(len(verts), -1, dtype=np.int64)
    index[used] = np.arange(len(used))
    return verts[used], index[faces]


def peer_decimate(name: str, verts: NDArray, faces: NDArray, n_verts: int) -> PeerResult:
    """Decimate with peer ``name`` to about ``n_verts`` vertices.

    Args:
        name: one of :data:`PEERS`.
        verts: (V, 3) float positions.
        faces: (F, 3) int triangles.
        n_verts: the wanted vertex count.

    Returns:
        The closest result found; ``reached`` says whether it is within 1% of ``n_verts``.

    Raises:
        PeerUnavailableError: the peer is not installed.
    """
    import time

    _import(name)
    fn = _SIMPLIFIERS[name]
    v = np.ascontiguousarray(verts, dtype=np.float64)
    f = np.ascontiguousarray(faces, dtype=np.int64)
    chi = euler_characteristic(len(v), f)
    _, counts = edges(f)
    n_boundary = int((counts == 1).sum())
    n_tri = max(1, 2 * (n_verts - chi) - n_boundary)
    best: PeerResult | None = None
    tried: set[int] = set()
    previous = -1
    for _ in range(MAX_TRIES):
        n_tri = int(min(max(n_tri, 1), len(f)))
        if n_tri in tried:
            break
        tried.add(n_tri)
        t0 = time.perf_counter()
        out_v, out_f = _compact(*fn(v, f, n_tri))
        seconds = time.perf_counter() - t0
        got = len(out_v)
        close = abs(got - n_verts) <= max(1.0, COUNT_RTOL * n_verts)
        res = PeerResult(name, out_v, out_f, close, seconds)
        if best is None or abs(got - n_verts) < abs(len(best.verts) - n_verts):
            best = res
        if res.reached or got == previous:  # reached, or stalled: fewer triangles did not help
            break
        previous = got
        n_tri += 2 * (n_verts - got)
    assert best is not None
    return best
