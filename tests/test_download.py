"""`facegcn data download/check` against a local HTTP server on 127.0.0.1 serving the data files."""

from __future__ import annotations

import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from facegcn_lib import cli
from facegcn_lib.download import DownloadError, Status, check, download, fetch_one
from facegcn_lib.paths import select

pytestmark = pytest.mark.network

GROUPS = ["bfm-mean-3ddfa", "300w-lp-sample"]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves files from ``server.root`` with Range support, corruption and dropped connections."""

    server: _Server

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        rel = self.path.lstrip("/")
        path = self.server.root / rel
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        if rel in self.server.corrupt:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        start = 0
        rng = self.headers.get("Range")
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.server.range_requests.append((rel, start))
        body = data[start:]
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rel in self.server.drop_once:  # send half, then hang up
            self.server.drop_once.discard(rel)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class _Server(http.server.ThreadingHTTPServer):
    root: Path
    corrupt: set[str]
    drop_once: set[str]
    range_requests: list[tuple[str, int]]


@pytest.fixture()
def server(data_root: Path) -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.root, srv.corrupt, srv.drop_once, srv.range_requests = data_root, set(), set(), []
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _url(srv: _Server) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}"


def test_download_fetches_and_verifies(server: _Server, tmp_path: Path) -> None:
    reports = download(tmp_path, GROUPS, base_url=_url(server), progress=False)
    assert {r.status for r in reports} == {Status.OK}
    assert all(r.status is Status.OK for r in check(tmp_path, GROUPS))
    again = download(tmp_path, GROUPS, base_url=_url(server), progress=False)
    assert all(r.detail != "downloaded" for r in again), "intact files are not fetched twice"


def test_corrupt_file_is_rejected_and_good_files_kept(server: _Server, tmp_path: Path) -> None:
    bad = "bfm-mean-3ddfa/u_exp.npy"
    server.corrupt.add(bad)
    with pytest.raises(DownloadError, match=r"u_exp\.npy") as info:
        download(tmp_path, GROUPS, base_url=_url(server), progress=False)
    assert "checksum" in str(info.value).lower()
    status = {r.file.path: r.status for r in check(tmp_path, GROUPS)}
    assert status[bad] is Status.MISSING
    assert not (tmp_path / (bad + ".part")).exists(), "the corrupt download is discarded"
    assert sum(s is Status.OK for s in status.values()) == len(status) - 1


def test_corrupt_download_never_replaces_a_good_file(server: _Server, tmp_path: Path, data_root: Path) -> None:
    rel = "bfm-mean-3ddfa/keypoints_sim.npy"
    dest = tmp_path / rel
    dest.parent.mkdir(parents=True)
    shutil.copy(data_root / rel, dest)
    before = dest.read_bytes()
    server.corrupt.add(rel)
    (file,) = select([rel])
    with pytest.raises(Exception, match="checksum"):
        fetch_one(file, tmp_path, _url(server), progress=False)
    assert dest.read_bytes() == before


def test_dropped_connection_is_resumed(server: _Server, tmp_path: Path) -> None:
    rel = "bfm-mean-3ddfa/u_shp.npy"
    server.drop_once.add(rel)
    (file,) = select([rel])
    fetch_one(file, tmp_path, _url(server), progress=False, sleep=lambda s: None)
    assert server.range_requests and server.range_requests[0][0] == rel
    assert server.range_requests[0][1] > 0, "the second request resumes where the first stopped"
    assert check(tmp_path, [rel])[0].status is Status.OK


def test_unreachable_server_reports_every_file(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="could not be fetched"):
        download(tmp_path, ["300w-lp-sample"], base_url="http://127.0.0.1:9", progress=False,
                 retries=1, timeout=2)


def test_cli_download_and_check(server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["data", "download", "--data-dir", str(tmp_path), "--only", *GROUPS,
                     "--mirror", _url(server), "--quiet"])
    assert code == 0
    assert cli.main(["data", "check", "--data-dir", str(tmp_path), "--only", *GROUPS]) == 0
    assert cli.main(["data", "check", "--data-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "MISSING" in out and "facegcn data download" in out
