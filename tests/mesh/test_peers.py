"""Tests of the peer decimators' common interface (facegcn_lib.mesh.peers)."""

from __future__ import annotations

import pytest

from facegcn_lib.mesh.peers import PEERS, available, peer_decimate
from facegcn_lib.mesh.topology import boundary_mask
from tests.mesh import meshes


@pytest.mark.parametrize("name", PEERS)
def test_peer_reaches_a_vertex_count(name: str) -> None:
    if not available(name):
        pytest.skip(f"{name} is not installed")
    verts, faces = meshes.grid(20, wave=0.2)
    res = peer_decimate(name, verts, faces, 200)
    assert res.reached and abs(len(res.verts) - 200) <= 2
    assert res.faces.max() < len(res.verts)


def test_border_preserving_peers_stall() -> None:
    if not available("pyfqmr"):
        pytest.skip("pyfqmr is not installed")
    verts, faces = meshes.grid(20, wave=0.2)
    n_border = int(boundary_mask(faces, len(verts)).sum())
    res = peer_decimate("pyfqmr", verts, faces, 20)
    assert not res.reached and len(res.verts) >= n_border


def test_unknown_peer() -> None:
    with pytest.raises(ValueError, match="unknown peer"):
        peer_decimate("meshlab", *meshes.grid(4), 5)
