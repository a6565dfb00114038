"""Speculative decoding in the shared decoder (prompt lookup, or a drafter such as a draft
model): the same tokens, log-probabilities and finish as plain decoding whatever the drafts
(property test over a toy language model whose KV cache is a token list), the rejected tail
leaves the cache, cancellation within one step, a failing drafter costs only its drafts."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.backends.base import CancelToken, FinishReason, GenerationRequest
from server.backends.decoding import BatchDecoder, Drafter, SeqState, lookup_draft

VOCAB = 12
STOP = 11


def toy_logits(context: Sequence[int]) -> np.ndarray:
    """A deterministic LM without ties: the next token mostly repeats what followed the last
    token before (so drafts are often right), salted by the position."""
    rng = np.random.default_rng(hash((tuple(context[-2:]), len(context) % 5)) % 2**32)
    logits = rng.normal(size=VOCAB).astype(np.float32)
    last = context[-1]
    earlier = [context[i + 1] for i in range(len(context) - 1) if context[i] == last]
    if earlier:
        logits[earlier[-1]] += 2.5
    logits[STOP] -= 3.0
    return logits


class ToyRunner:
    """KV cache = the token list each sequence has evaluated."""

    def __init__(self, verify: bool) -> None:
        self.kv: dict[int, list[int]] = {}
        self.evaluations = 0
        if not verify:  # a runner that cannot verify several tokens (transformers)
            self.verify = None  # type: ignore[assignment]

    def prefill(self, seqs: Sequence[SeqState]) -> list[np.ndarray]:
        out = []
        for s in seqs:
            s.handle = id(s)
            self.kv[id(s)] = list(s.request.prompt_ids)
            out.append(toy_logits(self.kv[id(s)]))
        return out

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[np.ndarray]:
        self.evaluations += 1
        out = []
        for s, t in zip(seqs, tokens, strict=True):
            self.kv[s.handle].append(t)
            out.append(toy_logits(self.kv[s.handle]))
        return out

    def verify(self, seqs: Sequence[SeqState], tokens: Sequence[Sequence[int]]
               ) -> list[list[np.ndarray]]:
        self.evaluations += 1
        out = []
        for s, toks in zip(seqs, tokens, strict=True):
            row = []
            for t in toks:
                self.kv[s.handle].append(t)
                row.append(toy_logits(self.kv[s.handle]))
            out.append(row)
        return out

    def rollback(self, seq: SeqState, n: int) -> None:
        del self.kv[seq.handle][-n:]

    def release(self, seqs: Sequence[SeqState]) -> None: ...
    def forget(self, cache_key: str) -> None: ...
    def reset(self) -> None: ...


class NoRepeat:
    """A logits processor (like the syntax constraint): forbids repeating the last token
    three times, and checks what the sampler picked."""

    def __call__(self, generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        if len(generated) >= 2 and generated[-1] == generated[-2]:
            logits[generated[-1]] = -np.inf
        return logits

    def check(self, generated: Sequence[int], token: int) -> bool:
        return token != 7 or len(generated) % 3 != 0


class ToyModelDrafter:
    """A draft model over the toy LM: its greedy chain, with a wrong token now and then (a
    smaller model disagrees with the bigger one), or an exception (a broken draft model)."""

    def __init__(self, noise: float, seed: int = 0, fail: bool = False) -> None:
        self.rng = np.random.default_rng(seed)
        self.noise = noise
        self.fail = fail
        self.calls = 0
        self.resets = 0
        self.asked: list[int] = []

    def propose(self, seqs: Sequence[SeqState], limits: Sequence[int]) -> list[list[int]]:
        self.calls += 1
        if self.fail:
            raise RuntimeError("draft model broke")
        out = []
        for s, k in zip(seqs, limits, strict=True):
            assert s.request.temperature <= 0 and k > 0
            self.asked.append(k)
            ctx, draft = [*s.request.prompt_ids, *s.out], []
            for _ in range(k):
                tok = int(np.argmax(toy_logits(ctx)))
                if self.rng.random() < self.noise:
                    tok = int(self.rng.integers(VOCAB))
                draft.append(tok)
                ctx.append(tok)
            out.append(draft)
        return out

    def forget(self, cache_key: str) -> None: ...

    def reset(self) -> None:
        self.resets += 1


def run(requests: list[GenerationRequest], draft: int, verify: bool = True,
        drafter: Drafter | None = None
        ) -> tuple[list[tuple[list[int], list[float], FinishReason | None]], ToyRunner]:
    runner = ToyRunner(verify)
    dec = BatchDecoder(runner, frozenset({STOP}), lambda ids: " ".join(map(str, ids)), draft,
                       drafter)
    seqs = dec.admit([(r, CancelToken()) for r in requests])
    while dec.active:
        dec.step()
    for s in seqs:  # the cache holds exactly what was evaluated: the prompt and the output
        assert runner.kv[s.handle] == [*s.request.prompt_ids, *s.out][:len(runner.kv[s.handle])]
        assert len(runner.kv[s.handle]) >= len(s.request.prompt_ids) + len(s.out) - 1
    return [(s.out, [round(x, 9) for x in s.logprobs], s.finish) for s in seqs], runner


prompts = st.lists(st.integers(0, 10), min_size=2, max_size=30)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(prompts, min_size=1, max_size=3), st.integers(1, 8), st.integers(1, 40),
       st.booleans(), st.integers(0, 10))
def test_speculation_changes_nothing_but_the_number_of_evaluations(
        batch: list[list[int]], draft: int, max_new: int, constrained: bool, stop_at: int
        ) -> None:
    def stop(text: str) -> bool:
        return text.count(str(stop_at)) >= 3

    reqs = [GenerationRequest(p, max_new, stop=stop,
                              logits_processors=(NoRepeat(),) if constrained else ())
            for p in batch]
    plain, plain_runner = run(reqs, 0)
    # Processors hold no state here, so the same requests can run again.
    fast, fast_runner = run(reqs, draft)
    assert fast == plain
    assert fast_runner.evaluations <= plain_runner.evaluations


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(prompts, min_size=1, max_size=3), st.integers(1, 8), st.integers(1, 30),
       st.booleans(), st.floats(0.0, 1.0), st.integers(0, 1000))
def test_a_draft_model_changes_nothing_but_the_number_of_evaluations(
        batch: list[list[int]], draft: int, max_new: int, constrained: bool, noise: float,
        seed: int) -> None:
    reqs = [GenerationRequest(p, max_new,
                              logits_processors=(NoRepeat(),) if constrained else ())
            for p in batch]
    plain, plain_runner = run(reqs, 0)
    drafter = ToyModelDrafter(noise, seed)
    fast, fast_runner = run(reqs, draft, drafter=drafter)
    assert fast == plain
    assert fast_runner.evaluations <= plain_runner.evaluations
    # Never asked for more than the longest draft or than the request's budget leaves.
    assert all(0 < k <= min(draft, max_new - 1) for k in drafter.asked)


def test_an_exact_draft_model_needs_few_steps() -> None:
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    (plain,), r0 = run([GenerationRequest(prompt, 30)], 0)
    (fast,), r1 = run([GenerationRequest(prompt, 30)], 5, drafter=ToyModelDrafter(0.0))
    assert fast == plain
    assert r1.evaluations <= -(-r0.evaluations // 3)  # a kept draft of 5: ~6 tokens a step


def test_a_failing_draft_model_costs_only_its_drafts(caplog) -> None:  # type: ignore[no-untyped-def]
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    (plain,), r0 = run([GenerationRequest(prompt, 12)], 0)
    drafter = ToyModelDrafter(0.0, fail=True)
    (fast,), r1 = run([GenerationRequest(prompt, 12)], 4, drafter=drafter)
    assert fast == plain and r1.evaluations == r0.evaluations
    assert drafter.calls > 0 and drafter.resets == drafter.calls
    assert "draft model failed" in caplog.text


def test_drafts_are_taken_and_save_steps() -> None:
    prompt = [1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3]
    (plain,), r0 = run([GenerationRequest(prompt, 24)], 0)
    (fast,), r1 = run([GenerationRequest(prompt, 24)], 6)
    assert fast == plain and r1.evaluations < r0.evaluations


def test_sampled_sequences_and_runners_without_verify_do_not_speculate() -> None:
    prompt = [1, 2, 3, 1, 2, 3, 1, 2]
    runner = ToyRunner(verify=False)
    dec = BatchDecoder(runner, frozenset({STOP}), str, 4)
    assert dec.draft_tokens == 0
    runner = ToyRunner(verify=True)
    dec = BatchDecoder(runner, frozenset({STOP}), str, 4)
    dec.admit([(GenerationRequest(prompt, 10, temperature=0.8, seed=3), CancelToken())])
    while dec.active:
        dec.step()
    assert dec.drafted == 0


def test_a_cancelled_sequence_stops_within_the_speculative_step() -> None:
    prompt = [1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3]
    runner = ToyRunner(verify=True)
    dec = BatchDecoder(runner, frozenset({STOP}), str, 6)
    cancel = CancelToken()
    (seq,) = dec.admit([(GenerationRequest(prompt, 40), cancel)])
    dec.step()
    before = len(seq.out)
    cancel.cancel("superseded")
    dec.step()
    assert seq.finish is FinishReason.CANCELLED and len(seq.out) == before


def test_lookup_draft() -> None:
    assert lookup_draft([5, 6, 7, 8, 5, 6], 3) == [7, 8, 5]
    assert lookup_draft([5, 6, 7, 8, 9, 5, 6], 2) == [7, 8]
    assert lookup_draft([1, 2, 3], 4) == []  # no earlier occurrence
    assert lookup_draft([9, 1, 2, 7, 1, 2, 8, 1, 2], 1) == [8]  # the latest occurrence
    assert lookup_draft([1, 2, 1, 2], 0) == []
    assert lookup_draft([4, 1, 2, 3, 9, 1, 2, 3], 2, max_ngram=3) == [9, 1]
