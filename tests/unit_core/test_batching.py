"""The model thread's continuous-batching scheduler (server/batching.py) over the FakeBackend."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future

import numpy as np
import pytest

from server.backends.base import CancelToken, FinishReason, GenerationRequest, GenerationResult
from server.backends.decoding import SeqState
from server.backends.fake import FakeBackend
from server.batching import BatchScheduler, SchedulerClosed

DELAY = 0.01  # seconds per decoding step (however many sequences it advances)
TIMEOUT = 10.0
THREAD_PREFIX = "pingti-test-sched"

SHORT = "abcXYZ abc"  # the fake continues "XYZ abc", then end of text: 8 tokens


def long_doc(word: str) -> str:
    """The fake copies ``word * 50`` (and more) after this prompt: as long as max_new_tokens allows."""
    return "x = " + word * 50 + "\nx = "


def request(fb: FakeBackend, text: str, max_new: int, **kw: object) -> GenerationRequest:
    return GenerationRequest(prompt_ids=fb.encode(text), max_new_tokens=max_new, **kw)  # type: ignore[arg-type]


def solo(req: GenerationRequest) -> GenerationResult:
    """The same request run alone on a fresh backend."""
    return FakeBackend().generate(req, CancelToken())


def same(a: GenerationResult, b: GenerationResult) -> bool:
    return (a.token_ids, a.text, a.finish) == (b.token_ids, b.text, b.finish)


def wait_until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.002)


def record_prefills(fb: FakeBackend) -> list[int]:
    """Wrap the runner's prefill to record each admission's batch size."""
    runner = fb.decoder.runner
    sizes: list[int] = []
    orig = runner.prefill

    def prefill(seqs: Sequence[SeqState]) -> list[np.ndarray]:
        sizes.append(len(seqs))
        return orig(seqs)

    runner.prefill = prefill  # type: ignore[method-assign]
    return sizes


Make = Callable[..., tuple[BatchScheduler, FakeBackend]]


@pytest.fixture
def make() -> Iterator[Make]:
    made: list[BatchScheduler] = []

    def factory(token_delay: float = DELAY, **kw: object) -> tuple[BatchScheduler, FakeBackend]:
        fb = FakeBackend(token_delay=token_delay)
        sched = BatchScheduler(fb.decoder, name=f"{THREAD_PREFIX}-{len(made)}", **kw)  # type: ignore[arg-type]
        made.append(sched)
        return sched, fb

    yield factory
    for sched in made:
        sched.close(timeout=TIMEOUT)
    alive = [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX)]
    assert alive == [], f"model threads still running: {alive}"


def idle(sched: BatchScheduler) -> Callable[[], bool]:
    return lambda: sched.stats()["running"] == 0 and sched.stats()["queued"] == 0


# --- batching ------------------------------------------------------------------------------------

def test_concurrent_submits_decode_together(make: Make) -> None:
    sched, fb = make(max_batch_size=4)
    reqs = [request(fb, long_doc(w), 15) for w in ("abcdefghij", "klmnopqrst", "0123456789", "ABCDEFGHIJ")]
    reqs.append(request(fb, SHORT, 50))
    futures: list[Future[GenerationResult] | None] = [None] * len(reqs)
    barrier = threading.Barrier(len(reqs))

    def worker(i: int) -> None:
        barrier.wait(TIMEOUT)
        futures[i] = sched.submit(reqs[i], CancelToken())

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(reqs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    results = [f.result(timeout=TIMEOUT) for f in futures if f is not None]
    assert len(results) == len(reqs)
    assert sched.stats()["maxWidth"] >= 2
    assert sched.stats()["maxWidth"] <= 4
    for r, q in zip(results, reqs, strict=True):
        assert same(r, solo(q))
    assert results[-1].text == "XYZ abc" and results[-1].finish is FinishReason.EOS
    assert all(len(r.token_ids) == 15 and r.finish is FinishReason.LENGTH for r in results[:4])
    wait_until(idle(sched))


def test_max_batch_size_one_runs_in_arrival_order(make: Make) -> None:
    sched, fb = make(max_batch_size=1)
    reqs = [request(fb, long_doc(w), 6) for w in ("abcdefghij", "klmnopqrst", "0123456789")]
    reqs.append(request(fb, SHORT, 50))
    order: list[int] = []
    futures = [sched.submit(q, CancelToken()) for q in reqs]
    for i, f in enumerate(futures):
        f.add_done_callback(lambda _f, i=i: order.append(i))
    results = [f.result(timeout=TIMEOUT) for f in futures]
    assert sched.stats()["maxWidth"] == 1
    assert order == [0, 1, 2, 3]
    for r, q in zip(results, reqs, strict=True):
        assert same(r, solo(q))


def test_new_request_joins_without_waiting_for_the_long_one(make: Make) -> None:
    sched, fb = make(max_batch_size=4)
    long_req = request(fb, long_doc("abcdefghij"), 40)
    long_f = sched.submit(long_req, CancelToken())
    wait_until(lambda: fb.steps_run >= 3)
    short_req = request(fb, SHORT, 50)
    short_f = sched.submit(short_req, CancelToken())
    short = short_f.result(timeout=TIMEOUT)
    assert not long_f.done(), "the short request waited for the long one"
    assert same(short, solo(short_req))
    long = long_f.result(timeout=TIMEOUT)
    assert same(long, solo(long_req))
    assert sched.stats()["maxWidth"] == 2
    # The short one needed only a few steps of its own, not the long one's 40.
    assert short.decode_s < long.decode_s


# --- cancellation --------------------------------------------------------------------------------

def test_queued_then_cancelled_request_never_reaches_the_model(make: Make) -> None:
    sched, fb = make(max_batch_size=1)
    runner = fb.decoder.runner
    long_req = request(fb, long_doc("abcdefghij"), 300)
    long_cancel = CancelToken()
    long_f = sched.submit(long_req, long_cancel)
    wait_until(lambda: fb.steps_run >= 2)
    queued_cancel = CancelToken()
    queued_f = sched.submit(request(fb, SHORT, 50), queued_cancel)
    wait_until(lambda: sched.stats()["queued"] == 1)
    queued_cancel.cancel()
    long_cancel.cancel()
    queued = queued_f.result(timeout=TIMEOUT)
    assert queued.finish is FinishReason.CANCELLED
    assert queued.token_ids == [] and queued.text == ""
    assert runner.prefilled_tokens == len(long_req.prompt_ids)  # only the long prompt was evaluated
    long = long_f.result(timeout=TIMEOUT)
    assert long.finish is FinishReason.CANCELLED and len(long.token_ids) < 300


def test_cancel_mid_run_stops_within_a_few_steps(make: Make) -> None:
    sched, fb = make()
    req = request(fb, long_doc("abcdefghij"), 300)
    cancel = CancelToken()
    fut = sched.submit(req, cancel)
    wait_until(lambda: fb.steps_run >= 5)
    at_cancel = fb.steps_run
    cancel.cancel()
    result = fut.result(timeout=TIMEOUT)
    assert result.finish is FinishReason.CANCELLED
    assert fb.steps_run - at_cancel <= 2
    assert len(result.token_ids) <= at_cancel + 3
    prefix = dataclasses.replace(req, max_new_tokens=len(result.token_ids))
    assert result.token_ids == solo(prefix).token_ids
    wait_until(idle(sched))
    steps = fb.steps_run
    time.sleep(5 * DELAY)
    assert fb.steps_run == steps  # the model thread went idle


def test_cancelling_one_leaves_the_others_running(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.3)
    keep_req = request(fb, long_doc("klmnopqrst"), 30)
    cancel = CancelToken()
    drop_f = sched.submit(request(fb, long_doc("abcdefghij"), 300), cancel)
    keep_f = sched.submit(keep_req, CancelToken())
    wait_until(lambda: fb.steps_run >= 3)
    cancel.cancel()
    assert drop_f.result(timeout=TIMEOUT).finish is FinishReason.CANCELLED
    assert same(keep_f.result(timeout=TIMEOUT), solo(keep_req))


def test_future_cancelled_by_waiter_does_not_break_the_thread(make: Make) -> None:
    sched, fb = make()
    fut = sched.submit(request(fb, long_doc("abcdefghij"), 10), CancelToken())
    assert fut.cancel()
    wait_until(idle(sched))
    req = request(fb, SHORT, 50)
    assert same(sched.submit(req, CancelToken()).result(timeout=TIMEOUT), solo(req))


# --- errors --------------------------------------------------------------------------------------

def test_processor_error_fails_only_its_own_future(make: Make) -> None:
    sched, fb = make(max_batch_size=3, batch_timeout_s=0.3)
    boom = RuntimeError("constraint broke")
    calls = 0

    def explode_on_third(generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise boom
        return logits

    good = [request(fb, long_doc("abcdefghij"), 12), request(fb, SHORT, 50)]
    bad_f = sched.submit(request(fb, long_doc("klmnopqrst"), 12, logits_processors=(explode_on_third,)),
                         CancelToken())
    good_f = [sched.submit(q, CancelToken()) for q in good]
    assert bad_f.exception(timeout=TIMEOUT) is boom
    for f, q in zip(good_f, good, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sched.stats()["maxWidth"] == 3
    later = request(fb, long_doc("0123456789"), 5)
    assert same(sched.submit(later, CancelToken()).result(timeout=TIMEOUT), solo(later))


def test_prefill_error_fails_that_admission_only(make: Make) -> None:
    sched, fb = make(max_batch_size=4, batch_timeout_s=0.0)
    runner = fb.decoder.runner
    orig = runner.prefill
    failed = threading.Event()

    def prefill(seqs: Sequence[SeqState]) -> list[np.ndarray]:
        if not failed.is_set() and any(s.request.cache_key == "bad" for s in seqs):
            failed.set()
            raise ValueError("prompt does not fit")
        return orig(seqs)

    runner.prefill = prefill  # type: ignore[method-assign]
    running_req = request(fb, long_doc("abcdefghij"), 40)
    running_f = sched.submit(running_req, CancelToken())
    wait_until(lambda: fb.steps_run >= 2)
    bad_f = sched.submit(request(fb, SHORT, 50, cache_key="bad"), CancelToken())
    exc = bad_f.exception(timeout=TIMEOUT)
    assert isinstance(exc, ValueError) and str(exc) == "prompt does not fit"
    assert not running_f.done()
    assert same(running_f.result(timeout=TIMEOUT), solo(running_req))
    again = request(fb, SHORT, 50, cache_key="bad")
    assert same(sched.submit(again, CancelToken()).result(timeout=TIMEOUT), solo(again))


def test_prefill_error_fails_every_request_of_the_batch(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.3)
    runner = fb.decoder.runner
    orig = runner.prefill
    sizes: list[int] = []

    def prefill(seqs: Sequence[SeqState]) -> list[np.ndarray]:
        sizes.append(len(seqs))
        if len(sizes) == 1:
            raise ValueError("once")
        return orig(seqs)

    runner.prefill = prefill  # type: ignore[method-assign]
    futures = [sched.submit(request(fb, t, 50), CancelToken()) for t in (SHORT, long_doc("abcdefghij"))]
    for f in futures:
        assert isinstance(f.exception(timeout=TIMEOUT), ValueError)
    assert sizes == [2]
    later = request(fb, SHORT, 50)
    assert same(sched.submit(later, CancelToken()).result(timeout=TIMEOUT), solo(later))


def test_step_error_fails_running_requests_and_resets(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.3)
    runner = fb.decoder.runner
    orig_step, orig_reset = runner.step, runner.reset
    resets = 0
    boom = RuntimeError("device lost")

    def step(seqs: Sequence[SeqState], tokens: Sequence[int]) -> list[np.ndarray]:
        if fb.steps_run == 3 and resets == 0:
            raise boom
        return orig_step(seqs, tokens)

    def reset() -> None:
        nonlocal resets
        resets += 1
        orig_reset()

    runner.step = step  # type: ignore[method-assign]
    runner.reset = reset  # type: ignore[method-assign]
    futures = [sched.submit(request(fb, long_doc(w), 30), CancelToken())
               for w in ("abcdefghij", "klmnopqrst")]
    for f in futures:
        assert f.exception(timeout=TIMEOUT) is boom
    assert resets == 1
    assert sched.stats()["running"] == 0
    later = [request(fb, SHORT, 50), request(fb, long_doc("0123456789"), 10)]
    results = [sched.submit(q, CancelToken()) for q in later]
    for f, q in zip(results, later, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))


# --- close, configure, batch timeout -------------------------------------------------------------

def thread_alive(name: str) -> bool:
    return any(t.name == name and t.is_alive() for t in threading.enumerate())


def test_close_cancels_work_and_ends_the_thread(make: Make) -> None:
    sched, fb = make(max_batch_size=1)
    name = f"{THREAD_PREFIX}-0"
    assert thread_alive(name)
    running_f = sched.submit(request(fb, long_doc("abcdefghij"), 300), CancelToken())
    wait_until(lambda: fb.steps_run >= 2)
    queued_f = sched.submit(request(fb, SHORT, 50), CancelToken())
    wait_until(lambda: sched.stats()["queued"] == 1)
    t0 = time.monotonic()
    sched.close(timeout=TIMEOUT)
    assert time.monotonic() - t0 < 2.0
    assert not thread_alive(name)
    running = running_f.result(timeout=0)
    assert running.finish is FinishReason.CANCELLED and 0 < len(running.token_ids) < 300
    queued = queued_f.result(timeout=0)
    assert queued.finish is FinishReason.CANCELLED and queued.token_ids == []
    after = sched.submit(request(fb, SHORT, 50), CancelToken())
    assert isinstance(after.exception(timeout=0), SchedulerClosed)
    sched.close()  # twice is harmless


def test_close_idle_scheduler(make: Make) -> None:
    sched, _ = make(batch_timeout_s=1.0)
    sched.close(timeout=TIMEOUT)
    assert not thread_alive(f"{THREAD_PREFIX}-0")


def test_close_while_waiting_for_a_batch(make: Make) -> None:
    sched, fb = make(max_batch_size=4, batch_timeout_s=5.0)
    fut = sched.submit(request(fb, SHORT, 50), CancelToken())
    time.sleep(0.05)  # the thread is waiting for more requests to batch with
    t0 = time.monotonic()
    sched.close(timeout=TIMEOUT)
    assert time.monotonic() - t0 < 2.0
    result = fut.result(timeout=0)
    assert result.finish is FinishReason.CANCELLED and result.token_ids == []
    assert fb.decoder.runner.prefilled_tokens == 0


def test_close_during_admission_cancels_the_request(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.0)
    runner = fb.decoder.runner
    orig = runner.prefill
    entered, release = threading.Event(), threading.Event()

    def slow_prefill(seqs: Sequence[SeqState]) -> list[np.ndarray]:
        entered.set()
        release.wait(TIMEOUT)
        return orig(seqs)

    runner.prefill = slow_prefill  # type: ignore[method-assign]
    fut = sched.submit(request(fb, long_doc("abcdefghij"), 60), CancelToken())
    assert entered.wait(TIMEOUT)
    timer = threading.Timer(0.05, release.set)
    timer.start()
    try:
        sched.close(timeout=0.3)
        result = fut.result(timeout=TIMEOUT)
    finally:
        release.set()
        timer.cancel()
    assert result.finish is FinishReason.CANCELLED


def test_configure_changes_batch_size_at_run_time(make: Make) -> None:
    sched, fb = make(max_batch_size=1, batch_timeout_s=0.0)
    sizes = record_prefills(fb)
    first = [request(fb, long_doc(w), 8) for w in ("abcdefghij", "klmnopqrst")]
    for f, q in zip([sched.submit(q, CancelToken()) for q in first], first, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sched.stats()["maxWidth"] == 1 and sizes == [1, 1]
    sched.configure(3, 0.3)
    assert sched.stats()["maxBatchSize"] == 3 and sched.batch_timeout_s == 0.3
    second = [request(fb, long_doc(w), 8) for w in ("0123456789", "ABCDEFGHIJ", "KLMNOPQRST")]
    for f, q in zip([sched.submit(q, CancelToken()) for q in second], second, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sizes == [1, 1, 3]
    assert sched.stats()["maxWidth"] == 3
    sched.configure(0, -1.0)  # clamped
    assert sched.max_batch_size == 1 and sched.batch_timeout_s == 0.0


def test_capacity_is_bounded_by_the_runner(make: Make) -> None:
    sched, fb = make(max_batch_size=8, batch_timeout_s=0.3)
    fb.decoder.runner.capacity = 2  # type: ignore[attr-defined]
    assert sched.capacity == 2
    sizes = record_prefills(fb)
    reqs = [request(fb, long_doc(w), 6) for w in ("abcdefghij", "klmnopqrst", "0123456789")]
    for f, q in zip([sched.submit(q, CancelToken()) for q in reqs], reqs, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sched.stats()["maxWidth"] == 2
    assert max(sizes) == 2


def test_batch_timeout_gathers_requests_into_the_first_batch(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.3)
    sizes = record_prefills(fb)
    reqs = [request(fb, long_doc("abcdefghij"), 10), request(fb, SHORT, 50)]
    f1 = sched.submit(reqs[0], CancelToken())
    time.sleep(0.05)
    assert fb.decoder.runner.prefilled_tokens == 0  # still waiting for company
    f2 = sched.submit(reqs[1], CancelToken())
    for f, q in zip([f1, f2], reqs, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sizes == [2]
    assert sched.stats()["maxWidth"] == 2


def test_without_batch_timeout_the_first_request_starts_alone(make: Make) -> None:
    sched, fb = make(max_batch_size=2, batch_timeout_s=0.0)
    sizes = record_prefills(fb)
    reqs = [request(fb, long_doc("abcdefghij"), 20), request(fb, SHORT, 50)]
    f1 = sched.submit(reqs[0], CancelToken())
    time.sleep(0.05)
    f2 = sched.submit(reqs[1], CancelToken())
    for f, q in zip([f1, f2], reqs, strict=True):
        assert same(f.result(timeout=TIMEOUT), solo(q))
    assert sizes == [1, 1]
    assert sched.stats()["maxWidth"] == 2  # the second joined the running first one


def test_stats(make: Make) -> None:
    sched, fb = make(max_batch_size=3)
    stats = sched.stats()
    assert stats["maxBatchSize"] == 3 and stats["steps"] == 0 and stats["meanWidth"] == 0.0
    req = request(fb, SHORT, 50)
    sched.submit(req, CancelToken()).result(timeout=TIMEOUT)
    stats = sched.stats()
    assert stats["steps"] == fb.steps_run == len(solo(req).token_ids) - 1
    assert stats["meanWidth"] == 1.0 and stats["running"] == 0 and stats["queued"] == 0


# --- prefetch -------------------------------------------------------------------------------------

def prefetch_done(sched: BatchScheduler) -> Callable[[], bool]:
    return lambda: sched.stats()["prefetch"]["completed"] + sched.stats()["prefetch"]["failed"] \
        >= sched.stats()["prefetch"]["requested"] - sched.stats()["prefetch"]["superseded"]


def test_prefetch_fills_the_cache_in_chunks_and_the_request_reuses_it(make: Make) -> None:
    from server.batching import PREFETCH_CHUNK_TOKENS

    sched, fb = make()
    req = dataclasses.replace(request(fb, long_doc("ab") * 2, 5), cache_key="doc")
    sched.prefetch(list(req.prompt_ids), "doc")
    wait_until(prefetch_done(sched))
    stats = sched.stats()["prefetch"]
    n = len(req.prompt_ids)
    assert stats["completed"] == 1 and stats["tokens"] == n
    assert stats["chunks"] == -(-n // PREFETCH_CHUNK_TOKENS) and stats["running"] == 0
    res = sched.submit(req, CancelToken()).result(timeout=TIMEOUT)
    assert res.extra["reused_tokens"] == n - 1  # only the last token is evaluated again
    assert same(res, solo(req))  # prefetch changes when, never what


def test_a_request_waits_for_one_prefetch_chunk_at_most(make: Make) -> None:
    # Each prefetch chunk takes DELAY * 10 here; the request must start after at most one.
    sched, fb = make(token_delay=DELAY * 10)
    big = fb.encode("y = 1\n" * 400)  # 2,400 tokens: 50 chunks, 5 s if it ran to the end
    sched.prefetch(big, "other")
    wait_until(lambda: sched.stats()["prefetch"]["chunks"] >= 1)
    t0 = time.monotonic()
    res = sched.submit(request(fb, SHORT, 3), CancelToken()).result(timeout=TIMEOUT)
    waited = time.monotonic() - t0
    assert res.token_ids and waited < DELAY * 10 * 2 + 3 * DELAY * 10 + 0.5
    assert sched.stats()["prefetch"]["completed"] == 0  # not finished: preempted, not waited for


def test_only_the_latest_prefetch_counts(make: Make) -> None:
    # A burst of 20 file switches: the pending prefetch is replaced each time, at most one
    # chunk runs at once, and what ends up cached is the last file's prompt.
    sched, fb = make(token_delay=DELAY * 5)
    runner = fb.decoder.runner
    running_max = 0
    orig = runner.warm
    active = 0
    lock = threading.Lock()

    def warm(prompt: list[int], key: str | None, max_tokens: int) -> int:
        nonlocal active, running_max
        with lock:
            active += 1
            running_max = max(running_max, active)
        try:
            return orig(prompt, key, max_tokens)
        finally:
            with lock:
                active -= 1

    runner.warm = warm  # type: ignore[method-assign]
    for i in range(20):
        sched.prefetch(fb.encode(f"# file {i}\n" + "z = 2\n" * 100), f"file{i}")
        time.sleep(0.005)
    wait_until(prefetch_done(sched))
    stats = sched.stats()["prefetch"]
    assert running_max == 1
    assert stats["requested"] == 20 and stats["superseded"] + stats["completed"] == 20
    assert stats["completed"] >= 1 and stats["superseded"] >= 15
    assert runner.cached["file19"] == fb.encode("# file 19\n" + "z = 2\n" * 100)


def test_a_failing_prefetch_is_dropped_and_the_thread_serves_on(make: Make) -> None:
    sched, fb = make()

    def broken(prompt: list[int], key: str | None, max_tokens: int) -> int:
        raise RuntimeError("llama_decode failed")

    fb.decoder.runner.warm = broken  # type: ignore[method-assign]
    sched.prefetch(fb.encode("a = 1\n"), "doc")
    wait_until(lambda: sched.stats()["prefetch"]["failed"] == 1)
    res = sched.submit(request(fb, SHORT, 3), CancelToken()).result(timeout=TIMEOUT)
    assert res.token_ids


def test_prefetch_without_a_warm_runner_is_a_no_op(make: Make) -> None:
    sched, fb = make()
    fb.decoder.runner.warm = None  # type: ignore[assignment]
    assert not sched.can_prefetch
    sched.prefetch(fb.encode("a = 1\n"), "doc")
    assert sched.stats()["prefetch"]["requested"] == 0


def test_a_request_of_the_same_document_drops_its_pending_prefetch(make: Make) -> None:
    sched, fb = make(token_delay=DELAY * 5)
    sched.prefetch(fb.encode("y = 1\n" * 400), "doc")  # 50 chunks
    wait_until(lambda: sched.stats()["prefetch"]["chunks"] >= 1)
    req = dataclasses.replace(request(fb, SHORT, 3), cache_key="doc")
    sched.submit(req, CancelToken()).result(timeout=TIMEOUT)
    time.sleep(DELAY * 20)
    stats = sched.stats()["prefetch"]
    assert stats["superseded"] == 1 and stats["completed"] == 0
    assert stats["chunks"] <= 3  # it did not resume after the request
    assert fb.decoder.runner.cached["doc"] == req.prompt_ids  # the request's prompt stays


def test_cancel_prefetch_drops_only_that_documents_prefetch(make: Make) -> None:
    sched, fb = make(token_delay=DELAY * 5)
    sched.prefetch(fb.encode("y = 1\n" * 400), "doc")
    wait_until(lambda: sched.stats()["prefetch"]["chunks"] >= 1)
    sched.cancel_prefetch("other")  # another document's edit: no effect
    assert sched.stats()["prefetch"]["superseded"] == 0
    sched.cancel_prefetch("doc")
    time.sleep(DELAY * 20)
    stats = sched.stats()["prefetch"]
    assert stats["superseded"] == 1 and stats["completed"] == 0 and stats["chunks"] <= 3


def test_a_delayed_prefetch_waits_for_its_time_and_requests_go_first(make: Make) -> None:
    sched, fb = make()
    prompt = fb.encode("z = 3\n" * 20)
    sched.prefetch(prompt, "doc", delay_s=0.3)
    time.sleep(0.15)
    assert sched.stats()["prefetch"]["chunks"] == 0  # not yet
    sched.submit(request(fb, SHORT, 3), CancelToken()).result(timeout=TIMEOUT)  # not held up
    assert sched.stats()["prefetch"]["chunks"] == 0
    wait_until(prefetch_done(sched))
    assert sched.stats()["prefetch"]["completed"] == 1


def test_a_chore_queued_before_a_request_runs_before_it(make: Make) -> None:
    # A document closed (its cache forgotten) and asked again at once: the forget must reach
    # the model before the new request's prefill, or the request finds the freed cache. The
    # scheduler's lock is held while both arrive, so the model thread wakes to see both.
    sched, fb = make()
    req = dataclasses.replace(request(fb, SHORT, 4), cache_key="doc")
    sched.submit(req, CancelToken()).result(timeout=TIMEOUT)
    wait_until(idle(sched))
    with sched._cond:
        sched.forget("doc")
        again = sched.submit(req, CancelToken())
    res = again.result(timeout=TIMEOUT)
    assert res.extra["reused_tokens"] == 0
