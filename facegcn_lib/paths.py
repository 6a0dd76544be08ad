"""Where facegcn finds its data and keeps its caches, and the manifest of the data files.

The library reads every input file through :func:`require`, which raises one clear
:class:`DataMissingError` naming the missing file and the command that fetches it. The data
directory is set by one setting: the environment variable ``FACEGCN_DATA``, else
``$XDG_CACHE_HOME/facegcn/data`` (``~/.cache/facegcn/data``). Derived files (parsed models,
mesh pyramids) go to a separate, writable cache directory (``FACEGCN_CACHE``, else
``~/.cache/facegcn/cache``), so the data directory may be read-only.

See :doc:`the introduction </chapters/00_intro>` for a tour.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

DATA_ENV = "FACEGCN_DATA"
CACHE_ENV = "FACEGCN_CACHE"
FETCH_HINT = "facegcn data download"


class DataMissingError(FileNotFoundError):
    """A data file the library needs is not in the data directory."""

    def __init__(self, relpath: str, root: Path) -> None:
        self.relpath = relpath
        self.root = root
        super().__init__(
            f"missing data file '{relpath}' in the data directory {root}. "
            f"Fetch it with `{FETCH_HINT}` (or `{FETCH_HINT} --only {relpath.split('/')[0]}`), "
            f"or point the environment variable {DATA_ENV} at a folder that has it."
        )


def _user_cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "facegcn"


def data_dir() -> Path:
    """The data directory: ``$FACEGCN_DATA``, else ``~/.cache/facegcn/data``."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser().resolve() if env else _user_cache_root() / "data"


def cache_dir() -> Path:
    """The writable cache directory for derived files (created on demand)."""
    env = os.environ.get(CACHE_ENV)
    root = Path(env).expanduser() if env else _user_cache_root() / "cache"
    root.mkdir(parents=True, exist_ok=True)
    return root


def require(relpath: str, root: Path | None = None) -> Path:
    """The path of data file ``relpath`` (posix, relative to the data directory).

    Raises:
        DataMissingError: the file is absent; the message says how to fetch it.
    """
    base = root if root is not None else data_dir()
    path = base / relpath
    if not path.is_file():
        raise DataMissingError(relpath, base)
    return path


def hash_inputs(*parts: object) -> str:
    """A short stable hash of files (by content) and parameters, for naming cache files."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            h.update(part.name.encode())
            h.update(file_sha256(part).encode())
        elif isinstance(part, bytes):
            h.update(part)
        else:
            h.update(repr(part).encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


@lru_cache(maxsize=256)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, memoised by path, size and modification time."""
    st = path.stat()
    return _sha256_cached(str(path), st.st_size, st.st_mtime_ns)


def cache_file(stem: str, suffix: str, *inputs: object) -> Path:
    """A cache path ``<cache>/<stem>-<hash of inputs><suffix>`` (not created)."""
    return cache_dir() / f"{stem}-{hash_inputs(*inputs)}{suffix}"


@dataclass(frozen=True)
class DataFile:
    """One file of the data directory, as the manifest describes it.

    Attributes:
        path: posix path relative to the data directory.
        url: its public origin (``None`` for a small index written locally).
        sha256: the file's checksum (``None`` for an archive checked member by member).
        size: its size in bytes, when fixed.
        members: for a zip archive, member name -> SHA-256 of the members we use.
        inline: the text of a small file that is written rather than downloaded.
    """

    path: str
    url: str | None = None
    sha256: str | None = None
    size: int | None = None
    members: dict[str, str] = field(default_factory=dict)
    inline: str | None = None

    @property
    def group(self) -> str:
        """The top folder, e.g. ``bfm-mean-3ddfa`` (what ``--only`` selects)."""
        return self.path.split("/", 1)[0]


@lru_cache(maxsize=1)
def manifest() -> tuple[DataFile, ...]:
    """All data files the library knows, from ``resources/data_manifest.json``."""
    text = resources.files("facegcn_lib").joinpath("resources/data_manifest.json").read_text()
    return tuple(DataFile(**entry) for entry in json.loads(text)["files"])


def select(only: Iterable[str] | None = None) -> list[DataFile]:
    """Manifest entries whose group or path is in ``only`` (all when ``None``)."""
    wanted = set(only or ())
    files = list(manifest())
    if not wanted:
        return files
    chosen = [f for f in files if f.group in wanted or f.path in wanted]
    unknown = wanted - {f.group for f in files} - {f.path for f in files}
    if unknown:
        groups = sorted({f.group for f in files})
        raise ValueError(f"unknown data group or file {sorted(unknown)}; groups are {groups}")
    return chosen
