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
# llama.cpp is compiled by pip, with one CPU backend per instruction-set level (x64 … AVX2 …
# AVX-512 … AMX) that server/backends/ggml_cpu.py picks at run time: prefill is ~55% faster
# with the AVX-512 VNNI kernels than with a portable AVX2 build, and a build for the build
# machine's own CPU (-march=native) crashed with SIGSEGV on other machines of this project.
# The install dirs put the variant libraries next to libllama.so (the default is
# site-packages/bin). BENCHMARKS.md, "Prefill speed", has the measurements.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
LLAMA_CMAKE_ARGS+=" -DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DCMAKE_INSTALL_LIBDIR=llama_cpp/lib"
export CMAKE_ARGS="${CMAKE_ARGS:-$LLAMA_CMAKE_ARGS}"
# A stamp keyed on pyproject.toml and the build flags skips the (slow) resolver when nothing
# changed.
stamp=.venv/.pingti-installed
want=$( (cat pyproject.toml; echo "$CMAKE_ARGS") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
  # torch is pinned in pyproject.toml to the CPU build that pip finds locally; an open range
  # would pull a multi-GB CUDA build.
  .venv/bin/python -m pip install --quiet -e '.[test]' 2>&1 | grep -v "^WARNING: Location" || true
  # pip may take a llama-cpp-python wheel it built earlier with other flags (its wheel cache
  # does not know CMAKE_ARGS): if the CPU variants are not there, build it again.
  if [[ "$CMAKE_ARGS" == *GGML_CPU_ALL_VARIANTS=ON* ]] && ! .venv/bin/python -c '
import pathlib, sys, llama_cpp
sys.exit(not list((pathlib.Path(llama_cpp.__file__).parent / "lib").glob("libggml-cpu-*.so")))
' 2>/dev/null; then
    echo "setup: building llama-cpp-python with CPU variants (several minutes)" >&2
    .venv/bin/python -m pip install --quiet --no-cache-dir --force-reinstall --no-deps \
      "llama-cpp-python==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("llama-cpp-python"))')"
  fi
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
