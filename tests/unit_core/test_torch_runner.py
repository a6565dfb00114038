"""TorchRunner (server/backends/transformers_backend.py) with a tiny random transformers model.

The model is built locally from a config (never downloaded): it is meaningless, but its greedy
continuations are deterministic, so every batched/cached path can be compared with the plain
one-sequence-at-a-time path and with a cache-free forward pass of the whole sequence.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from server.backends.base import CancelToken, FinishReason, GenerationRequest  # noqa: E402
from server.backends.decoding import BatchDecoder, Logits, SeqState, generate_one  # noqa: E402
from server.backends.transformers_backend import TorchRunner  # noqa: E402
from server.model_assets import ModelError  # noqa: E402

STOP = 299
VOCAB = 300
BIG = 100_000  # a kvCacheTokens bound that never drops anything here


@pytest.fixture(scope="module")
def model() -> Iterator[Any]:
    cfg = transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2,
        # Wider than the default 0.02 so the top two logits of a greedy step are never within
        # float32 noise of each other (a batched step may differ from a single one by ~1e-6).
        initializer_range=0.1,
    )
    # One thread: for a model this small, OpenMP's thread hand-offs cost far more than the
    # arithmetic (a 64-wide matmul takes milliseconds instead of microseconds on a busy machine).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield transformers.Qwen2ForCausalLM(cfg).eval()
    torch.set_num_threads(threads)


def prompts(*lengths: int, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    return [[int(t) for t in rng.integers(0, STOP, n)] for n in lengths]


class Recorder:
    """A KVRunner wrapper that keeps every logits vector handed to each sequence."""

    def __init__(self, runner: TorchRunner) -> None:
        self.runner = runner
        self.logits: dict[SeqState, list[Logits]] = {}
        self.widths: list[int] = []

    @property
    def capacity(self) -> int:
        return self.runner.capacity

    def _keep(self, seqs: Sequence[SeqState], out: list[Logits]) -> list[Logits]:
        for s, lg in zip(seqs, out, strict=True):
            self.logits.setdefault(s, []).append(np.array(lg, copy=True))
        return out

    def prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        return self._keep(seqs, self.runner.prefill(seqs))

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        self.widths.append(len(seqs))
        return self._keep(seqs, self.runner.step(seqs, tokens))

    def release(self, seqs: Sequence[SeqState]) -> None:
        self.runner.release(seqs)

    def reset(self) -> None:
        self.runner.reset()


def make(model: Any, max_slots: int = 4, max_tokens: int = BIG) -> tuple[BatchDecoder, TorchRunner]:
    runner = TorchRunner(model, max_slots, max_tokens)
    return BatchDecoder(runner, frozenset({STOP}), lambda ids: ",".join(map(str, ids))), runner


def make_recorded(model: Any, max_slots: int = 4, max_tokens: int = BIG
                  ) -> tuple[BatchDecoder, TorchRunner, Recorder]:
    runner = TorchRunner(model, max_slots, max_tokens)
    rec = Recorder(runner)
    return BatchDecoder(rec, frozenset({STOP}), lambda ids: ",".join(map(str, ids))), runner, rec


def req(prompt: list[int], n: int = 8, **kw: Any) -> GenerationRequest:
    return GenerationRequest(prompt_ids=prompt, max_new_tokens=n, **kw)


def admit(decoder: BatchDecoder, *requests: GenerationRequest) -> list[SeqState]:
    return decoder.admit([(r, CancelToken()) for r in requests])


def drain(decoder: BatchDecoder) -> None:
    for _ in range(1000):
        if not decoder.active:
            return
        decoder.step()
    raise AssertionError("decoding did not finish")


def alone(model: Any, request: GenerationRequest) -> tuple[list[int], list[Logits]]:
    """The request decoded by itself on a fresh runner: its tokens and every step's logits."""
    decoder, _, rec = make_recorded(model)
    res = generate_one(decoder, request, CancelToken())
    (logits,) = rec.logits.values()
    assert res.finish in (FinishReason.LENGTH, FinishReason.EOS)
    return res.token_ids, logits


def reference_logits(model: Any, prompt: list[int], out: list[int]) -> np.ndarray:
    """Next-token logits at every generated position from one cache-free forward pass."""
    ids = torch.tensor([prompt + out[:-1]], dtype=torch.long)
    with torch.inference_mode():
        logits = model(input_ids=ids).logits[0]
    return logits[len(prompt) - 1:].float().numpy()


def assert_same_logits(got: list[Logits], want: Sequence[Logits] | np.ndarray) -> None:
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        np.testing.assert_allclose(g, w, atol=1e-4, rtol=0, err_msg=f"logits of step {i}")


def slot_state(runner: TorchRunner) -> None:
    """Every slot's cache is consistent with its tokens; nothing is left busy."""
    for slot in runner.slots:
        assert not slot.busy
        for k, v in slot.kv:
            assert k.shape[0] == v.shape[0] == 1
            assert k.shape[2] == v.shape[2] == len(slot.tokens)
        if not slot.tokens:
            assert slot.kv == []


# --- batched decoding equals one-at-a-time decoding -----------------------------------------------

LENGTHS = (3, 11, 37, 64)


def test_single_sequence_matches_a_cache_free_forward(model: Any) -> None:
    (p,) = prompts(23)
    out, logits = alone(model, req(p, 10))
    assert len(out) == 10
    assert_same_logits(logits, reference_logits(model, p, out))


def test_four_prompts_together_equal_each_alone(model: Any) -> None:
    ps = prompts(*LENGTHS)
    want = [alone(model, req(p, 10)) for p in ps]
    decoder, runner, rec = make_recorded(model)
    seqs = admit(decoder, *(req(p, 10) for p in ps))
    assert len(decoder.active) == 4
    decoder.step()
    stack = runner._stack
    assert stack is not None and stack["slots"] == [s.handle for s in seqs]
    decoder.step()
    assert runner._stack is stack  # the padded batch is kept while its sequences do not change
    drain(decoder)
    assert runner._stack is None  # split back into per-slot caches when they finished
    assert rec.widths and set(rec.widths) == {4}  # they really stepped as one batch
    assert decoder.max_width == 4
    for s, p, (out, logits) in zip(seqs, ps, want, strict=True):
        assert s.finish is FinishReason.LENGTH
        assert s.out == out
        assert_same_logits(rec.logits[s], logits)
        assert_same_logits(rec.logits[s], reference_logits(model, p, s.out))
    assert len(runner.slots) == 4
    slot_state(runner)
    # Each slot keeps its prompt and the generated tokens that were fed back (all but the last).
    for s in seqs:
        assert s.handle.tokens == list(s.request.prompt_ids) + s.out[:-1]


def test_continuous_batching_two_join_two(model: Any) -> None:
    ps = prompts(*LENGTHS, seed=2)
    want = [alone(model, req(p, 12)) for p in ps]
    decoder, runner, rec = make_recorded(model)
    first = admit(decoder, req(ps[0], 12), req(ps[3], 12))
    for _ in range(3):
        decoder.step()
    assert [len(s.out) for s in first] == [4, 4]
    late = admit(decoder, req(ps[1], 12), req(ps[2], 12))
    assert len(decoder.active) == 4
    drain(decoder)
    assert rec.widths[:3] == [2, 2, 2] and 4 in rec.widths
    for s, (out, logits) in zip([first[0], late[0], late[1], first[1]], want, strict=True):
        assert s.out == out
        assert_same_logits(rec.logits[s], logits)
    slot_state(runner)


def test_one_finishes_early_while_others_continue(model: Any) -> None:
    ps = prompts(*LENGTHS, seed=3)
    budgets = (14, 3, 9, 1)  # 1: finishes at admission; 3 and 9: leave a running batch
    want = [alone(model, req(p, n)) for p, n in zip(ps, budgets, strict=True)]
    decoder, runner, rec = make_recorded(model)
    seqs = admit(decoder, *(req(p, n) for p, n in zip(ps, budgets, strict=True)))
    assert seqs[3].done and len(decoder.active) == 3
    drain(decoder)
    # The batch shrank twice: the stacked caches were split back and re-stacked.
    assert rec.widths == [3] * 2 + [2] * 6 + [1] * 5
    for s, n, (out, logits) in zip(seqs, budgets, want, strict=True):
        assert len(s.out) == n
        assert s.out == out
        assert_same_logits(rec.logits[s], logits)
    slot_state(runner)
    for s in seqs:
        assert s.handle.tokens == list(s.request.prompt_ids) + s.out[:-1]


def test_reuse_after_batched_decoding(model: Any) -> None:
    """Caches split back from a padded batch are good prompts for the next request."""
    ps = prompts(40, 50, seed=4)
    decoder, runner, rec = make_recorded(model)
    seqs = admit(decoder, req(ps[0], 6), req(ps[1], 9))
    drain(decoder)
    extended = list(ps[1]) + seqs[1].out + [7, 8]
    want, want_logits = alone(model, req(extended, 6))
    before = runner.evaluated_tokens
    (s,) = admit(decoder, req(extended, 6))
    drain(decoder)
    assert s.reused == len(ps[1]) + len(seqs[1].out) - 1
    assert runner.evaluated_tokens - before == len(extended) - s.reused
    assert s.out == want
    assert_same_logits(rec.logits[s], want_logits)


# --- prefix reuse ---------------------------------------------------------------------------------

def test_prompt_extension_evaluates_only_new_tokens(model: Any) -> None:
    (p,) = prompts(40, seed=5)
    decoder, runner = make(model)
    generate_one(decoder, req(p, 1), CancelToken())
    assert runner.evaluated_tokens == len(p)
    longer = p + [5, 6]
    (s,) = admit(decoder, req(longer, 1))
    assert runner.evaluated_tokens == len(p) + 2
    assert s.reused == len(p)
    assert s.out == alone(model, req(longer, 1))[0]
    # The very same prompt again: one token is evaluated for its logits.
    (s,) = admit(decoder, req(longer, 1))
    assert runner.evaluated_tokens == len(p) + 3
    assert s.reused == len(longer) - 1
    assert len(runner.slots) == 1


def test_short_prompt_of_the_same_document_is_extended(model: Any) -> None:
    (p,) = prompts(9, seed=6)
    decoder, runner = make(model)
    generate_one(decoder, req(p, 1, cache_key="a"), CancelToken())
    (s,) = admit(decoder, req(p + [1, 2], 1, cache_key="a"))
    assert s.reused == len(p)
    assert runner.evaluated_tokens == len(p) + 2
    assert len(runner.slots) == 1


def test_other_document_does_not_steal_a_slot_for_one_shared_token(model: Any) -> None:
    a, b = prompts(40, 40, seed=7)
    b[0] = a[0]  # every FIM prompt starts with the same marker token
    decoder, runner = make(model, max_slots=2)
    generate_one(decoder, req(a, 1, cache_key="file:///a.py"), CancelToken())
    slot_a = runner.slots[0]
    (sb,) = admit(decoder, req(b, 1, cache_key="file:///b.py"))
    assert sb.handle is not slot_a
    assert sb.reused == 0
    assert slot_a.tokens == a and slot_a.cache_key == "file:///a.py"
    assert len(runner.slots) == 2
    # Document a comes back: its own slot, fully reused.
    before = runner.evaluated_tokens
    (sa,) = admit(decoder, req(a + [3], 1, cache_key="file:///a.py"))
    assert sa.handle is slot_a
    assert sa.reused == len(a)
    assert runner.evaluated_tokens - before == 1


def test_with_one_slot_another_document_takes_it_over(model: Any) -> None:
    a, b = prompts(20, 30, seed=8)
    decoder, runner = make(model, max_slots=1)
    generate_one(decoder, req(a, 3, cache_key="a"), CancelToken())
    res = generate_one(decoder, req(b, 3, cache_key="b"), CancelToken())
    assert res.token_ids == alone(model, req(b, 3))[0]
    assert len(runner.slots) == 1
    assert runner.slots[0].cache_key == "b"
    assert runner.slots[0].tokens[:len(b)] == b
    slot_state(runner)


# --- n candidates of one prompt -------------------------------------------------------------------

def test_candidates_of_one_prompt_share_its_evaluation(model: Any) -> None:
    (p,) = prompts(48, seed=9)
    decoder, runner = make(model)
    seqs = admit(decoder, *(req(p, 8, temperature=1.0, seed=k) for k in (1, 2, 3)))
    # The first candidate evaluates the prompt; the others only its last token.
    assert runner.evaluated_tokens == len(p) + 2
    assert [s.reused for s in seqs] == [0, len(p) - 1, len(p) - 1]
    assert len({id(s.handle) for s in seqs}) == 3
    drain(decoder)
    outs = [tuple(s.out) for s in seqs]
    assert len(set(outs)) > 1
    for s in seqs:
        assert len(s.logprobs) == len(s.out) == 8
        assert all(np.isfinite(lp) and lp <= 0 for lp in s.logprobs)
    slot_state(runner)
    # Sampling is reproducible: the same seeds decoded one at a time give the same outputs.
    again = [generate_one(make(model)[0], req(p, 8, temperature=1.0, seed=k), CancelToken())
             for k in (1, 2, 3)]
    assert [tuple(r.token_ids) for r in again] == outs


def test_candidates_greedy_are_identical_to_one_alone(model: Any) -> None:
    (p,) = prompts(33, seed=10)
    want, want_logits = alone(model, req(p, 7))
    decoder, runner, rec = make_recorded(model)
    seqs = admit(decoder, req(p, 7), req(p, 7), req(p, 7))
    drain(decoder)
    for s in seqs:
        assert s.out == want
        assert_same_logits(rec.logits[s], want_logits)


# --- memory bound ---------------------------------------------------------------------------------

def test_idle_slots_beyond_the_token_bound_are_emptied_lru_first(model: Any) -> None:
    a, b, c = prompts(30, 30, 30, seed=11)
    decoder, runner = make(model, max_slots=4, max_tokens=70)
    generate_one(decoder, req(a, 3, cache_key="a"), CancelToken())  # slot holds 30 + 2
    generate_one(decoder, req(b, 3, cache_key="b"), CancelToken())  # 64 <= 70: both kept
    slot_a, slot_b = runner.slots
    assert len(slot_a.tokens) == len(slot_b.tokens) == 32
    generate_one(decoder, req(c, 3, cache_key="c"), CancelToken())  # a, the oldest, goes
    slot_c = runner.slots[2]
    assert slot_a.tokens == [] and slot_a.kv == []
    assert len(slot_b.tokens) == 32 and len(slot_c.tokens) == 32
    slot_state(runner)
    # Touch b, then bring a back: c is now the least recently used and is emptied.
    generate_one(decoder, req(b, 1, cache_key="b"), CancelToken())
    before = runner.evaluated_tokens
    res = generate_one(decoder, req(a, 3, cache_key="a"), CancelToken())
    assert res.extra["reused_tokens"] == 0
    assert runner.evaluated_tokens - before == len(a)
    assert res.token_ids == alone(model, req(a, 3))[0]
    assert slot_c.tokens == [] and slot_b.tokens == b  # b was last a 1-token request
    assert sum(len(s.tokens) for s in runner.slots) <= 70
    slot_state(runner)


def test_busy_slots_are_never_emptied(model: Any) -> None:
    a, b = prompts(30, 30, seed=12)
    want = [alone(model, req(p, 6))[0] for p in (a, b)]
    decoder, runner = make(model, max_slots=4, max_tokens=10)
    seqs = admit(decoder, req(a, 6), req(b, 6))
    assert all(len(s.handle.tokens) == 30 for s in seqs)  # over the bound, but in use
    drain(decoder)
    assert [s.out for s in seqs] == want
    assert all(s.tokens == [] for s in runner.slots)  # idle now: over the bound, dropped
    res = generate_one(decoder, req(a, 6), CancelToken())
    assert res.token_ids == want[0]
    slot_state(runner)


def test_more_sequences_than_slots_is_a_clear_error(model: Any) -> None:
    a, b = prompts(12, 16, seed=13)
    want_a = alone(model, req(a, 5))[0]
    want_b = alone(model, req(b, 5))[0]
    decoder, runner = make(model, max_slots=1)
    with pytest.raises(ModelError, match="more concurrent sequences than KV slots"):
        admit(decoder, req(a, 5), req(b, 5))
    assert decoder.active == []
    assert all(not s.busy for s in runner.slots)
    # Usable afterwards, and the one prompt that was evaluated is still a valid cache.
    before = runner.evaluated_tokens
    res = generate_one(decoder, req(a, 5), CancelToken())
    assert res.token_ids == want_a
    assert res.extra["reused_tokens"] == len(a) - 1
    assert runner.evaluated_tokens - before == 1
    assert generate_one(decoder, req(b, 5), CancelToken()).token_ids == want_b
    slot_state(runner)


def test_a_second_sequence_while_one_is_running_fails_alone(model: Any) -> None:
    a, b = prompts(12, 16, seed=14)
    want_a = alone(model, req(a, 6))[0]
    decoder, runner = make(model, max_slots=1)
    (sa,) = admit(decoder, req(a, 6))
    decoder.step()
    with pytest.raises(ModelError, match="KV slots"):
        admit(decoder, req(b, 6))
    assert runner.slots[0].busy  # still a's
    drain(decoder)
    assert sa.out == want_a
    slot_state(runner)


def test_empty_prompt_is_an_error_and_releases_slots(model: Any) -> None:
    (a,) = prompts(10, seed=15)
    decoder, runner = make(model, max_slots=2)
    with pytest.raises(ModelError, match="empty prompt"):
        admit(decoder, req(a, 3), req([], 3))
    assert all(not s.busy for s in runner.slots)
    assert generate_one(decoder, req(a, 3), CancelToken()).token_ids == alone(model, req(a, 3))[0]


# --- reset ----------------------------------------------------------------------------------------

def test_reset_forgets_every_slot(model: Any) -> None:
    a, b = prompts(20, 25, seed=16)
    decoder, runner = make(model)
    seqs = admit(decoder, req(a, 4), req(b, 9))
    for _ in range(4):
        decoder.step()  # a finished, b still running in a stack
    assert runner.slots
    dropped = decoder.abort(RuntimeError("boom"))
    assert dropped == [seqs[1]]
    assert runner.slots == [] and runner._stack is None
    before = runner.evaluated_tokens
    res = generate_one(decoder, req(a, 4), CancelToken())
    assert res.extra["reused_tokens"] == 0
    assert runner.evaluated_tokens - before == len(a)
    assert res.token_ids == seqs[0].out
    runner.reset()
    assert runner.slots == []


def test_warm_fills_the_cache_in_chunks_and_the_request_only_decodes(model: Any) -> None:
    (p,) = prompts(50, seed=17)
    decoder, runner = make(model)
    chunks = 0
    while runner.warm(p, "doc", 16) > 0:
        chunks += 1
    assert chunks == 3 and runner.evaluated_tokens == runner.prefetched_tokens == 50
    assert runner.warm(p, "doc", 16) == 0 and runner.evaluated_tokens == 50  # nothing to do
    res = generate_one(decoder, req(p, 6, cache_key="doc"), CancelToken())
    assert res.extra["reused_tokens"] == 49 and runner.evaluated_tokens == 51
    assert res.token_ids == alone(model, req(p, 6))[0]  # chunked prefill, same answer


def test_warm_elsewhere_keeps_the_documents_slot(model: Any) -> None:
    here, there = prompts(30, 30, seed=18)
    decoder, runner = make(model)
    generate_one(decoder, req(here, 2, cache_key="doc"), CancelToken())
    while runner.warm(there, "doc", 64) > 0:
        pass
    assert len(runner.slots) == 2  # a slot of its own: the prompt being typed stays cached
    res = generate_one(decoder, req(here + [7], 2, cache_key="doc"), CancelToken())
    assert res.extra["reused_tokens"] == 30
