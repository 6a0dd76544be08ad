"""The checker of the built book (tools/check_site.py) itself, on tiny hand-written pages."""

from __future__ import annotations

from pathlib import Path

from tests.tools import load_tool

ROOT = Path(__file__).resolve().parents[2]
check_site = load_tool("check_site")


def test_dom_checks_catch_untypeset_math_and_undrawn_plots(tmp_path: Path) -> None:
    """The checks themselves: a page whose math and figure were not rendered fails them."""
    page = tmp_path / "p.html"
    page.write_text("<html><body>x</body></html>")
    dom = ('<html><body><span class="math notranslate">\\(x\\)</span>'
           '<div id="f" class="plotly-graph-div"></div>'
           '<a href="missing.html">m</a></body></html>')
    problems = check_site._dom_checks(tmp_path, page, check_site.Rendered("u", dom, []),
                                      "page", need_math=True, need_plotly=True)
    text = "\n".join(problems)
    assert "typeset 0 of 1" in text and "drew 0 of 1" in text and "missing.html" in text
    ok = ('<html><body><span class="math"><mjx-container></mjx-container></span>'
          '<div class="plotly-graph-div js-plotly-plot"><svg class="main-svg"></svg></div>'
          '<a href="p.html">p</a></body></html>')
    assert check_site._dom_checks(tmp_path, page, check_site.Rendered("u", ok, []),
                                  "page", need_math=True, need_plotly=True) == []


def test_static_checks_find_cdn_scripts_and_broken_links(tmp_path: Path) -> None:
    (tmp_path / "_static" / "mathjax").mkdir(parents=True)
    (tmp_path / "_static" / "mathjax" / "tex-chtml.js").write_text("")
    (tmp_path / "searchindex.js").write_text("")
    (tmp_path / "b.html").write_text('<html><body><p id="here">b</p></body></html>')
    (tmp_path / "index.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<link rel="canonical" href="https://example.org/index.html"></head><body>'
        '<a href="b.html#here">ok</a><a href="b.html#gone">bad anchor</a>'
        '<a href="nope.html">bad file</a><a href="https://example.org">external</a>'
        '</body></html>')
    problems = "\n".join(check_site.static_checks(tmp_path))
    assert "https://cdn.example.org/x.js from the network" in problems
    assert "no id 'gone'" in problems and "nope.html" in problems
    assert "#here" not in problems and "canonical" not in problems
    assert "example.org/index.html" not in problems
