"""The ``llama.cpp`` backend type against llama.cpp's own ``llama-server`` (its ``/infill``
with the prefix and suffix pingti cut to the budget), on the default model.

Needs a llama-server binary (``$PINGTI_LLAMA_SERVER``, on PATH, or built by ``lsp-bench
--peer``): CI has none and skips this; the OpenAI-compatible path is tested against a real
engine in every run (test_remote_engine.py). The protocol itself is unit-tested
(tests/unit_core/test_remote.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from lspbench.engines import LlamaServerProcess
from lspbench.peer import find_llama_server
from server.config import parse_settings
from server.service import CompletionService
from server.stages import CompletionQuery, Trigger


@pytest.fixture
async def llama_server() -> AsyncIterator[str]:
    binary = find_llama_server()
    if binary is None:
        pytest.skip("no llama-server binary here (PINGTI_LLAMA_SERVER)")
    engine = LlamaServerProcess(binary, threads=2)
    async with engine:
        yield engine.url


async def test_completions_through_llama_server_infill(llama_server: str) -> None:
    parsed = parse_settings({"backends": [{"type": "llama.cpp", "url": llama_server}],
                             "candidates": 1})
    assert not parsed.errors
    events: list[dict[str, object]] = []
    service = CompletionService(parsed.config, on_backend=events.append)
    try:
        text = "def add(a, b):\n    \n\nprint(add(1, 2))\n"
        out = await asyncio.wait_for(service.complete(CompletionQuery(
            "file:///t.py", text, text.index("\n    ") + 5, "python", Trigger.INVOKED)), 60)
        assert out is not None and "a + b" in out.suggestion
        (row,) = service.status()["backends"]
        assert row["type"] == "llama.cpp" and row["answered"] == 1 and row["errors"] == {}
        assert row["ttftP50S"] is not None and events == []
    finally:
        service.close()
