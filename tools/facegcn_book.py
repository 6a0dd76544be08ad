"""Sphinx extension of the facegcn book (loaded through ``local_extensions`` in _config.yml).

The book builds with ``-W -n``: every cross-reference must resolve. This extension makes the
library's Google-style docstrings and type hints resolve the way a reader expects, and leaves
every genuinely broken reference broken:

* A name is looked up the way Python would, from the module whose docstring uses it: its
  imports (``TYPE_CHECKING`` ones included) and its own globals. ``TemplateMesh`` in
  ``facegcn_lib.morphable.ict`` links to ``facegcn_lib.morphable.bfm.TemplateMesh``;
  ``go.Figure`` in ``facegcn_lib.viz`` is plotly's, shown as plain text (the book has no
  network, so third-party names are not linked).
* A re-exported name (``facegcn_lib.TemplateMesh``, ``facegcn_lib.mesh.read_obj``) links to
  the object where it is documented.
* A short name no import explains links when exactly one documented ``facegcn_lib`` object has
  that name; ambiguous or unknown names stay broken and fail the build.
* A name in a signature inherited from a third-party base class is looked up in the module
  of that base class.
* Type variables and type aliases of the library (``ArrayT``, ``Callback``) are shown as plain
  text unless they are documented (a ``#:`` comment), in which case they link.
* Plain classes get no "Bases: object" line.
* NamedTuple fields ("Alias for field number 0") are not listed twice: the class docstring's
  ``Attributes:`` section documents them.
* The site needs no network: plotly's notebook renderer adds a MathJax ``<script>`` from a CDN
  to every figure, which is dropped (the book's own MathJax, from ``_static``, typesets the
  page), and scripts registered twice by other extensions (sphinx-thebe's
  ``const THEBE_JS_URL``, a JavaScript error on every page) are included once.
* ``|yaw|`` in a docstring means an absolute value, not an RST substitution: it is shown as
  literal text.
* The first line of an attribute's, property's or ``#:`` constant's docstring is prose, never a
  napoleon ``type: description`` pair (``(H, W) bool: the mask`` is not a type); the types
  come from the annotations.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
from functools import cache
from typing import Any

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.application import Sphinx
from sphinx.environment import BuildEnvironment
from sphinx.ext.napoleon.docstring import GoogleDocstring
from sphinx.util.nodes import make_refnode

PACKAGE = "facegcn_lib"


def _prose_attribute_docstring(self: GoogleDocstring) -> list[str]:
    lines: list[str] = self._format_field("", "", list(self._lines))
    return lines


@cache
def _module_names(modname: str) -> dict[str, str]:
    """Names a module binds at top level -> their dotted origin, from its source (imports,
    including those under ``if TYPE_CHECKING:``, and its own definitions)."""
    try:
        spec = importlib.util.find_spec(modname)
    except (ImportError, ValueError):
        return {}
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return {}
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    is_pkg = spec.submodule_search_locations is not None
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    head = alias.name.split(".")[0]
                    names[head] = head
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = modname if is_pkg else modname.rpartition(".")[0]
                for _ in range(node.level - 1):
                    parent = parent.rpartition(".")[0]
                base = f"{parent}.{base}" if base else parent
            for alias in node.names:
                names[alias.asname or alias.name] = f"{base}.{alias.name}"
    for node in tree.body:
        targets: list[str] = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            targets = [node.name]
        elif isinstance(node, ast.Assign):
            targets = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            targets = [node.target.id]
        elif sys.version_info >= (3, 12) and isinstance(node, ast.TypeAlias):
            targets = [node.name.id]
        for name in targets:
            names[name] = f"{modname}.{name}"
    return names


def _import_object(dotted: str) -> Any:
    """The object a dotted name denotes, or None."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return None
        return obj
    return None


def _canonical(dotted: str) -> str:
    """``facegcn_lib.mesh.read_obj`` -> ``facegcn_lib.mesh.io.read_obj`` (where it is defined)."""
    obj = _import_object(dotted)
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str) and module.startswith(PACKAGE):
        return f"{module}.{qualname}"
    return dotted


def _is_type_construct(obj: Any) -> bool:
    """A TypeVar or a type alias such as ``Callable[[Trainer], None]`` (not a class)."""
    if obj is None or inspect.isclass(obj) or inspect.isroutine(obj) or inspect.ismodule(obj):
        return False
    return type(obj).__module__ in ("typing", "types", "collections.abc", "typing_extensions")


def _qualify(target: str, modname: str | None) -> str | None:
    """The dotted name ``target`` denotes in module ``modname``'s namespace, if it is bound there."""
    if not modname:
        return None
    head, dot, rest = target.partition(".")
    origin = _module_names(modname).get(head)
    return f"{origin}{dot}{rest}" if origin else None


def _resolve(app: Sphinx, env: BuildEnvironment, node: pending_xref,
             contnode: nodes.TextElement) -> nodes.Element | None:
    if node.get("refdomain") != "py":
        return None
    target: str = node["reftarget"].lstrip("~.")
    objects = env.get_domain("py").objects  # type: ignore[attr-defined]

    def link(name: str) -> nodes.Element:
        entry = objects[name]
        return make_refnode(app.builder, node["refdoc"], entry.docname, entry.node_id,
                            contnode, name)

    modname = node.get("py:module")
    full = target if target.startswith(PACKAGE + ".") else _qualify(target, modname)
    if full is None and modname and node.get("py:class"):
        # a signature inherited from a base class (torch's LRScheduler.__init__ ...): look the
        # name up where the base class is defined
        cls = _import_object(f"{modname}.{node['py:class']}")
        for base in getattr(cls, "__mro__", ())[1:]:
            full = _qualify(target, base.__module__)
            if full is not None:
                break
    if full is not None and full.startswith(PACKAGE + "."):
        name = _canonical(full)
        if name in objects:
            return link(name)
        if _is_type_construct(_import_object(full)):
            return contnode                      # an undocumented TypeVar or type alias
        return None                              # undocumented or missing: a broken reference
    elif full is not None:
        return contnode                          # a third-party name the module imports
    else:
        top = target.partition(".")[0]
        try:
            third_party = top != PACKAGE and importlib.util.find_spec(top) is not None
        except (ImportError, ValueError):
            third_party = False
        if "." in target and third_party:
            return contnode                      # numpy.ndarray, torch.Tensor, pathlib.Path ...
    suffix = "." + target
    matches = [n for n in objects if n.startswith(PACKAGE + ".") and n.endswith(suffix)]
    if len(matches) == 1:
        return link(matches[0])
    return None


def _skip_namedtuple_fields(app: Sphinx, what: str, name: str, obj: Any, skip: bool,
                            options: Any) -> bool | None:
    doc = getattr(obj, "__doc__", None)
    if isinstance(doc, str) and doc.startswith("Alias for field number"):
        return True
    return None


_CDN_MATHJAX = re.compile(
    r'<script[^>]*\ssrc="https://cdn[^"]*/mathjax/[^"]*"[^>]*>\s*</script>\s*', re.IGNORECASE)


def _strip_cdn_mathjax(app: Sphinx, doctree: nodes.document, docname: str) -> None:
    for raw in list(doctree.findall(nodes.raw)):
        if "html" not in raw.get("format", "").split():
            continue
        text = raw.astext()
        stripped = _CDN_MATHJAX.sub("", text)
        if stripped != text:
            raw.replace_self(nodes.raw("", stripped, format=raw["format"], classes=raw["classes"]))


def _dedupe_assets(app: Sphinx, pagename: str, templatename: str, context: dict[str, Any],
                   doctree: Any) -> None:
    for key in ("script_files", "css_files"):
        assets = context.get(key)
        if not assets:
            continue
        seen: set[tuple[str, str]] = set()
        unique = []
        for asset in assets:
            ident = (str(getattr(asset, "filename", asset) or ""),   # None and "" alike
                     repr(sorted(getattr(asset, "attributes", {}).items())))
            if ident not in seen:
                seen.add(ident)
                unique.append(asset)
        context[key] = unique


_LITERAL_OR_ROLE = re.compile(r"(``.+?``|:[\w:+-]+:`[^`]*`|`[^`]*`_?)")
_BLOCK_BARS = re.compile(r"\s*(\|\s|\|$|\+[-=])")
_SUBSTITUTION = re.compile(r"(?<![\w|\\])\|(\S(?:[^|]*?\S)?)\|(?![\w|])")


def _escape_bars(app: Sphinx, what: str, name: str, obj: Any, options: Any,
                 lines: list[str]) -> None:
    """``|yaw|`` -> literal ``|yaw|`` outside literals and roles (docstrings use no substitutions)."""
    for i, line in enumerate(lines):
        if "|" not in line or _BLOCK_BARS.match(line):
            continue                     # line blocks and grid tables keep their bars
        parts = _LITERAL_OR_ROLE.split(line)
        for j in range(0, len(parts), 2):
            parts[j] = _SUBSTITUTION.sub(r"``|\1|``", parts[j])
        lines[i] = "".join(parts)


def _drop_object_base(app: Sphinx, name: str, obj: Any, options: Any, bases: list[Any]) -> None:
    """No "Bases: object" line under every plain class."""
    bases[:] = [b for b in bases if b is not object]


def setup(app: Sphinx) -> dict[str, Any]:
    GoogleDocstring._parse_attribute_docstring = _prose_attribute_docstring  # type: ignore[method-assign]
    app.connect("missing-reference", _resolve)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("autodoc-process-bases", _drop_object_base)
    app.connect("autodoc-process-docstring", _escape_bars)
    app.connect("doctree-resolved", _strip_cdn_mathjax)
    app.connect("html-page-context", _dedupe_assets, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
