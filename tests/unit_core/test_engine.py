"""CompletionEngine end to end with the model-free FakeBackend (server/engine.py)."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from server.backends.base import CancelledError, CancelToken
from server.backends.fake import FakeBackend
from server.config import Backend, Config
from server.context import CompletionMode
from server.engine import CompletionEngine, Source

URI = "file:///t.py"
# The FakeBackend copies what followed the longest earlier match of the prompt's end.
BODY_DOC = "def f(x):\n    return x + 1\n\ndef g(x):\n    "
LINE_DOC = "x = compute_value(alpha, beta)\ny = compute_"
LONG_DOC = "x = " + "abcdefghij" * 40 + "\nx = "  # a 400-character single-line answer


def make(**overrides: object) -> tuple[CompletionEngine, FakeBackend]:
    backend = FakeBackend(token_delay=float(overrides.pop("token_delay", 0.0)))  # type: ignore[arg-type]
    config = Config(backend=Backend.FAKE, **overrides)  # type: ignore[arg-type]
    return CompletionEngine(backend, config), backend


def complete(engine: CompletionEngine, text: str, offset: int | None = None,
             cancel: CancelToken | None = None, uri: str = URI):  # type: ignore[no-untyped-def]
    return engine.complete(uri, text, len(text) if offset is None else offset, "python",
                           cancel or CancelToken())


# --- sources -------------------------------------------------------------------------------------

def test_model_then_cache_on_identical_request() -> None:
    engine, backend = make()
    text = BODY_DOC + "\n"
    first = complete(engine, text, len(BODY_DOC))
    assert first.source is Source.MODEL
    assert first.mode is CompletionMode.MULTI_LINE
    assert first.suggestion == "return x + 1"
    assert first.prompt_tokens > 0 and first.generated_tokens > 0
    steps = backend.steps_run
    second = complete(engine, text, len(BODY_DOC))
    assert second.source is Source.CACHE
    assert second.suggestion == first.suggestion
    assert backend.steps_run == steps  # no model call


def test_single_line_model_answer() -> None:
    engine, _ = make()
    out = complete(engine, LINE_DOC)
    assert out.source is Source.MODEL and out.mode is CompletionMode.SINGLE_LINE
    assert out.suggestion == "value(alpha, beta)"
    assert out.finish == "stop"


def test_typed_through_after_typing_a_prefix_of_the_suggestion() -> None:
    engine, backend = make()
    first = complete(engine, LINE_DOC)
    assert first.suggestion == "value(alpha, beta)"
    steps = backend.steps_run
    out = complete(engine, LINE_DOC + "val")
    assert out.source is Source.TYPED_THROUGH
    assert out.suggestion == "ue(alpha, beta)"
    # typing on through the remembered rest
    out2 = complete(engine, LINE_DOC + "value(al")
    assert out2.source is Source.TYPED_THROUGH
    assert out2.suggestion == "pha, beta)"
    assert backend.steps_run == steps


def test_typing_something_else_asks_the_model() -> None:
    engine, _ = make()
    complete(engine, LINE_DOC)
    out = complete(engine, LINE_DOC + "vx")
    assert out.source is Source.MODEL


def test_typed_through_only_for_the_same_document() -> None:
    engine, _ = make()
    complete(engine, LINE_DOC)
    assert complete(engine, LINE_DOC + "val", uri="file:///other.py").source is Source.MODEL


def test_fallback_answer_without_a_match() -> None:
    engine, _ = make()
    out = complete(engine, "def f():\n    ", len("def f():\n    "))
    assert out.suggestion == "pass"


# --- limits -----------------------------------------------------------------------------------

def test_max_tokens_single_line() -> None:
    engine, _ = make(max_tokens_single_line=5)
    out = complete(engine, LINE_DOC)
    assert out.generated_tokens <= 5
    assert out.suggestion == "value"
    assert out.finish == "length"


def test_max_tokens_multi_line() -> None:
    engine, _ = make(max_tokens_multi_line=7)
    out = complete(engine, BODY_DOC + "\n", len(BODY_DOC))
    assert out.mode is CompletionMode.MULTI_LINE
    assert out.generated_tokens <= 7
    # the prompt leaves out the cursor's indentation; the model's own is stripped again
    assert out.suggestion == "ret"


def test_prompt_respects_context_tokens() -> None:
    engine, _ = make(context_tokens=64)
    big = "".join(f"v{i} = {i}\n" for i in range(500)) + "x = v1"
    out = complete(engine, big + "\n" + "".join(f"w{i} = {i}\n" for i in range(500)), len(big))
    assert 0 < out.prompt_tokens <= 64


# --- cancellation -------------------------------------------------------------------------------

def test_already_cancelled_token_raises_without_decoding() -> None:
    engine, backend = make()
    token = CancelToken()
    token.cancel("superseded")
    with pytest.raises(CancelledError, match="superseded"):
        complete(engine, LINE_DOC, cancel=token)
    assert backend.steps_run == 0
    # nothing was cached or remembered for that request
    assert complete(engine, LINE_DOC).source is Source.MODEL


def test_cancel_from_another_thread_stops_within_a_step_or_two() -> None:
    engine, backend = make(token_delay=0.01, max_tokens_single_line=1024)
    token = CancelToken()
    result: dict[str, object] = {}

    def run() -> None:
        try:
            result["outcome"] = complete(engine, LONG_DOC, cancel=token)
        except CancelledError as exc:
            result["error"] = exc

    worker = threading.Thread(target=run)
    t0 = time.monotonic()
    worker.start()
    while backend.steps_run < 5 and time.monotonic() - t0 < 5:
        time.sleep(0.002)
    assert backend.steps_run >= 5, "the fake model never started decoding"
    token.cancel("newer request")
    steps_at_cancel = backend.steps_run
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert "error" in result, f"not cancelled: {result.get('outcome')}"
    assert str(result["error"]) == "newer request"
    assert backend.steps_run - steps_at_cancel <= 2
    assert backend.steps_run < 400  # far from the full 400-token answer
    # a cancelled request leaves the cache alone
    engine.backend = FakeBackend()  # fast again
    assert complete(engine, LONG_DOC).source is Source.MODEL


def test_uncancelled_long_answer_runs_to_the_line_end() -> None:
    engine, backend = make(max_tokens_single_line=1024)
    out = complete(engine, LONG_DOC)
    assert out.suggestion == "abcdefghij" * 40
    assert out.finish == "stop"


# --- configuration ------------------------------------------------------------------------------

def test_update_config_clears_cache() -> None:
    engine, _ = make()
    complete(engine, LINE_DOC)
    assert complete(engine, LINE_DOC).source is Source.CACHE
    engine.update_config(dataclasses.replace(engine.config))
    assert complete(engine, LINE_DOC).source is Source.MODEL
    # typed-through memory is cleared as well
    complete(engine, LINE_DOC)
    engine.update_config(dataclasses.replace(engine.config, temperature=0.0))
    assert complete(engine, LINE_DOC + "val").source is Source.MODEL


def test_update_config_applies_new_limits_and_cache_size() -> None:
    engine, _ = make()
    engine.update_config(dataclasses.replace(engine.config, max_tokens_single_line=3,
                                             cache_entries=0))
    out = complete(engine, LINE_DOC)
    assert out.suggestion == "val"
    assert engine.cache.max_entries == 0
    assert complete(engine, LINE_DOC).source is Source.MODEL


def test_cache_entries_zero_disables_request_cache() -> None:
    engine, backend = make(cache_entries=0)
    a = complete(engine, LINE_DOC)
    steps = backend.steps_run
    b = complete(engine, LINE_DOC)
    assert a.source is Source.MODEL and b.source is Source.MODEL
    assert b.suggestion == a.suggestion
    assert backend.steps_run > steps


def test_settings_change_is_part_of_the_cache_key() -> None:
    engine, _ = make()
    complete(engine, LINE_DOC)
    # change the config without update_config (no clear): the key must still differ
    engine.config = dataclasses.replace(engine.config, max_tokens_single_line=4)
    out = complete(engine, LINE_DOC)
    assert out.source is Source.MODEL and out.suggestion == "valu"


def test_prompt_budget_shrinks_to_the_backend_context_window() -> None:
    import dataclasses

    from server.backends.base import CancelToken
    from server.backends.fake import FakeBackend
    from server.config import Config
    from server.engine import CompletionEngine

    backend = FakeBackend()
    backend.info = dataclasses.replace(backend.info, context_window=300)
    config = Config(context_tokens=2000, max_tokens_multi_line=100, max_tokens_single_line=100)
    engine = CompletionEngine(backend, config)
    text = "".join(f"value_{i} = {i}\n" for i in range(400)) + "x = "
    out = engine.complete("file:///w.py", text, len(text), "python", CancelToken())
    assert out.prompt_tokens + 100 <= 300


# --- candidates ----------------------------------------------------------------------------------

def test_candidates_are_sampled_with_consecutive_seeds() -> None:
    engine, _ = make(candidates=3, temperature=0.7, seed=5)
    prepared = engine.prepare(URI, BODY_DOC, len(BODY_DOC), "python")
    assert not isinstance(prepared, type(None))
    requests = engine.requests(prepared)  # type: ignore[arg-type]
    assert [r.seed for r in requests] == [5, 6, 7]
    assert len({tuple(r.prompt_ids) for r in requests}) == 1  # one prompt, shared
    out = complete(engine, BODY_DOC)
    assert out.suggestion == "return x + 1" and out.alternatives == ("return x + 1",) * 2
    single = complete(make(temperature=0.7)[0], BODY_DOC)
    assert out.generated_tokens == 3 * single.generated_tokens


def test_greedy_decoding_samples_one_candidate() -> None:
    engine, backend = make(candidates=4, temperature=0.0)
    prepared = engine.prepare(URI, BODY_DOC, len(BODY_DOC), "python")
    assert len(engine.requests(prepared)) == 1  # type: ignore[arg-type]
    out = complete(engine, BODY_DOC)
    assert out.alternatives == ()


def test_several_candidates_bypass_the_one_suggestion_cache() -> None:
    engine, backend = make(candidates=2, temperature=0.5)
    complete(engine, BODY_DOC)
    steps = backend.steps_run
    again = complete(engine, BODY_DOC)
    assert again.source is Source.MODEL and len(again.alternatives) == 1
    assert backend.steps_run > steps
