"""Fetch the data files from their public origins, resumably, and check them by checksum.

``facegcn data download`` and ``facegcn data check`` are thin wrappers over
:func:`download` and :func:`check`. A download goes to ``<file>.part`` and is resumed with an
HTTP ``Range`` request after a dropped connection; only a file whose checksum matches is
renamed into place, so a corrupt download never replaces or removes a good file.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import os
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from facegcn_lib.paths import DataFile, data_dir, file_sha256, select

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 16
USER_AGENT = "facegcn-data-download"


class Status(enum.Enum):
    """What :func:`check` found for one file."""

    OK = "ok"
    MISSING = "missing"
    CORRUPT = "corrupt"


@dataclass(frozen=True)
class FileReport:
    """The state of one data file: ``status`` and, when not OK, why."""

    file: DataFile
    status: Status
    detail: str = ""


class ChecksumError(RuntimeError):
    """A downloaded file does not match its manifest checksum."""


class DownloadError(RuntimeError):
    """Some files could not be fetched; ``reports`` says which and why."""

    def __init__(self, reports: list[FileReport]) -> None:
        self.reports = reports
        lines = [f"  {r.file.path}: {r.detail}" for r in reports]
        super().__init__(
            f"{len(reports)} file(s) could not be fetched (the others were kept):\n"
            + "\n".join(lines)
            + "\nRun `facegcn data download` again to retry; finished files are not fetched twice."
        )


def verify(file: DataFile, path: Path) -> str | None:
    """``None`` when ``path`` matches ``file``'s checksums, else a reason."""
    if file.inline is not None:
        return None if path.read_text() == file.inline else "content differs from the manifest"
    if file.members:
        try:
            with zipfile.ZipFile(path) as zf:
                names = set(zf.namelist())
                for name, digest in file.members.items():
                    if name not in names:
                        return f"archive lacks member {name}"
                    if hashlib.sha256(zf.read(name)).hexdigest() != digest:
                        return f"archive member {name} has the wrong checksum"
        except zipfile.BadZipFile:
            return "not a valid zip archive"
        return None
    if file.size is not None and path.stat().st_size != file.size:
        return f"size {path.stat().st_size} bytes, expected {file.size}"
    if file.sha256 is not None and file_sha256(path) != file.sha256:
        return "SHA-256 checksum mismatch"
    return None


def check(root: Path | None = None, only: Iterable[str] | None = None,
          deep: bool = True) -> list[FileReport]:
    """Report which manifest files are present (and, if ``deep``, intact) under ``root``."""
    base = root if root is not None else data_dir()
    reports = []
    for f in select(only):
        path = base / f.path
        if not path.is_file():
            reports.append(FileReport(f, Status.MISSING, "not present"))
            continue
        reason = verify(f, path) if deep else None
        status = Status.OK if reason is None else Status.CORRUPT
        reports.append(FileReport(f, status, reason or ""))
    return reports


def _source_url(file: DataFile, base_url: str | None) -> str:
    if base_url:
        return base_url.rstrip("/") + "/" + file.path
    assert file.url is not None
    return file.url


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``part`` (resuming from its current size)."""
    start = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        req.add_header("Range", f"bytes={start}-")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        if start and resp.status != 206:  # the server ignored Range: start over
            start = 0
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        mode = "ab" if start else "wb"
        with open(part, mode) as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, leave=False,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            received = 0
            while True:
                chunk = resp.read(CHUNK_BYTES)
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                bar.update(len(chunk))
        if length is not None and received < int(length):
            raise ConnectionError(f"connection dropped after {start + received} bytes")


def fetch_one(file: DataFile, root: Path, base_url: str | None = None, retries: int = 4,
              timeout: float = 60.0, progress: bool = True,
              sleep: Callable[[float], None] = time.sleep) -> Path:
    """Download one file into ``root`` (resuming), verify it, then move it into place.

    Raises:
        ChecksumError: the finished download does not match; it is deleted, an older good
            file at the destination is left untouched.
        DownloadError: the connection failed ``retries`` times in a row.
    """
    dest = root / file.path
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if file.inline is not None:
        part.write_text(file.inline)
    else:
        url = _source_url(file, base_url)
        for attempt in range(1, retries + 1):
            try:
                _fetch(url, part, timeout, progress)
                break
            except urllib.error.HTTPError as err:
                if err.code == 416:  # nothing left to fetch: the part is complete
                    break
                raise DownloadError([FileReport(file, Status.MISSING, f"HTTP {err.code} from {url}")]) from err
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as err:
                log.warning("%s: attempt %d/%d failed (%s); resuming", file.path, attempt, retries, err)
                if attempt == retries:
                    raise DownloadError([FileReport(file, Status.MISSING, f"{err} ({url})")]) from err
                sleep(min(2.0**attempt, 30.0))
    reason = verify(file, part)
    if reason is not None:
        part.unlink(missing_ok=True)
        raise ChecksumError(f"{file.path}: {reason}; the download was discarded")
    os.replace(part, dest)
    return dest


def download(root: Path | None = None, only: Iterable[str] | None = None,
             base_url: str | None = None, progress: bool = True, retries: int = 4,
             timeout: float = 60.0) -> list[FileReport]:
    """Fetch every missing or corrupt manifest file into ``root`` (default: the data dir).

    Files already present and intact are skipped. Every file is attempted even when one
    fails; the failures are raised together at the end as one :class:`DownloadError`.

    Args:
        root: the data directory to fill.
        only: groups (``bfm-mean-3ddfa``) or paths to fetch; all when ``None``.
        base_url: a mirror with the data directory's layout instead of the origins.
    Returns:
        One report per file fetched or skipped.
    """
    base = root if root is not None else data_dir()
    reports: list[FileReport] = []
    failures: list[FileReport] = []
    todo = [r for r in check(base, only)]
    for r in tqdm(todo, desc="data files", unit="file", disable=not progress):
        if r.status is Status.OK:
            reports.append(r)
            continue
        try:
            fetch_one(r.file, base, base_url, retries=retries, timeout=timeout, progress=progress)
            reports.append(FileReport(r.file, Status.OK, "downloaded"))
        except ChecksumError as err:
            failures.append(FileReport(r.file, Status.CORRUPT, str(err)))
        except DownloadError as err:
            failures.extend(err.reports)
    if failures:
        raise DownloadError(failures)
    return reports
