#!/usr/bin/env bash
# One command for a newcomer (and CI): set up, lint, and run the whole test suite against a
# PostgreSQL the tests start themselves.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports
.venv/bin/mypy
# Three workers (pytest-xdist), each with its own embedded PostgreSQL: the e2e tests wait on
# processes and back-offs much of the time, so three beat two even on two cores (5 min 56 s
# against 6 min 33 s, docs/decisions.md). CBDC_TEST_WORKERS=0 runs everything in one process.
exec .venv/bin/pytest -n "${CBDC_TEST_WORKERS:-3}" "$@"
