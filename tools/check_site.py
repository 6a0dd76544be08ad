"""Check the built book as a reader's browser sees it, offline, from disk (``file://``).

    python tools/check_site.py                      # checks _build/html
    python tools/check_site.py SITE --require-browser

Static checks, on every page (no browser needed):

* nothing is loaded from the network: no ``<script src>``, stylesheet, image or iframe with an
  ``http(s)://`` address (MathJax and plotly.js are bundled into the site);
* every internal link, image, script and stylesheet resolves to a file of the site, and every
  ``#fragment`` to an ``id`` on the target page; each chapter's ``.ipynb`` download exists;
* a page with plotly figures embeds plotly.js before its first figure;
* every notebook chapter has its Colab and Binder launch buttons and its ``.ipynb`` download.

Browser checks, with headless Chromium (Debian's ``chromium``, or ``$CHROME``): the landing
page, one chapter (the first with a plotly figure) and the API reference are opened with the
network off (``--disable-background-networking``, no proxy, file URLs), and in the DOM after
load

* every math element is typeset by MathJax (an ``mjx-container``, no ``merror``),
* every plotly figure is drawn (``svg.main-svg`` inside each ``.plotly-graph-div``),
* the links of the rendered page resolve, and no uncaught JavaScript error was logged;
* the search page finds a word of the book (search runs from ``searchindex.js``, offline).

Without Chromium the browser checks are skipped with a message (exit status 0), unless
``--require-browser`` is given. Exit status 1 lists every problem found.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parents[1]
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
    "--disable-extensions", "--no-proxy-server", "--mute-audio", "--enable-logging=stderr", "--v=0",
)
VIRTUAL_TIME_MS = 30_000       # page time: MathJax and plotly finish long before
BROWSER_TIMEOUT_S = 180        # wall clock per page (a chapter page carries ~5 MB of plotly.js)
SEARCH_WORD = "mesh"
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:)?//", re.IGNORECASE)
PLOTLY_BUNDLE = re.compile(r"plotly\.js v\d|define\('plotly'|window\.Plotly\s*=")
PLOTLY_FIGURE = "Plotly.newPlot("
#: what every notebook chapter's page links to: launch buttons and the .ipynb download
LAUNCH_LINKS = (("https://colab.research.google.com/github/", "Colab launch button"),
                ("https://mybinder.org/v2/gh/", "Binder launch button"),
                ("btn-download-source-button", ".ipynb download button"))
RESOURCE_ATTRS = {("script", "src"), ("img", "src"), ("iframe", "src"), ("source", "src"),
                  ("embed", "src")}
#: <link rel=...> values whose target the browser loads with the page
LOADED_RELS = {"stylesheet", "icon", "preload", "modulepreload", "prefetch", "manifest"}


@dataclass
class Page:
    """What a parser collected from one HTML document."""

    ids: set[str] = field(default_factory=set)
    links: list[tuple[str, str]] = field(default_factory=list)   # (tag.attr, url)
    resources: list[tuple[str, str]] = field(default_factory=list)
    classes: list[tuple[str, set[str], int]] = field(default_factory=list)  # (tag, classes, depth)
    counts: dict[str, int] = field(default_factory=dict)


class _Collector(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.page.counts[tag] = self.page.counts.get(tag, 0) + 1
        for key in ("id", "name"):
            if a.get(key) and (key == "id" or tag == "a"):
                self.page.ids.add(a[key])
        if tag == "a" and "href" in a:
            self.page.links.append(("a.href", a["href"]))
        if tag == "link" and a.get("href"):
            rels = set(a.get("rel", "").lower().split())
            if rels & LOADED_RELS:
                self.page.resources.append(("link.href", a["href"]))
            else:
                self.page.links.append(("link.href", a["href"]))   # prev, next, canonical ...
        elif (tag, "src") in RESOURCE_ATTRS and a.get("src"):
            self.page.resources.append((f"{tag}.src", a["src"]))
        for cls in a.get("class", "").split():
            key = f"{tag}.{cls}"
            self.page.counts[key] = self.page.counts.get(key, 0) + 1

    handle_startendtag = handle_starttag


def parse_html(text: str) -> Page:
    page = Page()
    _Collector(page).feed(text)
    return page


def _target(site: Path, page_path: Path, url: str) -> tuple[Path, str] | None:
    """The file and fragment an internal URL points to (None for external and special URLs)."""
    if not url or EXTERNAL.match(url) or url.startswith(("mailto:", "javascript:", "data:", "tel:")):
        return None
    parts = urlsplit(url)
    if parts.scheme:
        return None
    if not parts.path:
        return page_path, unquote(parts.fragment)
    path = (page_path.parent / unquote(parts.path)).resolve()
    if path.is_dir():
        path = path / "index.html"
    return path, unquote(parts.fragment)


def static_checks(site: Path) -> list[str]:
    """Problems found in the HTML files of ``site`` without a browser."""
    problems: list[str] = []
    site = site.resolve()
    pages: dict[Path, Page] = {}
    texts: dict[Path, str] = {}
    for html in sorted(site.rglob("*.html")):
        if html.relative_to(site).parts[0] == "_static":
            continue                      # theme template fragments, not pages
        text = html.read_text(encoding="utf-8", errors="replace")
        texts[html] = text
        pages[html] = parse_html(text)
    if not pages:
        return [f"no HTML pages under {site}: build the book first (bash tools/build_book.sh)"]

    for html, page in pages.items():
        rel = html.relative_to(site)
        for kind, url in page.resources:
            if EXTERNAL.match(url):
                problems.append(f"{rel}: loads {url} from the network ({kind})")
        for kind, url in page.resources + page.links:
            target = _target(site, html, url)
            if target is None:
                continue
            path, fragment = target
            if not path.exists():
                problems.append(f"{rel}: broken link {url!r} ({kind}): no file {path}")
                continue
            if fragment and path.suffix == ".html" and path in pages:
                if fragment not in pages[path].ids:
                    problems.append(f"{rel}: broken link {url!r} ({kind}): no id {fragment!r}")
        text = texts[html]
        notebook = site / "_sources" / rel.with_suffix(".ipynb")
        if notebook.is_file():
            for needle, what in LAUNCH_LINKS:
                if needle not in text:
                    problems.append(f"{rel}: a notebook chapter without its {what}")
            problems += [f"{rel}: {p}" for p in figure_problems(notebook, text)]
        first_fig = text.find(PLOTLY_FIGURE)
        if first_fig >= 0:
            bundle = PLOTLY_BUNDLE.search(text)
            if bundle is None or bundle.start() > first_fig:
                problems.append(f"{rel}: a plotly figure comes before plotly.js (call "
                                "viz.setup_notebook() in the chapter's first code cell)")
        if "class=\"math" in text and "_static/mathjax/" not in text:
            problems.append(f"{rel}: has math but does not load MathJax from _static/mathjax/")
    if not (site / "_static" / "mathjax" / "tex-chtml.js").is_file() and not any(
            (site / "_static" / "mathjax").glob("tex-*.js")):
        problems.append("_static/mathjax/ is missing: sphinx-mathjax-offline did not run")
    if not (site / "searchindex.js").is_file():
        problems.append("searchindex.js is missing: search cannot work")
    return problems


def figure_problems(notebook: Path, page_html: str) -> list[str]:
    """Captioned figures of ``notebook`` that are missing, or empty, on its built page.

    A code cell with ``{"mystnb": {"figure": {"name": ...}}}`` metadata must become a
    ``<figure id=name>`` holding an image or a plotly figure. Without this check a figure that
    the kernel never displayed (say matplotlib on a non-interactive backend) vanishes quietly
    unless some text happens to reference it.
    """
    import json

    problems: list[str] = []
    cells = json.loads(notebook.read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        name = cell.get("metadata", {}).get("mystnb", {}).get("figure", {}).get("name")
        if not name:
            continue
        start = re.search(rf'<figure[^>]*\bid="{re.escape(name)}"', page_html)
        if start is None:
            problems.append(f"figure {name!r} is missing (its cell displayed no image or plot)")
            continue
        end = page_html.find("</figure>", start.end())
        body = page_html[start.end():end if end >= 0 else None]
        if "<img" not in body and PLOTLY_FIGURE not in body and "plotly-graph-div" not in body:
            problems.append(f"figure {name!r} holds neither an image nor a plotly figure")
    return problems


def find_browser() -> str | None:
    """The Chromium executable: ``$CHROME``, else the first of BROWSERS on PATH."""
    env = os.environ.get("CHROME")
    if env:
        return env if shutil.which(env) or Path(env).is_file() else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class Rendered:
    """A page after load in headless Chromium: its DOM and the JavaScript errors it logged."""

    url: str
    dom: str
    errors: list[str]


def render(browser: str, url: str, virtual_time_ms: int = VIRTUAL_TIME_MS) -> Rendered:
    """Load ``url`` in a fresh headless Chromium profile and dump the DOM after load."""
    with tempfile.TemporaryDirectory(prefix="facegcn-chromium-") as profile:
        cmd = [browser, *CHROME_FLAGS, f"--user-data-dir={profile}",
               f"--virtual-time-budget={virtual_time_ms}", "--dump-dom", url]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S,
                              check=False)
    if proc.returncode != 0 or "<html" not in proc.stdout:
        raise RuntimeError(f"{browser} failed on {url} (exit {proc.returncode}):\n"
                           f"{proc.stderr[-2000:]}")
    errors = [line.split("] ", 1)[-1] for line in proc.stderr.splitlines()
              if ":CONSOLE" in line and "Uncaught" in line]
    return Rendered(url, proc.stdout, errors)


def _dom_checks(site: Path, page_path: Path, rendered: Rendered, what: str,
                need_math: bool, need_plotly: bool) -> list[str]:
    problems: list[str] = []
    rel = page_path.relative_to(site)
    text = rendered.dom
    page = parse_html(text)
    n_math = page.counts.get("span.math", 0) + page.counts.get("div.math", 0)
    n_typeset = page.counts.get("mjx-container", 0)
    if need_math and n_math == 0:
        problems.append(f"{what} ({rel}): expected equations, found none")
    if n_math and n_typeset < n_math:
        problems.append(f"{what} ({rel}): MathJax typeset {n_typeset} of {n_math} math elements")
    if page.counts.get("mjx-merror", 0):
        problems.append(f"{what} ({rel}): MathJax reports {page.counts['mjx-merror']} errors")
    n_plots = page.counts.get("div.plotly-graph-div", 0)
    if need_plotly and n_plots == 0:
        problems.append(f"{what} ({rel}): expected a plotly figure, found none")
    drawn = _count_drawn_plots(text)
    if n_plots and drawn < n_plots:
        problems.append(f"{what} ({rel}): plotly drew {drawn} of {n_plots} figures")
    for kind, url in page.links + page.resources:
        target = _target(site, page_path, url)
        if target is not None and not target[0].exists():
            problems.append(f"{what} ({rel}): link {url!r} ({kind}) does not resolve")
        if EXTERNAL.match(url) and kind != "a.href" and kind != "link.href":
            problems.append(f"{what} ({rel}): loads {url} from the network ({kind})")
    problems += [f"{what} ({rel}): JavaScript error: {e}" for e in rendered.errors]
    return problems


def _count_drawn_plots(dom: str) -> int:
    """Plotly figure divs that contain an ``svg.main-svg`` (plotly draws one per figure)."""
    drawn = 0
    for m in re.finditer(r'<div[^>]*class="[^"]*plotly-graph-div[^"]*"', dom):
        nxt = dom.find("plotly-graph-div", m.end())
        chunk = dom[m.end(): nxt if nxt > 0 else len(dom)]
        if 'class="main-svg"' in chunk:
            drawn += 1
    return drawn


def default_pages(site: Path) -> tuple[Path, Path | None, Path | None]:
    """(landing page, first chapter page with a plotly figure, API reference page)."""
    landing = site / "index.html"
    chapters = sorted(p for p in (site / "chapters").glob("[0-9][0-9]_*.html"))
    with_plot = [p for p in chapters if PLOTLY_FIGURE in p.read_text(errors="replace")]
    numbered = [p for p in with_plot if not p.name.startswith("00_")]
    chapter = (numbered or with_plot or chapters or [None])[0]
    api_pages = sorted((site / "chapters" / "api").glob("*.html"))
    api = max(api_pages, key=lambda p: p.read_text(errors="replace").count('class="sig '),
              default=None)
    return landing, chapter, api


def browser_checks(site: Path, browser: str, chapter: Path | None = None,
                   api: Path | None = None, log: bool = True) -> list[str]:
    """Problems found by opening the landing page, a chapter, the API page and a search."""
    site = site.resolve()
    landing, default_chapter, default_api = default_pages(site)
    chapter = chapter or default_chapter
    api = api or default_api
    problems: list[str] = []
    targets: list[tuple[str, Path | None, bool, bool]] = [
        ("landing page", landing, True, False),
        ("chapter", chapter, True, True),
        ("API reference", api, False, False),
    ]
    for what, path, need_math, need_plotly in targets:
        if path is None or not path.is_file():
            problems.append(f"{what}: no such page in {site}")
            continue
        rendered = render(browser, path.as_uri())
        final = path
        if what == "landing page":            # index.html redirects to the first chapter
            m = re.search(r'<link rel="canonical" href="[^"]*/([^"/]+/[^"/]+\.html)"', rendered.dom)
            redirect = re.search(r'url=([^"\'>]+\.html)', path.read_text(errors="replace"))
            if redirect:
                final = (path.parent / redirect.group(1)).resolve()
            elif m:
                final = site / m.group(1)
            if final != path:
                rendered = render(browser, final.as_uri())
        if log:
            print(f"  opened {what}: {final.relative_to(site)}")
        problems += _dom_checks(site, final, rendered, what, need_math, need_plotly)
    search = site / "search.html"
    rendered = render(browser, f"{search.as_uri()}?q={SEARCH_WORD}")
    results = re.search(r'<ul class="search"[^>]*>(.*?)</ul>', rendered.dom, re.S)
    hits = results.group(1).count("<li") if results else 0
    if log:
        print(f"  searched {SEARCH_WORD!r}: {hits} results")
    if hits == 0:
        problems.append(f"search: no results for {SEARCH_WORD!r} (searchindex.js not loaded?)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", default=str(ROOT / "_build" / "html"),
                        help="the built site (default: _build/html)")
    parser.add_argument("--chapter", help="chapter page to open (default: first with a figure)")
    parser.add_argument("--api", help="API page to open (default: the one with most entries)")
    parser.add_argument("--require-browser", action="store_true",
                        help="fail instead of skipping when Chromium is not installed")
    args = parser.parse_args(argv)
    site = Path(args.site).resolve()
    if not (site / "index.html").is_file():
        print(f"error: {site}/index.html not found: build the book first "
              "(bash tools/build_book.sh)", file=sys.stderr)
        return 1
    print(f"checking {site}")
    problems = static_checks(site)
    n_pages = sum(1 for p in site.rglob("*.html") if p.relative_to(site).parts[0] != "_static")
    print(f"  static checks: {n_pages} pages, {len(problems)} problems")
    browser = find_browser()
    if browser is None:
        msg = ("Chromium not found (install Debian's `chromium`, or set $CHROME): "
               "browser checks skipped")
        if args.require_browser:
            problems.append(msg)
        else:
            print(f"  SKIPPED: {msg}")
    else:
        print(f"  browser: {browser}")
        chapter = Path(args.chapter).resolve() if args.chapter else None
        api = Path(args.api).resolve() if args.api else None
        problems += browser_checks(site, browser, chapter, api)
    for p in problems:
        print(f"PROBLEM: {p}")
    print("site OK" if not problems else f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
