#!/usr/bin/env bash
# A/B: run one benchmark command against an older revision and the working tree, alternating,
# in one session (machines are shared and noisy: only figures measured side by side compare).
#
#   bash benchmarks/ab.sh REV ROUNDS OUTDIR -- .venv/bin/python benchmarks/keystrokes.py --repeats 1
#
# The older revision is checked out as a git worktree in $TMPDIR and run with this checkout's
# .venv (same libraries): its own `server` package is imported because the command runs from
# its folder (`python -m server` and scripts put their own folder first on sys.path).
# Each run gets `--out OUTDIR/{a,b}-N.json` appended; compare the JSON files afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$1 rounds=$2 out=$3
shift 3
[ "${1:-}" = "--" ] && shift
here=$(pwd)
tree=$(mktemp -d "${TMPDIR:-/tmp}/pingti-ab-XXXXXX")
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
git worktree add --detach -q "$tree" "$rev"
ln -s "$here/.venv" "$tree/.venv"
mkdir -p "$out"
out=$(cd "$out" && pwd)
for i in $(seq 1 "$rounds"); do
  echo "== round $i: A ($rev)" >&2
  (cd "$tree" && "$@" --out "$out/a-$i.json")
  echo "== round $i: B (working tree)" >&2
  (cd "$here" && "$@" --out "$out/b-$i.json")
done
