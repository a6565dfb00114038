"""Prompt-lookup speculation on the real model (llama.cpp): the same greedy output as plain
decoding, except where two tokens tie to within rounding, because llama.cpp evaluates several
tokens with other kernels than one (its batched matmuls round differently); drafts are taken on
code that repeats itself, and fewer model steps are needed."""

from __future__ import annotations

import pytest

from server.backends.base import CancelToken, GenerationRequest
from server.backends.llamacpp_backend import LlamaCppBackend
from server.config import Config
from server.model_assets import cache_root, resolve_model

PROMPTS = [
    "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n\n\ndef mul(a, b):\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n"
    "    def __repr__(self):\n",
    "import os\n\n\ndef read_lines(path):\n    with open(path) as fh:\n        return fh.read()"
    ".splitlines()\n\n\ndef write_lines(path, lines):\n",
    "def fib(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
]
# Two tokens whose log-probabilities differ by less than this are a tie llama.cpp's kernels
# may break either way (measured differences: 0.01-0.02).
TIE = 0.05


@pytest.fixture(scope="module")
def runs() -> dict[int, list[tuple[list[int], list[float]]]]:
    source = resolve_model("default", cache_root())
    out: dict[int, list[tuple[list[int], list[float]]]] = {}
    for draft in (0, 4):
        backend = LlamaCppBackend.load(source, Config(draft_tokens=draft, threads=2),
                                       cache_root())
        try:
            out[draft] = []
            for text in PROMPTS:
                r = backend.generate(GenerationRequest(backend.encode(text), 64), CancelToken())
                out[draft].append((r.token_ids, r.logprobs))
            if draft:
                assert backend.decoder.drafted > 0 and backend.decoder.accepted > 0
                out[-1] = [([backend.decoder.steps], [])]
            else:
                out[-2] = [([backend.decoder.steps], [])]
        finally:
            backend.close()
    return out


def test_speculative_output_is_the_plain_output_up_to_ties(runs: dict) -> None:
    for (plain, lp_plain), (fast, lp_fast) in zip(runs[0], runs[4], strict=True):
        if plain == fast:
            continue
        k = next(i for i, (a, b) in enumerate(zip(plain, fast, strict=False)) if a != b)
        # Where they part, each run's choice was (nearly) as likely as the other's.
        assert abs(lp_plain[k] - lp_fast[k]) < TIE, (k, lp_plain[k], lp_fast[k])
    same = sum(a == b for (a, _), (b, _) in zip(runs[0], runs[4], strict=True))
    assert same >= len(PROMPTS) - 1


def test_speculation_saves_model_steps(runs: dict) -> None:
    assert runs[-1][0][0][0] < runs[-2][0][0][0]
