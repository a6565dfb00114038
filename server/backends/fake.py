"""A deterministic, model-free backend for the test-suite. Never a default, never in a figure.

It tokenizes by character and "predicts" like a prompt-lookup decoder: find the longest earlier
occurrence of the prompt's last characters (up to 32) and copy what followed it; with no match it
writes ``pass``. So a test controls the suggestion by writing an example earlier in the file,
and gets the same answer every time. ``token_delay`` makes each step take time, so cancellation
can be observed; the decode loop checks the cancel token every step, like the real backend.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from server.backends.base import (
    CancelToken,
    FimTokens,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)

_SPECIALS = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>")
_OFFSET = 16  # ids below this are special tokens
_FALLBACK = "pass"


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

    def encode(self, text: str) -> list[int]:
        return [ord(c) + _OFFSET for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(_SPECIALS[i] if i < len(_SPECIALS) else chr(i - _OFFSET)
                       for i in ids if i >= _OFFSET or i < len(_SPECIALS))

    def token_id(self, token: str) -> int | None:
        return _SPECIALS.index(token) if token in _SPECIALS else None

    def _plan(self, prompt_ids: Sequence[int]) -> str:
        fim = [i for i in prompt_ids if i < _OFFSET]
        text = self.decode(prompt_ids)
        if len(fim) == 3:
            # FIM: predict from the prefix, looking things up in prefix + suffix.
            pre = text.split(_SPECIALS[1], 1)[1]
            prefix, rest = pre.split(_SPECIALS[2], 1)
            suffix = rest.split(_SPECIALS[3], 1)[0]
        else:
            prefix, suffix = text, ""
        haystack = prefix + "\x00" + suffix
        for n in range(min(32, len(prefix)), 0, -1):
            needle = prefix[-n:]
            idx = haystack.rfind(needle, 0, len(prefix) - 1)
            if idx != -1:
                follow = haystack[idx + n:].split("\x00", 1)[0]
                if follow.strip():
                    return follow
        return _FALLBACK

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult:
        t0 = time.perf_counter()
        plan = self._plan(request.prompt_ids)
        out: list[int] = []
        first = None
        finish = FinishReason.LENGTH
        i = 0
        while len(out) < request.max_new_tokens:
            if cancel.cancelled:
                finish = FinishReason.CANCELLED
                break
            if self.token_delay:
                time.sleep(self.token_delay)
            self.steps_run += 1
            if i >= len(plan):
                out.append(0)  # <|endoftext|>
                finish = FinishReason.EOS
                break
            out.append(ord(plan[i]) + _OFFSET)
            i += 1
            if first is None:
                first = time.perf_counter()
            if request.stop is not None and request.stop(self.decode(out)):
                finish = FinishReason.STOP
                break
        t_end = time.perf_counter()
        first = first or t_end
        return GenerationResult(
            token_ids=out,
            text=self.decode([t for t in out if t >= _OFFSET]),
            finish=finish,
            prompt_tokens=len(request.prompt_ids),
            prefill_s=first - t0,
            decode_s=t_end - first,
        )

    def close(self) -> None:
        pass
