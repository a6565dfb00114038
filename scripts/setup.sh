#!/usr/bin/env bash
# Create .venv (if missing) and install pingti with its pinned dependencies and test tools.
# Works offline from the package registries only; no GPU needed. Safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -c 'import sys; assert sys.version_info >= (3, 10), "pingti needs Python >= 3.10"'
  "$PY" -m venv .venv
fi
# A stamp keyed on pyproject.toml skips the (slow) resolver when nothing changed.
stamp=.venv/.pingti-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  # torch is pinned in pyproject.toml to the CPU build that pip finds locally; an open range
  # would pull a multi-GB CUDA build.
  # llama.cpp is compiled by pip. A native build (-march=native) crashes with SIGSEGV on this
  # project's machines (their CPUs report AMX/AVX-512 FP16); the portable build is what was
  # tested and measured.
  export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF}"
  .venv/bin/python -m pip install --quiet -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c 'import server, testgen, torch, transformers, pygls, tree_sitter_python, llama_cpp, coverage, landlock, pyseccomp'
  echo "$want" > "$stamp"
fi
# The sandbox for generated tests needs bubblewrap (Debian package). Installed when missing and
# we may (root with apt); otherwise `pingti-ls --check-sandbox` says what is missing and
# generated tests are refused unless the user sets sandbox to "none".
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; }) \
      || echo "setup: could not install bubblewrap; generated tests will be refused" >&2
  else
    echo "setup: bubblewrap (bwrap) not found; install it to run generated tests" >&2
  fi
fi
