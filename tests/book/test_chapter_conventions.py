"""Every chapter notebook follows the book's conventions (.notes/CONVENTIONS.md, "Book").

Readers meet the project as a published book: each chapter can be launched on Colab (its first
code cell installs the library), is in the table of contents, numbers and captions its
figures, and ends with exercises whose solutions are hidden.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
#: Notebook pages that are not chapters (no summary or exercises), held to every other rule.
PAGES = [ROOT / "chapters" / "results.ipynb"]
INSTALL_LINES = (
    'if "google.colab" in sys.modules:',
    '%pip install -q "facegcn @ git+https://github.com/facegcn/facegcn"',
    "!facegcn data download --quiet",
)
SHOWS_FIGURE = re.compile(r"^\s*(\w+\.)*show\(\)\s*$", re.MULTILINE)
#: A caption written as a markdown cell ("**Figure 3:** ..."): neither numbered nor linkable.
LOOSE_CAPTION = re.compile(r"^\s*\*\*(Figure|Fig\.)\s*\d*\s*[:.]?\*\*")
EXERCISE_LABEL = re.compile(r"```\{exercise\}[^\n]*\n(?::[^\n]*\n)*?:label:\s*(\S+)")


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _shows_figure_implicitly(source: str) -> bool:
    """The cell ends with a bare ``viz.something_figure(...)`` call that Jupyter displays."""
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        body = ast.parse("\n".join(lines)).body
    except SyntaxError:
        return False
    if not body or not isinstance(body[-1], ast.Expr) or not isinstance(body[-1].value, ast.Call):
        return False
    func = body[-1].value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return str(name).endswith("figure")


def _code(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(params=CHAPTERS + PAGES, ids=[p.stem for p in CHAPTERS + PAGES])
def chapter(request: pytest.FixtureRequest) -> Path:
    path: Path = request.param
    return path


@pytest.mark.skipif(not CHAPTERS, reason="no chapter notebooks yet")
class TestChapter:
    def test_committed_without_outputs(self, chapter: Path) -> None:
        with_outputs = [i for i, c in enumerate(_code(_read(chapter))) if c.outputs]
        assert not with_outputs, f"{chapter.name}: code cells {with_outputs} have outputs"

    def test_first_code_cell_is_the_install_cell(self, chapter: Path) -> None:
        code = _code(_read(chapter))
        assert code, f"{chapter.name} has no code"
        missing = [line for line in INSTALL_LINES if line not in code[0].source]
        assert not missing, (f"{chapter.name}: the first code cell must be the install cell of "
                             f".notes/CONVENTIONS.md (missing {missing})")

    def test_is_in_the_toc(self, chapter: Path) -> None:
        toc = (ROOT / "_toc.yml").read_text()
        entry = f"chapters/{chapter.stem}"
        listed = re.search(rf"^\s*(-\s*)?(file|root):\s*{re.escape(entry)}\s*$", toc,
                           re.MULTILINE)
        assert listed, f"{entry} is not in _toc.yml (or only in a comment)"

    def test_figures_are_numbered_and_captioned(self, chapter: Path) -> None:
        nb = _read(chapter)
        bad = []
        for i, cell in enumerate(_code(nb)):
            if SHOWS_FIGURE.search(cell.source) or _shows_figure_implicitly(cell.source):
                fig = cell.metadata.get("mystnb", {}).get("figure", {})
                if not (fig.get("caption") and fig.get("name")):
                    bad.append(i)
        assert not bad, (f"{chapter.name}: code cells {bad} show a figure without "
                         '{"mystnb": {"figure": {"caption": ..., "name": ...}}} metadata')
        loose = [i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and LOOSE_CAPTION.match(c.source)]
        assert not loose, (f"{chapter.name}: cells {loose} are '**Figure:**' captions; move the "
                           "text into the figure cell's mystnb.figure.caption (numbered) and "
                           "refer to it with {numref}`fig-...`")

    def test_plotly_is_set_up_before_the_first_figure(self, chapter: Path) -> None:
        code = _code(_read(chapter))
        first_fig = next((i for i, c in enumerate(code) if SHOWS_FIGURE.search(c.source)), None)
        if first_fig is None:
            pytest.skip("no figures")
        setup = next((i for i, c in enumerate(code) if "setup_notebook()" in c.source), None)
        assert setup is not None and setup < first_fig, (
            f"{chapter.name}: call viz.setup_notebook() before the first figure")

    def test_ends_with_summary_and_exercises_with_hidden_solutions(self, chapter: Path) -> None:
        if chapter in PAGES:
            pytest.skip("a page, not a chapter")
        text = "\n".join(c.source for c in _read(chapter).cells if c.cell_type == "markdown")
        assert "## Summary" in text, f"{chapter.name}: no '## Summary'"
        tail = text[text.rfind("## Exercises"):] if "## Exercises" in text else ""
        assert tail, f"{chapter.name}: no '## Exercises' section"
        labels = EXERCISE_LABEL.findall(tail)
        assert labels, f"{chapter.name}: no {{exercise}} with a :label: under '## Exercises'"
        for label in labels:
            assert re.search(rf"```\{{solution\}}\s*{re.escape(label)}\s*\n:class:\s*dropdown",
                             tail), f"{chapter.name}: exercise {label} lacks a dropdown solution"


def test_exercise_and_figure_labels_are_unique_across_the_book() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for path in CHAPTERS + PAGES:
        nb = _read(path)
        labels = EXERCISE_LABEL.findall("\n".join(c.source for c in nb.cells
                                                  if c.cell_type == "markdown"))
        labels += [c.metadata["mystnb"]["figure"]["name"] for c in _code(nb)
                   if c.metadata.get("mystnb", {}).get("figure", {}).get("name")]
        for label in labels:
            if label in seen:
                clashes.append(f"{label} ({seen[label]} and {path.name})")
            seen[label] = path.name
    assert not clashes, f"labels used twice: {clashes}"
