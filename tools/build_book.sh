#!/usr/bin/env bash
# Build the book offline with warnings as errors (used by CI, the Pages workflow and the README).
set -euo pipefail
cd "$(dirname "$0")/.."
jupyter-book build . -W -n --keep-going
