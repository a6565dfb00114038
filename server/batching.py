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
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from server.backends.base import CancelToken, GenerationRequest, GenerationResult
from server.backends.decoding import BatchDecoder, SeqState

logger = logging.getLogger(__name__)


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
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def configure(self, max_batch_size: int, batch_timeout_s: float) -> None:
        with self._cond:
            self.max_batch_size = max(1, max_batch_size)
            self.batch_timeout_s = max(0.0, batch_timeout_s)

    @property
    def capacity(self) -> int:
        return max(1, min(self.max_batch_size, self.decoder.capacity))

    def stats(self) -> dict[str, float]:
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
        }

    def submit(self, request: GenerationRequest, cancel: CancelToken) -> Future[GenerationResult]:
        job = _Job(request, cancel)
        with self._cond:
            if self._closed:
                _fail(job.future, SchedulerClosed("pingti: the model is not running"))
                return job.future
            self._queue.append(job)
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
                self._cond.wait()
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
            if jobs:
                self._admit(jobs)
            if self.decoder.active:
                self._step()

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
