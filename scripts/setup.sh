#!/usr/bin/env bash
# Create .venv and install the project with its test tools. Re-running is cheap: it reinstalls
# only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
stamp=".venv/.cbdc-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -e '.[dev]'
    rm -f .venv/.cbdc-installed-*
    touch "$stamp"
fi

# The browser tests (tests/e2e/test_web_browser.py) drive the system Chromium through
# Playwright (never `playwright install`: no browser downloads). Install Debian's chromium when
# it is missing; when that cannot be done, say why and go on: those tests then skip.
install_chromium() {
    if [ -n "${CBDC_CHROMIUM:-}" ] || command -v chromium >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup: chromium not installed and no apt-get here: the browser tests will skip" >&2
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: chromium not installed (run as root or: sudo apt-get install chromium):" \
            "the browser tests will skip" >&2
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
        || { apt-get update -qq >/dev/null 2>&1 \
            && apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; }; then
        return 0
    fi
    echo "setup: apt-get install chromium failed: the browser tests will skip" >&2
}
install_chromium || true
