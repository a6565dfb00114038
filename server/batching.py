"""Dynamic (continuous) batching: the one thread that runs the model.

Requests come from the event loop (completions for several documents, the n candidates of one
request) as :meth:`BatchScheduler.submit` calls and get a :class:`concurrent.futures.Future`.
The model thread keeps a :class:`~server.backends.decoding.BatchDecoder` busy:

- when it is idle and a request arrives, it waits up to ``batch_timeout`` for more (so requests
  sent together are prefilled together), then admits up to ``max_batch_size``;
- while sequences are decoding, a new request joins at the next step without waiting, and a
  finished sequence leaves (its future resolves) at once; nothing waits for the longest one;
- a cancelled request stops at its next step; one queued and cancelled never reaches the model;
- an error in one admission fails only those requests; an error during a step fails the
  sequences of that step (the caches are reset) and the thread keeps serving.

With ``max_batch_size`` 1 this is one request at a time, in arrival order.

**Prefetch** (:meth:`BatchScheduler.prefetch`): while the model has nothing else to do, it
evaluates a prompt a request is expected to use soon (the file the user just opened or moved
to) into the KV cache, one chunk of :data:`PREFETCH_CHUNK_TOKENS` at a time. Between two chunks
the thread looks at its queue first, so a real request waits for one chunk at most (a fraction
of a second), never for the whole prompt; what was evaluated so far stays cached for it. Only
the latest prefetch counts: a new one replaces the pending one (a burst of file switches leaves
one prefetch running, for the file the user ended on).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from server.backends.base import CancelToken, GenerationRequest, GenerationResult
from server.backends.decoding import BatchDecoder, SeqState

logger = logging.getLogger(__name__)


# Tokens per prefetch step: the longest a real request can wait behind a prefetch (about 0.3 s
# at this CPU's prefill speed; BENCHMARKS.md, first suggestion in a file).
PREFETCH_CHUNK_TOKENS = 48


@dataclass(eq=False)
class _Prefetch:
    prompt: list[int]
    cache_key: str | None
    not_before: float = 0.0  # time.monotonic() before which it does not start


@dataclass
class PrefetchStats:
    """What prefetching has cost and done (``pingti/status``, benchmarks and tests)."""

    requested: int = 0
    completed: int = 0  # the whole prompt is cached
    superseded: int = 0  # replaced by a newer one; dropped by its document's edit or request
    failed: int = 0
    chunks: int = 0
    tokens: int = 0  # prompt tokens evaluated by prefetch
    seconds: float = 0.0  # model time spent on them
    running: bool = False

    def as_dict(self) -> dict[str, float]:
        return {"requested": self.requested, "completed": self.completed,
                "superseded": self.superseded, "failed": self.failed, "chunks": self.chunks,
                "tokens": self.tokens, "seconds": round(self.seconds, 3),
                "running": int(self.running)}


@dataclass(eq=False)
class _Job:
    request: GenerationRequest
    cancel: CancelToken
    future: Future[GenerationResult] = field(default_factory=Future)


class SchedulerClosed(RuntimeError):
    """The scheduler was closed (the server is shutting down or the model was reloaded)."""


class BatchScheduler:
    def __init__(self, decoder: BatchDecoder, max_batch_size: int = 4,
                 batch_timeout_s: float = 0.005, name: str = "pingti-model") -> None:
        self.decoder = decoder
        self.max_batch_size = max(1, max_batch_size)
        self.batch_timeout_s = max(0.0, batch_timeout_s)
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._jobs: dict[int, _Job] = {}  # id(SeqState) -> job, for the running sequences
        self._admitting: list[_Job] = []  # taken from the queue, being prefilled
        # Work for the model thread between steps (the decoder is not thread-safe).
        self._chores: deque[Callable[[], None]] = deque()
        self._prefetch: _Prefetch | None = None  # the one pending prefetch (latest wins)
        self.prefetch_stats = PrefetchStats()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None:
        with self._cond:
            self.max_batch_size = max(1, max_batch_size)
            self.batch_timeout_s = max(0.0, batch_timeout_s)

    @property
    def capacity(self) -> int:
        return max(1, min(self.max_batch_size, self.decoder.capacity))

    def stats(self) -> dict[str, Any]:
        """Counters for the status request, benchmarks and tests."""
        d = self.decoder
        return {
            "maxBatchSize": self.max_batch_size,
            "steps": d.steps,
            "maxWidth": d.max_width,
            "meanWidth": round(d.stepped_sequences / d.steps, 3) if d.steps else 0.0,
            "queued": len(self._queue),
            "running": len(d.active),
            "evaluatedPromptTokens": int(getattr(d.runner, "evaluated_tokens", 0)),
            # Speculation (draftTokens): what drafts it (prompt lookup or the draft model's
            # name), drafted tokens checked, and kept.
            "drafter": getattr(d.drafter, "name", "prompt lookup") if d.draft_tokens else None,
            "draftedTokens": d.drafted,
            "acceptedDraftTokens": d.accepted,
            "prefetch": self.prefetch_stats.as_dict(),
        }

    @property
    def can_prefetch(self) -> bool:
        return callable(getattr(self.decoder.runner, "warm", None))

    def prefetch(self, prompt: list[int], cache_key: str | None, delay_s: float = 0.0) -> None:
        """Evaluate ``prompt`` into the KV cache in idle time (see the module doc), starting no
        sooner than ``delay_s`` from now. Replaces a pending prefetch; a chunk already being
        evaluated finishes first."""
        if not prompt or not self.can_prefetch:
            return
        with self._cond:
            if self._closed:
                return
            if self._prefetch is not None:
                self.prefetch_stats.superseded += 1
            self._prefetch = _Prefetch(list(prompt), cache_key,
                                       time.monotonic() + max(0.0, delay_s))
            self.prefetch_stats.requested += 1
            self._cond.notify_all()

    def submit(self, request: GenerationRequest, cancel: CancelToken) -> Future[GenerationResult]:
        job = _Job(request, cancel)
        with self._cond:
            if self._closed:
                _fail(job.future, SchedulerClosed("pingti: the model is not running"))
                return job.future
            self._queue.append(job)
            pending = self._prefetch
            if pending is not None and request.cache_key is not None and \
                    pending.cache_key == request.cache_key:
                # The document's own request evaluates its prompt; a prefetch resumed after it
                # would cut that request's cached tokens back to an older prompt.
                self._prefetch = None
                self.prefetch_stats.superseded += 1
            self._cond.notify_all()
        return job.future

    def forget(self, cache_key: str) -> None:
        """Free the KV cache kept for ``cache_key`` (a closed document), on the model thread
        between two steps."""
        with self._cond:
            if self._closed:
                return
            self._chores.append(lambda: self.decoder.forget(cache_key))
            self._cond.notify_all()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread; queued and running requests are cancelled."""
        with self._cond:
            self._closed = True
            self._prefetch = None
            for job in [*self._queue, *self._admitting]:
                job.cancel.cancel("server shutting down")
            self._cond.notify_all()
            running = list(self._jobs.values())
        for job in running:
            job.cancel.cancel("server shutting down")
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    # --- the model thread -----------------------------------------------------------------

    def _take(self) -> list[_Job] | None:
        """The jobs to admit now ([] if none); None when closed and drained."""
        with self._cond:
            busy = bool(self.decoder.active)
            while not self._queue and not busy and not self._closed and not self._chores:
                if self._prefetch is None:
                    self._cond.wait()
                    continue
                wait = self._prefetch.not_before - time.monotonic()
                if wait <= 0:
                    break  # a prefetch is due
                self._cond.wait(wait)
            if self._closed and not self._queue and not busy:
                return None
            room = self.capacity - len(self.decoder.active)
            if not busy and self._queue and self.batch_timeout_s > 0 and not self._closed:
                deadline = time.monotonic() + self.batch_timeout_s
                while len(self._queue) < room and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
            taken: list[_Job] = []
            while self._queue and len(taken) < room:
                taken.append(self._queue.popleft())
            self._admitting = taken  # close() must reach these too while they are prefilled
            return taken

    def _run_chores(self) -> None:
        while True:
            with self._cond:
                if not self._chores:
                    return
                chore = self._chores.popleft()
            try:
                chore()
            except Exception as exc:  # noqa: BLE001 - housekeeping must not stop the thread
                logger.warning("model-thread chore failed: %s", exc)

    def _loop(self) -> None:
        while True:
            self._run_chores()
            jobs = self._take()
            if jobs is None:
                return
            # A chore may have arrived while _take waited, before these jobs (a document
            # closed, then opened and asked again): it goes first, or the job would find the
            # cache the chore was to free.
            self._run_chores()
            if jobs:
                self._admit(jobs)
            if self.decoder.active:
                self._step()
            elif not jobs:
                self._prefetch_chunk()

    def cancel_prefetch(self, cache_key: str | None = None) -> None:
        """Drop the pending prefetch if it is for ``cache_key`` (its document was edited: the
        prompt it was evaluating is out of date), or whatever is pending when None. A chunk
        already running finishes."""
        with self._cond:
            if self._prefetch is not None and cache_key in (None, self._prefetch.cache_key):
                self._prefetch = None
                self.prefetch_stats.superseded += 1

    def _prefetch_chunk(self) -> None:
        """One chunk of the pending prefetch, if the model has nothing else to do."""
        with self._cond:
            job = self._prefetch
            if job is None or self._queue or self._closed or self.decoder.active or \
                    job.not_before > time.monotonic():
                return
            self.prefetch_stats.running = True
        stats = self.prefetch_stats
        t0 = time.perf_counter()
        runner = self.decoder.runner
        before = int(getattr(runner, "prefetched_tokens", 0))
        try:
            left = runner.warm(job.prompt, job.cache_key,  # type: ignore[attr-defined]
                               PREFETCH_CHUNK_TOKENS)
        except Exception as exc:  # noqa: BLE001 - a prefetch is an optimisation: drop it
            logger.warning("prefetch failed: %s", exc)
            left, failed = -1, True
        else:
            failed = False
        done = int(getattr(runner, "prefetched_tokens", 0)) - before
        if left > 0 and done == 0:
            failed = True  # no progress (no idle KV slot): do not spin on it
        stats.chunks += 1
        stats.seconds += time.perf_counter() - t0
        stats.tokens += done
        with self._cond:
            stats.running = False
            if self._prefetch is job and (left <= 0 or failed):
                self._prefetch = None
                if failed:
                    stats.failed += 1
                else:
                    stats.completed += 1

    def _admit(self, jobs: list[_Job]) -> None:
        try:
            seqs = self.decoder.admit([(j.request, j.cancel) for j in jobs])
        except Exception as exc:  # noqa: BLE001 - the requests fail, the thread serves on
            logger.warning("could not start %d request(s): %s", len(jobs), exc)
            with self._cond:
                self._admitting = []
            for j in jobs:
                _fail(j.future, exc)
            return
        with self._cond:
            for seq, job in zip(seqs, jobs, strict=True):
                if not seq.done:
                    self._jobs[id(seq)] = job
            self._admitting = []
        for seq, job in zip(seqs, jobs, strict=True):
            if seq.done:
                self._resolve(seq, job)

    def _step(self) -> None:
        try:
            finished = self.decoder.step()
        except Exception as exc:  # noqa: BLE001
            logger.warning("decoding step failed: %s", exc)
            for seq in self.decoder.abort(exc):
                job = self._jobs.pop(id(seq), None)
                if job is not None:
                    _fail(job.future, exc)
            return
        for seq in finished:
            job = self._jobs.pop(id(seq), None)
            if job is not None:
                self._resolve(seq, job)

    def _resolve(self, seq: SeqState, job: _Job) -> None:
        try:
            result = self.decoder.result(seq)
        except Exception as exc:  # noqa: BLE001 - this request's own processor failed
            _fail(job.future, exc)
            return
        try:
            if not job.future.done():
                job.future.set_result(result)
        except Exception:  # noqa: BLE001 - cancelled by the waiting side meanwhile
            pass


def _fail(future: Future[GenerationResult], exc: BaseException) -> None:
    # The waiting side may have given up (cancelled the future) already.
    if not future.done():
        future.set_exception(exc)
