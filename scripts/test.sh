#!/usr/bin/env bash
# Installs what the tests need, then runs lint, the layer contracts, the type check and the whole test suite
# (unit, wire, ui, e2e).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/lint-imports        # the layers of pyproject.toml's [tool.importlinter]
.venv/bin/pyright             # types, basic mode ([tool.pyright])
.venv/bin/python -m pytest -q "$@"
