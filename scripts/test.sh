#!/usr/bin/env bash
# Installs what the tests need, then runs lint and the whole test suite (unit, wire, ui, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
