"""llama.cpp's CPU kernels chosen at run time, with the real default model: the probe of the
best variant passes, and a server forced onto another variant answers the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from server.backends import ggml_cpu
from server.config import force_offline
from server.model_assets import cache_root, resolve_model

pytestmark = [pytest.mark.model,
              pytest.mark.skipif(not ggml_cpu.variants(ggml_cpu.lib_dir()),
                                 reason="llama-cpp-python was built without CPU variants")]

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = """
import json, sys
from server.backends.base import CancelToken, GenerationRequest
from server.backends.loader import load_backend
from server.backends import ggml_cpu
from server.config import Backend, Config, force_offline
force_offline()
b = load_backend(Config(backend=Backend.LLAMA_CPP))
r = b.generate(GenerationRequest(b.encode("def add(a, b):\\n    return"), 6), CancelToken())
print(json.dumps({"variant": ggml_cpu._loaded, "ids": r.token_ids}))
"""


def _model() -> Path:
    force_offline()
    return resolve_model("default", cache_root()).path


def test_the_best_variant_passes_its_probe() -> None:
    best = ggml_cpu.ranked(ggml_cpu.lib_dir())[0]
    assert ggml_cpu.probe(best, _model())


def test_a_probe_of_a_broken_variant_fails_without_harm(tmp_path: Path) -> None:
    broken = tmp_path / "libggml-cpu-broken.so"
    broken.write_bytes(b"not a library")
    assert not ggml_cpu.probe(broken, _model())


def _run(env: dict[str, str]) -> dict[str, object]:
    proc = subprocess.run([sys.executable, "-c", SNIPPET], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env={**os.environ, **env}, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_forced_variant_serves_the_same_answer() -> None:
    auto = _run({})
    forced = _run({ggml_cpu.FORCE_ENV: "haswell"})
    assert forced["variant"] == "haswell" and auto["variant"] != "sapphirerapids"
    assert forced["ids"] == auto["ids"]
