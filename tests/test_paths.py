"""The data directory setting, the missing-data error and the manifest."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import facegcn_lib
from facegcn_lib import cli
from facegcn_lib.download import Status, check
from facegcn_lib.paths import DataMissingError, cache_file, data_dir, manifest, require, select


def test_data_dir_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEGCN_DATA", str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    monkeypatch.delenv("FACEGCN_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "facegcn" / "data"


def test_missing_file_error_names_file_and_command(tmp_path: Path) -> None:
    with pytest.raises(DataMissingError) as info:
        require("bfm-mean-3ddfa/u_shp.npy", tmp_path)
    msg = str(info.value)
    assert "bfm-mean-3ddfa/u_shp.npy" in msg and "facegcn data download" in msg
    assert isinstance(info.value, FileNotFoundError)


def test_loader_with_missing_data_raises_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEGCN_DATA", str(tmp_path))
    with pytest.raises(DataMissingError, match="facegcn data download"):
        facegcn_lib.load_bfm_mean()


@pytest.mark.parametrize("loader", ["load_bfm_mean", "load_ict_neutral", "AFLW2000", "W300LP"])
def test_every_default_loader_names_the_missing_file_and_command(
        loader: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from facegcn_lib.data.aflw2000 import AFLW2000
    from facegcn_lib.data.w300lp import W300LP

    loaders = {"load_bfm_mean": facegcn_lib.load_bfm_mean,
               "load_ict_neutral": facegcn_lib.load_ict_neutral,
               "AFLW2000": AFLW2000, "W300LP": W300LP}
    monkeypatch.setenv("FACEGCN_DATA", str(tmp_path))
    with pytest.raises(DataMissingError, match="facegcn data download --only "):
        loaders[loader]()


def test_aflw2000_without_its_images_names_them(tmp_path: Path, data_root: Path) -> None:
    from facegcn_lib.data.aflw2000 import AFLW2000

    (tmp_path / "aflw2000-3d").mkdir()
    for npy in (data_root / "aflw2000-3d").glob("*.npy"):
        (tmp_path / "aflw2000-3d" / npy.name).symlink_to(npy)
    with pytest.raises(DataMissingError, match=r"aflw2000-3d/images.*facegcn data download"):
        AFLW2000(tmp_path)


def test_manifest_covers_shared_data(data_root: Path) -> None:
    reports = check(data_root)
    assert all(r.status is Status.OK for r in reports), [r for r in reports if r.status is not Status.OK]
    listed = {f.path for f in manifest()}
    on_disk = {p.relative_to(data_root).as_posix() for p in data_root.rglob("*") if p.is_file()}
    assert on_disk - listed == {"README.md"}
    assert all(f.url and f.url.startswith("https://") for f in manifest() if f.inline is None)


def test_select_rejects_unknown_group() -> None:
    with pytest.raises(ValueError, match="groups are"):
        select(["no-such-group"])


def test_cache_file_name_depends_on_inputs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEGCN_CACHE", str(tmp_path))
    a, b = cache_file("x", ".npz", 1, "p"), cache_file("x", ".npz", 2, "p")
    assert a != b and a.parent == tmp_path and a == cache_file("x", ".npz", 1, "p")


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert facegcn_lib.__version__ in capsys.readouterr().out
    assert cli.main([]) == 2


def test_cli_check_reports_everything_present(data_root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["data", "check", "--data-dir", str(data_root)]) == 0
    assert "all 51 files present and intact" in capsys.readouterr().out


def test_import_is_fast_and_lazy() -> None:
    code = "import sys, facegcn_lib; assert 'torch' not in sys.modules; print(facegcn_lib.__version__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == facegcn_lib.__version__


def test_console_script_runs() -> None:
    out = subprocess.run([sys.executable, "-m", "facegcn_lib.cli", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("facegcn ")
