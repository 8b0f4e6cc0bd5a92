#!/usr/bin/env bash
# One command for a newcomer: set up, start a fresh network on an embedded PostgreSQL and run
# the narrated end-to-end demo, which ends with the cross-tier audit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/cbdc demo "$@"
