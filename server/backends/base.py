"""The small protocol every model backend implements, and the values that cross it.

A backend owns a tokenizer and a causal LM. It never sees LSP or documents: it turns token ids
into more token ids, checking a :class:`CancelToken` and an optional stop predicate after every
decoding step, so a cancelled request stops within one step.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


class CancelledError(Exception):
    """Generation was cancelled through its :class:`CancelToken`."""


class GenerationOutOfMemory(Exception):
    """The backend ran out of memory (host or device) while evaluating a request.

    Backends translate their own errors into this type at the boundary (llama.cpp's failed
    allocations, torch's ``OutOfMemoryError`` and CPU allocator failures), so callers decide by
    type, never by matching message text."""


class CancelToken:
    """A thread-safe flag set by the event loop and polled by the decoding loop."""

    def __init__(self, event: threading.Event | None = None, reason: str = "") -> None:
        # ``event``: share a flag someone else sets (e.g. the test generator's cancel event);
        # ``reason`` then says why, since that someone does not.
        self._event = event or threading.Event()
        self.reason = reason

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    @property
    def event(self) -> threading.Event:
        """The flag itself, for waits that take an event (a sandboxed run)."""
        return self._event


class FinishReason(enum.Enum):
    EOS = "eos"  # the model emitted an end/stop special token
    STOP = "stop"  # the stop predicate (end of line/block) said enough
    LENGTH = "length"  # max_new_tokens reached
    CANCELLED = "cancelled"
    ERROR = "error"  # a logits processor or stop predicate of this request raised


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: Sequence[int]
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    # Called with the text generated so far after each step; True ends generation (STOP).
    stop: Callable[[str], bool] | None = None
    # Whose KV cache this prompt extends (the document URI): backends that keep caches per
    # document use it to pick the right one.
    cache_key: str | None = None
    # Run on each step's next-token logits before sampling, in order (see
    # server.backends.decoding.LogitsProcessor): the syntax constraint plugs in here.
    logits_processors: tuple[Any, ...] = ()
    # The caller needs the tokens' log-probabilities (reranking several candidates). Locally
    # a pass over the vocabulary per step (0.3–0.5 ms of a 30 ms step on 2 cores); a remote
    # engine is asked for them only then (llama-cpp-python's server decodes about 8x slower
    # with them: BENCHMARKS.md, issue 19).
    logprobs: bool = True


@dataclass(frozen=True)
class GenerationResult:
    token_ids: list[int]
    text: str
    finish: FinishReason
    prompt_tokens: int
    # Time to the first generated token (prefill + one step) and the rest of decoding.
    prefill_s: float
    decode_s: float
    # log P(token) of each generated token under the (processed) distribution it was chosen from.
    logprobs: list[float] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def tokens_per_s(self) -> float:
        n = len(self.token_ids) - 1
        return n / self.decode_s if n > 0 and self.decode_s > 0 else 0.0


@dataclass(frozen=True)
class FimTokens:
    """The model's own fill-in-the-middle markers (prefix-suffix-middle order)."""

    prefix: str
    suffix: str
    middle: str


# Known FIM vocabularies, most specific first. Detected from the tokenizer, never guessed.
KNOWN_FIM = (
    FimTokens("<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"),  # Qwen2.5-Coder
    FimTokens("<fim_prefix>", "<fim_suffix>", "<fim_middle>"),  # StarCoder, SantaCoder
    FimTokens("<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"),  # DeepSeek-Coder
    FimTokens("<PRE>", "<SUF>", "<MID>"),  # CodeLlama
    FimTokens("<|fim_begin|>", "<|fim_hole|>", "<|fim_end|>"),
)


def detect_fim(vocab_specials: set[str]) -> FimTokens | None:
    for fim in KNOWN_FIM:
        if {fim.prefix, fim.suffix, fim.middle} <= vocab_specials:
            return fim
    return None


@dataclass(frozen=True)
class ModelInfo:
    name: str
    backend: str
    device: str
    quantization: str
    dtype: str
    fim: FimTokens | None
    # Token strings that end generation or must never reach the user.
    special_tokens: frozenset[str]
    load_s: float = 0.0
    weight_bytes: int = 0
    # Tokens the backend can hold for prompt + generation (0 = limited by memory only).
    context_window: int = 0
    # The model file or folder it was loaded from ('' for none): the reranker's "generator"
    # encoder reads the same GGUF file.
    path: str = ""


class ModelBackend(Protocol):
    info: ModelInfo
    vocab_size: int  # the length of the logits (the syntax constraint's table)

    # special=True: special-token text in ``text`` (e.g. a chat template's <|im_start|>) becomes
    # those tokens; False (completions): it is ordinary text.
    def encode(self, text: str, special: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_id(self, token: str) -> int | None: ...

    def generate(self, request: GenerationRequest, cancel: CancelToken) -> GenerationResult: ...

    # The backend's batch decoder (server.backends.decoding.BatchDecoder), driven by the
    # server's model thread for continuous batching; generate() is one request on it.
    @property
    def decoder(self) -> Any: ...

    def close(self) -> None: ...
