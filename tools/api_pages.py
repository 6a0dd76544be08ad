"""Keep the book's API reference (chapters/api/*.md) in step with the modules of facegcn_lib.

Every public module (no leading underscore in its dotted name) must appear in exactly one
``.. automodule::`` block of one page; ``tests/book/test_api_reference.py`` checks it.

    python tools/api_pages.py            # list modules missing from the pages (exit 1 if any)
    python tools/api_pages.py --write    # append their blocks to the right pages

A module ``facegcn_lib.<sub>.<name>`` goes to ``chapters/api/<sub>.md``; a top-level module to
the page named in ``TOP_LEVEL_PAGES``. A page that does not exist yet is created, and the
line to add to _toc.yml (under ``chapters/api/index``) is printed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "facegcn_lib"
API_DIR = ROOT / "chapters" / "api"
AUTOMODULE = re.compile(r"^\.\. automodule:: ([\w.]+)\s*$", re.MULTILINE)

#: top-level module -> page stem (a subpackage's page is named after the subpackage)
TOP_LEVEL_PAGES = {
    "paths": "core", "download": "core", "config": "core",
    "detect": "pipeline", "pipeline": "pipeline", "face": "pipeline", "batch": "pipeline",
    "video": "pipeline", "overlay": "pipeline",
    "viz": "viz", "cli": "cli",
}
#: page stem -> title of a page created by --write
PAGE_TITLES = {
    "mesh": "Meshes", "nn": "Networks", "morphable": "Morphable models", "render": "Rendering",
    "data": "Training data", "geometry": "Geometry", "train": "Training",
    "eval": "Evaluation", "pipeline": "Photos to faces", "core": "Data files, caches and configuration",
    "viz": "Figures", "cli": "The `facegcn` command",
}


def public_modules(root: Path = ROOT) -> list[str]:
    """Dotted names of the public modules and packages of facegcn_lib, found on disk."""
    names = []
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(p.startswith("_") for p in parts) or "resources" in parts:
            continue
        names.append(".".join(parts))
    return names


def documented_modules(api_dir: Path = API_DIR) -> dict[str, tuple[Path, bool]]:
    """Module -> (page, whether its block has ``:members:``), from the automodule directives."""
    found: dict[str, tuple[Path, bool]] = {}
    for page in sorted(api_dir.glob("*.md")):
        text = page.read_text()
        for m in AUTOMODULE.finditer(text):
            block = text[m.end():m.end() + 200].split("```", 1)[0]
            found[m.group(1)] = (page, ":members:" in block)
    return found


def is_package(module: str, root: Path = ROOT) -> bool:
    return (root / Path(*module.split(".")) / "__init__.py").is_file()


def page_for(module: str, root: Path = ROOT) -> str:
    """The page stem a module belongs on."""
    parts = module.split(".")
    if len(parts) == 1:
        return "index"
    if len(parts) == 2 and not is_package(module, root):
        return TOP_LEVEL_PAGES.get(parts[1], parts[1])
    return parts[1]


def block(module: str, root: Path = ROOT) -> str:
    """The markdown of one module's block (a package's own docstring has no members: its
    ``__all__`` re-exports names that are documented in their modules)."""
    members = "" if is_package(module, root) else "   :members:\n"
    heading = "" if is_package(module, root) else f"## `{module}`\n\n"
    return f"{heading}```{{eval-rst}}\n.. automodule:: {module}\n{members}```\n"


def missing(root: Path = ROOT, api_dir: Path = API_DIR) -> list[str]:
    documented = documented_modules(api_dir)
    return [m for m in public_modules(root) if m not in documented]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="append the missing blocks")
    args = parser.parse_args(argv)
    todo = missing()
    stale = sorted(set(documented_modules()) - set(public_modules()))
    for m in stale:
        print(f"stale: {m} is documented but no longer exists", file=sys.stderr)
    if not todo:
        print("API reference: every public module is documented.")
        return 1 if stale else 0
    for module in todo:
        page = API_DIR / f"{page_for(module)}.md"
        print(f"missing: {module} -> {page.relative_to(ROOT)}")
        if not args.write:
            continue
        if not page.exists():
            title = PAGE_TITLES.get(page.stem, page.stem)
            package = f"{PACKAGE}.{page.stem}"
            head = f"# {title}: `{package}`\n\n" if is_package(package) else f"# {title}\n\n"
            page.write_text(head)
            print(f"  created {page.relative_to(ROOT)}: add `- file: chapters/api/{page.stem}` "
                  "under chapters/api/index in _toc.yml")
        text = page.read_text()
        page.write_text(text.rstrip("\n") + "\n\n" + block(module) if text.strip() else block(module))
    if not args.write:
        print("run `python tools/api_pages.py --write` to add them", file=sys.stderr)
        return 1
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
