"""Tests of the boundary-preserving QEM decimation (facegcn_lib.mesh.decimate)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from facegcn_lib.mesh import decimate as decimate_module
from facegcn_lib.mesh.decimate import (
    DecimationConfig,
    DecimationError,
    TargetUnreachableError,
    decimate,
    decimate_levels,
    min_vertex_count,
    vertex_quadrics,
)
from facegcn_lib.mesh.fidelity import fidelity, outline_hausdorff
from facegcn_lib.mesh.proximity import closest_points, point_to_surface_distance
from facegcn_lib.mesh.topology import (
    boundary_loops,
    boundary_mask,
    connected_components,
    euler_characteristic,
    face_normals,
)
from facegcn_lib.mesh.validate import InvalidMeshError, repair_mesh, validate_mesh
from tests.mesh import meshes

MESHES = {
    "grid": meshes.grid(20),
    "wavy_grid": meshes.grid(24, wave=0.25),
    "sphere_with_holes": meshes.sphere_with_holes(3),
    "noisy_scan": meshes.noisy_scan(900),
}


def check_level(verts: np.ndarray, faces: np.ndarray, result_verts: np.ndarray,
                result_faces: np.ndarray, kept: np.ndarray) -> None:
    """A decimated level is a clean manifold of the input's topology on a subset of its vertices."""
    n = len(result_verts)
    np.testing.assert_array_equal(result_verts, verts[kept])
    assert np.all(np.diff(kept) > 0)
    validate_mesh(result_verts, result_faces)  # manifold, oriented, no repeated/duplicate faces
    assert connected_components(result_faces, n)[0] == connected_components(faces, len(verts))[0]
    assert euler_characteristic(n, result_faces) == euler_characteristic(len(verts), faces)
    assert len(boundary_loops(result_faces)) == len(boundary_loops(faces))
    # no degenerate triangle
    areas = 0.5 * np.linalg.norm(face_normals(result_verts, result_faces, unit=False), axis=1)
    assert areas.min() > 1e-9 * np.ptp(verts, axis=0).max() ** 2
    # no flipped triangle: each agrees with the original surface under its centroid
    cp = closest_points(result_verts[result_faces].mean(axis=1), verts, faces)
    n_orig = face_normals(verts, faces)[cp.faces]
    n_new = face_normals(result_verts, result_faces)
    assert np.einsum("ij,ij->i", n_orig, n_new).min() > 0.0


@pytest.mark.parametrize("name", sorted(MESHES))
def test_exact_counts_and_valid_levels(name: str) -> None:
    verts, faces = MESHES[name]
    targets = [len(verts) // 2, len(verts) // 5, len(verts) // 12]
    results = decimate_levels(verts, faces, targets)
    for target, r in zip(targets, results, strict=True):
        assert len(r.verts) == len(r.kept) == target
        check_level(verts, faces, r.verts, r.faces, r.kept)
        assert len(r.collapses) == len(verts) - target
        assert not np.isin(r.collapses[:, 0], r.kept).any()
    # each level's vertices are a subset of the previous level's
    for a, b in itertools.pairwise(results):
        assert np.isin(b.kept, a.kept).all()


#: The measured stage (tracked surface error, edge flips) from the start, so that small meshes
#: exercise it: by default it only starts below a tenth of the vertices.
MEASURED = DecimationConfig(measured_below=1.0)


@pytest.mark.parametrize("name", sorted(MESHES))
def test_measured_stage_gives_valid_levels(name: str) -> None:
    verts, faces = MESHES[name]
    targets = [len(verts) // 2, len(verts) // 5, len(verts) // 12]
    results = decimate_levels(verts, faces, targets, MEASURED)
    for target, r in zip(targets, results, strict=True):
        assert len(r.verts) == len(r.kept) == target
        check_level(verts, faces, r.verts, r.faces, r.kept)
    for a, b in itertools.pairwise(results):
        assert np.isin(b.kept, a.kept).all()


@pytest.mark.parametrize("cfg", [DecimationConfig(refresh=1), DecimationConfig(area_weighted=True),
                                 DecimationConfig(length_weight=0.1),
                                 DecimationConfig(measured_below=1.0, flip_edges=False),
                                 DecimationConfig(measured_below=1.0, preserve_boundary=False),
                                 DecimationConfig(measured_below=0.0, keep_outline_fraction=0.0)])
def test_other_settings_give_valid_levels(cfg: DecimationConfig) -> None:
    verts, faces = MESHES["sphere_with_holes"]
    for r in decimate_levels(verts, faces, [200, 60], cfg):
        check_level(verts, faces, r.verts, r.faces, r.kept)


@pytest.mark.parametrize("cfg", [DecimationConfig(), MEASURED], ids=["quadric", "measured"])
@pytest.mark.parametrize("name", sorted(MESHES))
def test_boundary_is_kept_and_simplified_along_itself(name: str, cfg: DecimationConfig) -> None:
    verts, faces = MESHES[name]
    orig_b = boundary_mask(faces, len(verts))
    r = decimate(verts, faces, len(verts) // 6, cfg)
    coarse_b = boundary_mask(r.faces, len(r.kept))
    assert orig_b[r.kept[coarse_b]].all(), "a coarse boundary vertex is not an original one"
    assert not orig_b[r.kept[~coarse_b]].any(), "an original boundary vertex went inside"
    scale = np.ptp(verts, axis=0).max()
    assert outline_hausdorff(verts, faces, r.verts, r.faces) < 0.03 * scale


def test_without_boundary_preservation_the_outline_moves() -> None:
    verts, faces = MESHES["sphere_with_holes"]
    keep = decimate(verts, faces, 60)
    free = decimate(verts, faces, 60, DecimationConfig(preserve_boundary=False))
    check_level(verts, faces, free.verts, free.faces, free.kept)
    h_keep = outline_hausdorff(verts, faces, keep.verts, keep.faces)
    h_free = outline_hausdorff(verts, faces, free.verts, free.faces)
    assert h_keep < 0.5 * h_free


@pytest.mark.parametrize("cfg", [DecimationConfig(), MEASURED], ids=["quadric", "measured"])
def test_deterministic(cfg: DecimationConfig) -> None:
    verts, faces = MESHES["noisy_scan"]
    a = decimate(verts, faces, 150, cfg)
    b = decimate(verts.copy(), faces.copy(), 150, cfg)
    np.testing.assert_array_equal(a.kept, b.kept)
    np.testing.assert_array_equal(a.faces, b.faces)
    np.testing.assert_array_equal(a.collapses, b.collapses)


def test_closed_mesh_down_to_a_tetrahedron() -> None:
    verts, faces = meshes.icosphere(1)
    r = decimate(verts, faces, 4)
    assert len(r.faces) == 4
    validate_mesh(r.verts, r.faces)
    v, f = meshes.octahedron()
    assert min_vertex_count(v, f) == 4
    with pytest.raises(DecimationError, match="fewest vertices"):
        decimate(v, f, 3)


def test_bad_targets() -> None:
    verts, faces = MESHES["grid"]
    with pytest.raises(DecimationError, match="at most"):
        decimate(verts, faces, len(verts) + 1)
    with pytest.raises(DecimationError, match="decreasing"):
        decimate_levels(verts, faces, [100, 100])
    verts_h, faces_h = MESHES["sphere_with_holes"]  # three holes: at least 9 vertices
    with pytest.raises(DecimationError, match="below 9"):
        decimate(verts_h, faces_h, 8)
    same = decimate(verts, faces, len(verts))
    np.testing.assert_array_equal(same.faces, faces)


def test_bad_config() -> None:
    with pytest.raises(DecimationError, match="min_normal_dot"):
        DecimationConfig(min_normal_dot=2.0)
    with pytest.raises(DecimationError, match="refresh"):
        DecimationConfig(refresh=3)
    with pytest.raises(DecimationError, match="measured_below"):
        DecimationConfig(measured_below=1.5)
    with pytest.raises(DecimationError, match="keep_outline_fraction"):
        DecimationConfig(keep_outline_fraction=-0.1)
    with pytest.raises(DecimationError, match="outline_weight"):
        DecimationConfig(outline_weight=-1.0)


def test_whole_outline_is_kept_while_it_is_a_small_fraction() -> None:
    verts, faces = MESHES["grid"]  # 400 vertices, 76 on the boundary
    n_b = int(boundary_mask(faces, len(verts)).sum())
    cfg = DecimationConfig(keep_outline_fraction=0.5)  # the outline stays whole down to 152
    above, below = decimate_levels(verts, faces, [2 * n_b, n_b + 20], cfg)
    assert boundary_mask(above.faces, len(above.kept)).sum() == n_b
    assert outline_hausdorff(verts, faces, above.verts, above.faces) < 1e-12
    assert boundary_mask(below.faces, len(below.kept)).sum() < n_b  # then it is simplified
    free = decimate(verts, faces, 2 * n_b, DecimationConfig(keep_outline_fraction=0.0))
    assert boundary_mask(free.faces, len(free.kept)).sum() < n_b


def test_outline_frozen_until_nothing_else_can_collapse() -> None:
    # fraction 1 never unfreezes the outline by itself: below the boundary's 20 vertices the
    # interior runs out, and the outline must give way
    verts, faces = meshes.grid(6)
    n_b = int(boundary_mask(faces, len(verts)).sum())
    for cfg in (DecimationConfig(keep_outline_fraction=1.0), MEASURED):
        r = decimate(verts, faces, n_b - 5, cfg)
        check_level(verts, faces, r.verts, r.faces, r.kept)


def test_measured_stage_lowers_the_surface_error() -> None:
    # a curved, irregular surface at a coarse level: the stage's purpose, checked on a small mesh
    verts, faces = MESHES["noisy_scan"]
    errors = {}
    for name, cfg in [("quadric", DecimationConfig(measured_below=0.0)), ("measured", MEASURED),
                      ("no flips", DecimationConfig(measured_below=1.0, flip_edges=False))]:
        r = decimate(verts, faces, 60, cfg)
        errors[name] = fidelity(verts, faces, r.verts, r.faces).surface_mean
    assert errors["measured"] < 0.9 * errors["quadric"]
    assert errors["measured"] < errors["no flips"]


def test_tracked_distances_are_exact_distances() -> None:
    # the fan distance with its bounding-sphere shortcut equals the brute-force distance
    rng = np.random.default_rng(1)
    verts, faces = meshes.icosphere(1)
    pos = np.vstack([verts, rng.normal(size=(200, 3))])
    fan = faces[:12]
    geo = np.empty((len(fan), 13))
    decimate_module._fan_geometry(pos, fan, len(fan), geo)
    dc = np.empty(len(fan))
    ref = point_to_surface_distance(pos[len(verts):], verts, fan)
    got = [decimate_module._fan_distance(pos, p, geo, len(fan), dc)
           for p in range(len(verts), len(pos))]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


def test_unreachable_target_is_reported() -> None:
    # flip checks so strict that nothing may move: the loop must stop and say where
    verts, faces = MESHES["wavy_grid"]
    with pytest.raises(TargetUnreachableError, match="no valid edge collapse"):
        decimate(verts, faces, 50, DecimationConfig(min_normal_dot=1.0))


def test_bad_input_is_refused_with_a_hint() -> None:
    verts, faces = meshes.grid(6)
    nan = verts.copy()
    nan[3, 1] = np.nan
    with pytest.raises(InvalidMeshError, match="nonfinite"):
        decimate(nan, faces, 10)
    fan = np.vstack([faces, [[1, 6, 35]]])  # interior edge 1-6 now has three triangles
    with pytest.raises(InvalidMeshError, match="repair_mesh"):
        decimate(verts, fan, 10)
    # duplicate and unreferenced vertices: refused, then repaired
    extra = np.vstack([verts, verts[:1], [[5.0, 5.0, 5.0]]])
    dup_faces = faces.copy()
    dup_faces[dup_faces == 0] = len(verts)  # use the copy of vertex 0 everywhere
    dup_faces[0, 0] = 0  # ... except in one triangle: a seam
    with pytest.raises(InvalidMeshError, match="duplicate verts"):
        decimate(extra, dup_faces, 10)
    fixed = repair_mesh(extra, dup_faces)
    assert len(fixed.verts) == len(verts)
    assert fixed.vertex_map[-1] == -1 and fixed.vertex_map[len(verts)] == 0
    r = decimate(fixed.verts, fixed.faces, 10)
    check_level(fixed.verts, fixed.faces, r.verts, r.faces, r.kept)


# --- against a slow reference ----------------------------------------------------------------

def slow_quadrics(verts: np.ndarray, faces: np.ndarray, cfg: DecimationConfig) -> np.ndarray:
    """(V, 4, 4) vertex quadrics summed face by face, with boundary planes (G&H 1997)."""
    q = np.zeros((len(verts), 4, 4))
    normals = {}
    for f in faces:
        a, b, c = verts[f]
        n = np.cross(b - a, c - a)
        area = np.linalg.norm(n) / 2
        n = n / np.linalg.norm(n)
        p = np.append(n, -n @ a)
        w = area if cfg.area_weighted else 1.0
        for v in f:
            q[v] += w * np.outer(p, p)
        for k in range(3):
            normals[(f[k], f[(k + 1) % 3])] = n
    for (a, b), n in normals.items():
        if (b, a) in normals:
            continue  # interior edge
        e = verts[b] - verts[a]
        m = np.cross(e, n)
        m /= np.linalg.norm(m)
        p = np.append(m, -m @ verts[a])
        w = cfg.boundary_weight * (e @ e if cfg.area_weighted else 1.0)
        q[a] += w * np.outer(p, p)
        q[b] += w * np.outer(p, p)
    return q


@pytest.mark.parametrize("area_weighted", [False, True])
def test_quadrics_match_slow_reference(area_weighted: bool) -> None:
    verts, faces = MESHES["sphere_with_holes"]
    cfg = DecimationConfig(area_weighted=area_weighted)
    fast = vertex_quadrics(verts, faces, cfg)
    slow = slow_quadrics(verts, faces, cfg)
    iu = np.triu_indices(4)
    np.testing.assert_allclose(fast, slow[:, iu[0], iu[1]], rtol=1e-9, atol=1e-12)


def test_first_collapse_is_the_cheapest_valid_one() -> None:
    verts, faces = MESHES["noisy_scan"]
    cfg = DecimationConfig()
    q = slow_quadrics(verts, faces, cfg)
    is_b = boundary_mask(faces, len(verts))
    best = np.inf
    for a, b, c in faces:
        for u, v in itertools.permutations((a, b, c), 2):
            if is_b[u]:
                continue  # boundary moves are rarer; the cheapest collapse here is interior
            x = np.append(verts[v], 1.0)
            best = min(best, x @ (q[u] + q[v]) @ x)
    r = decimate(verts, faces, len(verts) - 1, cfg)
    u, v = r.collapses[0]
    x = np.append(verts[v], 1.0)
    assert x @ (q[u] + q[v]) @ x == pytest.approx(best, rel=1e-9, abs=1e-15)
