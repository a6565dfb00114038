"""A real engine to fail over from, and a proxy that breaks it on demand: for the failover tests
(tests/model/test_remote_engine.py) and for benchmarks of pingti's ``backends`` setting.

- :class:`EngineProcess`: ``pingti-engine`` (server/engine.py, llama-cpp-python's
  OpenAI-compatible server on the packaged model) as a child process on a loopback port.
  ``kill()`` is SIGKILL, as a crash looks to its clients; ``restart()`` comes back on the same
  port, so a backend URL written into pingti's settings stays valid.
- :class:`FaultProxy`: an HTTP proxy between pingti and the engine, served by uvicorn + starlette
  on its own event loop in a background thread, fetching upstream with httpx and framing event
  streams with httpx-sse (in) and sse-starlette (out): no HTTP is parsed or written by hand.
  Its :class:`Fault` ``mode`` may be changed at any time; a request keeps the mode it arrived
  under, except that a hanging request lets go when its client does or the proxy closes.

Which requests a fault touches:

================  ==================================  ========================================
mode              generation (everything else)        health (GET ``…/models``, ``/health``)
================  ==================================  ========================================
PASS              relayed, event by event             relayed
HANG              accepted, not a byte sent           the same
SLOW              relayed, ``slow_s`` before each     relayed
                  event (each chunk if not a stream)
MALFORMED         200, an event stream of non-JSON    relayed
                  events (the engine is not asked)
HTTP_500/429/503  that status, a small JSON error     the same
                  body (429/503 with Retry-After)
TRUNCATE          the first ``truncate_after``        relayed
                  events, then the connection closes
                  without the rest or ``[DONE]``
================  ==================================  ========================================

Why health checks pass under SLOW, MALFORMED and TRUNCATE: these are faults of the generation
stream (an overloaded engine, a protocol mismatch, a stream cut by a middlebox), and such an
engine still lists its models. A breaker that opened on them therefore turns half-open after
its wait, tries the engine again and opens again: the path a persistent stream fault takes in
production. An engine that hangs or answers 5xx/429 fails its health checks as well.

A stream that is cut short is a response ended without its last chunk: uvicorn closes the
connection and logs ``ASGI callable returned without completing response.`` (that line is the
fault, not a bug). An engine the proxy cannot reach is answered with 502 (a real proxy's
answer); to test a refused connection point pingti at a port nothing listens on, to test a
crashed engine point it at the engine itself and :meth:`EngineProcess.kill` it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import uvicorn
from httpx_sse import EventSource
from sse_starlette import ServerSentEvent
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from lspbench.peer import free_port

# Polling the engine's model list: often enough that a 3-second start is not rounded up much.
READY_POLL_S = 0.1
# A hanging request looks for its client's disconnect this often.
HANG_POLL_S = 0.05
# Generation requests forwarded by the proxy: long enough for any completion, so that the
# proxy never fails a request on its own (pingti's timeoutMs/deadlineMs are what is tested).
UPSTREAM_TIMEOUT_S = 120.0
HEALTH_PATHS = ("/models", "/health")


class EngineStartError(RuntimeError):
    """The engine process did not start or become ready; the message has its log's tail."""


# --- the engine --------------------------------------------------------------------------------


class _Endpoint:
    """Where an engine or the proxy listens (``host``, ``port``)."""

    host: str
    port: int

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``: where a proxy forwards to."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL, as the ``backends`` setting takes it."""
        return self.origin + "/v1"


class EngineProcess(_Endpoint):
    """``python -m server.engine`` on the packaged model, on ``127.0.0.1:port``.

    Synchronous to start and stop (a ``subprocess.Popen``, usable from any event loop or
    none); :meth:`wait_ready` is async. As an async context manager it starts, waits until ready
    and stops."""

    def __init__(self, *, port: int | None = None, threads: int = 1, n_ctx: int = 4096,
                 model: str = "default", log_path: Path | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        # 1 thread by default: on a 2-core machine the other core is left to the pingti server
        # (its local backup model), so a failover's backup answer is not starved.
        self.threads = threads
        self.n_ctx = n_ctx
        self.model = model
        self.log_path = log_path
        self.env = env
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "server.engine", "--model", self.model,
                "--host", self.host, "--port", str(self.port), "--n-ctx", str(self.n_ctx),
                "--threads", str(self.threads)]

    def start(self) -> None:
        if self.running:
            raise EngineStartError(f"the engine already runs (pid {self.pid})")
        if self.log_path is not None and self._log is None:
            self._log = self.log_path.open("ab")  # appended to across restarts
        self._proc = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL,
            stdout=self._log or subprocess.DEVNULL, stderr=self._log or subprocess.DEVNULL,
            env={**os.environ, **(self.env or {})})

    # Answers 200 once the model is loaded.
    READY_PATH = "/v1/models"

    async def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until ``READY_PATH`` answers 200; the seconds it took."""
        t0 = time.monotonic()
        async with httpx.AsyncClient(base_url=self.origin, timeout=2.0) as client:
            while True:
                if self._proc is None:
                    raise EngineStartError("the engine was not started")
                if (code := self._proc.poll()) is not None:
                    raise EngineStartError(f"the engine exited with status {code}{self._tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(self.READY_PATH)).status_code == 200:
                        return time.monotonic() - t0
                if time.monotonic() - t0 > timeout:
                    raise EngineStartError(f"the engine was not ready within {timeout:.0f} s"
                                      f"{self._tail()}")
                await asyncio.sleep(READY_POLL_S)

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to open connections."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)

    def restart(self) -> None:
        """Kill it if it runs and start it again on the same port (then :meth:`wait_ready`)."""
        self.kill()
        self.start()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; closes the log."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _tail(self, lines: int = 15) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text("utf-8", "replace").splitlines()[-lines:]
        return ":\n" + "\n".join(text) if text else ""

    async def __aenter__(self) -> EngineProcess:
        self.start()
        try:
            await self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()


class LlamaServerProcess(EngineProcess):
    """llama.cpp's ``llama-server`` on the packaged model (``type: llama.cpp``: its ``url`` is
    the origin), with 4 parallel slots and prompt-cache reuse, as a team would run it."""

    READY_PATH = "/health"

    def __init__(self, binary: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.binary = binary

    @property
    def url(self) -> str:
        return self.origin

    def command(self) -> list[str]:
        from server.model_assets import cache_root, resolve_model

        model = resolve_model(self.model, cache_root()).path
        return [str(self.binary), "-m", str(model), "--host", self.host, "--port",
                str(self.port), "-c", "8192", "-np", "4", "-t", str(self.threads),
                "--no-webui", "--cache-reuse", "256"]


# --- the proxy ---------------------------------------------------------------------------------


class Fault(enum.Enum):
    """What the proxy does to a request (the module's table)."""

    PASS = "pass"
    HANG = "hang"
    SLOW = "slow"
    MALFORMED = "malformed"
    HTTP_500 = "http_500"
    HTTP_429 = "http_429"
    HTTP_503 = "http_503"
    TRUNCATE = "truncate"


# The injected status and its error body's type (as OpenAI-compatible engines name them).
_STATUS = {Fault.HTTP_500: (500, "server_error"), Fault.HTTP_429: (429, "rate_limit_exceeded"),
           Fault.HTTP_503: (503, "service_unavailable")}
# Faults of the generation stream: health checks are relayed under them (module docstring).
_STREAM_FAULTS = frozenset({Fault.SLOW, Fault.MALFORMED, Fault.TRUNCATE})
# Request headers not forwarded: hop-by-hop ones, and those httpx sets for its own request.
_DROP_HEADERS = frozenset({"host", "content-length", "connection", "keep-alive",
                           "transfer-encoding", "accept-encoding", "upgrade", "te"})


class FaultProxy(_Endpoint):
    """A fault-injecting HTTP proxy in front of ``upstream`` (an origin such as
    :attr:`EngineProcess.origin`; paths are forwarded as they come)."""

    def __init__(self, upstream: str, *, mode: Fault = Fault.PASS, slow_s: float = 0.5,
                 truncate_after: int = 2, port: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self.mode = mode  # read by each request as it arrives: set it from any thread
        self.slow_s = slow_s
        self.truncate_after = truncate_after
        self.host = host
        # Bound here, listened on by uvicorn: the port is known (and taken) before start().
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, port))
        self.port = int(self._sock.getsockname()[1])
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._client: httpx.AsyncClient | None = None  # made on the proxy's loop
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def seen(self, path: str) -> int:
        """Requests that arrived for ``path`` (e.g. ``/v1/completions``), whatever the mode."""
        with self._lock:
            return self._seen[path]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._seen)

    # --- life ----------------------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> FaultProxy:
        # log_config=None: uvicorn's loggers go to the caller's logging set-up, untouched (its
        # default would reconfigure the process' logging).
        config = uvicorn.Config(self._app(), log_config=None, log_level="warning",
                                access_log=False, http="h11", loop="asyncio", lifespan="on",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name=f"fault-proxy:{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the fault proxy did not start on port {self.port}")
            time.sleep(0.01)
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Stop serving: hanging requests let go, streams end within uvicorn's grace time."""
        self._closing.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        self._sock.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the app -------------------------------------------------------------------------

    def _app(self) -> Starlette:
        @contextlib.asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with httpx.AsyncClient(
                    base_url=self.upstream,
                    timeout=httpx.Timeout(UPSTREAM_TIMEOUT_S, connect=2.0)) as client:
                self._client = client
                yield

        return Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])],
                         lifespan=lifespan)

    async def _handle(self, request: Request) -> Response:
        path = request.url.path
        with self._lock:
            self._seen[path] += 1
        mode = self.mode
        health = request.method == "GET" and path.endswith(HEALTH_PATHS)
        if mode is Fault.HANG:
            return await self._hang(request)
        if mode in _STATUS:
            code, kind = _STATUS[mode]
            headers = {"Retry-After": "1"} if code in (429, 503) else None
            return JSONResponse({"error": {"message": f"injected fault: HTTP {code}",
                                           "type": kind, "code": code}},
                                status_code=code, headers=headers)
        if health or mode not in _STREAM_FAULTS:
            return await self._relay(request, Fault.PASS)
        if mode is Fault.MALFORMED:
            return self._malformed()
        return await self._relay(request, mode)

    async def _hang(self, request: Request) -> Response:
        while not self._closing.is_set() and not await request.is_disconnected():
            await asyncio.sleep(HANG_POLL_S)
        return Response(status_code=503)  # nobody reads it: the client left or we close

    def _malformed(self) -> Response:
        async def events() -> AsyncIterator[bytes]:
            for data in ("this is not JSON", "{\"choices\": [", "[DONE]"):
                yield ServerSentEvent(data=data).encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    async def _relay(self, request: Request, mode: Fault) -> Response:
        client = self._client
        assert client is not None, "the lifespan makes the client before serving"
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP_HEADERS}
        upstream_request = client.build_request(
            request.method, request.url.path, params=request.query_params,
            content=await request.body(), headers=headers)
        try:
            upstream = await client.send(upstream_request, stream=True)
        except httpx.HTTPError as exc:
            return JSONResponse({"error": {"message": f"fault proxy: upstream unreachable "
                                           f"({type(exc).__name__})", "type": "bad_gateway"}},
                                status_code=502)
        media = upstream.headers.get("content-type", "application/octet-stream")
        if media.startswith("text/event-stream"):
            body = self._events(upstream, mode)
        else:
            body = self._chunks(upstream, mode)
        cls = _CutShort if mode is Fault.TRUNCATE else StreamingResponse
        # The upstream response is closed when ours ends, also when our client left early:
        # an engine that serves one stream at a time must not go on for nobody.
        return cls(body, status_code=upstream.status_code, media_type=media,
                   background=BackgroundTask(upstream.aclose))

    async def _events(self, upstream: httpx.Response, mode: Fault) -> AsyncIterator[bytes]:
        """The upstream's events, one chunk each (SLOW sleeps before each; TRUNCATE stops)."""
        sent = 0
        try:
            async for event in EventSource(upstream).aiter_sse():
                if mode is Fault.TRUNCATE and sent >= self.truncate_after:
                    return
                if mode is Fault.SLOW:
                    await asyncio.sleep(self.slow_s)
                yield ServerSentEvent(
                    data=event.data, id=event.id or None, retry=event.retry,
                    event=None if event.event == "message" else event.event).encode()
                sent += 1
        finally:
            await upstream.aclose()

    async def _chunks(self, upstream: httpx.Response, mode: Fault) -> AsyncIterator[bytes]:
        """A body that is not an event stream: relayed as it comes (SLOW sleeps before each
        chunk; TRUNCATE sends the first half)."""
        try:
            if mode is Fault.TRUNCATE:
                data = await upstream.aread()
                yield data[:len(data) // 2]
                return
            async for chunk in upstream.aiter_bytes():
                if mode is Fault.SLOW:
                    await asyncio.sleep(self.slow_s)
                yield chunk
        finally:
            await upstream.aclose()


class _CutShort(StreamingResponse):
    """A streaming response that never sends its last (empty, ``more_body: False``) chunk:
    uvicorn then closes the connection and the client sees the body end early."""

    async def stream_response(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        async for chunk in self.body_iterator:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
