#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for tools/check_site.py, if it is missing.
# Never fails: where it cannot be installed (no apt, no root), it says so, and the browser
# checks are then skipped with a message (CI's log shows which).
set -uo pipefail
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then echo "browser: $(command -v "$b")"; exit 0; fi
done
if ! command -v apt-get >/dev/null 2>&1; then
    echo "Chromium not installed and no apt-get here: the book's browser checks will be skipped."
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
        echo "Chromium not installed and no root to install it: browser checks will be skipped."
        exit 0
    fi
fi
export DEBIAN_FRONTEND=noninteractive
if $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 ||
   { $SUDO apt-get update -qq >/dev/null 2>&1 &&
     $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; then
    echo "installed: $(command -v chromium)"
else
    echo "apt-get could not install chromium: the book's browser checks will be skipped."
fi
exit 0
