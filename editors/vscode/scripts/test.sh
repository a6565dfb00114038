#!/usr/bin/env bash
# The VS Code extension's tests, as CI runs them (tests/editors/test_vscode.py calls this):
#   npm ci → type-check → bundle → unit tests (fake vscode) → protocol test (real pingti-ls)
#   → package the .vsix.
# The protocol test needs the repository's .venv (bash scripts/test.sh or scripts/run.sh at the
# repository root creates it), or PINGTI_LS pointing at a pingti-ls.
# The real-editor test (code-server + chromium) is scripts/test-real.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "npm ci"
npm ci --no-audit --no-fund --loglevel=error
step "type-check (tsc --noEmit)"
npx tsc --noEmit -p .
step "bundle (esbuild)"
node scripts/build.mjs
node scripts/build.mjs --tests
step "unit tests (node --test, vscode and the client faked)"
node --test out/test/unit/
step "protocol test (node --test, the real pingti-ls with the fake backend)"
node --test out/test/protocol/
step "package (.vsix)"
bash scripts/package.sh
