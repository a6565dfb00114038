#!/usr/bin/env bash
# Set up, then run the main job: pingti-ls loads the default model and completes a sample
# Python function through the real LSP path, printing the completion and its timings.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/pingti-ls --selftest "$@"
