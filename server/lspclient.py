"""A small LSP client for driving ``pingti-ls`` headlessly (selftest, benchmarks).

It starts the server as a child process and talks to it over stdio exactly as an editor does.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.protocol import LanguageServerProtocol

logger = logging.getLogger(__name__)


class QuietCancelProtocol(LanguageServerProtocol):
    """pygls' client protocol, except that the answer to a request the client has given up on
    is dropped quietly.

    Giving up is normal: a client that stops waiting (``asyncio.wait_for`` timing out, a
    newer request) cancels the asyncio future it awaited, which cancels pygls' own future for
    the request (``asyncio.wrap_future`` chains them). The server still answers, with its
    result or with RequestCancelled once it reads ``$/cancelRequest``, and pygls 2.1.1's
    ``_handle_response`` then calls ``set_result``/``set_exception`` on the cancelled future:
    ``InvalidStateError: CANCELLED``, logged with a traceback as "Unable to handle message".
    """

    def _handle_response(self, msg_id: Any, result: Any = None, error: Any = None) -> None:
        future = self._request_futures.get(msg_id)
        if future is not None and future.done():
            del self._request_futures[msg_id]
            logger.debug("answer to request %s dropped: the request was cancelled", msg_id)
            return
        super()._handle_response(msg_id, result, error)


def language_client(name: str, version: str = "1") -> LanguageClient:
    """A pygls ``LanguageClient`` for headless clients: cancelling a request is quiet."""
    return LanguageClient(name, version, protocol_cls=QuietCancelProtocol)


@dataclass
class ClientLog:
    progress: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    # pingti/backendChanged params (a backend of the failover list went down or came back).
    backend_changes: list[dict[str, Any]] = field(default_factory=list)
    ready_at: float | None = None  # perf_counter() when the load progress ended


class PingtiClient:
    def __init__(self, echo: bool = False) -> None:
        self.client = language_client("pingti-client")
        self.log = ClientLog()
        self._ready = asyncio.Event()
        self.server_pid: int | None = None
        self._version: dict[str, int] = {}
        self.stderr_tail: deque[str] = deque(maxlen=40)
        self._drain: asyncio.Future[None] | None = None
        echo_fn = print if echo else (lambda *a, **k: None)

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def _progress(params: types.ProgressParams) -> None:
            value = params.value if isinstance(params.value, dict) else {}
            msg = value.get("message") or value.get("title")
            if msg:
                self.log.progress.append(str(msg))
                echo_fn(f"  [progress] {msg}", flush=True)
            if value.get("kind") == "end":
                self.log.ready_at = time.perf_counter()
                self._ready.set()

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def _show(params: types.ShowMessageParams) -> None:
            self.log.messages.append(params.message)
            echo_fn(f"  [server] {params.message}", flush=True)

        @self.client.feature("pingti/backendChanged")
        def _backend(params: Any) -> None:
            self.log.backend_changes.append(_plain(params))
            echo_fn(f"  [backend] {_plain(params).get('message')}", flush=True)

    async def start(self, options: dict[str, Any] | None = None,
                    server_cmd: Sequence[str] | None = None,
                    env: dict[str, str] | None = None,
                    root: Path | None = None) -> types.InitializeResult:
        """Start the server and initialize it; ``root``: a folder opened as the workspace."""
        cmd = list(server_cmd or [sys.executable, "-m", "server", "--log-level", "warning"])
        await self.client.start_io(*cmd, env={**os.environ, **(env or {})})
        # pygls pipes the server's stderr: unread, a full pipe would block the server's logging.
        self._drain = asyncio.ensure_future(drain_stderr(self.client, self.stderr_tail, None))
        server = getattr(self.client, "_server", None)
        self.server_pid = getattr(server, "pid", None)
        result = await self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(
                window=types.WindowClientCapabilities(work_done_progress=True),
                text_document=types.TextDocumentClientCapabilities(
                    inline_completion=types.InlineCompletionClientCapabilities())),
            initialization_options=options or {},
            root_uri=root.as_uri() if root is not None else None,
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)]
            if root is not None else None))
        self.client.initialized(types.InitializedParams())
        return result

    async def wait_ready(self, timeout: float = 900) -> None:
        await asyncio.wait_for(self._ready.wait(), timeout)

    def open(self, uri: str, text: str, language_id: str = "python") -> None:
        self._version[uri] = 1
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id=language_id, version=1,
                                                 text=text)))

    def replace(self, uri: str, text: str) -> None:
        self._version[uri] = self._version.get(uri, 1) + 1
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri,
                                                                version=self._version[uri]),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    def close(self, uri: str) -> None:
        self._version.pop(uri, None)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def focus(self, uri: str, line: int, character: int) -> None:
        """``pingti/focus``, as pingti's editor clients send it when the user moves there."""
        self.client.protocol.notify("pingti/focus", {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character}})

    def configure(self, settings: dict[str, Any]) -> None:
        self.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings=settings))

    async def inline(self, uri: str, line: int, character: int) -> str:
        result = await self.client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=character),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
        if not items:
            return ""
        text = items[0].insert_text
        return text if isinstance(text, str) else text.value

    async def status(self, uri: str | None = None) -> dict[str, Any]:
        """The server's ``pingti/status`` answer (model, batching counters; with ``uri``, also
        that document's ``lastCompletion``)."""
        result = await self.client.protocol.send_request_async(
            "pingti/status", {"uri": uri} if uri else None)
        return _plain(result)

    def peak_rss_bytes(self) -> int | None:
        """The server process' peak resident set size (Linux VmHWM)."""
        if self.server_pid is None:
            return None
        try:
            with open(f"/proc/{self.server_pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    async def stop(self) -> None:
        await stop_client(self.client, self._drain)


async def stop_client(client: LanguageClient, drain: asyncio.Future[None] | None) -> None:
    """shutdown + exit, politely if the server answers; then stop reading its output."""
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    except Exception:
        pass
    await client.stop()
    if drain is not None:
        drain.cancel()


async def drain_stderr(client: LanguageClient, tail: deque[str], log: Path | None) -> None:
    """Read the server's stderr as it comes: keep the last lines, append all to ``log``."""
    server = getattr(client, "_server", None)
    stream = getattr(server, "stderr", None)
    if stream is None:
        return
    fh = log.open("ab") if log is not None else None
    try:
        while line := await stream.readline():
            tail.append(line.decode("utf-8", "replace").rstrip())
            if fh is not None:
                fh.write(line)
                fh.flush()
    finally:
        if fh is not None:
            fh.close()


def position_of(text: str, offset: int) -> tuple[int, int]:
    """(line, UTF-16 column) of a code-point offset in ``text`` (LSP line breaks)."""
    from server.documents import Document, PositionEncoding

    return Document("x", text).position_at(offset, PositionEncoding.UTF16)


def _plain(value: Any) -> Any:
    """pygls hands back untyped results as namespaces: make them plain dicts and lists."""
    if hasattr(value, "_asdict"):  # namedtuple-like objects
        return {k: _plain(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__dict__"):
        return {k: _plain(v) for k, v in vars(value).items()}
    return value


async def wait_indexed(client: Any, timeout_s: float = 300.0) -> None:
    """Wait until a pingti server has indexed its workspace (``repoContext: workspace``; its
    ``pingti/status`` says so), so that measured requests see the whole index. ``client``: any
    object with an async ``status()`` (None for servers without it: not waited for, nor are
    other modes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        repo = ((await client.status()) or {}).get("repoContext") or {}
        if not repo.get("indexing") and (repo.get("mode") != "workspace"
                                         or repo.get("workspaceFiles")):
            return
        await asyncio.sleep(0.2)
