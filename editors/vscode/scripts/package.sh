#!/usr/bin/env bash
# Build pingti-<version>.vsix in editors/vscode (vsce runs the production bundle first through
# the vscode:prepublish script). Prints the .vsix path last.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error
version=$(node -p 'require("./package.json").version')
out="pingti-$version.vsix"
# No repository URL or LICENSE file of its own: the extension is part of the pingti repository
# (Apache-2.0, see pyproject.toml).
npx vsce package --no-dependencies --allow-missing-repository --skip-license --out "$out" >&2
echo "$PWD/$out"
