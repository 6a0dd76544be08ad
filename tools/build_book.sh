#!/usr/bin/env bash
# Build the book as CI and the GitHub Pages workflow do: the one command for all of them.
#
#   tools/build_book.sh                  # -> _build/html/index.html
#   tools/build_book.sh --path-output /tmp/book --toc /tmp/toc.yml   # extra flags go to jupyter-book
#
# The chapters are executed (cached in _build/.jupyter_cache), so the data must be present:
# `facegcn data download` (or FACEGCN_DATA pointing at a complete data directory).
#   -W            warnings are errors (broken cross-references, unknown citations, bad MyST, ...)
#   -n            nitpicky: every cross-reference must resolve (see nitpick_ignore_regex in
#                 _config.yml for the third-party names that are exempt)
#   --keep-going  report all warnings, then fail
#   --all         re-read every page, so warnings of unchanged pages are reported again
# No network is needed: MathJax and plotly.js are bundled into the site.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! facegcn data check --quick >/dev/null 2>&1; then
    echo "error: the data files are missing, and the book executes the chapters." >&2
    echo "       Run \`facegcn data download\` (or set FACEGCN_DATA) first; \`facegcn data check\` lists them." >&2
    exit 1
fi

exec jupyter-book build . -W -n --keep-going --all "$@"
