"""The completion stages alone (server/stages.py): no service, no threads, no model run."""

from __future__ import annotations

import dataclasses
import functools

from grammar_constraints.factory import ConstraintFactory
from server.backends.base import FinishReason, GenerationResult
from server.backends.fake import FakeBackend
from server.config import Config, ConstraintMode, RerankMode
from server.generation import GeneratorCapabilities, LocalGenerator
from server.rerank import Reranker
from server.stages import (
    Candidate,
    CompletionQuery,
    Source,
    constrained,
    context_stage,
    outcome_of,
    postprocess_stage,
    prompt_stage,
    rank_stage,
)

DOC = "def f(x):\n    return x + 1\n\ndef g(x):\n    "
URI = "file:///s.py"


@functools.lru_cache(maxsize=1)
def _tools() -> tuple[FakeBackend, GeneratorCapabilities, ConstraintFactory]:
    backend = FakeBackend()
    gen = LocalGenerator(backend)
    caps = gen.capabilities
    gen.scheduler.close()
    return backend, caps, ConstraintFactory(backend.decode, backend.vocab_size,
                                            backend.decoder.stop_ids)


def _plan(config: Config, caps: GeneratorCapabilities | None = None, language: str = "python",
          n: int = 1):  # type: ignore[no-untyped-def]
    backend, own_caps, factory = _tools()
    ctx = context_stage(CompletionQuery(URI, DOC, len(DOC), language))
    return prompt_stage(ctx, URI, config, caps or own_caps, backend, factory, n)


def _result(text: str, n_tokens: int = 3) -> GenerationResult:
    return GenerationResult(list(range(n_tokens)), text, FinishReason.STOP, 10, 0.1, 0.2,
                            [-0.1] * n_tokens)


def test_capabilities_are_declared_by_the_generator() -> None:
    _, caps, _ = _tools()
    assert caps.logits_processors and caps.logprobs
    assert caps.fim is not None and caps.fim_ids is not None and len(set(caps.fim_ids)) == 3
    assert 0 in caps.stop_ids


def test_candidates_get_consecutive_seeds_one_prompt_and_their_own_constraint() -> None:
    plan = _plan(Config(candidates=3, sample_temperature=0.7, seed=2**31 - 2), n=3)
    assert [r.seed for r in plan.requests] == [2**31 - 2, 2**31 - 1, 0]
    assert [r.temperature for r in plan.requests] == [0.0, 0.7, 0.7]
    assert len({tuple(r.prompt_ids) for r in plan.requests}) == 1
    processors = [r.logits_processors for r in plan.requests]
    assert all(len(p) == 1 for p in processors)
    assert len({id(p[0]) for p in processors}) == 3  # a constraint follows its own sequence
    assert plan.constraints is not None and len(plan.constraints.made) == 3


def test_candidates_by_trigger_and_device() -> None:
    from server.config import CandidatesWhen
    from server.stages import Trigger, candidates_of

    _, caps, _ = _tools()
    gpu = dataclasses.replace(caps, accelerated=True)
    c = Config(candidates=4)
    assert candidates_of(c, Trigger.INVOKED, caps) == 4
    assert candidates_of(c, Trigger.AUTOMATIC, caps) == 1  # typing stays single on a CPU
    assert candidates_of(c, Trigger.AUTOMATIC, gpu) == 4
    inv = Config(candidates=4, candidates_when=CandidatesWhen.INVOKED)
    assert candidates_of(inv, Trigger.AUTOMATIC, gpu) == 1
    always = Config(candidates=4, candidates_when=CandidatesWhen.ALWAYS)
    assert candidates_of(always, Trigger.AUTOMATIC, caps) == 4
    assert candidates_of(Config(candidates=1), Trigger.INVOKED, gpu) == 1


def test_without_logits_processors_only_the_final_check_applies_and_off_is_off() -> None:
    _, caps, _ = _tools()
    text_only = dataclasses.replace(caps, logits_processors=False)  # e.g. an HTTP engine
    plan = _plan(Config(), text_only, n=2)
    # No token masks to run, but the finished text is still checked and cut (finish.fit).
    assert plan.constraints is not None
    assert all(r.logits_processors == () for r in plan.requests)
    assert all(r.logprobs for r in plan.requests)  # several candidates: ranking reads them
    assert not _plan(Config(), text_only).requests[0].logprobs  # one: nobody does
    assert _plan(Config(), caps).requests[0].logits_processors != ()
    assert not constrained(Config(constraints=ConstraintMode.OFF), "python")
    assert not constrained(Config(constraint_languages=("go",)), "python")
    assert constrained(Config(), "typescriptreact")
    assert not constrained(Config(), "markdown")


def test_prompt_without_fim_markers_is_the_prefix_alone() -> None:
    _, caps, _ = _tools()
    plan = _plan(Config(), dataclasses.replace(caps, fim=None, fim_ids=None))
    assert set(plan.requests[0].prompt_ids).isdisjoint(caps.fim_ids or ())


def test_postprocess_stage_cuts_to_the_block_and_rank_keeps_every_candidate() -> None:
    plan = _plan(Config(constraints=ConstraintMode.OFF), n=3)
    raw = ["return x * 2\n\ndef h():\n    pass", "", "return x - 1"]
    cands = [postprocess_stage(_result(t), plan, ["<|endoftext|>"], i)
             for i, t in enumerate(raw)]
    assert [c.greedy for c in cands] == [True, False, False]
    assert [c.text for c in cands] == ["return x * 2", "", "return x - 1"]
    off = Reranker(RerankMode.OFF)
    ranked, ranking = rank_stage(cands, plan.ctx, off)
    assert ranked == [cands[0], cands[2]]  # the empty one is dropped, the rest kept in order
    out = outcome_of(plan, cands, ranked, ranking, 0.5)
    assert out.source is Source.MODEL and out.suggestion == "return x * 2"
    assert out.alternatives == ("return x - 1",)
    assert out.generated_tokens == 9 and out.total_s == 0.5


def test_rank_stage_returns_a_new_list() -> None:
    cands = [Candidate("a", _result("a"), 0), Candidate("b", _result("b"), 1)]
    ranked, _ = rank_stage(cands, _plan(Config()).ctx, Reranker(RerankMode.OFF))
    ranked.reverse()
    assert [c.text for c in cands] == ["a", "b"]


def test_rank_stage_puts_candidates_that_parse_with_the_suffix_first() -> None:
    """With the syntax constraint on, a candidate with which the code around the cursor cannot
    parse (the suffix's next line is indented deeper than it) goes behind one that can, in the
    reranker's order otherwise; without it, the reranker's order stands."""
    doc = "def f(xs):\n    out = []\n    "
    suffix = "\n        out.append(x)\n    return out\n"
    ctx = context_stage(CompletionQuery(URI, doc + suffix, len(doc), "python"))
    cands = [Candidate("return out", _result("a"), 0, True),
             Candidate("y = 1", _result("b"), 1),
             Candidate("for x in xs:", _result("c"), 2),
             Candidate("while xs:", _result("d"), 3)]
    off = Reranker(RerankMode.OFF)
    ranked, ranking = rank_stage(cands, ctx, off, syntax_first=True)
    assert [c.text for c in ranked] == ["for x in xs:", "while xs:", "return out", "y = 1"]
    assert [r.origins[0] for r in ranking.ranked] == [2, 3, 0, 1]  # the rows follow
    plain, _ = rank_stage(cands, ctx, off)
    assert [c.text for c in plain] == ["return out", "y = 1", "for x in xs:", "while xs:"]


def test_fits_reads_the_statements_around_the_cursor() -> None:
    from grammar_constraints.finish import fits

    prefix = "import os\n\n\ndef f(xs):\n    out = []\n    "
    suffix = "\n        out.append(x)\n    return out\n\n\ndef g(:\n    pass\n"
    assert fits(prefix, "for x in xs:", suffix, "python") is True  # g's error is elsewhere
    assert fits(prefix, "x = 1", suffix, "python") is False
    assert fits("function f() {\n  ", "if (x) {", "\n    g();\n  }\n}\n", "javascript") is True
    assert fits("x = ", "1", "\n", "markdown") is None
