"""A deterministic, model-free backend for the test-suite. Never a default, never in a figure.

It tokenizes by character and "predicts" like a prompt-lookup decoder: find the longest earlier
occurrence of the prompt's last characters (up to 32) and copy what followed it; with no match it
writes ``pass``. So a test controls the suggestion by writing an example earlier in the file,
and gets the same answer every time. A sampled request (temperature above 0) with seed k copies
from the k-th latest occurrence instead (cycling), so candidates can differ in a controlled way.
``token_delay`` makes each step take time, so cancellation
can be observed; the decode loop checks the cancel token every step, like the real backend.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

import numpy as np

from server.backends.base import (
    CancelToken,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)
from server.backends.decoding import (
    BatchDecoder,
    Logits,
    SeqState,
    common_prefix,
    generate_one,
)

_SPECIALS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
_OFFSET = 16  # ids below this are special tokens
_FALLBACK = "pass"
_CHAT_TURN = "### Assistant\n"  # the end of a chat prompt (testgen.pipeline.format_chat)
_MAX_CHAR = 0x2FFFF  # characters above this (rare) all become one token: the vocabulary stays small
_N_VOCAB = _OFFSET + _MAX_CHAR + 1
# Lone surrogates are not characters: no real tokenizer decodes to one, so neither may a sampled
# fake token (sampling when the syntax constraint masks the planned character).
_BASE_LOGITS = np.full(_N_VOCAB, -30.0, dtype=np.float32)
_BASE_LOGITS[_OFFSET + 0xD800:_OFFSET + 0xE000] = -np.inf


class FakeBackend:
    def __init__(self, token_delay: float = 0.0) -> None:
        self.token_delay = token_delay
        self.steps_run = 0  # total decoding steps, for tests of cancellation
        self.info = ModelInfo(
            name="fake (tests only)",
            backend="fake",
            device="cpu",
            quantization="none",
            dtype="none",
            fim=FimTokens(*_SPECIALS[1:]),
            special_tokens=frozenset(_SPECIALS),
        )
        self.vocab_size = _N_VOCAB
        self._decoder = BatchDecoder(_FakeRunner(self), frozenset({0}), self.decode)

    def encode(self, text: str, special: bool = False) -> list[int]:
        return [min(ord(c), _MAX_CHAR) + _OFFSET for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(_SPECIALS[i] if i < len(_SPECIALS) else chr(i - _OFFSET)
                       for i in ids if i >= _OFFSET or i < len(_SPECIALS))

    def token_id(self, token: str) -> int | None:
        return _SPECIALS.index(token) if token in _SPECIALS else None

    def _plan(self, prompt_ids: Sequence[int], variant: int = 0) -> str:
        fim = [i for i in prompt_ids if i < _OFFSET]
        text = self.decode(prompt_ids)
        if text.endswith(_CHAT_TURN):
            return _doctest_answer(text)
        before = ""
        if len(fim) == 3:
            # FIM: predict from the prefix, looking things up in the repository context before
            # it (server/repo_context.py), the prefix and the suffix.
            before, pre = text.split(_SPECIALS[1], 1)
            prefix, rest = pre.split(_SPECIALS[2], 1)
            suffix = rest.split(_SPECIALS[3], 1)[0]
        else:
            prefix, suffix = text, ""
        haystack = before + "\x00" + prefix + "\x00" + suffix
        for n in range(min(32, len(prefix)), 0, -1):
            needle = prefix[-n:]
            follows = []
            end = len(before) + len(prefix)
            while (idx := haystack.rfind(needle, 0, end)) != -1:
                follow = haystack[idx + n:].split("\x00", 1)[0]
                if follow.strip():
                    follows.append(follow)
                end = idx + n - 1
            if follows:
                return follows[variant % len(follows)]
        return _FALLBACK

    @property
    def decoder(self) -> BatchDecoder:
        return self._decoder

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        return generate_one(self._decoder, request, cancel)

    def close(self) -> None:
        pass


_DOCTEST = re.compile(r"^[ \t]*>>> (.+)\n[ \t]*(?!>>>)(\S.*)$", re.M)
_IMPORT_HINT = re.compile(r"Import it with `(from [\w.]+ import \w+)`")


def _doctest_answer(prompt: str) -> str:
    """A chat answer for "write tests": the doctest examples in the prompt as pytest tests
    (the wrong ones included: the sandbox filter must drop them)."""
    imp = _IMPORT_HINT.search(prompt)
    lines = ["```python", imp.group(1) if imp else "", ""]
    for i, (expr, expected) in enumerate(_DOCTEST.findall(prompt)):
        lines += [f"def test_example_{i}():", f"    assert {expr} == {expected.strip()}", ""]
    lines.append("```")
    return "\n".join(lines)


class _FakeRunner:
    """Logits that put all weight on the planned next character (or end of text after it).

    Like a real model it is batched: one step costs one ``token_delay`` however many sequences
    it advances, so tests can observe batching as well as cancellation.
    """

    def __init__(self, backend: FakeBackend) -> None:
        self._backend = backend
        self.prefilled_tokens = 0  # prompt tokens "evaluated", for tests
        self.forgotten: list[str] = []  # cache keys of closed documents, for tests
        # What a KV cache would hold per cache key (prefetch, the last prompt): a prompt's
        # common prefix with it counts as reused, as in the real backends.
        self.cached: dict[str, list[int]] = {}
        self.prefetched_tokens = 0

    def _logits(self, s: SeqState) -> Logits:
        plan: str = s.handle
        i = len(s.out)
        logits = _BASE_LOGITS.copy()
        logits[ord(plan[i]) + _OFFSET if i < len(plan) else 0] = 0.0
        return logits

    def prefill(self, seqs: Sequence[SeqState]) -> list[Logits]:
        for s in seqs:
            req = s.request
            s.handle = self._backend._plan(req.prompt_ids,
                                           req.seed if req.temperature > 0 else 0)
            prompt = list(req.prompt_ids)
            if req.cache_key is not None:
                held = self.cached.get(req.cache_key, [])
                s.reused = min(common_prefix(held, prompt), len(prompt) - 1)
                self.cached[req.cache_key] = prompt
            self.prefilled_tokens += len(prompt) - s.reused
        return [self._logits(s) for s in seqs]

    def warm(self, prompt: Sequence[int], cache_key: str | None, max_tokens: int) -> int:
        """Prefetch: "evaluate" up to ``max_tokens`` more tokens of ``prompt`` for
        ``cache_key``; one chunk costs one ``token_delay``. Returns the tokens still missing."""
        prompt = list(prompt)
        key = cache_key or ""
        held = self.cached.get(key, [])
        n = common_prefix(held, prompt)
        end = min(len(prompt), n + max(1, max_tokens))
        if end > n and self._backend.token_delay:
            time.sleep(self._backend.token_delay)
        self.cached[key] = prompt[:end]
        self.prefetched_tokens += end - n
        return len(prompt) - end

    def step(self, seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[Logits]:
        if self._backend.token_delay:
            time.sleep(self._backend.token_delay)
        self._backend.steps_run += 1
        return [self._logits(s) for s in seqs]

    def release(self, seqs: Sequence[SeqState]) -> None:
        pass

    def forget(self, cache_key: str) -> None:
        self.forgotten.append(cache_key)
        self.cached.pop(cache_key, None)

    def reset(self) -> None:
        self.cached.clear()
