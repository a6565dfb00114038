"""Step-by-step, batched decoding shared by every backend.

A backend only implements a :class:`KVRunner`: evaluate the prompts of some sequences (reusing
whatever KV cache it holds) and then one token per sequence per step, returning next-token
logits. Everything else lives here once, for all backends:

- logits processors (the syntax constraint) run on every step's logits, in Python, so an
  exception in one is a real exception (not a message printed by a C callback);
- sampling (greedy, or temperature/top-p with a per-request seeded generator) and the
  log-probability of each chosen token;
- stopping: end-of-generation tokens, the request's stop predicate, ``max_new_tokens``, and the
  cancel token, checked after every step, so a cancelled request stops within one step;
- continuous batching: sequences are admitted whenever there is room and leave as soon as they
  finish, so one long generation never holds back a short one (see ``server/batching.py``);
- speculative decoding, for runners that can verify several tokens in one evaluation
  (:class:`SpeculativeRunner`): a :class:`Drafter` proposes the next tokens of each greedy
  sequence (:class:`PromptLookup`: the tokens that followed the sequence's last tokens earlier
  in its prompt or output; or a smaller model of the same tokenizer, in the llama.cpp backend);
  one step evaluates the draft, and each position is then advanced exactly as a plain step
  would be (processors, greedy choice, stop rules, cancel), keeping drafted tokens while they
  equal the choice. The output is the plain output, token for token; the rejected tail leaves
  the KV cache.

A :class:`BatchDecoder` is not thread-safe: one thread (the model thread) drives it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from server.backends.base import CancelToken, FinishReason, GenerationRequest, GenerationResult

logger = logging.getLogger(__name__)

Logits = np.ndarray


class LogitsProcessor(Protocol):
    """Called before each sampling step with the ids generated so far and the next-token logits
    (a float32 array the processor may change in place); returns the logits to sample from.

    A processor may also have ``check(generated, token) -> bool``: an exact but costlier test
    of the token the sampler picked; a refused token is masked and another one sampled (at most
    :data:`MAX_REFUSALS` times)."""

    def __call__(self, generated: Sequence[int], logits: Logits) -> Logits: ...


# Picks a lazy check may refuse in one step before the decoder takes the first pick anyway.
MAX_REFUSALS = 8


@dataclass(eq=False)
class SeqState:
    """One sequence being decoded: its request and everything the decoder knows about it."""

    request: GenerationRequest
    cancel: CancelToken
    out: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    finish: FinishReason | None = None
    reused: int = 0  # prompt tokens the runner took from its KV cache
    t_start: float = 0.0
    t_first: float | None = None
    t_end: float = 0.0
    handle: Any = None  # the runner's own bookkeeping (its KV slot)
    error: Exception | None = None  # what its own processor or stop predicate raised
    rng: np.random.Generator | None = None

    @property
    def done(self) -> bool:
        return self.finish is not None


class KVRunner(Protocol):
    """What a backend implements. Called from one thread only."""

    def prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        """Evaluate each sequence's prompt (reusing cached tokens; set ``seq.reused``) and
        return the logits of the token after each prompt."""
        ...

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        """Append ``tokens[i]`` to sequence ``i`` and return the logits of the token after it."""
        ...

    def release(self, seqs: Sequence[SeqState]) -> None:
        """The sequences are finished; their KV stays cached for later prompts."""
        ...

    def forget(self, cache_key: str) -> None:
        """Drop what is cached for ``cache_key`` (a closed document); running sequences keep
        theirs."""
        ...

    def reset(self) -> None:
        """Forget every cached sequence (after an error, the cache may be inconsistent)."""
        ...


class SpeculativeRunner(KVRunner, Protocol):
    """A runner that evaluates several tokens of one sequence in one step (llama.cpp)."""

    def verify(self, seqs: Sequence[SeqState], tokens: Sequence[Sequence[int]]
               ) -> list[list[Logits]]:
        """Append ``tokens[i]`` (its last chosen token, then a draft) to sequence ``i``; the
        logits after each of them."""
        ...

    def rollback(self, seq: SeqState, n: int) -> None:
        """Drop the last ``n`` tokens appended to ``seq``'s cache (a rejected draft)."""
        ...


class Drafter(Protocol):
    """Proposes the next tokens of greedy sequences; the decoder verifies them. Called from the
    decoder's thread only."""

    def propose(self, seqs: Sequence[SeqState], limits: Sequence[int]) -> list[list[int]]:
        """At most ``limits[i]`` tokens that likely follow ``seqs[i]``'s prompt and output
        (possibly none)."""
        ...

    def forget(self, cache_key: str) -> None:
        """A document was closed: drop what is cached for it."""
        ...

    def reset(self) -> None:
        """Forget everything cached (after an error)."""
        ...


class PromptLookup:
    """The :class:`Drafter` that needs no model: n-grams copied from the sequence's own
    prompt and output (:func:`lookup_draft`)."""

    def propose(self, seqs: Sequence[SeqState], limits: Sequence[int]) -> list[list[int]]:
        return [lookup_draft([*s.request.prompt_ids, *s.out], k)
                for s, k in zip(seqs, limits, strict=True)]

    def forget(self, cache_key: str) -> None:
        pass

    def reset(self) -> None:
        pass


def lookup_draft(context: Sequence[int], max_draft: int, max_ngram: int = 3,
                 min_ngram: int = 2) -> list[int]:
    """Prompt lookup: the tokens that followed the latest earlier occurrence of the context's
    last ``n`` tokens (longest ``n`` first, down to ``min_ngram``), at most ``max_draft``.
    Code copies itself (names, arguments, the suffix after the cursor), and these copies are
    where a draft is right."""
    if max_draft <= 0:
        return []
    ctx = np.asarray(context, dtype=np.int64)
    size = len(ctx)
    for n in range(max_ngram, min_ngram - 1, -1):
        if size <= n:
            continue
        tail = ctx[-n:]
        # Candidate starts: where the tail's first token occurs, latest first, before the end.
        starts = np.flatnonzero(ctx[: size - n] == tail[0])[::-1]
        for i in starts:
            if np.array_equal(ctx[i:i + n], tail):
                return [int(t) for t in ctx[i + n:i + n + max_draft]]
    return []


class _Scratch(threading.local):
    """Work arrays of one vocabulary's size, kept between steps. A fresh 0.6–1.2 MB array per
    operation costs more than the operation: the allocator hands such arrays back to the system
    and the next one page-faults in again (measured: sampling one token 2.1 ms with fresh
    arrays, 0.6 ms with these)."""

    def __init__(self) -> None:
        self.f32 = np.empty(0, dtype=np.float32)
        self.f64 = np.empty(0, dtype=np.float64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.f32) != n:
            self.f32 = np.empty(n, dtype=np.float32)
            self.f64 = np.empty(n, dtype=np.float64)
        return self.f32, self.f64


_scratch = _Scratch()


def sample(logits: Logits, temperature: float, top_p: float,
           rng: np.random.Generator | None) -> int:
    """Greedy at temperature 0, else nucleus sampling from ``softmax(logits / temperature)``."""
    if temperature <= 0 or rng is None:
        return int(np.argmax(logits))
    if top_p < 1.0:
        x = np.asarray(logits, dtype=np.float32)
        if not np.isfinite(x.max()):
            return int(np.argmax(x))
        ids, probs = nucleus(x, temperature, top_p)
        return int(ids[rng.choice(len(ids), p=probs)])
    z, p = _scratch.get(len(logits))
    # exp in float32 (vectorised: 0.3 ms over 152k logits, against 3 ms in float64 where numpy
    # has no SIMD exp for it); the normalisation in float64 so the probabilities sum to 1.
    np.divide(np.asarray(logits, dtype=np.float32), np.float32(temperature), out=z)
    z -= z.max()
    np.exp(z, out=z)
    p[...] = z
    p /= p.sum()
    # Inverse-CDF draw over the whole vocabulary: what Generator.choice(n, p=p) does (one
    # uniform draw, the same token for the same seed), without its 1.3 ms of checks and copies.
    cdf = np.cumsum(p, out=p)
    cdf /= cdf[-1]
    return min(int(np.searchsorted(cdf, rng.random(), side="right")), len(cdf) - 1)


# A token whose probability is under 1e-7 of the most likely one's is left out of the nucleus (as
# tokens under 1e-7 were before): in logits, NUCLEUS_SPAN x the temperature below the best.
NUCLEUS_SPAN = float(np.log(1e7))


def nucleus(x: np.ndarray, temperature: float, top_p: float) -> tuple[np.ndarray, np.ndarray]:
    """The nucleus of ``softmax(x / temperature)``: its token ids, most likely first, and their
    probabilities renormalised. Only the head of the distribution is looked at: one pass over
    the vocabulary finds the tokens within reach of the best (a median of 80 of 152k for code at
    temperature 0.6), and only their probabilities are computed and sorted (was eight
    full-vocabulary passes, 0.23 ms a token; now 0.07 ms; issue 22)."""
    m = float(x.max())
    cand = np.flatnonzero(x >= np.float32(m - NUCLEUS_SPAN * temperature))
    p = np.exp((x[cand].astype(np.float64) - m) / temperature)
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(p[order])
    keep = order[: int(np.searchsorted(cum, top_p * cum[-1])) + 1]
    return cand[keep], p[keep] / p[keep].sum()


def logprob(logits: Logits, token: int) -> float:
    """log softmax(logits)[token], computed stably."""
    logits = np.asarray(logits, dtype=np.float32)
    m = float(np.max(logits))
    if not np.isfinite(m):
        return float("-inf")
    # Every step pays this: exp in float32 (SIMD), the sum in float64 (see sample()).
    z, _ = _scratch.get(len(logits))
    np.subtract(logits, np.float32(m), out=z)
    np.exp(z, out=z)
    return float(logits[token] - m - np.log(np.sum(z, dtype=np.float64)))


class BatchDecoder:
    """Drives a :class:`KVRunner`: admit sequences, step them together, finish them."""

    def __init__(self, runner: KVRunner, stop_ids: frozenset[int],
                 detokenize: Callable[[Sequence[int]], str], draft_tokens: int = 0,
                 drafter: Drafter | None = None) -> None:
        self.runner = runner
        self._stop_ids = stop_ids
        self._detok = detokenize
        self.active: list[SeqState] = []
        # Speculation: the longest draft (0: off); only runners that verify. Prompt lookup
        # unless the backend brings a draft model.
        self.draft_tokens = draft_tokens if callable(getattr(runner, "verify", None)) else 0
        self.drafter: Drafter = drafter or PromptLookup()
        # Counters for benchmarks and tests: how wide the steps really were, and how many
        # drafted tokens were evaluated and kept.
        self.steps = 0
        self.stepped_sequences = 0
        self.max_width = 0
        self.drafted = 0
        self.accepted = 0

    @property
    def stop_ids(self) -> frozenset[int]:
        return self._stop_ids

    @property
    def capacity(self) -> int:
        """The most sequences the runner can hold at once."""
        return int(getattr(self.runner, "capacity", 1 << 20))

    def visible_text(self, ids: Sequence[int]) -> str:
        return self._detok([i for i in ids if i not in self._stop_ids])

    def admit(self, jobs: Sequence[tuple[GenerationRequest, CancelToken]]) -> list[SeqState]:
        """Prefill the jobs' prompts and choose their first tokens. Returns every job's state;
        those already finished (cancelled while queued, one-token answers) are released."""
        now = time.perf_counter()
        seqs = [SeqState(req, cancel, t_start=now,
                         rng=np.random.default_rng(req.seed) if req.temperature > 0 else None)
                for req, cancel in jobs]
        live = []
        for s in seqs:
            if s.cancel.cancelled:
                s.finish, s.t_end = FinishReason.CANCELLED, now
            else:
                live.append(s)
        if live:
            logits = self.runner.prefill(live)
            for s, lg in zip(live, logits, strict=True):
                self._advance(s, lg)
            self.active.extend(s for s in live if not s.done)
            self._release([s for s in live if s.done])
        return seqs

    def step(self) -> list[SeqState]:
        """One decoding step for every active sequence; returns those that finished."""
        live = [s for s in self.active if not s.done]
        if live:
            self.steps += 1
            self.stepped_sequences += len(live)
            self.max_width = max(self.max_width, len(live))
            drafts = self._drafts(live) if self.draft_tokens else []
            if any(drafts):
                self._speculate(live, drafts)
            else:
                logits = self.runner.step(live, [s.out[-1] for s in live])
                for s, lg in zip(live, logits, strict=True):
                    self._advance(s, lg)
        done_now = [s for s in self.active if s.done]
        self.active = [s for s in self.active if not s.done]
        self._release(done_now)
        return done_now

    def _drafts(self, live: list[SeqState]) -> list[list[int]]:
        """Drafts for the greedy sequences (sampling would need rejection sampling to keep its
        distribution), each within its token budget. A drafter that fails costs the step its
        drafts, not the requests their answers."""
        drafts: list[list[int]] = [[] for _ in live]
        want = [(i, min(self.draft_tokens, s.request.max_new_tokens - len(s.out) - 1))
                for i, s in enumerate(live) if s.request.temperature <= 0]
        want = [(i, k) for i, k in want if k > 0]
        if not want:
            return drafts
        try:
            got = self.drafter.propose([live[i] for i, _ in want], [k for _, k in want])
        except Exception:  # noqa: BLE001 - the plain step still answers
            logger.warning("the draft model failed; this step decodes without a draft",
                           exc_info=True)
            self.drafter.reset()
            return drafts
        for (i, k), d in zip(want, got, strict=True):
            drafts[i] = list(d[:k])
        return drafts

    def _speculate(self, live: list[SeqState], drafts: list[list[int]]) -> None:
        """One evaluation of each sequence's last token and draft; then position by position
        the plain step's choice, kept while it equals the draft."""
        runner: Any = self.runner
        logits = runner.verify(live, [[s.out[-1], *d] for s, d in zip(live, drafts, strict=True)])
        for s, draft, lgs in zip(live, drafts, logits, strict=True):
            kept = 0
            for j, lg in enumerate(lgs):
                self._advance(s, lg)
                if s.done or j >= len(draft) or s.out[-1] != draft[j]:
                    break
                kept += 1
            self.drafted += len(draft)
            self.accepted += kept
            if kept < len(draft):
                runner.rollback(s, len(draft) - kept)

    def forget(self, cache_key: str) -> None:
        """A document was closed: its KV cache is no longer worth keeping."""
        self.runner.forget(cache_key)
        self.drafter.forget(cache_key)

    def abort(self, exc: BaseException) -> list[SeqState]:
        """Drop every active sequence after ``exc`` broke a step; the caches are reset."""
        dropped, self.active = self.active, []
        self.runner.reset()
        self.drafter.reset()
        return dropped

    def _release(self, seqs: list[SeqState]) -> None:
        if seqs:
            self.runner.release(seqs)

    def _advance(self, s: SeqState, logits: Logits) -> None:
        """Choose the next token of ``s`` from ``logits`` and decide whether it is finished."""
        req = s.request
        if s.t_first is None:
            s.t_first = time.perf_counter()
        if s.cancel.cancelled:
            self._finish(s, FinishReason.CANCELLED)
            return
        try:
            if req.logits_processors:
                logits = np.array(logits, dtype=np.float32, copy=True)
                for proc in req.logits_processors:
                    logits = proc(s.out, logits)
                if not np.isfinite(logits).any():
                    # The processors allow no token at all (a constraint with no way on):
                    # the sequence ends with what it has.
                    self._finish(s, FinishReason.STOP)
                    return
            tok = sample(logits, req.temperature, req.top_p, s.rng)
            checks = [p.check for p in req.logits_processors if hasattr(p, "check")]
            if checks:
                tok = self._checked(s, logits, tok, checks)
            s.out.append(tok)
            if req.logprobs:  # a full pass over the vocabulary: only when ranking reads them
                s.logprobs.append(logprob(logits, tok))
            if tok in self._stop_ids:
                self._finish(s, FinishReason.EOS)
            elif s.cancel.cancelled:
                self._finish(s, FinishReason.CANCELLED)
            elif len(s.out) >= req.max_new_tokens:
                self._finish(s, FinishReason.LENGTH)
            elif req.stop is not None and req.stop(self.visible_text(s.out)):
                self._finish(s, FinishReason.STOP)
        except Exception as exc:  # noqa: BLE001 - this request fails, the batch goes on
            s.error = exc
            self._finish(s, FinishReason.ERROR)

    @staticmethod
    def _checked(s: SeqState, logits: Logits, tok: int,
                 checks: list[Callable[[Sequence[int], int], bool]]) -> int:
        """Lazy exact checks (the syntax constraint's parser): a refused token is masked and
        the sampler picks again, a few times at most. If every pick is refused the first one
        stands (fail open: a constraint must not end generation by itself)."""
        first = tok
        req = s.request
        for _ in range(MAX_REFUSALS):
            if all(check(s.out, tok) for check in checks):
                return tok
            logits[tok] = -np.inf
            if not np.isfinite(logits).any():
                break
            tok = sample(logits, req.temperature, req.top_p, s.rng)
        return first

    @staticmethod
    def _finish(s: SeqState, reason: FinishReason) -> None:
        s.finish = reason
        s.t_end = time.perf_counter()

    def result(self, s: SeqState) -> GenerationResult:
        """The sequence's result; raises what its processor or stop predicate raised."""
        if s.error is not None:
            raise s.error
        first = s.t_first or s.t_end
        return GenerationResult(
            token_ids=list(s.out),
            text=self.visible_text(s.out),
            finish=s.finish or FinishReason.CANCELLED,
            prompt_tokens=len(s.request.prompt_ids),
            prefill_s=max(0.0, first - s.t_start),
            decode_s=max(0.0, s.t_end - first),
            logprobs=list(s.logprobs),
            extra={"reused_tokens": float(s.reused)},
        )


def generate_one(decoder: BatchDecoder, request: GenerationRequest,
                 cancel: CancelToken) -> GenerationResult:
    """Run one request to the end on ``decoder`` (which must have nothing else active)."""
    (seq,) = decoder.admit([(request, cancel)])
    try:
        while not seq.done:
            decoder.step()
    except BaseException as exc:
        decoder.abort(exc)
        raise
    return decoder.result(seq)


# A cached prefix shorter than this is not worth taking another document's slot for: every
# FIM prompt starts with the same marker token, and files often share their first imports.
REUSE_MIN_TOKENS = 32


def slot_rank(cached: Sequence[int], prompt: Sequence[int], same_document: bool,
              last_used: float) -> tuple[int, int, int, float]:
    """How good a KV slot holding ``cached`` is for ``prompt`` (higher is better): the longest
    worthwhile reusable prefix, then the same document's slot, then an empty slot, then the
    least recently used one (it is the cheapest to lose)."""
    n = common_prefix(cached, prompt)
    # Worthwhile: a long shared prefix, or all of the prompt, or all the slot holds (taking it
    # loses nothing).
    useful = n >= min(REUSE_MIN_TOKENS, len(prompt) - 1) or (n > 0 and n == len(cached))
    return (n if useful else 0, int(same_document), int(not cached), -last_used)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    a, b = list(a), list(b)  # a tuple never equals a list slice
    n = min(len(a), len(b))
    i = 0
    # Compare in chunks first: prompts share hundreds of tokens, lists compare fast in C.
    step = 64
    while i + step <= n and a[i:i + step] == b[i:i + step]:
        i += step
    while i < n and a[i] == b[i]:
        i += 1
    return i
