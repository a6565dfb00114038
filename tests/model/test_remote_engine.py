"""Failover from a real engine to the local model, over LSP, with the faults engines have.

One ``pingti-engine`` (llama-cpp-python's OpenAI-compatible server on the packaged model) serves
the whole module; each test starts its own ``pingti-ls`` (a breaker's state is the server's)
with ``backends: [engine, local]``, mostly through a :class:`lspbench.engines.FaultProxy`
that breaks the engine's answers on demand. Each fault test follows one script:

1. two requests while the fault is on: each gets a suggestion from the local model, within the
   time the settings allow for the engine's failure plus the local answer, and the second
   opens the engine's circuit (``pingti/status`` and a ``pingti/backendChanged``);
2. one request while the circuit is open: answered locally without asking the engine;
3. the fault is cleared: the breaker goes half-open (its health check passes), and the next
   request is answered by the engine again, which closes it.

Counts are checked against the requests sent: every request answered once, by one backend, and
each failure counted once, by its kind. Each request is one stream (``candidates: 1``) on a
document of its own (so the request cache never answers). Every wait is bounded.
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from lsprotocol import types

from lspbench.engines import EngineProcess, Fault, FaultProxy
from lspbench.peer import free_port
from server.lspclient import PingtiClient

pytestmark = pytest.mark.model

# Short, so that a fault costs the suite little: pingti gives up on a silent engine after this.
TIMEOUT_MS = 1500
# The SLOW fault: a pause before each event that fits in timeoutMs, where two pauses do not
# fit in deadlineMs (every suggestion here is at least two events: text, then the finish), so
# it is the whole-answer deadline that fails the request; a healthy answer from the engine
# (~2 s on one thread) fits in that deadline, so the engine can come back under it.
SLOW_S = 2.0
SLOW_TIMEOUT_MS = 3000
SLOW_DEADLINE_MS = 3500
DEADLINE_MS = 20_000
# The local model's answer after a failover: ~0.5 s measured on 2 cores; the rest is room for a
# busy machine and for the engine's own first tokens before a stream fault shows.
BACKUP_S = 4.0
# A breaker's first health check comes OPEN_S (1 s) after it opens, then 2, 4, 5 s apart while
# checks fail: half-open comes within this after the fault is cleared.
RECOVER_S = 12.0
# Bounds for one LSP round trip that may run the model (engine or local) and for the rest.
REQUEST_S = 30.0
CONTROL_S = 10.0

ENGINE = "engine"  # the engine's backend name in the settings (status rows, notifications)
LOCAL = "local"


@dataclass(frozen=True)
class Case:
    fault: Fault
    kinds: frozenset[str]  # the failure kinds pingti may count for it
    fail_s: float  # the most the settings let pingti wait on the engine before failing over
    timeout_ms: int = TIMEOUT_MS
    deadline_ms: int = DEADLINE_MS


PROXY_CASES = [
    Case(Fault.HANG, frozenset({"timeout"}), TIMEOUT_MS / 1000),
    Case(Fault.SLOW, frozenset({"timeout"}), SLOW_DEADLINE_MS / 1000, SLOW_TIMEOUT_MS,
         SLOW_DEADLINE_MS),
    Case(Fault.MALFORMED, frozenset({"malformed"}), 0.0),
    Case(Fault.HTTP_500, frozenset({"http_5xx"}), 0.0),
    Case(Fault.HTTP_429, frozenset({"http_429"}), 0.0),
    Case(Fault.HTTP_503, frozenset({"http_5xx"}), 0.0),
    Case(Fault.TRUNCATE, frozenset({"truncated"}), 0.0),
]


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EngineProcess]:
    log = tmp_path_factory.mktemp("engine") / "engine.log"
    proc = EngineProcess(threads=1, log_path=log)
    proc.start()
    try:
        asyncio.run(proc.wait_ready(60))
        yield proc
    finally:
        proc.stop()


@pytest.fixture
async def live_engine(engine: EngineProcess) -> EngineProcess:
    """The module's engine, started again if a test left it killed."""
    if not engine.running:
        engine.restart()
        await engine.wait_ready(60)
    return engine


@pytest.fixture
def proxy(live_engine: EngineProcess) -> Iterator[FaultProxy]:
    with FaultProxy(live_engine.origin, slow_s=SLOW_S) as p:
        yield p


# --- a pingti-ls session -------------------------------------------------------------------


class Session:
    """``pingti-ls`` over stdio with the given backends; records ``pingti/backendChanged``."""

    def __init__(self) -> None:
        self.client = PingtiClient()
        self.changes: list[dict[str, Any]] = self.client.log.backend_changes
        self.sent = 0

    @classmethod
    async def start(cls, backends: list[dict[str, Any]]) -> Session:
        session = cls()
        options = {"backends": backends, "candidates": 1, "prefetch": "off", "rerank": "off",
                   "threads": 1, "maxTokensMultiLine": 32, "debounceMs": 0}
        await asyncio.wait_for(session.client.start(options), CONTROL_S * 3)
        await session.client.wait_ready(timeout=120)
        return session

    async def stop(self) -> None:
        try:
            await asyncio.wait_for(self.client.stop(), CONTROL_S * 4)
        except (asyncio.TimeoutError, OSError):
            server = getattr(self.client.client, "_server", None)
            if server is not None and server.returncode is None:
                server.kill()

    async def ask(self) -> tuple[str, float]:
        """A function body in a document of its own: the first suggestion and its latency."""
        self.sent += 1
        n = self.sent
        uri = f"file:///remote-engine/add_{n}.py"
        head = f'def add_{n}(a, b):\n    """Return the sum of a and b."""\n'
        self.client.open(uri, head + "    \n")
        t0 = time.perf_counter()
        result = await asyncio.wait_for(self.client.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=2, character=4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked))), REQUEST_S)
        elapsed = time.perf_counter() - t0
        self.client.close(uri)
        assert isinstance(result, types.InlineCompletionList) and result.items, result
        text = result.items[0].insert_text
        assert isinstance(text, str) and text.strip(), result
        ast.parse(head + "    " + text)  # a sensible body: the function parses
        return text, elapsed

    async def rows(self) -> dict[str, dict[str, Any]]:
        status = await asyncio.wait_for(self.client.status(), CONTROL_S)
        return {row["name"]: row for row in status["backends"]}

    async def changed_to(self, state: str, after: int = 0, timeout: float = CONTROL_S) -> int:
        """Wait for a ``pingti/backendChanged`` of the engine to ``state`` (from the
        ``after``-th on); its index."""
        deadline = time.monotonic() + timeout
        while True:
            for i, change in enumerate(self.changes[after:], after):
                if change["backend"] == ENGINE and change["state"] == state:
                    return i
            if time.monotonic() > deadline:
                raise AssertionError(f"no change to {state!r} within {timeout} s: {self.changes}")
            await asyncio.sleep(0.02)


@pytest.fixture
async def sessions() -> AsyncIterator[list[Session]]:
    """Sessions a test starts are stopped after it, passed or not."""
    started: list[Session] = []
    yield started
    for session in started:
        await session.stop()


def engine_spec(url: str, timeout_ms: int = TIMEOUT_MS, deadline_ms: int = DEADLINE_MS
                ) -> dict[str, Any]:
    return {"type": "openai", "url": url, "name": ENGINE, "timeoutMs": timeout_ms,
            "deadlineMs": deadline_ms}


def request_errors(row: dict[str, Any]) -> dict[str, int]:
    """A backend's failed requests by kind (its failed health checks are counted apart)."""
    return dict(row["errors"])


def report(what: str, seconds: list[float]) -> None:
    print(f"[failover] {what}: backup answered in " + ", ".join(f"{s:.2f}" for s in seconds)
          + " s")


# --- the tests -----------------------------------------------------------------------------


async def test_completions_come_from_the_engine(proxy: FaultProxy,
                                                sessions: list[Session]) -> None:
    session = await Session.start([engine_spec(proxy.url), {"type": "local"}])
    sessions.append(session)
    text, _ = await session.ask()
    assert "return" in text and "a" in text and "b" in text, text
    rows = await session.rows()
    assert rows[ENGINE]["type"] == "openai" and rows[ENGINE]["url"] == proxy.url
    assert rows[ENGINE]["active"] and rows[ENGINE]["state"] == "closed"
    assert rows[ENGINE]["answered"] == 1 and rows[ENGINE]["errors"] == {}
    assert rows[ENGINE]["ttftP50S"] is not None and rows[ENGINE]["tokensPerS"]
    assert not rows[LOCAL]["active"] and rows[LOCAL]["answered"] == 0
    assert proxy.seen("/v1/completions") == 1
    assert session.changes == []


async def _fail_over_twice(session: Session, bound_s: float) -> tuple[list[float], int]:
    """Steps 1 and 2 of the module's script: the backup's latencies, and the index of the
    change to open."""
    latencies = []
    for _ in range(2):
        _, elapsed = await session.ask()
        assert elapsed < bound_s, f"the backup answered after {elapsed:.2f} s (> {bound_s} s)"
        latencies.append(elapsed)
    rows = await session.rows()
    assert rows[ENGINE]["state"] == "open" and not rows[ENGINE]["active"], rows[ENGINE]
    assert rows[LOCAL]["active"]
    return latencies, await session.changed_to("open")


async def _recovers(session: Session, opened_at: int) -> dict[str, dict[str, Any]]:
    """Step 3, once the fault is cleared: half-open, then an answer from the engine."""
    half = await session.changed_to("half_open", opened_at, RECOVER_S)
    await session.ask()
    closed = await session.changed_to("closed", half)
    assert opened_at < half < closed
    rows = await session.rows()
    assert rows[ENGINE]["state"] == "closed" and rows[ENGINE]["active"]
    assert rows[ENGINE]["answered"] == 1
    return rows


def _counts_add_up(rows: dict[str, dict[str, Any]], sent: int, engine_failures: int,
                   kinds: frozenset[str]) -> None:
    assert sum(row["answered"] for row in rows.values()) == sent, rows
    assert sum(row["cancelled"] for row in rows.values()) == 0, rows
    errors = request_errors(rows[ENGINE])
    assert sum(errors.values()) == engine_failures and set(errors) <= kinds, errors
    assert rows[LOCAL]["errors"] == {}
    assert rows[LOCAL]["answered"] == sent - rows[ENGINE]["answered"]


@pytest.mark.parametrize("case", PROXY_CASES, ids=[c.fault.value for c in PROXY_CASES])
async def test_a_faulty_engine_fails_over_to_local_and_comes_back(
        case: Case, proxy: FaultProxy, sessions: list[Session]) -> None:
    session = await Session.start([engine_spec(proxy.url, case.timeout_ms, case.deadline_ms),
                                   {"type": "local"}])
    sessions.append(session)
    proxy.mode = case.fault
    latencies, opened = await _fail_over_twice(session, case.fail_s + BACKUP_S)
    report(case.fault.value, latencies)
    assert proxy.seen("/v1/completions") == 2  # one try each: no retry on the same engine
    # Open: the next request does not go to the engine at all.
    await session.ask()
    assert proxy.seen("/v1/completions") == 2
    proxy.mode = Fault.PASS
    rows = await _recovers(session, opened)
    assert proxy.seen("/v1/completions") == 3
    _counts_add_up(rows, session.sent, 2, case.kinds)
    assert rows[ENGINE]["lastError"], rows[ENGINE]


async def test_a_killed_engine_fails_over_and_comes_back_after_a_restart(
        live_engine: EngineProcess, sessions: list[Session]) -> None:
    session = await Session.start([engine_spec(live_engine.url), {"type": "local"}])
    sessions.append(session)
    live_engine.kill()
    latencies, opened = await _fail_over_twice(session, BACKUP_S)
    report("killed engine", latencies)
    await session.ask()
    live_engine.restart()
    await live_engine.wait_ready(60)
    rows = await _recovers(session, opened)
    # Refused, or (a pooled connection the crash cut) broken.
    _counts_add_up(rows, session.sent, 2, frozenset({"connect", "truncated"}))


async def test_a_refused_connection_is_skipped_from_the_start_until_it_listens(
        live_engine: EngineProcess, sessions: list[Session]) -> None:
    port = free_port()  # nothing listens here until the proxy below does
    session = await Session.start([engine_spec(f"http://127.0.0.1:{port}/v1"),
                                   {"type": "local"}])
    sessions.append(session)
    # Found down by the check at load: open before any request, so none waits for it.
    opened = await session.changed_to("open")
    rows = await session.rows()
    assert rows[ENGINE]["state"] == "open" and rows[LOCAL]["active"]
    latencies = [(await session.ask())[1] for _ in range(2)]
    assert all(s < BACKUP_S for s in latencies), latencies
    report("refused connection", latencies)
    with FaultProxy(live_engine.origin, port=port) as proxy:
        rows = await _recovers(session, opened)
        assert proxy.seen("/v1/completions") == 1
    _counts_add_up(rows, session.sent, 0, frozenset())
    # The failed checks are counted apart from requests.
    assert rows[ENGINE]["healthCheckFailures"] >= 1 and not rows[ENGINE]["errors"], rows[ENGINE]


def test_the_proxy_counts_what_it_sees() -> None:
    """The proxy on its own: a port nobody serves upstream is a 502, as a real proxy says."""
    import httpx

    with FaultProxy(f"http://127.0.0.1:{free_port()}") as proxy:
        assert httpx.get(proxy.url + "/models", timeout=5).status_code == 502
        proxy.mode = Fault.HTTP_429
        response = httpx.post(proxy.url + "/completions", json={}, timeout=5)
        assert response.status_code == 429 and response.headers["retry-after"] == "1"
        assert response.json()["error"]["code"] == 429
        assert proxy.counts() == {"/v1/models": 1, "/v1/completions": 1}
