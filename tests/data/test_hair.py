"""Hair geometry: reproducible, outside the head, fringes and curtains where they belong."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from facegcn_lib.data.effects import CameraConfig, OccluderConfig
from facegcn_lib.data.hair import Hair, HairBuilder, HairConfig, _grid_faces
from facegcn_lib.data.synth import ExpressionConfig, SynthConfig, SyntheticFaces
from facegcn_lib.morphable.ict import ICT_REGIONS, load_ict_model
from facegcn_lib.morphable.model import MorphableModel

ALWAYS = HairConfig(prob=1.0, fringe_prob=0.0, long_prob=0.0)


@pytest.fixture(scope="module")
def model(data_root: Path) -> MorphableModel:
    return load_ict_model(data_root)


@pytest.fixture(scope="module")
def builder(model: MorphableModel) -> HairBuilder:
    return HairBuilder(model.mean, np.arange(ICT_REGIONS["head_and_neck"][1]), model.lmks68)


def spherical(builder: HairBuilder, verts: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, ...]:
    az, el, r = builder._spherical(np.asarray(p, dtype=np.float64), builder.centre(verts))
    return az, el, r


def test_no_hair_and_reproducible(builder: HairBuilder, model: MorphableModel) -> None:
    bald = builder.sample(model.mean, np.random.default_rng(0), HairConfig(prob=0.0))
    assert bald.verts.shape == (0, 3) and bald.faces.shape == (0, 3)
    a = builder.sample(model.mean, np.random.default_rng(5), HairConfig(prob=1.0))
    b = builder.sample(model.mean, np.random.default_rng(5), HairConfig(prob=1.0))
    assert (a.verts == b.verts).all() and (a.faces == b.faces).all() and (a.shade == b.shade).all()
    assert np.isfinite(a.verts).all() and a.faces.min() == 0 and a.faces.max() == len(a.verts) - 1
    assert len(a.shade) == len(a.verts) and (a.shade > 0).all()


def test_grid_faces_wrap_and_cover_each_quad_once() -> None:
    f = _grid_faces(3, 4)
    assert f.shape == (2 * 2 * 4, 3)
    # every undirected edge of a closed band is shared by at most two triangles
    edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    assert counts.max() == 2
    assert {0, 3}.issubset(set(f[(f == 0).any(axis=1)].ravel()))  # column 3 meets column 0


def test_the_cap_lies_on_or_outside_the_head(builder: HairBuilder, model: MorphableModel) -> None:
    for seed in range(5):
        hair = builder.sample(model.mean, np.random.default_rng(seed), ALWAYS)
        centre = builder.centre(model.mean)
        table = builder.radius_table(model.mean, centre)
        az, el, r = spherical(builder, model.mean, hair.verts)
        head_r = builder._lookup(table, az, el)
        assert (r >= head_r - 1e-3).all()  # the thickness is positive


def test_the_cap_ends_at_the_hairline_without_fringe_or_curtains(builder: HairBuilder,
                                                                 model: MorphableModel) -> None:
    cfg = replace(ALWAYS, hairline_front_deg=(40.0, 40.0))
    hair = builder.sample(model.mean, np.random.default_rng(1), cfg)
    az, el, _ = spherical(builder, model.mean, hair.verts)
    front = np.abs(az) < 10
    assert el[front].min() > 40.0 - 5.0  # nothing comes down the forehead
    chin_y = model.mean[model.lmks68[8], 1]
    assert hair.verts[:, 1].min() > chin_y  # nor below the chin


def test_a_fringe_reaches_the_brows(builder: HairBuilder, model: MorphableModel) -> None:
    cfg = replace(ALWAYS, fringe_prob=1.0, fringe_depth=(1.0, 1.0), fringe_slant_deg=0.0,
                  ragged_mm=(0.0, 0.0), hairline_front_deg=(40.0, 40.0))
    hair = builder.sample(model.mean, np.random.default_rng(2), cfg)
    _, brow_el, _ = spherical(builder, model.mean, model.mean[model.lmks68[17:27]].mean(axis=0)[None])
    az, el, _ = spherical(builder, model.mean, hair.verts)
    middle = np.abs(az) < 5
    assert abs(el[middle].min() - brow_el[0]) < 2.0


def test_curtains_hang_beside_the_face_not_over_it(builder: HairBuilder, model: MorphableModel) -> None:
    cfg = replace(ALWAYS, long_prob=1.0, length_mm=(150.0, 150.0), curtain_front_deg=(60.0, 60.0),
                  tuck_prob=0.0)
    hair = builder.sample(model.mean, np.random.default_rng(3), cfg)
    chin_y = model.mean[model.lmks68[8], 1]
    low = hair.verts[:, 1] < chin_y
    assert low.any()  # long hair comes below the chin...
    az, _, _ = spherical(builder, model.mean, hair.verts[low])
    assert np.abs(az).min() > 60.0 - 1e-6  # ...beside or behind the face


def test_rendered_fringe_hides_the_forehead(model: MorphableModel) -> None:
    clean = dict(camera=CameraConfig(blur_prob=0, motion_prob=0, noise_prob=0, jitter_prob=0,
                                     gray_prob=0, jpeg_prob=0), occluders=OccluderConfig(prob=0))
    frontal = dict(yaw_deg=(0.0, 0.0), pitch_deg=(0.0, 0.0), roll_deg=(0.0, 0.0), augment=None,
                   expression=ExpressionConfig(active_prob=0, jaw_open_prob=0, eyes_closed_prob=0),
                   id_std=0.0, image_size=64, supersample=1, **clean)
    fringe = HairConfig(prob=1.0, fringe_prob=1.0, fringe_depth=(1.3, 1.3), long_prob=0.0,
                        ragged_mm=(0.0, 0.0))
    # a cap high above the face hides nothing of it
    none = HairConfig(prob=1.0, fringe_prob=0.0, long_prob=0.0, hairline_front_deg=(75.0, 75.0),
                      hairline_side_deg=(60.0, 60.0))
    out = {}
    for name, hair in (("fringe", fringe), ("none", none)):
        out[name] = SyntheticFaces(SynthConfig(hair=hair, **frontal), seed=0, model=model).sample(0)
    # the face region's coverage loses the forehead, down to the brows
    rows = np.nonzero(out["none"].mask.max(axis=1) > 0.5)[0]
    top = slice(int(rows.min()), int(out["none"].lmks68[17:27, 1].min()))
    assert out["fringe"].mask[top].sum() < 0.3 * out["none"].mask[top].sum()
    assert out["fringe"].mask.sum() > 0.6 * out["none"].mask.sum()  # the rest of the face is seen
    assert (out["fringe"].lmks68 == out["none"].lmks68).all()  # the labels do not change


def test_hair_geometry_is_in_the_figures_steps(model: MorphableModel) -> None:
    cfg = SynthConfig(image_size=32, supersample=1, hair=HairConfig(prob=1.0))
    s = SyntheticFaces(cfg, seed=0, model=model).sample(0, keep_steps=True)
    assert isinstance(s.steps["hair"], Hair) and len(s.steps["hair"].verts) > 0
    assert s.steps["albedo"].shape == (32, 32, 3)


def test_off_by_default_and_bad_configs_refused() -> None:
    assert SynthConfig().hair.prob == 0.0  # measured on the real photos and not kept (results page)
    for bad in (dict(prob=1.5), dict(fringe_prob=-0.1), dict(length_mm=(50.0, 10.0)),
                dict(thickness_mm=(-1.0, 2.0)), dict(column_deg=0.0), dict(cap_rows=1)):
        with pytest.raises(ValueError, match="HairConfig"):
            HairConfig(**bad)  # type: ignore[arg-type]


def test_cli_renders_a_cache_with_hair(tmp_path: Path, data_root: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    from facegcn_lib.cli import main
    from facegcn_lib.data.synth_cache import SynthCache

    out = tmp_path / "hair"
    assert main(["data", "synth", "--n", "2", "--out", str(out), "--size", "32", "--workers", "1",
                 "--hair-prob", "1", "--quiet"]) == 0
    assert len(SynthCache(out)) == 2
    assert json.loads((out / "meta.json").read_text())["config"]["hair"]["prob"] == 1.0
    with pytest.raises(SystemExit):
        main(["data", "synth", "--n", "2", "--out", str(tmp_path / "bad"), "--hair-prob", "2"])
    assert "probability in [0, 1]" in capsys.readouterr().err


def test_a_haircut_changes_the_image_and_nothing_else(model: MorphableModel) -> None:
    base = SynthConfig(image_size=48, supersample=1)
    bare = SyntheticFaces(base, seed=2, model=model).sample(1)
    cut = SyntheticFaces(replace(base, hair=HairConfig(prob=1.0, long_prob=1.0)), seed=2,
                         model=model).sample(1)
    assert (bare.verts_img == cut.verts_img).all() and (bare.pose_deg == cut.pose_deg).all()
    assert not (bare.image == cut.image).all()
