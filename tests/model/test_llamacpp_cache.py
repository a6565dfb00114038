"""The llama.cpp backend with the real default model: KV-cache reuse while typing."""

from __future__ import annotations

import textwrap

import pytest

from server.backends.base import CancelToken
from server.config import Backend, Config, force_offline
from server.engine import CompletionEngine, load_backend

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


@pytest.fixture(scope="module")
def engine() -> CompletionEngine:
    force_offline()
    config = Config(backend=Backend.LLAMA_CPP)
    return CompletionEngine(load_backend(config), config)


def test_second_keystroke_reuses_the_kv_cache(engine: CompletionEngine) -> None:
    cursor = DOC.index("2 * math.pi * ") + len("2 * math.pi * ")
    first = engine.complete("file:///c.py", DOC, cursor, "python", CancelToken())
    assert first.prompt_tokens > 40 and first.reused_tokens == 0
    assert "radius" in first.suggestion
    # The user types a character that is not the suggestion's start: a real model call.
    typed = DOC[:cursor] + "(" + DOC[cursor:]
    second = engine.complete("file:///c.py", typed, cursor + 1, "python", CancelToken())
    evaluated = second.prompt_tokens - second.reused_tokens
    assert second.reused_tokens > 0.8 * second.prompt_tokens, second
    assert evaluated < 80, f"evaluated {evaluated} prompt tokens on a one-character edit"


def test_cancel_stops_llamacpp_generation(engine: CompletionEngine) -> None:
    token = CancelToken()
    token.cancel("test")
    from server.backends.base import CancelledError

    with pytest.raises(CancelledError):
        engine.complete("file:///d.py", "def f():\n    ", 13, "python", token)


OTHER = textwrap.dedent('''\
    def greet(name: str) -> str:
        """Say hello."""
        return "Hello, " + name


    def shout(text: str) -> str:
        return text.
    ''')


def test_switching_documents_keeps_each_documents_cache() -> None:
    # An engine of its own, without the request cache: every request here must reach the model.
    config = Config(backend=Backend.LLAMA_CPP, cache_entries=0)
    engine = CompletionEngine(load_backend(config), config)
    a_cursor = DOC.index("2 * math.pi * ") + len("2 * math.pi * ")
    engine.complete("file:///a.py", DOC, a_cursor, "python", CancelToken())
    b_cursor = OTHER.index("return text.") + len("return text.")
    other = engine.complete("file:///b.py", OTHER, b_cursor, "python", CancelToken())
    assert other.reused_tokens < 5  # a different file: nothing to reuse
    typed = DOC[:a_cursor] + "(" + DOC[a_cursor:]
    back = engine.complete("file:///a.py", typed, a_cursor + 1, "python", CancelToken())
    assert back.reused_tokens > 0.8 * back.prompt_tokens, back
