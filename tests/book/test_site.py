"""The built book, as a reader opens it from disk with no network (``_build/html``).

Runs when the site exists (``bash tools/build_book.sh``) or ``FACEGCN_BOOK_TEST=1`` is set
(then a missing site is a failure). The browser test needs Chromium (Debian: ``apt-get install
chromium``; elsewhere set ``$CHROME``) and is skipped, saying so, without it. CI runs the same
checks after the build with ``python tools/check_site.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("FACEGCN_BOOK_SITE", ROOT / "_build" / "html"))
REQUIRED = os.environ.get("FACEGCN_BOOK_TEST") == "1"

_spec = importlib.util.spec_from_file_location("check_site", ROOT / "tools" / "check_site.py")
assert _spec is not None and _spec.loader is not None
check_site = importlib.util.module_from_spec(_spec)
sys.modules["check_site"] = check_site
_spec.loader.exec_module(check_site)

pytestmark = [
    pytest.mark.book,
    pytest.mark.skipif(not REQUIRED and not (SITE / "index.html").is_file(),
                       reason=f"book not built ({SITE}/index.html missing): run "
                              "`bash tools/build_book.sh`, or set FACEGCN_BOOK_TEST=1"),
]


def test_site_exists() -> None:
    assert (SITE / "index.html").is_file(), f"build the book first: bash tools/build_book.sh ({SITE})"


def test_offline_assets_and_internal_links() -> None:
    problems = check_site.static_checks(SITE)
    assert not problems, "\n".join(problems)


@pytest.mark.slow
def test_pages_render_in_headless_chromium() -> None:
    browser = check_site.find_browser()
    if browser is None:
        pytest.skip("Chromium not found: install Debian's `chromium` (apt-get install -y "
                    "chromium) or set $CHROME; the browser checks are skipped")
    problems = check_site.browser_checks(SITE, browser, log=False)
    assert not problems, "\n".join(problems)

