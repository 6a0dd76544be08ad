"""Tests of facegcn_lib.eval.experiments (Table 1 and the ablations) and ``facegcn experiments``."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from facegcn_lib.cli import EXIT_OK, EXIT_USAGE, main
from facegcn_lib.eval.experiments import (
    CURVES_CSV,
    META_JSON,
    REFERENCE,
    SHOWCASE_NPZ,
    STUDIES,
    VARIANTS,
    EncodedFaces,
    ExperimentConfig,
    ExperimentError,
    Variant,
    _batch_order,
    build_variant,
    read_results,
    roughness,
    run_experiments,
    study_table,
    train_variant,
    variants_of,
)
from facegcn_lib.eval.metrics import MEAN_OF_BINS
from facegcn_lib.nn.baselines import MMRegressionDecoder, UVPositionMapDecoder
from facegcn_lib.nn.resgcn import ResGCNDecoder
from facegcn_lib.pipeline import load_pretrained

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(checkpoint: Path, data_root: Path) -> torch.nn.Module:
    return load_pretrained(checkpoint)


# --- the studies -------------------------------------------------------------------------------
def test_every_study_starts_with_the_reference_and_changes_one_thing() -> None:
    assert len({v.name for v in VARIANTS}) == len(VARIANTS)
    ref = next(v for v in VARIANTS if v.name == REFERENCE)
    for study in STUDIES:
        rows = variants_of(study)
        assert rows[0].name == REFERENCE and len(rows) >= 2
        for v in rows[1:]:
            changed = [f for f in ("decoder", "smooth_weight", "norm", "residual")
                       if getattr(v, f) != getattr(ref, f)]
            assert len(changed) == 1, (v, changed)
    assert [v.smooth_weight for v in variants_of("alpha")] == [0.1, 0.0, 0.01, 1.0]
    assert {v.decoder for v in variants_of("table1")} == {"gcn", "uvmap", "3dmm"}


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ExperimentError, match="unknown study"):
        Variant("x", "table2", "x")
    with pytest.raises(ExperimentError, match="steps"):
        ExperimentConfig(steps=0)
    with pytest.raises(ExperimentError, match="batch_size"):
        ExperimentConfig(train_faces=4, batch_size=8)


def test_every_variant_sees_the_same_batches() -> None:
    cfg = ExperimentConfig(train_faces=10, batch_size=4, steps=7)
    order = _batch_order(10, cfg)
    assert len(order) == 7 and all(len(b) == 4 for b in order)
    assert all(torch.equal(a, b) for a, b in zip(order, _batch_order(10, cfg), strict=True))
    first_epoch = torch.cat(order[:2])  # 10 // 4 = 2 whole batches per epoch
    assert len(set(first_epoch.tolist())) == 8
    assert not all(torch.equal(a, b) for a, b in
                   zip(order, _batch_order(10, replace(cfg, seed=1)), strict=True))


# --- roughness -----------------------------------------------------------------------------------
def test_roughness_is_zero_on_a_plane_inside_and_matches_a_loop() -> None:
    n = 5
    xs, ys = np.meshgrid(np.arange(n, dtype=float), np.arange(n, dtype=float))
    verts = np.stack([xs.ravel(), ys.ravel(), np.zeros(n * n)], axis=1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a, b, d, e = r * n + c, r * n + c + 1, (r + 1) * n + c, (r + 1) * n + c + 1
            faces += [[a, b, e], [a, e, d]]
    f = np.array(faces)
    bumpy = verts.copy()
    bumpy[12, 2] = 1.0  # the centre vertex lifted
    got = roughness(np.stack([verts, bumpy]), f)
    neighbours: dict[int, set[int]] = {i: set() for i in range(n * n)}
    for tri in f:
        for i in tri:
            neighbours[int(i)] |= {int(j) for j in tri if j != i}
    slow = np.mean([np.linalg.norm(len(neighbours[i]) * bumpy[i] - bumpy[sorted(neighbours[i])].sum(0))
                    for i in range(n * n)])
    assert got[1] == pytest.approx(slow)
    assert got[1] > got[0]
    interior = [i for i in range(n * n) if 0 < i % n < n - 1 and 0 < i // n < n - 1]
    assert all(len(neighbours[i]) == 6 for i in interior)


# --- one variant ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "kind"), [("gcn", ResGCNDecoder), ("uvmap", UVPositionMapDecoder),
                                            ("3dmm", MMRegressionDecoder)])
def test_build_variant_shares_the_encoder(tiny: torch.nn.Module, name: str, kind: type) -> None:
    v = next(v for v in VARIANTS if v.name == name)
    model = build_variant(tiny, v, seed=0)
    assert model.encoder is tiny.encoder and isinstance(model.decoder, kind)
    again = build_variant(tiny, v, seed=0)
    for a, b in zip(model.decoder.parameters(), again.decoder.parameters(), strict=True):
        assert torch.equal(a, b)


def test_ablations_change_the_blocks(tiny: torch.nn.Module) -> None:
    bn = build_variant(tiny, next(v for v in VARIANTS if v.name == "batchnorm"), 0)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn.decoder.modules())
    plain = build_variant(tiny, next(v for v in VARIANTS if v.name == "no-identity"), 0)
    assert not plain.cfg.gcn.residual and plain.cfg.gcn.norm == "instance"


def test_training_lowers_the_loss(tiny: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(0)
    n, dim = 16, tiny.cfg.encoder.code_dim
    codes = torch.randn(n, dim, generator=gen)
    template = tiny.template.unsqueeze(0)
    # targets: the template moved by a linear function of the code (learnable)
    shift = (codes[:, :3] * 0.05).unsqueeze(1)
    data = EncodedFaces(codes.numpy(), (template + shift).numpy())
    cfg = ExperimentConfig(train_faces=n, batch_size=8, steps=12, lr=3e-3)
    trained = train_variant(tiny, next(v for v in VARIANTS if v.name == "3dmm"), data, cfg,
                            progress=False)
    assert len(trained.losses) == 12 and all(np.isfinite(trained.losses))
    assert np.mean(trained.losses[-3:]) < trained.losses[0]
    assert not trained.model.decoder.training


# --- end to end ------------------------------------------------------------------------------------
def test_run_writes_every_file(tiny: torch.nn.Module, checkpoint: Path, tmp_path: Path) -> None:
    variants = [*variants_of("table1"), variants_of("alpha")[1]]
    cfg = ExperimentConfig(train_faces=6, test_faces=3, steps=2, batch_size=3, showcase=1)
    seen: list[str] = []
    rows = run_experiments(tmp_path / "out", variants, cfg, checkpoint, progress=False,
                           on_result=lambda r: seen.append(r["name"]), cache_root=tmp_path / "cache")
    assert seen == [v.name for v in variants] == [r["name"] for r in rows]
    out = tmp_path / "out"
    table = read_results(out)
    assert [r["name"] for r in table] == seen
    for r in table:
        assert float(r[f"dense_3d {MEAN_OF_BINS}"]) > 0 and float(r["roughness_ratio"]) > 0
        assert int(r["steps"]) == 2
    with (out / CURVES_CSV).open() as fh:
        assert len(list(csv.DictReader(fh))) == 2 * len(variants)
    with np.load(out / SHOWCASE_NPZ) as z:
        assert z["images"].shape[0] == 3 and z["truth"].shape == z["pred/gcn"].shape
    meta = json.loads((out / META_JSON).read_text())
    assert meta["config"]["steps"] == 2 and len(meta["variants"]) == len(variants)
    # the codes and faces are cached: a second run renders nothing and gives the same scores
    again = run_experiments(tmp_path / "again", variants[:1], cfg, checkpoint, progress=False,
                            cache_root=tmp_path / "cache")
    assert again[0]["dense_3d overall"] == rows[0]["dense_3d overall"]


def test_duplicate_names_are_refused(checkpoint: Path, tmp_path: Path) -> None:
    with pytest.raises(ExperimentError, match="unique"):
        run_experiments(tmp_path, [VARIANTS[0], VARIANTS[0]], checkpoint=checkpoint)


def test_shipped_results_cover_every_variant() -> None:
    rows = read_results()
    assert {r["name"] for r in rows} == {v.name for v in VARIANTS}
    assert len({r["steps"] for r in rows}) == 1  # the same budget for all


def test_missing_results_folder_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="facegcn experiments"):
        read_results(tmp_path)


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiments", "--steps", "0", "--study", "table1"]) == EXIT_USAGE
    assert "steps" in capsys.readouterr().err


def test_cli_runs_a_study(checkpoint: Path, tmp_path: Path) -> None:
    code = main(["experiments", "--study", "identity", "--checkpoint", str(checkpoint), "--steps", "1",
                 "--train-faces", "4", "--batch-size", "2", "--test-faces", "3", "--out", str(tmp_path / "o"), "--quiet",
                 "--faces-dir", str(tmp_path / "faces")])
    assert code == EXIT_OK
    assert [r["name"] for r in read_results(tmp_path / "o")] == ["gcn", "no-identity"]


def test_study_tables_show_every_row_of_the_study() -> None:
    rows = read_results()
    for study in STUDIES:
        md = study_table(rows, study).to_markdown()
        assert all(v.label in md for v in variants_of(study))
    with pytest.raises(ExperimentError, match="unknown score"):
        study_table(rows, "table1", score="nme_5d")
    with pytest.raises(ExperimentError, match="facegcn experiments --study alpha"):
        study_table(rows[:1], "alpha")
