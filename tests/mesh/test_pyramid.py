"""Tests of the mesh pyramid (facegcn_lib.mesh.pyramid) and of ``facegcn pyramid``."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.cli import main
from facegcn_lib.mesh import pyramid as pyramid_module
from facegcn_lib.mesh.decimate import DecimationConfig, DecimationError
from facegcn_lib.mesh.pyramid import MeshPyramid, PyramidError, level_sizes
from facegcn_lib.mesh.topology import boundary_mask, connected_components
from facegcn_lib.mesh.validate import validate_mesh
from tests.mesh import meshes


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FACEGCN_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    return meshes.sphere_with_holes(3)


@pytest.fixture(scope="module")
def pyramid(sphere: tuple[np.ndarray, np.ndarray]) -> MeshPyramid:
    return MeshPyramid.build(*sphere, factor=3, n_levels=4)


def test_level_sizes_of_the_paper() -> None:
    assert level_sizes(53215) == [53215, 13304, 3326, 832, 208, 52]
    assert level_sizes(10, factor=2, n_levels=3) == [10, 5, 3]
    with pytest.raises(PyramidError, match="factor"):
        level_sizes(100, factor=1)
    with pytest.raises(PyramidError, match="n_levels"):
        level_sizes(100, n_levels=0)
    with pytest.raises(PyramidError, match="fewer levels"):
        level_sizes(100, n_levels=5)


def test_levels_are_nested_valid_meshes(pyramid: MeshPyramid,
                                        sphere: tuple[np.ndarray, np.ndarray]) -> None:
    verts, faces = sphere
    assert pyramid.n_levels == 4
    assert pyramid.sizes == level_sizes(len(verts), 3, 4)
    np.testing.assert_array_equal(pyramid.verts[0], verts)
    boundary0 = boundary_mask(faces, len(verts))
    for i in range(pyramid.n_levels):
        v, f = pyramid.verts[i], pyramid.faces[i]
        validate_mesh(v, f)
        assert connected_components(f, len(v))[0] == 1
        np.testing.assert_array_equal(v, verts[pyramid.kept[i]])
        assert boundary0[pyramid.kept[i][boundary_mask(f, len(v))]].all()
    for i in range(pyramid.n_levels - 1):
        d, u = pyramid.down[i], pyramid.up[i]
        assert d.shape == (pyramid.sizes[i + 1], pyramid.sizes[i])
        assert u.shape == (pyramid.sizes[i], pyramid.sizes[i + 1])
        np.testing.assert_array_equal(d @ pyramid.verts[i], pyramid.verts[i + 1])
        np.testing.assert_allclose((d @ u).toarray(), np.eye(pyramid.sizes[i + 1]), atol=1e-12)


def test_laplacians_and_torch_accessors(pyramid: MeshPyramid) -> None:
    from facegcn_lib.mesh.graph import mesh_graph

    for i in range(pyramid.n_levels):
        lap = pyramid.laplacian(i)
        n = pyramid.sizes[i]
        assert lap.shape == (n, n)
        ref = mesh_graph(pyramid.faces[i], n).scaled_laplacian()
        np.testing.assert_allclose(lap.toarray(), ref.toarray(), atol=1e-12)
    x = torch.randn(pyramid.sizes[0], 3, dtype=torch.float32)
    down = pyramid.down_torch(0)
    up = pyramid.up_torch(0, layout="coo")
    np.testing.assert_allclose((down @ x).numpy(), pyramid.down[0] @ x.numpy(), atol=1e-6)
    np.testing.assert_allclose(torch.sparse.mm(up, down @ x).numpy(),
                               pyramid.up[0] @ (pyramid.down[0] @ x.numpy()), atol=1e-5)


def test_save_load_roundtrip(pyramid: MeshPyramid, tmp_path: Path) -> None:
    path = pyramid.save(tmp_path / "p.npz")
    back = MeshPyramid.load(path)
    assert back.sizes == pyramid.sizes and back.factor == 3
    assert back.config == pyramid.config
    assert back.lambda_max == pyramid.lambda_max
    for i in range(pyramid.n_levels):
        np.testing.assert_array_equal(back.verts[i], pyramid.verts[i])
        np.testing.assert_array_equal(back.faces[i], pyramid.faces[i])
        np.testing.assert_array_equal(back.kept[i], pyramid.kept[i])
    for i in range(pyramid.n_levels - 1):
        assert (back.down[i] != pyramid.down[i]).nnz == 0
        assert (back.up[i] != pyramid.up[i]).nnz == 0
    with pytest.raises(FileNotFoundError, match="facegcn pyramid"):
        MeshPyramid.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(PyramidError, match="rebuild"):
        MeshPyramid.load(tmp_path / "junk.npz")


def test_files_from_before_the_measured_stage_still_load(pyramid: MeshPyramid,
                                                          tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # a file written before DecimationConfig grew fields (checkpoints store such files): it
    # loads, and says it was built with the quadrics alone
    import json

    path = pyramid.save(tmp_path / "p.npz")
    with np.load(path) as z:
        arrays = dict(z)
    old_fields = ("preserve_boundary", "boundary_weight", "area_weighted", "min_normal_dot",
                  "min_quality", "length_weight", "refresh", "validate")
    cfg = json.loads(str(arrays["config_json"]))
    arrays["config_json"] = np.asarray(json.dumps({k: cfg[k] for k in old_fields}))
    with open(tmp_path / "old.npz", "wb") as fh:
        np.savez(fh, **arrays)
    old = MeshPyramid.load(tmp_path / "old.npz")
    assert old.config.measured_below == 0.0 and old.config.keep_outline_fraction == 0.0
    assert old.sizes == pyramid.sizes
    # a new algorithm version moves the cache file, the layout version does not change
    verts, faces = pyramid.verts[0], pyramid.faces[0]
    before = MeshPyramid.cache_path(verts, faces)
    monkeypatch.setattr(pyramid_module, "ALGORITHM_VERSION", pyramid_module.ALGORITHM_VERSION + 1)
    assert MeshPyramid.cache_path(verts, faces) != before


def test_cached_builds_once_then_loads(sphere: tuple[np.ndarray, np.ndarray], cache: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    verts, faces = sphere
    first = MeshPyramid.cached(verts, faces, 3, 3)
    path = MeshPyramid.cache_path(verts, faces, 3, 3)
    assert path.is_file() and path.parent == cache
    second = MeshPyramid.cached(verts, faces, 3, 3)
    np.testing.assert_array_equal(second.faces[-1], first.faces[-1])
    # other parameters, other file
    assert MeshPyramid.cache_path(verts, faces, 3, 3, DecimationConfig(boundary_weight=1.0)) != path
    assert MeshPyramid.cache_path(verts, faces, 4, 3) != path
    # a corrupt cache file is rebuilt with a warning
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        third = MeshPyramid.cached(verts, faces, 3, 3)
    assert "rebuilding" in caplog.text
    np.testing.assert_array_equal(third.faces[-1], first.faces[-1])


def test_impossible_pyramid_is_refused(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    verts, faces = sphere  # three holes need at least 9 vertices
    with pytest.raises(DecimationError, match="fewest vertices"):
        MeshPyramid.build(verts, faces, factor=4, n_levels=5)


def test_cli_writes_a_pyramid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from facegcn_lib.mesh.io import write_obj

    verts, faces = meshes.noisy_scan(400)
    obj = write_obj(tmp_path / "scan.obj", verts, faces)
    out = tmp_path / "scan_pyramid.npz"
    assert main(["pyramid", "--mesh", str(obj), "--factor", "3", "--levels", "3",
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert str(out) in text
    assert MeshPyramid.load(out).sizes == level_sizes(len(verts), 3, 3)
    assert main(["pyramid", "--mesh", str(obj), "--levels", "9", "--out", str(out)]) == 1
    assert "fewer levels" in capsys.readouterr().err
    holes = write_obj(tmp_path / "holes.obj", *meshes.sphere_with_holes(2))
    assert main(["pyramid", "--mesh", str(holes), "--levels", "4", "--out", str(out)]) == 1
    assert "fewest vertices" in capsys.readouterr().err


@pytest.mark.slow
def test_bfm_pyramid(data_root: Path) -> None:
    from facegcn_lib.morphable.bfm import load_bfm_mean

    bfm = load_bfm_mean(data_root)
    built = MeshPyramid.cached(bfm.verts, bfm.faces)
    assert built.sizes == [53215, 13304, 3326, 832, 208, 52]
    t0 = time.perf_counter()
    loaded = MeshPyramid.cached(bfm.verts, bfm.faces)
    assert time.perf_counter() - t0 < 0.5
    assert loaded.sizes == built.sizes
    boundary0 = boundary_mask(bfm.faces, len(bfm.verts))
    for i in range(1, loaded.n_levels):
        validate_mesh(loaded.verts[i], loaded.faces[i])
        b = boundary_mask(loaded.faces[i], loaded.sizes[i])
        assert boundary0[loaded.kept[i][b]].all()
