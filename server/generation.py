"""The request-level seam between the completion service and whatever produces text.

A :class:`Generator` takes whole requests (a prompt's token ids, sampling settings, a stop
predicate, optional logits processors) and returns whole results (text, per-token
log-probabilities, timings). The service never sees decoding steps, KV caches or threads, so an
engine that returns text over HTTP can stand beside the local one without touching the service.

What a generator can do is declared in :class:`GeneratorCapabilities`, never guessed by the
caller: whether it runs per-sequence logits processors (the syntax constraint needs that),
whether it reports log-probabilities, which fill-in-the-middle markers its model has.

:class:`LocalGenerator` is the in-process implementation: the backend's batch decoder driven by
the batch scheduler's model thread (``server/batching.py``), so requests of several documents
and the candidates of one request decode together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from server.backends.base import (
    CancelToken,
    FimTokens,
    GenerationRequest,
    GenerationResult,
    ModelBackend,
    ModelInfo,
)
from server.batching import BatchScheduler


class Tokenizer(Protocol):
    """The model's tokenizer, as prompt building and the syntax constraint need it."""

    vocab_size: int

    def encode(self, text: str, special: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def token_id(self, token: str) -> int | None: ...


@dataclass(frozen=True)
class GeneratorCapabilities:
    # Runs ``GenerationRequest.logits_processors`` on every step (and their ``check``): without
    # it the syntax constraint cannot be applied during decoding.
    logits_processors: bool
    # ``GenerationResult.logprobs`` holds one log-probability per generated token.
    logprobs: bool
    # The model's fill-in-the-middle markers, with their token ids (None: prefix-only prompts).
    fim: FimTokens | None
    fim_ids: tuple[int, int, int] | None
    # Token ids that end generation (and never reach the user).
    stop_ids: frozenset[int]
    # Token strings that must never reach the user.
    special_tokens: frozenset[str]
    # Prompt + generation tokens one request may use (0: bounded by memory only).
    context_window: int
    # Runs on an accelerator (CUDA): extra candidates cost little, so every request may get
    # several (``candidatesWhen: auto``).
    accelerated: bool = False


class Generator(Protocol):
    tokenizer: Tokenizer

    # Properties: a failover list answers with the backend that serves now.
    @property
    def info(self) -> ModelInfo: ...

    @property
    def capabilities(self) -> GeneratorCapabilities: ...

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        """One result per request, in order. A cancelled ``cancel`` ends every request at its
        next step (its result has ``finish`` CANCELLED). Raises what the engine raised
        (``GenerationOutOfMemory``, ``ModelError``, ...)."""
        ...

    def forget(self, cache_key: str) -> None:
        """Whatever is cached for ``cache_key`` (a document that was closed) may go."""
        ...

    def prefetch(self, prompt_ids: Sequence[int], cache_key: str | None,
                 delay_s: float = 0.0) -> None:
        """A request with this prompt is expected soon: evaluate it into whatever cache the
        engine keeps, in idle time and not before ``delay_s``, without delaying real
        requests. Replaces an earlier prefetch; never blocks; may do nothing."""
        ...

    def cancel_prefetch(self, cache_key: str | None = None) -> None:
        """The document ``cache_key`` changed or closed (None: any): a pending prefetch for it
        is out of date."""
        ...

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None: ...

    def stats(self) -> dict[str, Any]:
        """Counters for ``pingti/status`` (batch widths, queue)."""
        ...

    def close(self) -> None: ...


def fim_ids_of(backend: ModelBackend) -> tuple[int, int, int] | None:
    return fim_token_ids(backend.info.fim, backend)


def fim_token_ids(fim: FimTokens | None, tokenizer: Tokenizer | ModelBackend
                  ) -> tuple[int, int, int] | None:
    """The ids of the FIM markers, each a single token of ``tokenizer`` (else None)."""
    if fim is None:
        return None
    ids = (tokenizer.token_id(fim.prefix), tokenizer.token_id(fim.suffix),
           tokenizer.token_id(fim.middle))
    if ids[0] is None or ids[1] is None or ids[2] is None:
        return None
    return ids[0], ids[1], ids[2]


class LocalGenerator:
    """A local backend (llama.cpp, transformers, the test fake) behind the model thread."""

    def __init__(self, backend: ModelBackend, max_batch_size: int = 4,
                 batch_timeout_s: float = 0.005) -> None:
        self.backend = backend
        self.info = backend.info
        self.tokenizer: Tokenizer = backend
        decoder = backend.decoder
        fim_ids = fim_ids_of(backend)
        self.capabilities = GeneratorCapabilities(
            logits_processors=True, logprobs=True,
            fim=backend.info.fim if fim_ids is not None else None, fim_ids=fim_ids,
            stop_ids=decoder.stop_ids, special_tokens=backend.info.special_tokens,
            context_window=backend.info.context_window,
            accelerated=backend.info.device.startswith("cuda"))
        self.scheduler = BatchScheduler(decoder, max_batch_size, batch_timeout_s)

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        futures = [asyncio.wrap_future(self.scheduler.submit(r, cancel)) for r in requests]
        try:
            return list(await asyncio.gather(*futures))
        except asyncio.CancelledError:
            cancel.cancel("the caller gave up")
            raise
        except BaseException:
            if len(futures) > 1:  # the others must not decode on for nobody
                cancel.cancel("a sibling request failed")
            raise

    def forget(self, cache_key: str) -> None:
        self.scheduler.forget(cache_key)

    def prefetch(self, prompt_ids: Sequence[int], cache_key: str | None,
                 delay_s: float = 0.0) -> None:
        self.scheduler.prefetch(list(prompt_ids), cache_key, delay_s)

    def cancel_prefetch(self, cache_key: str | None = None) -> None:
        self.scheduler.cancel_prefetch(cache_key)

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None:
        self.scheduler.configure(max_batch_size, batch_timeout_s)

    def stats(self) -> dict[str, Any]:
        return self.scheduler.stats()

    def close(self) -> None:
        """Stop the model thread (running requests are cancelled), then free the model."""
        self.scheduler.close()
        self.backend.close()
