"""The completion service end to end with the model-free FakeBackend (server/service.py).

No LSP: the service is driven the way the handlers drive it, with :class:`CompletionQuery`
values, on a real event loop and the real batching model thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import Sequence

import pytest

from grammar_constraints.factory import ConstraintFactory
from server.backends.base import (
    CancelToken,
    GenerationOutOfMemory,
    GenerationRequest,
    GenerationResult,
)
from server.backends.fake import FakeBackend
from server.config import Backend, Config, ConstraintMode, RepoContextMode
from server.context import CompletionMode
from server.generation import LocalGenerator
from server.model_assets import ModelError
from server.service import CompletionFailed, CompletionService, Loaded, ModelState
from server.stages import CompletionQuery, Source, Trigger

URI = "file:///t.py"
# The FakeBackend copies what followed the longest earlier match of the prompt's end.
BODY_DOC = "def f(x):\n    return x + 1\n\ndef g(x):\n    "
LINE_DOC = "x = compute_value(alpha, beta)\ny = compute_"
LONG_DOC = "x = " + "abcdefghij" * 40 + "\nx = "  # a 400-character single-line answer


@functools.lru_cache(maxsize=1)
def _constraints() -> ConstraintFactory:
    """One syntax-constraint factory for every test: every FakeBackend has the same vocabulary,
    and its table takes a second or two to build."""
    backend = FakeBackend()
    return ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids)


class Harness:
    def __init__(self, **overrides: object) -> None:
        self.backend = FakeBackend(token_delay=float(overrides.pop("token_delay", 0.0)))  # type: ignore[arg-type]
        # One candidate unless a test asks for more (reranking has its own tests).
        overrides.setdefault("candidates", 1)
        config = Config(backend=Backend.FAKE, **overrides)  # type: ignore[arg-type]
        self.service = CompletionService(config, loader=self._load)

    def _load(self, config: Config, report: object) -> Loaded:
        return Loaded(LocalGenerator(self.backend, config.max_batch_size,
                                     config.batch_timeout_ms / 1000), _constraints())

    async def complete(self, text: str, offset: int | None = None, uri: str = URI,
                       trigger: Trigger = Trigger.INVOKED):  # type: ignore[no-untyped-def]
        return await self.service.complete(CompletionQuery(
            uri, text, len(text) if offset is None else offset, "python", trigger))

    def close(self) -> None:
        self.service.close()


@pytest.fixture
def make():  # type: ignore[no-untyped-def]
    made: list[Harness] = []

    def factory(**overrides: object) -> Harness:
        h = Harness(**overrides)
        made.append(h)
        return h

    yield factory
    for h in made:
        h.close()


# --- sources -------------------------------------------------------------------------------------

async def test_model_then_cache_on_identical_request(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    text = BODY_DOC + "\n"
    first = await h.complete(text, len(BODY_DOC))
    assert first.source is Source.MODEL
    assert first.mode is CompletionMode.MULTI_LINE
    assert first.suggestion == "return x + 1"
    assert first.prompt_tokens > 0 and first.generated_tokens > 0
    steps = h.backend.steps_run
    second = await h.complete(text, len(BODY_DOC))
    assert second.source is Source.CACHE
    assert second.suggestion == first.suggestion
    assert h.backend.steps_run == steps  # no model call


async def test_an_edit_in_another_file_is_not_answered_from_the_cache(make) -> None:  # type: ignore[no-untyped-def]
    """With repository context the answer may have used another document's text: once that
    document changes, the same request is asked again; typing in the cursor's own document
    (its text is in the key) and the context off keep the cached answer."""
    for mode in (RepoContextMode.OPEN, RepoContextMode.OFF):
        h = make(repo_context=mode)
        other, other_text = "file:///other.py", {"text": "def helper(x):\n    return x\n"}
        h.service.repo.opened(other, lambda t=other_text: t["text"], "python")
        h.service.repo.opened(URI, lambda: BODY_DOC, "python")
        text = BODY_DOC + "\n"
        assert (await h.complete(text, len(BODY_DOC))).source is Source.MODEL
        h.service.repo.changed(URI, [1])  # the user typed in the cursor's document
        assert (await h.complete(text, len(BODY_DOC))).source is Source.CACHE
        other_text["text"] = "def helper(x, y):\n    return x + y\n"
        h.service.repo.changed(other, [0])
        again = await h.complete(text, len(BODY_DOC))
        assert again.source is (Source.MODEL if mode is RepoContextMode.OPEN else Source.CACHE)
        assert (await h.complete(text, len(BODY_DOC))).source is Source.CACHE
        h.service.repo.closed(other)
        gone = await h.complete(text, len(BODY_DOC))
        assert gone.source is (Source.MODEL if mode is RepoContextMode.OPEN else Source.CACHE)


async def test_single_line_model_answer(make) -> None:  # type: ignore[no-untyped-def]
    out = await make().complete(LINE_DOC)
    assert out.source is Source.MODEL and out.mode is CompletionMode.SINGLE_LINE
    assert out.suggestion == "value(alpha, beta)"
    assert out.finish == "stop"


async def test_typed_through_after_typing_a_prefix_of_the_suggestion(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    first = await h.complete(LINE_DOC)
    assert first.suggestion == "value(alpha, beta)"
    steps = h.backend.steps_run
    out = await h.complete(LINE_DOC + "val")
    assert out.source is Source.TYPED_THROUGH
    assert out.suggestion == "ue(alpha, beta)"
    out2 = await h.complete(LINE_DOC + "value(al")  # typing on through the remembered rest
    assert out2.source is Source.TYPED_THROUGH
    assert out2.suggestion == "pha, beta)"
    assert h.backend.steps_run == steps


async def test_typing_something_else_asks_the_model(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    assert (await h.complete(LINE_DOC + "vx")).source is Source.MODEL


async def test_typed_through_only_for_the_same_document(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    assert (await h.complete(LINE_DOC + "val", uri="file:///other.py")).source is Source.MODEL


async def test_fallback_answer_without_a_match(make) -> None:  # type: ignore[no-untyped-def]
    out = await make().complete("def f():\n    ")
    assert out.suggestion == "pass"


# --- limits -----------------------------------------------------------------------------------

async def test_max_tokens_single_line(make) -> None:  # type: ignore[no-untyped-def]
    out = await make(max_tokens_single_line=5).complete(LINE_DOC)
    assert out.generated_tokens <= 5
    assert out.suggestion == "value"
    assert out.finish == "length"


async def test_max_tokens_multi_line(make) -> None:  # type: ignore[no-untyped-def]
    out = await make(max_tokens_multi_line=7).complete(BODY_DOC + "\n", len(BODY_DOC))
    assert out.mode is CompletionMode.MULTI_LINE
    assert out.generated_tokens <= 7
    # the prompt leaves out the cursor's indentation; the model's own is stripped again
    assert out.suggestion == "ret"


async def test_prompt_respects_context_tokens(make) -> None:  # type: ignore[no-untyped-def]
    big = "".join(f"v{i} = {i}\n" for i in range(500)) + "x = v1"
    # (Repository context comes on top of contextTokens: here it would add v1's definition.)
    out = await make(context_tokens=64, repo_context=RepoContextMode.OFF).complete(
        big + "\n" + "".join(f"w{i} = {i}\n" for i in range(500)), len(big))
    assert 0 < out.prompt_tokens <= 64


async def test_prompt_budget_shrinks_to_the_generators_context_window(make) -> None:  # type: ignore[no-untyped-def]
    h = make(context_tokens=2000, max_tokens_multi_line=100, max_tokens_single_line=100)
    h.backend.info = dataclasses.replace(h.backend.info, context_window=300)
    text = "".join(f"value_{i} = {i}\n" for i in range(400)) + "x = "
    out = await h.complete(text)
    assert out.prompt_tokens + 100 <= 300


# --- cancellation -------------------------------------------------------------------------------

async def test_a_newer_request_supersedes_the_older_within_a_step_or_two(make) -> None:  # type: ignore[no-untyped-def]
    h = make(token_delay=0.01, max_tokens_single_line=1024)
    older = asyncio.ensure_future(h.complete(LONG_DOC))
    for _ in range(500):
        if h.backend.steps_run >= 5:
            break
        await asyncio.sleep(0.005)
    assert h.backend.steps_run >= 5, "the fake model never started decoding"
    newer = asyncio.ensure_future(h.complete(LINE_DOC))
    assert await older is None  # superseded: the newer request answers
    assert h.backend.steps_run < 300  # far from the full 400-token answer
    assert (await newer).suggestion == "value(alpha, beta)"
    # a superseded request left the cache alone
    h.backend.token_delay = 0.0
    assert (await h.complete(LONG_DOC)).source is Source.MODEL


async def test_cancelling_the_task_stops_decoding(make) -> None:  # type: ignore[no-untyped-def]
    h = make(token_delay=0.01, max_tokens_single_line=1024)
    task = asyncio.ensure_future(h.complete(LONG_DOC))
    for _ in range(500):
        if h.backend.steps_run >= 3:
            break
        await asyncio.sleep(0.005)
    task.cancel()  # what pygls does on $/cancelRequest
    with pytest.raises(asyncio.CancelledError):
        await task
    steps = h.backend.steps_run
    await asyncio.sleep(0.1)
    assert h.backend.steps_run - steps <= 2
    assert not h.service.inflight


async def test_uncancelled_long_answer_runs_to_the_line_end(make) -> None:  # type: ignore[no-untyped-def]
    out = await make(max_tokens_single_line=1024).complete(LONG_DOC)
    assert out.suggestion == "abcdefghij" * 40
    assert out.finish == "stop"


# --- configuration ------------------------------------------------------------------------------

async def test_new_settings_clear_the_cache(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    assert (await h.complete(LINE_DOC)).source is Source.CACHE
    assert h.service.apply_config(dataclasses.replace(h.service.config)) is False
    assert (await h.complete(LINE_DOC)).source is Source.MODEL
    await h.complete(LINE_DOC)  # typed-through memory is cleared as well
    h.service.apply_config(dataclasses.replace(h.service.config, temperature=0.0))
    assert (await h.complete(LINE_DOC + "val")).source is Source.MODEL


async def test_new_limits_and_cache_size_apply_without_a_reload(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    reload = h.service.apply_config(dataclasses.replace(
        h.service.config, max_tokens_single_line=3, cache_entries=0))
    assert reload is False
    out = await h.complete(LINE_DOC)
    assert out.suggestion == "val"
    assert h.service.cache.max_entries == 0
    assert (await h.complete(LINE_DOC)).source is Source.MODEL


async def test_model_settings_ask_for_a_reload(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    assert h.service.apply_config(dataclasses.replace(h.service.config, threads=1)) is True


async def test_settings_are_part_of_the_cache_key(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    # a config change that skipped apply_config (no clear): the key must still differ
    h.service.config = dataclasses.replace(h.service.config, max_tokens_single_line=4)
    out = await h.complete(LINE_DOC)
    assert out.source is Source.MODEL and out.suggestion == "valu"


# --- candidates ----------------------------------------------------------------------------------

async def test_candidates_share_the_prompt_and_take_consecutive_seeds(make) -> None:  # type: ignore[no-untyped-def]
    h = make(candidates=3, temperature=0.0, sample_temperature=0.7, seed=5)
    seen: list[GenerationRequest] = []
    await h.complete(BODY_DOC)  # loads the model
    gen = h.service.generator
    original = gen.generate

    async def spy(requests: Sequence[GenerationRequest], cancel: CancelToken
                  ) -> list[GenerationResult]:
        seen.extend(requests)
        return await original(requests, cancel)

    gen.generate = spy  # type: ignore[method-assign]
    out = await h.complete(BODY_DOC + "\n", len(BODY_DOC))
    assert [r.seed for r in seen] == [5, 6, 7]
    # The first is greedy, the others sampled at sampleTemperature.
    assert [r.temperature for r in seen] == [0.0, 0.7, 0.7]
    assert len({tuple(r.prompt_ids) for r in seen}) == 1  # one prompt, shared
    # The fake model is sure of its answer: three equal candidates are one suggestion, and the
    # ranking says which candidates produced it.
    assert out.suggestion == "return x + 1" and out.alternatives == ()
    assert [row["origins"] for row in out.ranking] == [[0, 1, 2]]
    single = await make(temperature=0.0).complete(BODY_DOC)
    assert out.generated_tokens == 3 * single.generated_tokens


async def test_only_explicit_requests_get_several_candidates_on_a_cpu(make) -> None:  # type: ignore[no-untyped-def]
    from server.config import CandidatesWhen

    h = make(candidates=4)
    typed = await h.complete(BODY_DOC, trigger=Trigger.AUTOMATIC)
    assert sum(len(r["origins"]) for r in typed.ranking) == 1
    asked = await h.complete(BODY_DOC + " ", trigger=Trigger.INVOKED)
    assert sum(len(r["origins"]) for r in asked.ranking) == 4
    always = make(candidates=3, candidates_when=CandidatesWhen.ALWAYS)
    typed = await always.complete(BODY_DOC, trigger=Trigger.AUTOMATIC)
    assert sum(len(r["origins"]) for r in typed.ranking) == 3


async def test_a_ranked_list_is_cached_for_the_same_request(make) -> None:  # type: ignore[no-untyped-def]
    h = make(candidates=2, sample_temperature=0.5)
    first = await h.complete(BODY_DOC)
    steps = h.backend.steps_run
    again = await h.complete(BODY_DOC)
    assert again.source is Source.CACHE and h.backend.steps_run == steps
    assert (again.suggestion, again.alternatives) == (first.suggestion, first.alternatives)
    # A request for one candidate is another request.
    one = await h.complete(BODY_DOC, trigger=Trigger.AUTOMATIC)
    assert one.source is Source.MODEL


async def test_the_first_suggestion_is_the_reranked_best(make) -> None:  # type: ignore[no-untyped-def]
    """Scripted candidates: the greedy one is unlikely, a sampled one is what the model
    believed most; with reranking the believed one comes first, without it the greedy one."""
    from server.backends.base import FinishReason
    from server.config import RerankMode

    texts = ["return x - 1", "return x + 1", "", "return  x + 1", "return x * 2"]
    lps = [[-2.0] * 4, [-0.1] * 4, [-0.01], [-0.2] * 4, [-1.0] * 4]

    def scripted(h: Harness) -> None:
        async def fake(requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
            return [GenerationResult([1] * len(lp), t, FinishReason.STOP, len(r.prompt_ids),
                                     0.0, 0.0, lp)
                    for r, t, lp in zip(requests, texts, lps, strict=True)]
        h.service.generator.generate = fake  # type: ignore[method-assign, union-attr]

    for mode, expected in ((RerankMode.LOGPROB, "return x + 1"),
                           (RerankMode.OFF, "return x - 1")):
        h = make(candidates=5, rerank=mode, constraints=ConstraintMode.OFF)
        await h.complete(LINE_DOC)  # loads the model
        scripted(h)
        out = await h.complete(BODY_DOC)
        assert out.suggestion == expected
        # Empty and whitespace-duplicate candidates are dropped; nothing else is.
        assert sorted([out.suggestion, *out.alternatives]) == \
            ["return x * 2", "return x + 1", "return x - 1"]


# --- failures ------------------------------------------------------------------------------------

async def test_out_of_memory_is_a_clear_message_and_the_service_serves_on(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)
    gen = h.service.generator
    original = gen.generate
    calls = 0

    async def oom(requests: Sequence[GenerationRequest], cancel: CancelToken
                  ) -> list[GenerationResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise GenerationOutOfMemory("the KV cache is full")
        return await original(requests, cancel)

    gen.generate = oom  # type: ignore[method-assign]
    with pytest.raises(CompletionFailed, match="out of memory while generating"):
        await h.complete(BODY_DOC)
    assert (await h.complete(BODY_DOC)).suggestion  # the next one is served


async def test_an_error_message_that_says_out_of_memory_is_not_an_oom(make) -> None:  # type: ignore[no-untyped-def]
    h = make()
    await h.complete(LINE_DOC)

    async def broken(requests: Sequence[GenerationRequest], cancel: CancelToken
                     ) -> list[GenerationResult]:
        raise RuntimeError("model said: out of memory (just text)")

    h.service.generator.generate = broken  # type: ignore[method-assign]
    with pytest.raises(CompletionFailed) as err:
        await h.complete(BODY_DOC)
    assert "generation failed" in str(err.value)


async def test_a_model_that_fails_to_load_is_a_message(make) -> None:  # type: ignore[no-untyped-def]
    messages: list[tuple[str, bool]] = []

    def fail(config: Config, report: object) -> Loaded:
        raise ModelError("no such model file: /nope.gguf")

    service = CompletionService(Config(backend=Backend.FAKE),
                                lambda m, e: messages.append((m, e)), loader=fail)
    with pytest.raises(CompletionFailed, match="no such model file"):
        await service.complete(CompletionQuery(URI, LINE_DOC, len(LINE_DOC), "python"))
    assert service.state is ModelState.FAILED
    assert messages and messages[0][1] is True


# --- documents -----------------------------------------------------------------------------------

async def test_close_document_frees_everything_kept_for_it(make) -> None:  # type: ignore[no-untyped-def]
    h = make(debounce_ms=100)
    other = LINE_DOC.replace("x", "z")
    for uri, text in ((URI, LINE_DOC), ("file:///keep.py", other)):
        await h.service.complete(CompletionQuery(uri, text, len(text), "python",
                                                 Trigger.AUTOMATIC))
    svc = h.service
    assert URI in svc.last_outcomes and len(svc.cache) == 2
    svc.close_document(URI)
    assert len(svc.cache) == 1
    assert URI not in svc.last_outcomes and "file:///keep.py" in svc.last_outcomes
    assert URI not in svc.debouncer._last and URI not in svc.cache._shown
    await asyncio.sleep(0.05)  # the KV cache is freed on the model thread
    assert URI in h.backend.decoder.runner.forgotten  # type: ignore[attr-defined]
    # an answer for the other document still comes from the cache
    out = await svc.complete(CompletionQuery("file:///keep.py", other, len(other), "python"))
    assert out is not None and out.source is not Source.MODEL


async def test_opening_and_closing_many_documents_keeps_state_flat(make) -> None:  # type: ignore[no-untyped-def]
    h = make(constraints=ConstraintMode.OFF)
    svc = h.service
    for i in range(100):
        uri = f"file:///doc{i}.py"
        text = f"value_{i} = compute({i})\nother_{i} = comp"
        await svc.complete(CompletionQuery(uri, text, len(text), "python", Trigger.AUTOMATIC))
        svc.close_document(uri)
    assert not svc.last_outcomes and not svc.inflight and len(svc.cache) == 0
    assert not svc.cache._shown and not svc.cache._keys_of and not svc.debouncer._last


async def test_the_syntax_constraint_is_warmed_at_load_not_by_a_request() -> None:
    backend = FakeBackend()
    fresh = ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids)
    for mode, warmed in ((ConstraintMode.SYNTAX, True), (ConstraintMode.OFF, False)):
        factory = ConstraintFactory(backend.decode, backend.vocab_size,
                                    backend.decoder.stop_ids) if not warmed else fresh
        service = CompletionService(
            Config(backend=Backend.FAKE, candidates=1, constraints=mode),
            loader=lambda config, report, f=factory: Loaded(  # type: ignore[misc]
                LocalGenerator(backend, 1, 0.0), f))
        try:
            await service.ready()
            # The warm-up runs on the jobs thread: wait for it by queueing behind it.
            await asyncio.get_running_loop().run_in_executor(service.jobs, lambda: None)
            built = factory._table is not None
            assert built is warmed
            if warmed:
                assert all(m is not None for m in factory.table._modes)
        finally:
            service.close()
