"""The LSP client side of lsp-bench: any server over stdio, as an editor would drive it."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException

from server.lspclient import _plain, drain_stderr, language_client, stop_client


class Method:
    INLINE = "inline"
    COMPLETION = "completion"


@dataclass
class Answer:
    candidates: list[str]  # the texts offered at the hole, in the server's order
    latency_s: float
    stats: dict[str, Any] | None = None  # pingti/status lastCompletion, when the server has it
    error: str | None = None  # the request failed or timed out
    # Per candidate: how many characters before the cursor it replaces (an inline item whose
    # range starts earlier on the cursor's line); empty = none replaces anything.
    cuts: list[int] = field(default_factory=list)

    def cut(self, i: int) -> int:
        return self.cuts[i] if i < len(self.cuts) else 0


@dataclass
class ServerLog:
    messages: list[tuple[int, str]] = field(default_factory=list)  # (MessageType, text)


class BenchClient:
    def __init__(self) -> None:
        # Requests that time out are cancelled; the server's late answer must stay quiet.
        self.client = language_client("lsp-bench")
        self.log = ServerLog()
        self._ids = itertools.count(1)
        self._has_status = True
        self.stderr_tail: deque[str] = deque(maxlen=40)  # the server's last log lines
        self._drain: asyncio.Future[None] | None = None

        @self.client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
        def _create(params: types.WorkDoneProgressCreateParams) -> None:
            return None

        @self.client.feature(types.PROGRESS)
        def _progress(params: types.ProgressParams) -> None:
            return None

        @self.client.feature(types.WINDOW_SHOW_MESSAGE)
        def _show(params: types.ShowMessageParams) -> None:
            self.log.messages.append((int(params.type), params.message))

        @self.client.feature(types.WINDOW_LOG_MESSAGE)
        def _log(params: types.LogMessageParams) -> None:
            return None

        # Editors report file changes only to a server that registered file watchers.
        self.watching_files = False

        @self.client.feature(types.CLIENT_REGISTER_CAPABILITY)
        def _register(params: types.RegistrationParams) -> None:
            if any(r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES
                   for r in params.registrations):
                self.watching_files = True

    async def start(self, command: Sequence[str], settings: dict[str, Any],
                    stderr_log: Path | None = None, root: Path | None = None) -> None:
        """Start the server and initialize it; ``root``: the project folder opened as the
        workspace, as an editor does (rootUri, rootPath and one workspace folder)."""
        await self.client.start_io(*command, env=dict(os.environ))
        # pygls pipes the server's stderr: unread, a full pipe would block the server's logging.
        self._drain = asyncio.ensure_future(drain_stderr(self.client, self.stderr_tail,
                                                         stderr_log))
        await self.client.initialize_async(initialize_params(settings, root))
        self.client.initialized(types.InitializedParams())

    async def status(self, uri: str | None = None, timeout: float = 5.0,
                     attempts: int = 3) -> dict[str, Any] | None:
        """pingti/status (None for servers without it). A lost answer is asked for again: one
        around the moment the model finishes loading has been seen to go missing."""
        if not self._has_status:
            return None
        for _ in range(attempts):
            try:
                result = await asyncio.wait_for(self.client.protocol.send_request_async(
                    "pingti/status", {"uri": uri} if uri else None), timeout)
            except JsonRpcException:
                self._has_status = False  # method not found: another server
                return None
            except asyncio.TimeoutError:
                continue
            out = _plain(result)
            return out if isinstance(out, dict) else None
        return None

    async def wait_ready(self, timeout: float) -> dict[str, Any] | None:
        """Wait for pingti's model to load; raise RuntimeError if it failed. Other servers:
        returns None at once (their first request then includes any loading)."""
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if st is None:
                if self._has_status and time.monotonic() < deadline:
                    continue  # no answer yet: ask again
                return None
            if st.get("state") == "ready":
                return st
            if st.get("state") == "failed":
                raise RuntimeError(f"the server could not load its model: {st.get('error')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server's model did not load within {timeout:.0f} s")
            await asyncio.sleep(0.5)

    def open(self, uri: str, text: str) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1,
                                                 text=text)))

    def touch(self, uri: str, line: int) -> None:
        """An edit at the start of ``line`` that leaves the text as it was (a character typed
        and deleted), in one didChange."""
        at = types.Position(line=line, character=0)
        after = types.Position(line=line, character=1)
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(range=types.Range(start=at, end=at),
                                                       text="x"),
                types.TextDocumentContentChangePartial(range=types.Range(start=at, end=after),
                                                       text="")]))

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=uri)))

    def files_changed(self, uris: Sequence[str]) -> None:
        """workspace/didChangeWatchedFiles: files of the workspace changed on disk, as an
        editor's file watcher reports it to a server that registered watchers (every change
        is reported, whatever the watchers' globs)."""
        if not self.watching_files:
            return
        self.client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=u, type=types.FileChangeType.Changed) for u in uris]))

    async def suggest(self, uri: str, line: int, character: int, method: str,
                      timeout: float) -> Answer:
        """Ask for suggestions at a position; on timeout the request is cancelled
        ($/cancelRequest) and the answer has no candidates."""
        msg_id = f"bench-{next(self._ids)}"
        pos = types.Position(line=line, character=character)
        doc = types.TextDocumentIdentifier(uri=uri)
        if method == Method.INLINE:
            params: Any = types.InlineCompletionParams(
                text_document=doc, position=pos, context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked))
            name = types.TEXT_DOCUMENT_INLINE_COMPLETION
        else:
            params = types.CompletionParams(
                text_document=doc, position=pos, context=types.CompletionContext(
                    trigger_kind=types.CompletionTriggerKind.Invoked))
            name = types.TEXT_DOCUMENT_COMPLETION
        t0 = time.perf_counter()
        fut = asyncio.wrap_future(self.client.protocol.send_request(name, params, msg_id=msg_id))
        try:
            result = await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
            return Answer([], time.perf_counter() - t0, error=f"timed out after {timeout:g} s")
        except JsonRpcException as exc:
            return Answer([], time.perf_counter() - t0, error=f"{exc.code}: {exc.message}")
        latency = time.perf_counter() - t0
        if method == Method.INLINE:
            items = inline_items(result, line, character)
            return Answer([t for t, _ in items], latency, cuts=[c for _, c in items])
        return Answer(completion_texts(result, line, character), latency)

    async def stop(self) -> None:
        await stop_client(self.client, self._drain)


def initialize_params(settings: dict[str, Any], root: Path | None = None
                      ) -> types.InitializeParams:
    """What lsp-bench says at initialize: inline and plain completion, progress, and with a
    ``root`` the workspace (rootUri, rootPath, one workspace folder) and watched files."""
    workspace = None
    if root is not None:
        workspace = types.WorkspaceClientCapabilities(
            workspace_folders=True,
            did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
                dynamic_registration=True))
    return types.InitializeParams(
        capabilities=types.ClientCapabilities(
            workspace=workspace,
            window=types.WindowClientCapabilities(work_done_progress=True),
            text_document=types.TextDocumentClientCapabilities(
                inline_completion=types.InlineCompletionClientCapabilities(),
                completion=types.CompletionClientCapabilities(
                    completion_item=types.ClientCompletionItemOptions(
                        documentation_format=[types.MarkupKind.PlainText])))),
        initialization_options=settings,
        root_uri=root.as_uri() if root is not None else None,
        root_path=str(root) if root is not None else None,
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)]
        if root is not None else None)


def inline_texts(result: Any) -> list[str]:
    return [text for text, _ in inline_items(result, 0, 0)]


def inline_items(result: Any, line: int, character: int) -> list[tuple[str, int]]:
    """(text, cut) per inline item: ``cut`` counts the UTF-16 units between the start of the
    item's range and the cursor when the range starts earlier on the cursor's line (the item
    replaces them, e.g. a whitespace-only line's indentation), else 0."""
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    out = []
    for item in items:
        text = item.insert_text
        cut = 0
        if item.range is not None and item.range.start.line == line:
            cut = max(0, character - item.range.start.character)
        out.append((text if isinstance(text, str) else text.value, cut))
    return out


def completion_texts(result: Any, line: int, character: int) -> list[str]:
    """What each completion item inserts at the cursor. An item whose edit starts before the
    cursor (it replaces the word being typed) contributes only what follows the cursor."""
    items = result.items if isinstance(result, types.CompletionList) else (result or [])
    out = []
    for item in items:
        edit = item.text_edit
        if isinstance(edit, types.TextEdit):
            text, start = edit.new_text, edit.range.start
        elif isinstance(edit, types.InsertReplaceEdit):
            text, start = edit.new_text, edit.insert.start
        else:
            out.append(item.insert_text or item.label)
            continue
        if start.line == line and start.character < character:
            # The replaced word is the text between start and the cursor (no newline); columns
            # count UTF-16 units.
            out.append(text[_code_points(text, character - start.character):])
        else:
            out.append(text)
    return out


def _code_points(text: str, units: int) -> int:
    """How many characters of ``text`` make up its first ``units`` UTF-16 code units."""
    n = 0
    for i, ch in enumerate(text):
        if n >= units:
            return i
        n += 2 if ord(ch) > 0xFFFF else 1
    return len(text)
