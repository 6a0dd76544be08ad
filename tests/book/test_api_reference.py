"""The API reference part of the book covers every public module and name of facegcn_lib.

The book build (``tools/build_book.sh``) fails on a broken cross-reference; these fast checks
catch what it cannot see: a module missing from chapters/api/*.md, a page missing from
_toc.yml, and a public function or class without a docstring (autodoc silently skips it).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]
api_pages = load_tool("api_pages")

FIX = "run `python tools/api_pages.py --write` and add new pages to _toc.yml"


def _own_public_members(module: ModuleType) -> list[str]:
    """Public functions and classes defined in ``module`` itself (what ``:members:`` shows)."""
    names = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if getattr(obj, "__module__", None) == module.__name__:
            names.append(name)
    return names


def test_every_public_module_has_an_api_block() -> None:
    missing = api_pages.missing()
    assert not missing, f"modules missing from the API reference: {missing}; {FIX}"


def test_no_api_block_for_a_module_that_does_not_exist() -> None:
    stale = sorted(set(api_pages.documented_modules()) - set(api_pages.public_modules()))
    assert not stale, f"chapters/api/*.md document modules that do not exist: {stale}"


def test_every_api_page_is_in_the_toc() -> None:
    toc = (ROOT / "_toc.yml").read_text()
    listed = set(re.findall(r"^\s*-\s*file:\s*(\S+)\s*$", toc, re.MULTILINE))
    pages = {f"chapters/api/{p.stem}" for p in api_pages.API_DIR.glob("*.md")}
    assert not pages - listed, f"API pages not in _toc.yml: {sorted(pages - listed)}"


@pytest.mark.parametrize("module_name", api_pages.public_modules())
def test_public_names_are_documented(module_name: str) -> None:
    documented = api_pages.documented_modules()
    if module_name not in documented:
        pytest.skip(f"{module_name} is not in the API reference yet (see the test above)")
    module = importlib.import_module(module_name)
    own = _own_public_members(module)
    page, has_members = documented[module_name]
    if own and not has_members:
        pytest.fail(f"{module_name} defines {own} but its block in {page.name} has no :members:")
    undocumented = [n for n in own if not inspect.getdoc(getattr(module, n))]
    assert not undocumented, (f"public names without a docstring in {module_name} (autodoc "
                              f"leaves them out of the book): {undocumented}")
    assert module.__doc__, f"{module_name} has no module docstring"


def test_top_level_exports_resolve_to_documented_modules() -> None:
    import facegcn_lib

    documented = api_pages.documented_modules()
    for name in facegcn_lib.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(facegcn_lib, name)
        home = getattr(obj, "__module__", None)
        assert home in documented, f"facegcn_lib.{name} lives in {home}, not in the API reference"


def test_block_of_a_new_module() -> None:
    """The tool files a subpackage module on its subpackage's page, with its members."""
    assert api_pages.page_for("facegcn_lib.mesh.graph") == "mesh"
    assert api_pages.page_for("facegcn_lib.paths") == "core"
    block = api_pages.block("facegcn_lib.mesh.graph")
    assert ".. automodule:: facegcn_lib.mesh.graph\n   :members:" in block
    assert ":members:" not in api_pages.block("facegcn_lib.mesh")


#: A docstring that names its chapter links to it (``See :doc:`chapter 2
#: </chapters/02_decimation>```); plain text ("see chapter 2") is neither checked nor clickable.
PLAIN_CHAPTER = re.compile(r"(?<![`\w])chapter (\d+)(?! </)", re.IGNORECASE)
DOC_LINK = re.compile(r":doc:`[^`<]*<(/chapters/[^>]+)>`")


def _docstrings(module_name: str) -> list[str]:
    path = ROOT / (module_name.replace(".", "/") + ".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree, *(n for n in ast.walk(tree)
                     if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef))]
    return [doc for n in nodes if (doc := ast.get_docstring(n))]


def test_docstrings_link_their_chapter() -> None:
    """"See chapter N" is a :doc: link to a page of the book (the build checks that it resolves)."""
    toc = (ROOT / "_toc.yml").read_text()
    plain, broken = [], []
    for name in api_pages.public_modules():
        docs = "\n".join(_docstrings(name))
        mentions = PLAIN_CHAPTER.findall(docs)
        if mentions:
            plain.append(f"{name} (chapter {', '.join(sorted(set(mentions)))})")
        broken += [f"{name}: {target}" for target in DOC_LINK.findall(docs)
                   if f"file: {target.lstrip('/')}" not in toc
                   and f"root: {target.lstrip('/')}" not in toc]
    assert not plain, ("docstrings name a chapter in plain text; write "
                       f"See :doc:`chapter N </chapters/NN_name>` instead: {plain}")
    assert not broken, f":doc: links to pages that are not in _toc.yml: {broken}"
