"""The failover list: circuit breaker transitions (pure, and as a property over random event
sequences), retry once on the next backend, never more, answered once, cancellation, health
checks that bring the preferred backend back."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.backends.base import (
    CancelledError,
    CancelToken,
    FinishReason,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
)
from server.config import BackendSpec, EngineType
from server.failover import (
    FAILURES_TO_OPEN,
    BreakerState,
    CircuitBreaker,
    FailoverGenerator,
    Member,
    queue_depth,
)
from server.generation import GeneratorCapabilities
from server.metrics import BackendMetrics, percentile
from server.remote import EngineError, FailureKind

# --- the breaker -----------------------------------------------------------------------------


def test_breaker_opens_after_failures_in_a_row_and_a_success_resets_the_count() -> None:
    b = CircuitBreaker(failures_to_open=2, open_s=1.0, max_open_s=4.0)
    assert not b.failure(0.0) and b.allows()
    assert not b.success()  # closed stays closed
    assert not b.failure(1.0)  # the count started again
    assert b.failure(2.0) and b.state is BreakerState.OPEN and not b.allows()
    assert not b.check_due(2.5) and b.check_due(3.0)


def test_breaker_half_open_closes_on_success_and_reopens_longer_on_failure() -> None:
    b = CircuitBreaker(failures_to_open=1, open_s=1.0, max_open_s=4.0)
    b.failure(0.0)
    assert b.check_passed() and b.state is BreakerState.HALF_OPEN and b.allows()
    assert b.failure(5.0) and b.state is BreakerState.OPEN
    assert b.wait_s == 2.0 and not b.check_due(6.9) and b.check_due(7.0)
    b.check_failed(7.0)
    b.check_failed(11.0)
    assert b.wait_s == 4.0  # capped
    b.check_failed(15.0)
    assert b.wait_s == 4.0
    assert b.check_passed() and b.success() and b.state is BreakerState.CLOSED
    assert b.wait_s == 1.0  # the next outage starts short again


def test_trip_opens_at_once() -> None:
    b = CircuitBreaker()
    assert b.trip(0.0) and b.state is BreakerState.OPEN and not b.trip(0.1)


EVENTS = st.lists(st.sampled_from(["ok", "fail", "pass", "check_fail"]), max_size=60)


@settings(max_examples=300, deadline=None)
@given(EVENTS, st.integers(1, 4))
def test_breaker_property_open_only_after_enough_failures(events: list[str], k: int) -> None:
    """Whatever happens: it opens only on the k-th failure in a row (or a failed trial), a
    success always closes it, a check moves only an open breaker, and the wait stays within
    its bounds."""
    b = CircuitBreaker(failures_to_open=k, open_s=1.0, max_open_s=8.0)
    run = 0
    for t, event in enumerate(events):
        before = b.state
        if event == "ok":
            b.success()
            run = 0
            assert b.state is BreakerState.CLOSED
        elif event == "fail":
            run += 1
            b.failure(float(t))
            if before is BreakerState.CLOSED:
                assert (b.state is BreakerState.OPEN) == (run >= k)
            else:
                assert b.state is BreakerState.OPEN
        elif event == "pass":
            b.check_passed()
            assert b.state is (BreakerState.HALF_OPEN if before is not BreakerState.CLOSED
                               else BreakerState.CLOSED)
        else:
            if before is BreakerState.OPEN:
                b.check_failed(float(t))
            assert b.state is before
        if b.state is BreakerState.CLOSED and before is not BreakerState.CLOSED:
            run = 0
        assert 1.0 <= b.wait_s <= 8.0


# --- the list --------------------------------------------------------------------------------

CAPS = GeneratorCapabilities(False, True, None, None, frozenset(), frozenset(), 4096)


def _result(text: str, finish: FinishReason = FinishReason.EOS) -> GenerationResult:
    return GenerationResult([1] * len(text.split()), text, finish, 5, 0.01, 0.02, [-0.1])


class Scripted:
    """A generator that answers or fails as told, counting calls."""

    def __init__(self, name: str, script: list[Any] | None = None) -> None:
        self.name = name
        self.script = list(script or [])
        self.calls = 0
        self.healthy = True
        self.checks = 0
        self.capabilities = CAPS
        self.info = ModelInfo(name, "openai", name, "remote", "remote", None, frozenset())
        self.tokenizer: Any = None
        self.closed = False

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        self.calls += 1
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, BaseException):
            raise step
        if step == "cancel":
            cancel.cancel("superseded")
            raise EngineError(FailureKind.TRUNCATED, f"{self.name}: cut")
        return [_result(f"from {self.name}") for _ in requests]

    async def health(self) -> None:
        self.checks += 1
        if not self.healthy:
            raise EngineError(FailureKind.CONNECT, f"{self.name}: down")

    def stats(self) -> dict[str, Any]:
        return {"queueDepth": 0}

    def close(self) -> None:
        self.closed = True

    def forget(self, key: str) -> None: ...
    def cancel_prefetch(self, key: str | None = None) -> None: ...
    def configure(self, a: int, b: float) -> None: ...
    def prefetch(self, ids: Any, key: Any, delay_s: float = 0.0) -> None: ...


def _fail(kind: FailureKind = FailureKind.CONNECT) -> EngineError:
    return EngineError(kind, f"refused ({kind.value})")


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _list(*gens: Scripted, clock: Clock | None = None) -> FailoverGenerator:
    members = []
    for i, g in enumerate(gens):
        spec = BackendSpec(EngineType.LOCAL) if g.name == "local" else \
            BackendSpec(EngineType.OPENAI, url=f"http://h{i}:8000/v1", name=g.name)
        members.append(Member(spec, g, CircuitBreaker(), BackendMetrics(spec.label)))
    return FailoverGenerator(members, tokenizer=None, clock=clock or Clock())  # type: ignore


REQ = (GenerationRequest([1, 2, 3], 8),)


async def test_a_failed_request_is_retried_once_on_the_next_and_answered_by_it() -> None:
    gpu, local = Scripted("gpu", [_fail()]), Scripted("local")
    fo = _list(gpu, local)
    events: list[dict[str, Any]] = []
    fo.on_change = events.append
    (res,) = await fo.generate(REQ, CancelToken())
    assert res.text == "from local" and gpu.calls == 1 and local.calls == 1
    assert fo.members[0].breaker.state is BreakerState.CLOSED  # one failure: not yet open
    assert fo.members[0].metrics.errors == {"connect": 1}
    assert fo.members[1].metrics.ok == 1 and events == []


async def test_never_more_than_two_backends_per_request_and_a_clear_error() -> None:
    a, b, c = Scripted("a", [_fail()]), Scripted("b", [_fail(FailureKind.HTTP_5XX)]), \
        Scripted("c")
    fo = _list(a, b, c)
    with pytest.raises(EngineError, match=r"no backend answered: refused \(connect\); refused \(http_5xx\)"):
        await fo.generate(REQ, CancelToken())
    assert (a.calls, b.calls, c.calls) == (1, 1, 0)


async def test_the_circuit_opens_then_requests_skip_the_backend_until_it_checks_healthy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("server.failover.PROBE_TICK_S", 0.01)
    clock = Clock()
    gpu, local = Scripted("gpu", [_fail()] * FAILURES_TO_OPEN), Scripted("local")
    fo = _list(gpu, local, clock=clock)
    events: list[dict[str, Any]] = []
    fo.on_change = events.append
    for _ in range(FAILURES_TO_OPEN):
        await fo.generate(REQ, CancelToken())
    assert fo.members[0].breaker.state is BreakerState.OPEN
    assert events[-1]["state"] == "open" and events[-1]["active"] == "local"
    assert "gpu is down" in events[-1]["message"]
    assert fo.active().label == "local" and fo.info.name == "local"
    await fo.generate(REQ, CancelToken())
    assert gpu.calls == FAILURES_TO_OPEN  # skipped while open: no waiting on it
    gpu.healthy = False
    clock.t = 1.5
    await asyncio.sleep(0.05)  # the check is due and fails: still open, longer wait
    assert gpu.checks >= 1 and fo.members[0].breaker.state is BreakerState.OPEN
    gpu.healthy = True
    clock.t = 10.0
    for _ in range(100):
        if fo.members[0].breaker.state is BreakerState.HALF_OPEN:
            break
        await asyncio.sleep(0.01)
    assert events[-1]["state"] == "half_open"
    (res,) = await fo.generate(REQ, CancelToken())
    assert res.text == "from gpu" and fo.members[0].breaker.state is BreakerState.CLOSED
    assert events[-1]["state"] == "closed" and events[-1]["active"] == "gpu"
    fo.close()
    assert gpu.closed and local.closed


async def test_all_open_still_tries_in_order() -> None:
    gpu, local = Scripted("gpu"), Scripted("local")
    fo = _list(gpu, local)
    for m in fo.members:
        m.breaker.trip(0.0)
    (res,) = await fo.generate(REQ, CancelToken())
    assert res.text == "from gpu"
    fo.close()


async def test_a_request_cancelled_while_failing_is_not_retried() -> None:
    gpu, local = Scripted("gpu", ["cancel"]), Scripted("local")
    fo = _list(gpu, local)
    with pytest.raises(CancelledError):
        await fo.generate(REQ, CancelToken())
    assert local.calls == 0


async def test_local_errors_are_the_requests_own_and_do_not_fail_over() -> None:
    local, gpu = Scripted("local", [MemoryError("oom")]), Scripted("gpu")
    fo = _list(local, gpu)
    with pytest.raises(MemoryError):
        await fo.generate(REQ, CancelToken())
    assert gpu.calls == 0 and fo.members[0].metrics.errors == {"error": 1}


async def test_health_check_at_load_trips_a_dead_engine() -> None:
    gpu, local = Scripted("gpu"), Scripted("local")
    gpu.healthy = False
    fo = _list(gpu, local)
    seen: list[dict[str, Any]] = []
    fo.on_change = seen.append
    await fo.check_all()
    assert fo.active().label == "local" and seen[0]["state"] == "open"
    assert fo.backends()[0]["state"] == "open" and fo.backends()[1]["active"]
    fo.close()


async def test_status_rows_count_every_request_once() -> None:
    gpu, local = Scripted("gpu", [_fail(), "ok", _fail(FailureKind.TIMEOUT)]), Scripted("local")
    fo = _list(gpu, local)
    for _ in range(3):
        await fo.generate(REQ, CancelToken())
    rows = {r["name"]: r for r in fo.backends()}
    assert rows["gpu"]["requests"] == 3 and rows["gpu"]["answered"] == 1
    assert rows["gpu"]["errors"] == {"connect": 1, "timeout": 1}
    assert rows["local"]["answered"] == 2
    answered = sum(r["answered"] for r in rows.values())
    assert answered == 3  # each request answered once
    assert rows["gpu"]["latencyP50S"] is not None and rows["gpu"]["lastError"]
    fo.close()


def test_percentile_and_queue_depth() -> None:
    assert percentile([], 0.5) is None
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 0.99) == 99.0
    assert queue_depth({"queued": 2, "running": 1}) == 3
    assert queue_depth({"queueDepth": 5}) == 5


class Cancelling(Scripted):
    """Answers CANCELLED (the user typed on) when the script says 'cancelled'."""

    async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                       ) -> list[GenerationResult]:
        if self.script and self.script[0] == "cancelled":
            self.script.pop(0)
            self.calls += 1
            return [_result("", FinishReason.CANCELLED) for _ in requests]
        return await super().generate(requests, cancel)


async def test_cancelled_requests_say_nothing_about_the_backend() -> None:
    """A hung engine and a user who keeps typing: the failures between cancelled requests
    still open the circuit, and a cancelled trial does not close it."""
    gpu = Cancelling("gpu", [_fail(FailureKind.TIMEOUT), "cancelled", _fail(FailureKind.TIMEOUT)])
    fo = _list(gpu, Scripted("local"))
    for _ in range(3):
        await fo.generate(REQ, CancelToken())
    breaker = fo.members[0].breaker
    assert breaker.state is BreakerState.OPEN
    assert fo.members[0].metrics.cancelled_n == 1
    breaker.check_passed()
    gpu.script = ["cancelled"]
    await fo.generate(REQ, CancelToken())
    assert breaker.state is BreakerState.HALF_OPEN and breaker.allows()  # trial may run again
    fo.close()


async def test_half_open_lets_one_trial_through_at_a_time() -> None:
    release = asyncio.Event()

    class Slow(Scripted):
        async def generate(self, requests: Sequence[GenerationRequest], cancel: CancelToken
                           ) -> list[GenerationResult]:
            self.calls += 1
            await release.wait()
            return [_result("from gpu") for _ in requests]

    gpu, local = Slow("gpu"), Scripted("local")
    fo = _list(gpu, local)
    fo.members[0].breaker.trip(0.0)
    fo.members[0].breaker.check_passed()
    trial = asyncio.ensure_future(fo.generate(REQ, CancelToken()))
    await asyncio.sleep(0.01)
    (other,) = await fo.generate(REQ, CancelToken())  # meanwhile: the next backend
    assert other.text == "from local" and gpu.calls == 1
    release.set()
    (res,) = await trial
    assert res.text == "from gpu" and fo.members[0].breaker.state is BreakerState.CLOSED
    fo.close()


async def test_health_check_failures_are_not_requests() -> None:
    gpu = Scripted("gpu")
    gpu.healthy = False
    fo = _list(gpu, Scripted("local"))
    await fo.check_all()
    row = fo.backends()[0]
    assert row["requests"] == 0 and row["errors"] == {} and row["healthCheckFailures"] == 1
    assert row["lastError"] == "gpu: down"
    fo.close()
