#!/usr/bin/env bash
# One command for a newcomer (and CI): set up, lint, and run the whole test suite against a
# PostgreSQL the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest "$@"
