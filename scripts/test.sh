#!/usr/bin/env bash
# Set up, then run every test tier: lint, type check, unit, property, end-to-end over LSP
# (fake backend and the real default model).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check server testgen lspbench tests benchmarks
.venv/bin/mypy
exec .venv/bin/python -m pytest -q "$@"
