"""Several backends as one generator: the first that is up serves, a failed request is retried
once on the next, a backend that keeps failing is skipped until its health check passes.

The ``backends`` setting is an ordered list (e.g. a team's GPU server, then the local model).
Each backend has a :class:`CircuitBreaker`:

- **closed** (serving): every request goes to it; ``FAILURES_TO_OPEN`` failures in a row open it;
- **open** (skipped): requests go to the next backend without waiting for this one; after
  ``OPEN_S`` (doubling up to ``MAX_OPEN_S`` while its checks fail) a background health check
  (``/health`` or ``/v1/models``) runs;
- **half-open**: the check passed; the next request tries it again (it is first in the list;
  one trial at a time, requests meanwhile go on to the next), and success closes it, so
  traffic returns to the preferred backend by itself. A cancelled request (the user typed on)
  says nothing about the backend and changes nothing.

A request that fails on one backend is retried once on the next that is not open (a request
never runs on more than two, and is answered once: by the first that returns). Only
:class:`~server.remote.EngineError` fails over; what the local model raises (out of memory, a
bad request) is the request's own failure and goes to the caller as before.

Every outcome is counted per backend (:class:`server.metrics.BackendMetrics`), and each change
of a breaker's state is reported (``on_change``: the server sends ``pingti/backendChanged`` and
logs it).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from server.backends.base import (
    CancelledError,
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
)
from server.config import BackendSpec, Config, EngineType
from server.generation import GeneratorCapabilities, Tokenizer
from server.metrics import BackendMetrics
from server.model_assets import ModelError
from server.remote import EngineError, FailureKind

if TYPE_CHECKING:
    from server.service import Loaded

logger = logging.getLogger(__name__)

FAILURES_TO_OPEN = 2  # failures in a row that open a breaker
OPEN_S = 1.0  # first wait before a health check of an open backend
MAX_OPEN_S = 5.0  # the wait doubles while checks fail, up to this
PROBE_TICK_S = 0.25  # how often the prober looks for checks that are due


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """A backend's health as seen from its answers; pure, the clock is passed in."""

    failures_to_open: int = FAILURES_TO_OPEN
    open_s: float = OPEN_S
    max_open_s: float = MAX_OPEN_S
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0  # in a row
    opened_at: float = 0.0
    wait_s: float = field(default=OPEN_S)
    trial: bool = False  # half-open: a request is trying it now

    def allows(self) -> bool:
        """May a request go to this backend now? (Half-open: one trial at a time.)"""
        if self.state is BreakerState.HALF_OPEN:
            return not self.trial
        return self.state is BreakerState.CLOSED

    def begin(self) -> None:
        """A request goes to it (in half-open: the trial)."""
        if self.state is BreakerState.HALF_OPEN:
            self.trial = True

    def abandon(self) -> None:
        """The request ended without saying anything (cancelled): the trial may run again."""
        self.trial = False

    def check_due(self, now: float) -> bool:
        return self.state is BreakerState.OPEN and now >= self.opened_at + self.wait_s

    def success(self) -> bool:
        """A request succeeded. True when the state changed."""
        self.failures = 0
        self.wait_s = self.open_s
        self.trial = False
        return self._to(BreakerState.CLOSED)

    def failure(self, now: float) -> bool:
        """A request failed. True when the state changed (it opened)."""
        self.failures += 1
        self.trial = False
        if self.state is BreakerState.HALF_OPEN or (
                self.state is BreakerState.CLOSED and self.failures >= self.failures_to_open):
            self._open(now, self.wait_s if self.state is BreakerState.CLOSED
                       else min(2 * self.wait_s, self.max_open_s))
            return True
        return False

    def check_passed(self) -> bool:
        return self._to(BreakerState.HALF_OPEN) if self.state is BreakerState.OPEN else False

    def check_failed(self, now: float) -> bool:
        """The health check failed: wait longer before the next (no state change)."""
        self._open(now, min(2 * self.wait_s, self.max_open_s))
        return False

    def trip(self, now: float) -> bool:
        """Open at once (a backend found down before any request went to it)."""
        if self.state is BreakerState.OPEN:
            return False
        self._open(now, self.open_s)
        return True

    def _open(self, now: float, wait_s: float) -> None:
        self.state, self.opened_at, self.wait_s = BreakerState.OPEN, now, wait_s
        self.trial = False

    def _to(self, state: BreakerState) -> bool:
        changed = self.state is not state
        self.state = state
        return changed


@dataclass
class Member:
    """One backend of the list."""

    spec: BackendSpec
    generator: Any  # a Generator; RemoteGenerator for engines (it has health())
    breaker: CircuitBreaker
    metrics: BackendMetrics

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def remote(self) -> bool:
        return self.spec.type is not EngineType.LOCAL


BackendEvent = dict[str, Any]  # the params of pingti/backendChanged


class FailoverGenerator:
    """The backends of the ``backends`` setting behind one :class:`Generator`."""

    def __init__(self, members: Sequence[Member], tokenizer: Tokenizer,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not members:
            raise ValueError("no backends")
        self.members = list(members)
        self.tokenizer = tokenizer
        self._clock = clock
        self.on_change: Callable[[BackendEvent], None] | None = None
        self._prober: asyncio.Task[None] | None = None
        self._closed = False

    # --- which backend serves --------------------------------------------------------------

    def active(self) -> Member:
        """The backend the next request goes to first."""
        return next((m for m in self.members if m.breaker.allows()), self.members[0])

    @property
    def info(self) -> Any:
        return self.active().generator.info

    @property
    def capabilities(self) -> GeneratorCapabilities:
        """The serving backend's: a request planned for a remote engine carries no syntax
        constraint processors, one planned for the local model does (a remote backup ignores
        them and checks the finished text instead)."""
        caps: GeneratorCapabilities = self.active().generator.capabilities
        return caps

    # --- generation ------------------------------------------------------------------------

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        order = [m for m in self.members if m.breaker.allows()] or list(self.members)
        errors: list[str] = []
        for member in order[:2]:  # the preferred backend, and one retry on the next
            t0 = self._clock()
            member.breaker.begin()
            try:
                results = await member.generator.generate(requests, cancel)
            except EngineError as exc:
                member.metrics.failed(exc.kind.value, str(exc))
                logger.warning("backend %s failed (%s): %s", member.label, exc.kind.value, exc)
                self._changed(member, member.breaker.failure(self._clock()), str(exc))
                errors.append(str(exc))
                if cancel.cancelled:
                    raise CancelledError(cancel.reason) from exc
                continue
            except (CancelledError, asyncio.CancelledError):
                member.breaker.abandon()
                raise
            except Exception as exc:
                member.breaker.abandon()
                member.metrics.failed("error", f"{type(exc).__name__}: {exc}")
                raise
            if any(r.finish is FinishReason.CANCELLED for r in results):
                # Superseded or cancelled: no verdict on the backend (a hung engine and a user
                # who keeps typing must still open the circuit).
                member.breaker.abandon()
                member.metrics.cancelled()
            else:
                member.metrics.answered(self._clock() - t0, results)
                self._changed(member, member.breaker.success(), "")
            return results
        raise EngineError(FailureKind.CONNECT, "no backend answered: " + "; ".join(errors))

    # --- health ----------------------------------------------------------------------------

    async def check_all(self) -> None:
        """Health-check every remote backend now (at load): one found down starts open, so the
        first request does not wait for it."""
        remote = [m for m in self.members if m.remote]
        outcomes = await asyncio.gather(*(m.generator.health() for m in remote),
                                        return_exceptions=True)
        for member, outcome in zip(remote, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                member.metrics.health_failed(str(outcome))
                logger.warning("backend %s is not answering its health check: %s",
                               member.label, outcome)
                self._changed(member, member.breaker.trip(self._clock()), str(outcome))
            else:
                logger.info("backend %s is up", member.label)

    def _ensure_prober(self) -> None:
        if (self._prober is None or self._prober.done()) and not self._closed:
            self._prober = asyncio.ensure_future(self._probe_loop())

    async def _probe_loop(self) -> None:
        """While some backend is open: its health check when due; passing makes it half-open
        (the next request tries it)."""
        while not self._closed and any(m.breaker.state is BreakerState.OPEN
                                       for m in self.members):
            await asyncio.sleep(PROBE_TICK_S)
            now = self._clock()
            for member in self.members:
                if not member.breaker.check_due(now):
                    continue
                try:
                    if member.remote:
                        await member.generator.health()
                except EngineError as exc:
                    member.breaker.check_failed(self._clock())
                    member.metrics.health_failed(str(exc))
                    continue
                except Exception as exc:  # noqa: BLE001 - a check that breaks counts as down
                    member.breaker.check_failed(self._clock())
                    member.metrics.health_failed(f"{type(exc).__name__}: {exc}")
                    continue
                self._changed(member, member.breaker.check_passed(), "its health check passed")

    def _changed(self, member: Member, changed: bool, why: str) -> None:
        if not changed:
            return
        state = member.breaker.state
        active = self.active()
        if state is BreakerState.OPEN:
            message = f"{member.label} is down ({why}); answering with {active.label}"
        elif state is BreakerState.HALF_OPEN:
            message = f"{member.label} answers its health check again; trying it"
        else:
            message = f"{member.label} is serving again"
        logger.warning("backends: %s", message)
        member.metrics.state_changed(state.value)
        if state is BreakerState.OPEN:
            self._ensure_prober()
        if self.on_change is not None:
            try:
                self.on_change({"backend": member.label, "state": state.value,
                                "active": active.label, "message": message})
            except Exception:  # noqa: BLE001 - a report must not fail a request
                logger.exception("backend change report failed")

    # --- the rest of the seam --------------------------------------------------------------

    def _each(self, name: str, *args: Any) -> None:
        for member in self.members:
            getattr(member.generator, name)(*args)

    def forget(self, cache_key: str) -> None:
        self._each("forget", cache_key)

    def prefetch(self, prompt_ids: Sequence[int], cache_key: str | None,
                 delay_s: float = 0.0) -> None:
        self.active().generator.prefetch(prompt_ids, cache_key, delay_s)

    def cancel_prefetch(self, cache_key: str | None = None) -> None:
        self._each("cancel_prefetch", cache_key)

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None:
        self._each("configure", max_batch_size, batch_timeout_s)

    def stats(self) -> dict[str, Any]:
        return self.active().generator.stats()  # type: ignore[no-any-return]

    def backends(self) -> list[dict[str, Any]]:
        """Each backend's state and figures, for ``pingti/status``."""
        active = self.active()
        return [{"name": m.label, "type": m.spec.type.value, "url": m.spec.url or None,
                 "state": m.breaker.state.value, "active": m is active,
                 **m.metrics.summary(), "queueDepth": queue_depth(m.generator.stats())}
                for m in self.members]

    def close(self) -> None:
        """Any thread (a reload closes it from the worker): the prober stops at its next tick
        (``_closed``), or at once when called on the event loop."""
        self._closed = True
        prober = self._prober
        if prober is not None and not prober.done():
            loop = prober.get_loop()
            if not loop.is_closed():
                loop.call_soon_threadsafe(prober.cancel)
        self._each("close")


def queue_depth(stats: dict[str, Any]) -> int:
    """Requests waiting or decoding, from a generator's stats (local: queued + running)."""
    if "queueDepth" in stats:
        return int(stats["queueDepth"])
    return int(stats.get("queued", 0)) + int(stats.get("running", 0))


# --- building the list -----------------------------------------------------------------------

def load_generator(config: Config, report: Callable[[str], None]) -> Loaded:
    """The generator for the ``backends`` setting (unset: the local model alone), with the
    syntax constraint's factory for its tokenizer. Remote engines use the local model's
    tokenizer; without a local backend only its vocabulary is read (a fraction of a second)."""
    from grammar_constraints.factory import ConstraintFactory
    from server.backends.base import detect_fim
    from server.generation import fim_token_ids
    from server.remote import RemoteGenerator
    from server.service import Loaded, load_local

    specs = config.backends or (BackendSpec(EngineType.LOCAL),)
    local: Loaded | None = None
    if any(s.type is EngineType.LOCAL for s in specs):
        local = load_local(config, report)
        tokenizer = local.generator.tokenizer
        base = local.generator.capabilities
        model_name = local.generator.info.name
        constraints = local.constraints
    else:
        from server.backends.llamacpp_backend import GgufVocab
        from server.model_assets import ModelFormat, cache_root, resolve_model

        source = resolve_model(config.model, cache_root(config.cache_dir), report)
        if source.format is not ModelFormat.GGUF:
            raise ModelError("remote engines need the prompt's tokenizer from a local .gguf "
                             f"model (the `model` setting), not {source.path}")
        report(f"Reading the tokenizer of {source.display_name}")
        vocab, _handle = GgufVocab.load(source.path, cache_root(config.cache_dir))
        stop_ids, specials = vocab.specials()
        fim = detect_fim(set(specials))
        tokenizer = _VocabTokenizer(vocab, _handle)
        fim_ids = fim_token_ids(fim, tokenizer)
        base = GeneratorCapabilities(
            logits_processors=False, logprobs=True, fim=fim if fim_ids else None,
            fim_ids=fim_ids, stop_ids=stop_ids,
            special_tokens=specials, context_window=config.context_window)
        model_name = source.display_name
        constraints = ConstraintFactory(vocab.decode, vocab.n_vocab, stop_ids)
    members = []
    for spec in specs:
        gen: Any = local.generator if spec.type is EngineType.LOCAL and local is not None \
            else RemoteGenerator(spec, tokenizer, base, model_name)
        members.append(Member(spec, gen, CircuitBreaker(), BackendMetrics(spec.label)))
    if len(specs) > 1 or specs[0].type is not EngineType.LOCAL:
        report("Backends: " + ", ".join(s.label for s in specs))
    return Loaded(FailoverGenerator(members, tokenizer), constraints)


class _VocabTokenizer:
    """A GGUF vocabulary as the prompt's tokenizer (keeps its model handle alive)."""

    def __init__(self, vocab: Any, handle: Any) -> None:
        self._vocab, self._handle = vocab, handle
        self.vocab_size = vocab.n_vocab

    def encode(self, text: str, special: bool = False) -> list[int]:
        return self._vocab.encode(text, special)  # type: ignore[no-any-return]

    def decode(self, ids: Sequence[int]) -> str:
        return self._vocab.decode(ids)  # type: ignore[no-any-return]

    def token_id(self, token: str) -> int | None:
        return self._vocab.token_id(token)  # type: ignore[no-any-return]
