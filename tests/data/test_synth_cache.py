"""The disk cache of synthetic faces returns what the generator renders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from facegcn_lib.cli import main
from facegcn_lib.data.synth import SynthConfig, SyntheticFaces, renderer_sources
from facegcn_lib.data.synth_cache import SynthCache, SynthCacheError, shard_dir, write_cache
from facegcn_lib.paths import hash_inputs

CFG = SynthConfig(image_size=48, supersample=1)


def test_cache_round_trip(tmp_path: Path, data_root: Path) -> None:
    info = write_cache(tmp_path / "c", 5, CFG, seed=3, shard_size=2, workers=1)
    assert info.num_shards == 3
    cache = SynthCache(tmp_path / "c")
    direct = SyntheticFaces(CFG, seed=3)
    assert len(cache) == 5
    for i in (0, 3, 4):
        a, b = cache[i], direct[i]
        assert (a["image"].float() - b["image"].float()).abs().mean() < 4  # JPEG quality 95
        assert (a["vertices"] - b["vertices"]).abs().max() < 0.07  # float16 offsets
        for k in ("landmarks", "pose", "visibility"):
            assert (a[k] == b[k]).all(), k
    with pytest.raises(IndexError):
        cache[5]


def test_resume_and_refusals(tmp_path: Path, data_root: Path) -> None:
    root = tmp_path / "c"
    write_cache(root, 3, CFG, shard_size=2, workers=1)
    shutil.rmtree(shard_dir(root, 1))
    with pytest.raises(SynthCacheError, match="incomplete"):
        SynthCache(root)
    write_cache(root, 3, CFG, shard_size=2, workers=1)  # finishes the missing shard
    assert len(SynthCache(root)) == 3
    with pytest.raises(SynthCacheError, match="another seed"):
        write_cache(root, 3, CFG, seed=1, shard_size=2, workers=1)
    # a cache written by a renderer that drew faces differently is not resumed either
    meta = root / "meta.json"
    info = json.loads(meta.read_text())
    assert info["renderer"] == hash_inputs(*renderer_sources())
    meta.write_text(json.dumps({**info, "renderer": "an older renderer"}))
    with pytest.raises(SynthCacheError, match="renderer"):
        write_cache(root, 3, CFG, shard_size=2, workers=1)
    del info["renderer"]  # a cache from before the renderer was recorded still reads
    meta.write_text(json.dumps(info))
    assert len(SynthCache(root)) == 3
    with pytest.raises(SynthCacheError, match="not a synthetic-face cache"):
        SynthCache(tmp_path)


def test_cli(tmp_path: Path, data_root: Path) -> None:
    out = tmp_path / "cli"
    assert main(["data", "synth", "--n", "2", "--out", str(out), "--size", "32", "--workers", "1",
                 "--quiet"]) == 0
    assert len(SynthCache(out)) == 2
