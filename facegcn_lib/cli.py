"""The ``facegcn`` command: thin wrappers over the library (no logic of its own).

Each subcommand is one ``_add_<name>`` function that declares its arguments and binds a
handler; :func:`main` wires them up. Handlers return the process exit code.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from facegcn_lib._version import __version__

log = logging.getLogger("facegcn")

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


# --- facegcn data ---------------------------------------------------------------------------
def _data_check(args: argparse.Namespace) -> int:
    from facegcn_lib.download import Status, check
    from facegcn_lib.paths import data_dir

    root = Path(args.data_dir) if args.data_dir else data_dir()
    reports = check(root, args.only or None, deep=not args.quick)
    width = max(len(r.file.path) for r in reports)
    for r in reports:
        mark = {"ok": "ok", "missing": "MISSING", "corrupt": "CORRUPT"}[r.status.value]
        extra = f"  ({r.detail})" if r.status is Status.CORRUPT else ""
        print(f"{r.file.path:<{width}}  {mark}{extra}")
    bad = [r for r in reports if r.status is not Status.OK]
    print(f"\ndata directory: {root}")
    if bad:
        print(f"{len(bad)} of {len(reports)} files missing or corrupt: run `facegcn data download`.")
        return EXIT_FAILURE
    print(f"all {len(reports)} files present and intact.")
    return EXIT_OK


def _data_download(args: argparse.Namespace) -> int:
    from facegcn_lib.config import DownloadConfig
    from facegcn_lib.download import DownloadError, download
    from facegcn_lib.paths import data_dir

    cfg = DownloadConfig()
    root = Path(args.data_dir) if args.data_dir else data_dir()
    try:
        reports = download(root, args.only or None, base_url=args.mirror,
                           progress=not args.quiet, retries=cfg.retries, timeout=cfg.timeout_s)
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except PermissionError as err:
        print(f"error: cannot write to the data directory: {err}. Set FACEGCN_DATA to a "
              "writable folder.", file=sys.stderr)
        return EXIT_FAILURE
    fetched = sum(r.detail == "downloaded" for r in reports)
    print(f"{fetched} file(s) downloaded, {len(reports) - fetched} already present, into {root}")
    return EXIT_OK


def _data_path(args: argparse.Namespace) -> int:
    from facegcn_lib.paths import cache_dir, data_dir

    print(f"data:  {data_dir()}\ncache: {cache_dir()}")
    return EXIT_OK


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="fetch and check the data files",
                       description="Fetch and check the data files (set FACEGCN_DATA to choose the folder).")
    dsub = p.add_subparsers(dest="data_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", help="the data directory (default: $FACEGCN_DATA or ~/.cache/facegcn/data)")
    common.add_argument("--only", nargs="*", metavar="GROUP", help="groups or files, e.g. bfm-mean-3ddfa")
    c = dsub.add_parser("check", parents=[common], help="say which files are present, missing or corrupt")
    c.add_argument("--quick", action="store_true", help="check presence only, not checksums")
    c.set_defaults(handler=_data_check)
    d = dsub.add_parser("download", parents=[common], help="fetch missing files from their public origins")
    d.add_argument("--mirror", help="a base URL with the data directory's layout, instead of the origins")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.set_defaults(handler=_data_download)
    pth = dsub.add_parser("path", help="print the data and cache directories")
    pth.set_defaults(handler=_data_path)


# --- registry of subcommands (later subcommands add an _add_<name> above and list it here) --
_SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_data,
]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``facegcn`` command."""
    parser = argparse.ArgumentParser(
        prog="facegcn", description="3D dense face alignment with graph convolutions.")
    parser.add_argument("--version", action="version", version=f"facegcn {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in _SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facegcn`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return handler(args)
    except FileNotFoundError as err:  # DataMissingError included: its message says what to do
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
