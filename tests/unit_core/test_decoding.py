"""The shared batch decoder: sampling, log-probabilities, slot ranking and BatchDecoder
(server/backends/decoding.py), with a small hand-written KV runner and with the FakeBackend."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.backends.base import CancelToken, FinishReason, GenerationRequest
from server.backends.decoding import (
    NUCLEUS_SPAN,
    REUSE_MIN_TOKENS,
    BatchDecoder,
    SeqState,
    common_prefix,
    generate_one,
    logprob,
    nucleus,
    sample,
    slot_rank,
)
from server.backends.fake import FakeBackend

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite_logits = st.lists(st.floats(-20.0, 20.0, allow_nan=False, allow_subnormal=False, width=32),
                         min_size=1, max_size=40).map(lambda xs: np.asarray(xs, dtype=np.float32))


def naive_log_softmax(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    return x - np.log(np.sum(np.exp(x)))


# --- sample() ------------------------------------------------------------------------------------

@FAST
@given(finite_logits)
def test_greedy_is_argmax(logits: np.ndarray) -> None:
    assert sample(logits, 0.0, 1.0, None) == int(np.argmax(logits))
    assert sample(logits, 0.0, 0.5, np.random.default_rng(1)) == int(np.argmax(logits))


@FAST
@given(finite_logits, st.floats(0.1, 3.0))
def test_positive_temperature_without_rng_is_greedy(logits: np.ndarray, temperature: float) -> None:
    assert sample(logits, temperature, 1.0, None) == int(np.argmax(logits))
    assert sample(logits, temperature, 0.9, None) == int(np.argmax(logits))


@pytest.mark.parametrize("top_p", [1.0, 0.9, 0.5])
def test_same_seed_same_tokens(top_p: float) -> None:
    logits = np.random.default_rng(0).normal(size=50).astype(np.float32)

    def run(seed: int) -> list[int]:
        rng = np.random.default_rng(seed)
        return [sample(logits, 1.0, top_p, rng) for _ in range(40)]

    assert run(7) == run(7)
    assert run(7) != run(8)  # 40 draws from a spread-out distribution: not all equal by chance
    assert len(set(run(7))) > 1


@FAST
@given(finite_logits, st.integers(0, 2**32 - 1), st.floats(0.1, 2.0))
def test_tiny_top_p_is_argmax(logits: np.ndarray, seed: int, temperature: float) -> None:
    # The most probable token; tokens whose float64 probabilities are equal (e.g. logits 0 and
    # 1e-40) tie, and a tie goes to the lowest index, like np.argmax.
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    rng = np.random.default_rng(seed)
    for top_p in (0.0, 1e-9):
        assert sample(logits, temperature, top_p, rng) == int(np.argmax(p))


def test_tiny_top_p_picks_argmax_on_clear_maximum() -> None:
    logits = np.array([0.5, 3.0, 2.999, -1.0, 3.0], dtype=np.float32)
    rng = np.random.default_rng(0)
    assert {sample(logits, 1.0, 1e-6, rng) for _ in range(50)} == {1}


@FAST
@given(finite_logits, st.integers(0, 2**32 - 1), st.floats(0.05, 0.99), st.floats(0.2, 2.0))
def test_sampled_token_is_in_nucleus(logits: np.ndarray, seed: int, top_p: float,
                                     temperature: float) -> None:
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    rng = np.random.default_rng(seed)
    for _ in range(5):
        tok = sample(logits, temperature, top_p, rng)
        assert 0 <= tok < len(logits)
        # The nucleus is the smallest head of the distribution holding top_p of the mass: the
        # tokens strictly more likely than the chosen one must hold less than top_p.
        assert p[p > p[tok]].sum() < top_p + 1e-9


def reference_nucleus(logits: np.ndarray, temperature: float, top_p: float) -> list[int]:
    """The nucleus over the whole vocabulary in float64: the smallest most-likely-first head
    whose mass reaches top_p (ties in id order)."""
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(p[order])
    return order[: int(np.searchsorted(cum, top_p)) + 1].tolist()


@FAST
@given(st.integers(0, 2**32 - 1), st.floats(0.3, 1.2), st.floats(0.5, 0.99),
       st.floats(0.5, 4.0))
def test_nucleus_of_the_head_is_the_full_vocabularys(seed: int, temperature: float, top_p: float,
                                                     spread: float) -> None:
    """The sampler looks only at tokens within NUCLEUS_SPAN x temperature of the best. Its
    nucleus is the full vocabulary's, most likely first, cut at top_p of the mass it sees: a
    cut between top_p x (1 - the mass left out) and top_p of the whole distribution."""
    rng = np.random.default_rng(seed)
    logits = (rng.standard_normal(20000) * spread).astype(np.float32)
    logits[rng.integers(0, 20000, 5)] += rng.uniform(5, 15, 5).astype(np.float32)
    z = logits.astype(np.float64) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    left_out = p[logits < logits.max() - NUCLEUS_SPAN * temperature].sum()
    ids, probs = nucleus(logits, temperature, top_p)
    shortest = reference_nucleus(logits, temperature, top_p * (1 - left_out) - 1e-9)
    longest = reference_nucleus(logits, temperature, top_p + 1e-9)
    assert len(shortest) <= len(ids) <= len(longest)
    assert ids.tolist() == longest[: len(ids)]
    assert probs.sum() == pytest.approx(1.0)
    assert np.all(np.diff(probs) <= 1e-12)  # most likely first


def test_nucleus_excludes_the_tail() -> None:
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    rng = np.random.default_rng(0)
    seen = {sample(logits, 1.0, 0.7, rng) for _ in range(300)}
    assert seen == {0, 1}
    seen = {sample(logits, 1.0, 1.0, rng) for _ in range(1000)}
    assert seen == {0, 1, 2, 3}


@FAST
@given(finite_logits, st.integers(0, 2**32 - 1), st.floats(0.2, 2.0))
def test_full_vocabulary_draw_is_numpys_choice(logits: np.ndarray, seed: int,
                                               temperature: float) -> None:
    """top_p = 1 draws by inverse CDF itself (numpy's choice costs 1.3 ms over 152k tokens in
    checks and copies): the same token as ``Generator.choice(n, p=p)`` for the same seed."""
    z = np.asarray(logits, dtype=np.float32) / np.float32(temperature)
    z -= z.max()
    p = np.exp(z).astype(np.float64)
    p /= p.sum()
    ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    for _ in range(5):
        assert sample(logits, temperature, 1.0, ours) == int(theirs.choice(len(p), p=p))


def test_full_vocabulary_draw_follows_the_distribution() -> None:
    probs = np.array([0.5, 0.3, 0.15, 0.05])
    rng = np.random.default_rng(1)
    n = 8000
    counts = np.bincount([sample(np.log(probs).astype(np.float32), 1.0, 1.0, rng)
                          for _ in range(n)], minlength=4)
    sigma = np.sqrt(n * probs * (1 - probs))
    assert np.all(np.abs(counts - n * probs) < 4 * sigma), counts


def test_sampling_alternating_vocabulary_sizes_reuses_no_stale_values() -> None:
    """The work arrays are reused between calls; a call with another vocabulary size gets its
    own, and results do not depend on what ran before."""
    big = np.random.default_rng(0).standard_normal(5000).astype(np.float32)
    small = np.array([0.0, 5.0, 0.0], dtype=np.float32)
    alone = [sample(small, 0.7, 0.9, np.random.default_rng(s)) for s in range(20)]
    mixed = []
    for s in range(20):
        sample(big, 0.7, 1.0, np.random.default_rng(s))
        logprob(big, 3)
        mixed.append(sample(small, 0.7, 0.9, np.random.default_rng(s)))
    assert mixed == alone
    assert logprob(small, 1) == pytest.approx(naive_log_softmax(small)[1], abs=1e-6)


def test_sample_never_picks_a_banned_token() -> None:
    logits = np.zeros(10, dtype=np.float32)
    logits[[0, 3, 7]] = -np.inf
    rng = np.random.default_rng(3)
    for top_p in (1.0, 0.8):
        toks = {sample(logits, 1.0, top_p, rng) for _ in range(300)}
        assert toks.isdisjoint({0, 3, 7})


# --- logprob() -----------------------------------------------------------------------------------

@FAST
@given(finite_logits, st.data())
def test_logprob_matches_naive_log_softmax(logits: np.ndarray, data: st.DataObject) -> None:
    tok = data.draw(st.integers(0, len(logits) - 1))
    lp = logprob(logits, tok)
    assert lp <= 1e-6
    assert lp == pytest.approx(naive_log_softmax(logits)[tok], abs=1e-5)


def test_logprob_is_stable_for_large_logits() -> None:
    logits = np.array([1000.0, 999.0, -1000.0], dtype=np.float32)
    assert logprob(logits, 0) == pytest.approx(-np.log1p(np.exp(-1.0)), abs=1e-5)
    assert np.isfinite(logprob(logits, 2))


def test_logprob_with_minus_inf() -> None:
    all_banned = np.full(5, -np.inf, dtype=np.float32)
    assert logprob(all_banned, 2) == float("-inf")
    logits = np.array([1.0, -np.inf, 2.0], dtype=np.float32)
    assert logprob(logits, 1) == float("-inf")
    assert logprob(logits, 2) == pytest.approx(naive_log_softmax(np.array([1.0, -1e30, 2.0]))[2], abs=1e-6)


# --- common_prefix() -----------------------------------------------------------------------------

def naive_common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@st.composite
def prefixed_pairs(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    # Lengths around multiples of the 64-element chunk, and a shared head of any length.
    shared = draw(st.one_of(st.integers(0, 200), st.sampled_from([63, 64, 65, 127, 128, 129])))
    head = draw(st.lists(st.integers(0, 3), min_size=shared, max_size=shared))
    tail_a = draw(st.lists(st.integers(0, 3), max_size=70))
    tail_b = draw(st.lists(st.integers(0, 3), max_size=70))
    return head + tail_a, head + tail_b


@FAST
@given(prefixed_pairs(), st.booleans(), st.booleans())
def test_common_prefix_matches_naive(pair: tuple[list[int], list[int]], a_tuple: bool,
                                     b_tuple: bool) -> None:
    a, b = pair
    expected = naive_common_prefix(a, b)
    aa = tuple(a) if a_tuple else a
    bb = tuple(b) if b_tuple else b
    assert common_prefix(aa, bb) == expected
    assert common_prefix(bb, aa) == expected


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 128, 129, 200])
@pytest.mark.parametrize("diff_at", [None, 0, 62, 63, 64, 65])
def test_common_prefix_chunk_boundaries(n: int, diff_at: int | None) -> None:
    a = list(range(n))
    b = list(range(n))
    if diff_at is not None and diff_at < n:
        b[diff_at] = -1
        expected = diff_at
    else:
        expected = n
    assert common_prefix(a, b) == expected
    assert common_prefix(tuple(a), b) == expected
    assert common_prefix(a, b + [5, 6]) == expected
    assert common_prefix(np.array(a, dtype=np.int64), b) == expected


# --- slot_rank() ---------------------------------------------------------------------------------

MARK = 1  # the FIM marker every prompt starts with


def doc(seed: int, n: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [MARK] + [int(x) for x in rng.integers(10, 10_000, size=n - 1)]


def best(prompt: list[int], slots: list[tuple[list[int], bool, float]]) -> int:
    ranks = [slot_rank(cached, prompt, same, used) for cached, same, used in slots]
    return max(range(len(slots)), key=lambda i: ranks[i])


def test_one_shared_marker_does_not_beat_the_same_document() -> None:
    prompt = doc(1, 200)
    other = doc(2, 150)  # shares only the marker
    mine = [MARK] + [5] * 80  # the same document, edited: also only the marker in common
    assert common_prefix(other, prompt) == 1 and common_prefix(mine, prompt) == 1
    assert best(prompt, [(other, False, 0.0), (mine, True, 10.0)]) == 1
    assert best(prompt, [(mine, True, 10.0), (other, False, 0.0)]) == 0


def test_one_shared_marker_does_not_beat_an_empty_slot() -> None:
    prompt = doc(1, 200)
    other = doc(2, 150)
    assert best(prompt, [(other, False, 0.0), ([], False, 10.0)]) == 1
    assert slot_rank(other, prompt, False, 0.0)[0] == 0


def test_long_shared_prefix_wins() -> None:
    prompt = doc(1, 200)
    long_shared = prompt[:REUSE_MIN_TOKENS + 10] + [3, 3, 3]  # another document, same imports
    mine = prompt[:5] + [4] * 50
    assert best(prompt, [(mine, True, 0.0), ([], False, 0.0), (long_shared, False, 9.0)]) == 2
    assert slot_rank(long_shared, prompt, False, 9.0)[0] == REUSE_MIN_TOKENS + 10
    # The longer of two useful prefixes wins.
    longer = prompt[:REUSE_MIN_TOKENS + 50]
    assert best(prompt, [(long_shared, True, 0.0), (longer, False, 9.0)]) == 1


def test_slot_holding_a_prefix_of_the_prompt_is_worth_taking() -> None:
    prompt = doc(1, 200)
    short = prompt[:10]  # all it holds is reusable: taking it loses nothing
    assert slot_rank(short, prompt, False, 0.0)[0] == 10
    assert best(prompt, [([], False, 0.0), (short, False, 5.0)]) == 1
    assert best(prompt, [(doc(3, 100), True, 0.0), (short, False, 5.0)]) == 1


def test_short_prompt_fully_cached_is_useful() -> None:
    prompt = doc(1, 12)
    cached = prompt + [7, 7, 7]  # the whole (short) prompt is cached
    assert slot_rank(cached, prompt, False, 0.0)[0] == len(prompt)
    almost = prompt[:-1] + [99, 99]  # all but the last token
    assert slot_rank(almost, prompt, False, 0.0)[0] == len(prompt) - 1


def test_among_equals_the_least_recently_used_is_taken() -> None:
    prompt = doc(1, 200)
    a, b = doc(2, 100), doc(3, 100)
    # Both share only the marker and belong to other documents: the older one is cheapest to lose.
    assert best(prompt, [(a, False, 5.0), (b, False, 1.0)]) == 1
    assert best(prompt, [(a, False, 1.0), (b, False, 5.0)]) == 0
    assert best(prompt, [([], False, 8.0), ([], False, 2.0)]) == 1


# --- a hand-written KV runner ---------------------------------------------------------------------

V = 20
EOS = 0


def next_logits(ctx: Sequence[int]) -> np.ndarray:
    """Deterministic next-token logits that depend on the whole context."""
    h = 0
    for t in ctx:
        h = (h * 31 + int(t) + 1) % 1_000_003
    lg = np.random.default_rng(h).normal(0.0, 2.0, size=V).astype(np.float32)
    lg[EOS] = 4.0 if ctx and ctx[-1] == V - 1 else -3.0  # EOS only after token V-1
    return lg


def reference(prompt: Sequence[int], max_new: int) -> list[int]:
    ctx, out = list(prompt), []
    while len(out) < max_new:
        t = int(np.argmax(next_logits(ctx)))
        out.append(t)
        ctx.append(t)
        if t == EOS:
            break
    return out


class TableRunner:
    """Keeps each sequence's context in its handle; records every call."""

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None:
            self.capacity = capacity
        self.prefills: list[list[SeqState]] = []
        self.steps: list[int] = []
        self.released: list[SeqState] = []
        self.resets = 0

    def prefill(self, seqs: Sequence[SeqState]) -> list[np.ndarray]:
        self.prefills.append(list(seqs))
        for s in seqs:
            assert not s.done and not s.cancel.cancelled
            s.handle = list(s.request.prompt_ids)
        return [next_logits(s.handle) for s in seqs]

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[np.ndarray]:
        self.steps.append(len(seqs))
        for s, t in zip(seqs, tokens, strict=True):
            assert t == s.out[-1]
            s.handle.append(t)
        return [next_logits(s.handle) for s in seqs]

    def release(self, seqs: Sequence[SeqState]) -> None:
        for s in seqs:
            assert s.done
        self.released.extend(seqs)

    def reset(self) -> None:
        self.resets += 1


def detok(ids: Sequence[int]) -> str:
    return "".join(chr(ord("a") + i) for i in ids)


def make_decoder(capacity: int | None = None) -> tuple[BatchDecoder, TableRunner]:
    runner = TableRunner(capacity)
    return BatchDecoder(runner, frozenset({EOS}), detok), runner


def req(prompt: Sequence[int], max_new: int = 12, **kw: object) -> GenerationRequest:
    return GenerationRequest(prompt_ids=list(prompt), max_new_tokens=max_new, **kw)  # type: ignore[arg-type]


def run_all(decoder: BatchDecoder, seqs: list[SeqState], limit: int = 1000) -> None:
    for _ in range(limit):
        if all(s.done for s in seqs):
            return
        decoder.step()
    raise AssertionError("decoding did not finish")


PROMPTS = [[3, 4, 5], [7, 1], [2, 2, 2, 2, 9], [11], [6, 13, 17, 4]]


def test_runner_outputs_match_reference() -> None:
    for p in PROMPTS:
        decoder, _ = make_decoder()
        result = generate_one(decoder, req(p, 15), CancelToken())
        assert result.token_ids == reference(p, 15)
        assert result.text == detok([t for t in result.token_ids if t != EOS])
        assert result.prompt_tokens == len(p)


def test_eos_finish() -> None:
    # Find a prompt whose greedy continuation hits EOS, then check the finish reason.
    for start in range(V):
        out = reference([start], 40)
        if out[-1] == EOS:
            break
    else:
        pytest.skip("no prompt reaches EOS")  # pragma: no cover
    decoder, _ = make_decoder()
    result = generate_one(decoder, req([start], 40), CancelToken())
    assert result.finish is FinishReason.EOS
    assert result.token_ids == out
    assert EOS not in [ord(c) - ord("a") for c in result.text]


def test_eos_with_fake_backend() -> None:
    fb = FakeBackend()
    result = fb.generate(req(fb.encode("abcXYZ abc"), 50), CancelToken())
    assert result.text == "XYZ abc"
    assert result.finish is FinishReason.EOS
    assert result.token_ids[-1] == 0


def test_length_finish() -> None:
    fb = FakeBackend()
    result = fb.generate(req(fb.encode("abcXYZ abc"), 2), CancelToken())
    assert (result.text, result.finish) == ("XY", FinishReason.LENGTH)
    assert len(result.token_ids) == 2


def test_stop_finish() -> None:
    fb = FakeBackend()
    seen: list[str] = []

    def stop(text: str) -> bool:
        seen.append(text)
        return "Z" in text

    result = fb.generate(req(fb.encode("abcXYZ abc"), 50, stop=stop), CancelToken())
    assert (result.text, result.finish) == ("XYZ", FinishReason.STOP)
    assert seen == ["X", "XY", "XYZ"]


def test_one_token_answer_finishes_at_admit() -> None:
    decoder, runner = make_decoder()
    (seq,) = decoder.admit([(req([3, 4], 1), CancelToken())])
    assert seq.done and seq.finish is FinishReason.LENGTH
    assert decoder.active == [] and runner.released == [seq]
    assert decoder.step() == [] and decoder.steps == 0 and decoder.max_width == 0


def test_cancel_between_steps_stops_within_one_step() -> None:
    decoder, runner = make_decoder()
    cancel = CancelToken()
    (seq,) = decoder.admit([(req([3, 4, 5], 100), cancel)])
    decoder.step()
    decoder.step()
    assert not seq.done and len(seq.out) == 3
    cancel.cancel()
    finished = decoder.step()
    assert finished == [seq]
    assert seq.finish is FinishReason.CANCELLED
    assert len(seq.out) == 3  # nothing sampled after the cancel was seen
    assert decoder.active == [] and runner.released == [seq]
    assert decoder.result(seq).finish is FinishReason.CANCELLED


def test_cancel_from_inside_a_step() -> None:
    decoder, _ = make_decoder()
    cancel = CancelToken()

    def cancel_at_three(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        if len(generated) == 3:
            cancel.cancel()
        return logits

    (seq,) = decoder.admit([(req([3, 4, 5], 100, logits_processors=(cancel_at_three,)), cancel)])
    run_all(decoder, [seq])
    assert seq.finish is FinishReason.CANCELLED
    assert len(seq.out) == 4  # the token of the step that saw the cancel, no more
    assert seq.out == reference([3, 4, 5], 4)


def test_processor_banning_greedy_token_changes_choice() -> None:
    prompt = [3, 4, 5]
    greedy = reference(prompt, 1)[0]

    def ban_first(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        if not generated:
            logits[greedy] = -np.inf
        return logits

    decoder, _ = make_decoder()
    result = generate_one(decoder, req(prompt, 1, logits_processors=(ban_first,)), CancelToken())
    lg = next_logits(prompt)
    lg[greedy] = -np.inf
    assert result.token_ids == [int(np.argmax(lg))] and result.token_ids[0] != greedy
    assert np.isfinite(result.logprobs[0])


def test_processor_banning_on_fake_backend() -> None:
    fb = FakeBackend()
    x = fb.encode("X")[0]

    def ban_x(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        logits[x] = -np.inf
        return logits

    result = fb.generate(req(fb.encode("abcXYZ abc"), 5, logits_processors=(ban_x,)), CancelToken())
    assert x not in result.token_ids
    assert result.token_ids[0] != x


def test_processor_does_not_change_runner_logits() -> None:
    original: list[np.ndarray] = []

    class KeepingRunner(TableRunner):
        def prefill(self, seqs: Sequence[SeqState]) -> list[np.ndarray]:
            out = super().prefill(seqs)
            original.extend(x.copy() for x in out)
            self.given = out
            return out

    def scribble(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        logits[:] = 0.0
        return logits

    runner = KeepingRunner()
    decoder = BatchDecoder(runner, frozenset({EOS}), detok)
    decoder.admit([(req([3], 5, logits_processors=(scribble,)), CancelToken())])
    np.testing.assert_array_equal(runner.given[0], original[0])


def test_processors_run_in_order_with_generated_ids() -> None:
    calls: list[tuple[str, list[int]]] = []

    def make_proc(name: str):  # type: ignore[no-untyped-def]
        def proc(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
            calls.append((name, list(generated)))  # a copy: the decoder's list grows later
            assert logits.dtype == np.float32
            if name == "first":
                logits[EOS] = -np.inf  # the run never ends early
            return logits
        return proc

    prompt = [3, 4, 5]
    decoder, _ = make_decoder()
    result = generate_one(decoder, req(prompt, 6, logits_processors=(make_proc("first"),
                                                                      make_proc("second"))),
                          CancelToken())
    out = result.token_ids
    assert len(out) == 6 and EOS not in out
    expected = []
    for i in range(6):
        expected += [("first", out[:i]), ("second", out[:i])]
    assert calls == expected


def test_second_processor_sees_first_processors_output() -> None:
    seen: list[float] = []

    def first(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        logits[5] = 123.0
        return logits

    def second(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        seen.append(float(logits[5]))
        return logits

    decoder, _ = make_decoder()
    result = generate_one(decoder, req([3], 3, logits_processors=(first, second)), CancelToken())
    assert seen == [123.0, 123.0, 123.0]
    assert result.token_ids == [5, 5, 5]


def test_logprobs_are_recorded_under_processed_distribution() -> None:
    processed: list[np.ndarray] = []

    def sharpen(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        logits = logits * 0.5
        processed.append(logits.copy())
        return logits

    decoder, _ = make_decoder()
    result = generate_one(decoder, req([3, 4], 8, temperature=1.0, seed=4, logits_processors=(sharpen,)),
                          CancelToken())
    assert len(result.logprobs) == len(result.token_ids) == len(processed)
    for lp, tok, lg in zip(result.logprobs, result.token_ids, processed, strict=True):
        assert lp <= 0.0
        assert lp == pytest.approx(naive_log_softmax(lg)[tok], abs=1e-5)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_without_logprobs_the_tokens_are_the_same_and_none_are_kept(temperature: float) -> None:
    # A single suggestion does not rank: its steps skip the pass over the vocabulary.
    results = []
    for want in (True, False):
        decoder, _ = make_decoder()
        results.append(generate_one(decoder, req([3, 4], 8, temperature=temperature, seed=4,
                                                 logprobs=want), CancelToken()))
    assert results[0].token_ids == results[1].token_ids and results[0].token_ids
    assert len(results[0].logprobs) == len(results[0].token_ids)
    assert results[1].logprobs == []


def test_logprobs_non_positive_with_fake_backend() -> None:
    fb = FakeBackend()
    result = fb.generate(req(fb.encode("abcXYZ abc"), 50), CancelToken())
    assert len(result.logprobs) == len(result.token_ids)
    assert all(lp <= 0.0 for lp in result.logprobs)
    assert all(lp > -1e-3 for lp in result.logprobs)  # the fake is certain of its plan


def test_processor_error_fails_only_its_sequence() -> None:
    boom = RuntimeError("constraint broke")
    calls = 0

    def explode_on_third(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise boom
        return logits

    decoder, runner = make_decoder()
    good_req = req([7, 1], 10)
    bad, good = decoder.admit([(req([3, 4, 5], 10, logits_processors=(explode_on_third,)), CancelToken()),
                               (good_req, CancelToken())])
    run_all(decoder, [bad, good])
    assert bad.finish is FinishReason.ERROR and bad.error is boom
    assert len(bad.out) == 2
    assert bad in runner.released
    with pytest.raises(RuntimeError) as info:
        decoder.result(bad)
    assert info.value is boom
    result = decoder.result(good)
    assert result.token_ids == reference([7, 1], 10)
    assert result.finish in (FinishReason.EOS, FinishReason.LENGTH)
    assert decoder.active == []
    assert runner.resets == 0


def test_stop_predicate_error_fails_only_its_sequence() -> None:
    def bad_stop(text: str) -> bool:
        raise KeyError(text)

    decoder, _ = make_decoder()
    bad, good = decoder.admit([(req([3], 5, stop=bad_stop), CancelToken()), (req([2], 5), CancelToken())])
    run_all(decoder, [bad, good])
    assert bad.finish is FinishReason.ERROR and isinstance(bad.error, KeyError)
    with pytest.raises(KeyError):
        decoder.result(bad)
    assert decoder.result(good).token_ids == reference([2], 5)


def test_cancelled_before_admit_never_reaches_prefill() -> None:
    decoder, runner = make_decoder()
    cancelled = CancelToken()
    cancelled.cancel()
    (seq,) = decoder.admit([(req([3, 4], 10), cancelled)])
    assert seq.finish is FinishReason.CANCELLED and seq.out == []
    assert runner.prefills == []
    assert decoder.active == []
    result = decoder.result(seq)
    assert result.finish is FinishReason.CANCELLED and result.token_ids == [] and result.text == ""

    live = CancelToken()
    a, b = decoder.admit([(req([5], 10), cancelled), (req([6], 10), live)])
    assert a.finish is FinishReason.CANCELLED and a.out == []
    assert [s for batch in runner.prefills for s in batch] == [b]
    assert decoder.active == [b]


def test_continuous_batching_matches_solo_runs() -> None:
    decoder, runner = make_decoder()
    reqs = [req(p, 14) for p in PROMPTS[:3]]
    a = decoder.admit([(reqs[0], CancelToken())])[0]
    for _ in range(3):
        decoder.step()
    b = decoder.admit([(reqs[1], CancelToken())])[0]
    decoder.step()
    c = decoder.admit([(reqs[2], CancelToken())])[0]
    run_all(decoder, [a, b, c])
    for seq, r in zip([a, b, c], reqs, strict=True):
        solo, _ = make_decoder()
        assert decoder.result(seq).token_ids == generate_one(solo, r, CancelToken()).token_ids
        assert seq.out == reference(r.prompt_ids, 14)
    assert decoder.max_width == max(runner.steps) == 3
    assert decoder.stepped_sequences == sum(runner.steps)
    assert decoder.steps == len(runner.steps)
    assert sorted(map(id, runner.released)) == sorted(map(id, [a, b, c]))


def test_sampled_batches_match_solo_runs() -> None:
    # Each request has its own seeded generator: neighbours in the batch do not change its sample.
    reqs = [req(p, 10, temperature=0.8, top_p=0.9, seed=i) for i, p in enumerate(PROMPTS)]
    decoder, _ = make_decoder()
    seqs = decoder.admit([(r, CancelToken()) for r in reqs[:2]])
    decoder.step()
    seqs += decoder.admit([(r, CancelToken()) for r in reqs[2:]])
    run_all(decoder, seqs)
    for seq, r in zip(seqs, reqs, strict=True):
        solo, _ = make_decoder()
        assert seq.out == generate_one(solo, r, CancelToken()).token_ids


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(1, V - 1), min_size=1, max_size=6),
                          st.integers(1, 12), st.integers(0, 4)), min_size=1, max_size=6))
def test_random_admission_schedules_match_solo(jobs: list[tuple[list[int], int, int]]) -> None:
    decoder, runner = make_decoder()
    seqs = []
    for prompt, max_new, wait in jobs:
        seqs += decoder.admit([(req(prompt, max_new), CancelToken())])
        for _ in range(wait):
            decoder.step()
    run_all(decoder, seqs)
    for seq, (prompt, max_new, _) in zip(seqs, jobs, strict=True):
        assert seq.out == reference(prompt, max_new)
    assert decoder.active == []
    assert len(runner.released) == len(seqs)


def test_fake_backend_continuous_batching_matches_generate_one() -> None:
    texts = ["abcXYZ abc", "x = compute_value(alpha, beta)\ny = compute_",
             "def f(x):\n    return x\ndef g(x):\n    "]
    fb = FakeBackend()
    reqs = [req(fb.encode(t), 30) for t in texts]
    decoder = fb.decoder
    a = decoder.admit([(reqs[0], CancelToken())])[0]
    decoder.step()
    b, c = decoder.admit([(reqs[1], CancelToken()), (reqs[2], CancelToken())])
    run_all(decoder, [a, b, c])
    assert decoder.max_width == 3
    for seq, r in zip([a, b, c], reqs, strict=True):
        alone = FakeBackend().generate(r, CancelToken())
        got = decoder.result(seq)
        assert (got.token_ids, got.text, got.finish) == (alone.token_ids, alone.text, alone.finish)


def test_max_width_counts_sequences_stepped_together() -> None:
    decoder, _ = make_decoder()
    decoder.admit([(req([3], 3), CancelToken())])
    decoder.step()
    assert decoder.max_width == 1
    decoder.admit([(req([4], 20), CancelToken()), (req([5], 20), CancelToken())])
    decoder.step()
    assert decoder.max_width == 3
    while decoder.active:
        decoder.step()
    assert decoder.max_width == 3


def test_abort_resets_runner_and_empties_active() -> None:
    decoder, runner = make_decoder()
    seqs = decoder.admit([(req([3], 20), CancelToken()), (req([4], 20), CancelToken())])
    decoder.step()
    dropped = decoder.abort(RuntimeError("device lost"))
    assert runner.resets == 1
    assert decoder.active == []
    assert sorted(map(id, dropped)) == sorted(map(id, seqs))
    assert decoder.step() == []


def test_generate_one_aborts_when_step_raises() -> None:
    class Broken(TableRunner):
        def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[np.ndarray]:
            raise OSError("step failed")

    runner = Broken()
    decoder = BatchDecoder(runner, frozenset({EOS}), detok)
    with pytest.raises(OSError, match="step failed"):
        generate_one(decoder, req([3], 5), CancelToken())
    assert runner.resets == 1 and decoder.active == []
    # The decoder is usable again afterwards.
    decoder.runner = TableRunner()
    assert generate_one(decoder, req([3], 5), CancelToken()).token_ids == reference([3], 5)


def test_capacity_comes_from_runner() -> None:
    assert make_decoder(capacity=3)[0].capacity == 3
    assert make_decoder()[0].capacity >= 1 << 20


def test_result_timings_and_extra() -> None:
    decoder, _ = make_decoder()
    result = generate_one(decoder, req([3, 4], 5), CancelToken())
    assert result.prefill_s >= 0.0 and result.decode_s >= 0.0
    assert result.extra == {"reused_tokens": 0.0}


def test_processors_that_allow_no_token_end_the_sequence() -> None:
    """A constraint with no way on stops generation (STOP) instead of emitting an arbitrary
    token, for greedy and sampled decoding alike."""
    from server.backends.fake import FakeBackend

    for temperature in (0.0, 0.8):
        fb = FakeBackend()

        def ban_all_after_two(generated, logits):
            if len(generated) >= 2:
                logits[:] = -np.inf
            return logits

        req = GenerationRequest(fb.encode("abc = 1\nab"), 20, temperature=temperature, seed=1,
                                logits_processors=(ban_all_after_two,))
        result = generate_one(fb.decoder, req, CancelToken())
        assert result.finish is FinishReason.STOP
        assert len(result.token_ids) == 2


# --- lazy exact checks (the syntax constraint's second layer) -------------------------------------

class _Refuse:
    """A processor that refuses some tokens at ``check`` time only (not in its mask)."""

    def __init__(self, refused: set[int]) -> None:
        self.refused = refused
        self.asked: list[int] = []

    def __call__(self, generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        return logits

    def check(self, generated: Sequence[int], token: int) -> bool:
        self.asked.append(token)
        return token not in self.refused


def _one_step(logits: np.ndarray, proc: _Refuse, temperature: float = 0.0) -> int:
    from server.backends.decoding import BatchDecoder, SeqState

    req = GenerationRequest([1], 5, temperature=temperature, logits_processors=(proc,))
    s = SeqState(req, CancelToken(), rng=np.random.default_rng(0) if temperature else None)
    decoder = BatchDecoder.__new__(BatchDecoder)  # only _advance's logic is under test
    decoder._stop_ids = frozenset()
    decoder._detok = lambda ids: ""
    decoder._advance(s, logits)
    return s.out[-1]


def test_a_refused_pick_is_masked_and_the_next_best_taken() -> None:
    logits = np.array([0.0, 5.0, 4.0, 3.0], dtype=np.float32)
    proc = _Refuse({1, 2})
    assert _one_step(logits, proc) == 3
    assert proc.asked == [1, 2, 3]


def test_sampling_never_returns_a_refused_token_when_another_exists() -> None:
    for seed in range(20):
        logits = np.random.default_rng(seed).normal(size=50).astype(np.float32)
        proc = _Refuse(set(range(0, 50, 2)))
        assert _one_step(logits, proc, temperature=1.0) % 2 == 1


def test_everything_refused_fails_open_with_the_first_pick() -> None:
    from server.backends.decoding import MAX_REFUSALS

    logits = np.arange(20, dtype=np.float32)
    proc = _Refuse(set(range(20)))
    assert _one_step(logits, proc) == 19  # the first (greedy) pick stands
    assert len(proc.asked) == MAX_REFUSALS
