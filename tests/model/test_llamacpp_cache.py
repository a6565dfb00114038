"""The llama.cpp backend with the real default model, through the completion service: KV-cache
reuse while typing, per document, and freed when the document closes."""

from __future__ import annotations

import asyncio
import textwrap

import pytest

from server.config import Backend, Config, force_offline
from server.service import CompletionService
from server.stages import CompletionOutcome, CompletionQuery

pytestmark = pytest.mark.model

DOC = textwrap.dedent('''\
    import math


    def circle_area(radius: float) -> float:
        """Area of a circle."""
        return math.pi * radius ** 2


    def circle_circumference(radius: float) -> float:
        """Circumference of a circle."""
        return 2 * math.pi *\x20
    ''')


class Sync:
    """The service on an event loop of its own, called synchronously."""

    def __init__(self, config: Config) -> None:
        force_offline()
        self.loop = asyncio.new_event_loop()
        self.service = CompletionService(config)

    def complete(self, uri: str, text: str, offset: int) -> CompletionOutcome:
        out = self.loop.run_until_complete(
            self.service.complete(CompletionQuery(uri, text, offset, "python")))
        assert out is not None
        return out

    def close(self) -> None:
        self.service.close()
        self.loop.close()


@pytest.fixture(scope="module")
def engine():  # type: ignore[no-untyped-def]
    s = Sync(Config(backend=Backend.LLAMA_CPP))
    yield s
    s.close()


def test_second_keystroke_reuses_the_kv_cache(engine: Sync) -> None:
    cursor = DOC.index("2 * math.pi * ") + len("2 * math.pi * ")
    first = engine.complete("file:///c.py", DOC, cursor)
    assert first.prompt_tokens > 40 and first.reused_tokens == 0
    assert "radius" in first.suggestion
    # The user types a character that is not the suggestion's start: a real model call.
    typed = DOC[:cursor] + "(" + DOC[cursor:]
    second = engine.complete("file:///c.py", typed, cursor + 1)
    evaluated = second.prompt_tokens - second.reused_tokens
    assert second.reused_tokens > 0.8 * second.prompt_tokens, second
    assert evaluated < 80, f"evaluated {evaluated} prompt tokens on a one-character edit"


OTHER = textwrap.dedent('''\
    def greet(name: str) -> str:
        """Say hello."""
        return "Hello, " + name


    def shout(text: str) -> str:
        return text.
    ''')


def test_switching_documents_keeps_each_documents_cache() -> None:
    # An engine of its own, without the request cache: every request here must reach the model.
    # One candidate: with several, the reranked first may be a sampled one, whose "reused"
    # tokens are those it copied from the greedy one's fresh evaluation.
    engine = Sync(Config(backend=Backend.LLAMA_CPP, cache_entries=0, candidates=1))
    try:
        a_cursor = DOC.index("2 * math.pi * ") + len("2 * math.pi * ")
        engine.complete("file:///a.py", DOC, a_cursor)
        b_cursor = OTHER.index("return text.") + len("return text.")
        other = engine.complete("file:///b.py", OTHER, b_cursor)
        assert other.reused_tokens < 5  # a different file: nothing to reuse
        typed = DOC[:a_cursor] + "(" + DOC[a_cursor:]
        back = engine.complete("file:///a.py", typed, a_cursor + 1)
        assert back.reused_tokens > 0.8 * back.prompt_tokens, back
        # Closed and opened again: its KV cache was freed, the prompt is evaluated anew.
        engine.service.close_document("file:///a.py")
        again = engine.complete("file:///a.py", typed, a_cursor + 1)
        assert again.reused_tokens < 5, again
    finally:
        engine.close()
