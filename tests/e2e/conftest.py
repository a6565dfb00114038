"""End-to-end fixtures: the real ``pingti-ls`` process over stdio, driven by pytest-lsp.

Every wait in these tests is bounded (``asyncio.wait_for``), and every fixture tears its server
down even when a test fails half-way (pytest-lsp's own teardown would wait forever for a server
that was never told to exit).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = [sys.executable, "-m", "server", "--log-level", "debug"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

FAKE_OPTIONS = {"backend": "fake"}
# Upper bound for any single request in these tests; the fake backend answers in milliseconds.
TIMEOUT = 10.0


def capabilities(*, progress: bool = True, encodings: list[str] | None = None,
                 doc_formats: list[types.MarkupKind] | None = None
                 ) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=progress),
        general=types.GeneralClientCapabilities(position_encodings=encodings)
        if encodings else None,
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(
                completion_item=types.ClientCompletionItemOptions(
                    documentation_format=doc_formats or [types.MarkupKind.Markdown,
                                                         types.MarkupKind.PlainText])),
        ),
        workspace=types.WorkspaceClientCapabilities(
            did_change_configuration=types.DidChangeConfigurationClientCapabilities()),
    )


async def _teardown(lsp_client: LanguageClient) -> None:
    """Shut the server down politely if possible, else kill it, so that teardown never hangs."""
    proc = lsp_client._server
    if proc is None or proc.returncode is not None:
        return
    if lsp_client.capabilities is not None and lsp_client.error is None:
        try:
            await asyncio.wait_for(lsp_client.shutdown_session(), TIMEOUT)
        except Exception:  # a test may have left the server in a state that cannot shut down
            pass
    if proc.returncode is None:
        proc.kill()
        await asyncio.wait_for(proc.wait(), TIMEOUT)


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def client(lsp_client: LanguageClient):
    """A client with an initialized server using the fake backend."""
    await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options=FAKE_OPTIONS)), TIMEOUT)
    yield
    await _teardown(lsp_client)


# One server for a whole module, for tests that leave no state behind but their own documents
# (use the ``uri`` fixture). Each server start costs ~0.4 s, which adds up; tests that use it
# must run in the module's event loop: mark them with ``shared``. Repository context is off
# there: the other tests' documents stay open, and their code (and recent edits) would reach
# each prompt, which the fake backend copies from.
shared = pytest.mark.asyncio(loop_scope="module")
SHARED_OPTIONS = {**FAKE_OPTIONS, "repoContext": "off"}


@pytest_lsp.fixture(scope="module",
                    config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def shared_client(lsp_client: LanguageClient):
    await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options=SHARED_OPTIONS)), TIMEOUT)
    yield
    await _teardown(lsp_client)


@pytest.fixture
def uri(request: pytest.FixtureRequest) -> str:
    """A document URI of this test's own."""
    return "file:///tmp/pingti-e2e/" + re.sub(r"\W+", "_", request.node.name) + ".py"


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def raw_client(lsp_client: LanguageClient):
    """A client that has not initialized the server yet (see :func:`start_session`)."""
    yield
    await _teardown(lsp_client)


async def start_session(lsp_client: LanguageClient, options: Any = None, *,
                        progress: bool = True, encodings: list[str] | None = None,
                        doc_formats: list[types.MarkupKind] | None = None
                        ) -> types.InitializeResult:
    """Initialize ``raw_client``'s server with the given initializationOptions."""
    return await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(progress=progress, encodings=encodings,
                                  doc_formats=doc_formats),
        initialization_options=FAKE_OPTIONS if options is None else options)), TIMEOUT)


# --- documents and requests ---------------------------------------------------------------


def open_doc(lsp_client: LanguageClient, uri: str, text: str, *, language_id: str = "python",
             version: int = 1) -> None:
    lsp_client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=version,
                                             text=text)))


def change_doc(lsp_client: LanguageClient, uri: str, version: int,
               *changes: tuple[tuple[int, int], tuple[int, int], str] | str) -> None:
    """Send a didChange; each change is ``((l0, c0), (l1, c1), text)`` or a full text."""
    events: list[types.TextDocumentContentChangeEvent] = []
    for change in changes:
        if isinstance(change, str):
            events.append(types.TextDocumentContentChangeWholeDocument(text=change))
        else:
            (l0, c0), (l1, c1), text = change
            events.append(types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=l0, character=c0),
                                  end=types.Position(line=l1, character=c1)),
                text=text))
    lsp_client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=events))


def inline_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    return types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Invoked))


def completion_params(uri: str, line: int, character: int) -> types.CompletionParams:
    return types.CompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=character),
        context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked))


async def inline(lsp_client: LanguageClient, uri: str, line: int, character: int,
                 timeout: float = TIMEOUT) -> types.InlineCompletionList:
    result = await asyncio.wait_for(lsp_client.text_document_inline_completion_async(
        inline_params(uri, line, character)), timeout)
    assert isinstance(result, types.InlineCompletionList), result
    return result


async def complete(lsp_client: LanguageClient, uri: str, line: int, character: int,
                   timeout: float = TIMEOUT) -> types.CompletionList:
    result = await asyncio.wait_for(lsp_client.text_document_completion_async(
        completion_params(uri, line, character)), timeout)
    assert isinstance(result, types.CompletionList), result
    return result


async def suggestion(lsp_client: LanguageClient, uri: str, line: int, character: int,
                     timeout: float = TIMEOUT) -> str:
    """The first inline suggestion's text, '' when there is none. An explicit request may get
    several candidates (setting `candidates`): distinct ones, best first."""
    result = await inline(lsp_client, uri, line, character, timeout)
    if not result.items:
        return ""
    texts = [item.insert_text for item in result.items]
    assert len(set(map(str, texts))) == len(texts), texts
    text = texts[0]
    assert isinstance(text, str)
    return text


async def status(lsp_client: LanguageClient) -> dict[str, Any]:
    """The server's ``pingti/status`` answer as plain dicts."""
    from server.lspclient import _plain

    result = await asyncio.wait_for(
        lsp_client.protocol.send_request_async("pingti/status", None), TIMEOUT)
    plain = _plain(result)
    assert isinstance(plain, dict), plain
    return plain


async def model_idle(lsp_client: LanguageClient, timeout: float = TIMEOUT) -> dict[str, Any]:
    """Wait until no sequence is decoding or queued on the model thread; its status then."""
    deadline = time.monotonic() + timeout
    while True:
        st = await status(lsp_client)
        b = st.get("batching", {})
        if b.get("running") == 0 and b.get("queued") == 0:
            return st
        if time.monotonic() > deadline:
            raise AssertionError(f"model still busy after {timeout}s: {st}")
        await asyncio.sleep(0.02)


def configure(lsp_client: LanguageClient, settings: Any) -> None:
    lsp_client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings=settings))


async def wait_until(predicate: Callable[[], Any], timeout: float = TIMEOUT,
                     what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


def progress_kinds(lsp_client: LanguageClient) -> dict[Any, list[str]]:
    """Per progress token, the kinds of progress values received so far."""
    return {token: [v.kind for v in values]
            for token, values in lsp_client.progress_reports.items()}


async def wait_loaded(lsp_client: LanguageClient, count: int = 1) -> None:
    """Wait until ``count`` model loads have ended (progress ``end`` received)."""
    await wait_until(lambda: sum(1 for kinds in progress_kinds(lsp_client).values()
                                 if "end" in kinds) >= count,
                     what=f"{count} model load(s) to end")


# --- raw stdio: our own framing, for malformed input -----------------------------------------


def frame(body: bytes | str | Any, *, header: bytes = b"Content-Length") -> bytes:
    """Frame ``body`` (bytes as is, str encoded, anything else as JSON)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode("utf-8")
    return header + b": " + str(len(body)).encode() + b"\r\n\r\n" + body


class RawServer:
    """The server process with bytes written straight to its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.received: list[dict[str, Any]] = []  # every message read, in order
        self._buffer: list[dict[str, Any]] = []  # read but not yet taken by a caller

    @classmethod
    async def start(cls, log_path: str) -> RawServer:
        log = open(log_path, "wb")  # noqa: SIM115  (owned by the subprocess' lifetime)
        try:
            proc = await asyncio.create_subprocess_exec(
                *SERVER, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=log, env=ENV)
        finally:
            log.close()
        return cls(proc)

    async def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        await self.proc.stdin.drain()

    async def send(self, message: Any) -> None:
        await self.write(frame(message))

    async def request(self, msg_id: Any, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def notify(self, method: str, params: Any = None) -> None:
        msg: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        await self.send(msg)

    async def _read_one(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        length = None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                raise EOFError("server closed its stdout")
            line = line.strip()
            if not line:
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        assert length is not None, "a message without Content-Length"
        body = await self.proc.stdout.readexactly(length)
        msg = json.loads(body)
        self.received.append(msg)
        return msg

    async def next_message(self, predicate: Callable[[dict[str, Any]], bool],
                           timeout: float = TIMEOUT) -> dict[str, Any]:
        for i, msg in enumerate(self._buffer):
            if predicate(msg):
                return self._buffer.pop(i)

        async def read() -> dict[str, Any]:
            while True:
                msg = await self._read_one()
                if predicate(msg):
                    return msg
                self._buffer.append(msg)

        return await asyncio.wait_for(read(), timeout)

    async def response(self, msg_id: Any, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next response with this id (server notifications are kept aside)."""
        return await self.next_message(
            lambda m: "method" not in m and m.get("id", object()) == msg_id, timeout)

    def responses(self) -> list[dict[str, Any]]:
        return [m for m in self.received if "method" not in m]

    async def initialize(self, msg_id: Any = "init", options: Any = None) -> dict[str, Any]:
        await self.request(msg_id, "initialize", {
            "processId": None, "rootUri": None, "capabilities": {},
            "initializationOptions": FAKE_OPTIONS if options is None else options})
        resp = await self.response(msg_id)
        assert "result" in resp, resp
        await self.notify("initialized", {})
        return resp

    async def close(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
        await asyncio.wait_for(self.proc.wait(), TIMEOUT)


@pytest.fixture
async def raw_server(tmp_path):
    server = await RawServer.start(str(tmp_path / "server.log"))
    try:
        yield server
    finally:
        await server.close()
