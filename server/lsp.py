"""pingti-ls: the language server. Thin handlers over :class:`server.service.CompletionService`.

Each handler turns lsprotocol params into a domain value (a :class:`CompletionQuery` on a
snapshot of the document), calls the service, and turns the answer back into lsprotocol types.
Everything between (model loading, debounce, cache, cancellation, the stages) is the service's.
If the client sends ``$/cancelRequest``, pygls cancels the handler's task and the service stops
the request's decoding at its next step.

The model loads when the client says ``initialized`` (with work-done progress), and again when
a model-affecting setting changes. Requests that arrive meanwhile wait for it; if loading failed
they get an error that says why, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer

from server import __version__, testgen_lsp
from server.config import Config, config_from_environment, parse_settings
from server.documents import Document
from server.languages import language_id_of
from server.progress import LspProgress
from server.protocol import PingtiProtocol, read_messages
from server.service import TYPING_IDLE_S, CompletionFailed, CompletionService, ModelState
from server.stages import CompletionOutcome, CompletionQuery, Trigger
from server.workspace import uri_to_path

logger = logging.getLogger(__name__)

# LSP 3.17 "RequestFailed": the request was valid but could not be carried out.
REQUEST_FAILED = -32803
STATUS_REQUEST = "pingti/status"
BACKEND_CHANGED_NOTIFICATION = "pingti/backendChanged"
# Sent by pingti's editor clients when the user moves to a file or to another part of one
# ({"textDocument": {"uri"}, "position"?}); LSP has no focus notification of its own.
FOCUS_NOTIFICATION = "pingti/focus"
_WORD_TAIL = re.compile(r"\w+$")  # identifiers, Unicode ones included

__all__ = ["ModelState", "PingtiServer", "RequestFailed", "server"]


class RequestFailed(JsonRpcException):
    CODE = REQUEST_FAILED
    MESSAGE = "Request failed"


class PingtiServer(LanguageServer):
    def __init__(self, base_config: Config | None = None) -> None:
        super().__init__("pingti-ls", __version__, protocol_cls=PingtiProtocol)
        env = config_from_environment()
        self.pending_messages: list[str] = list(env.errors)
        self.service = CompletionService(base_config or env.config, self._notify_from_service,
                                         on_backend=self._backend_changed)
        self.exit_code = 0

    @property
    def config(self) -> Config:
        return self.service.config

    @property
    def pingti_protocol(self) -> PingtiProtocol:
        assert isinstance(self.protocol, PingtiProtocol)
        return self.protocol

    # --- transport: pygls' loop, swapped for the tolerant one ------------------------------

    def start_io(self, stdin: Any = None, stdout: Any = None) -> None:
        import sys

        self._stop_event = threading.Event()
        reader = StdinAsyncReader(stdin or sys.stdin.buffer, self.thread_pool)
        self.protocol.set_writer(StdoutWriter(stdout or sys.stdout.buffer))
        try:
            asyncio.run(read_messages(reader, self.pingti_protocol, self._stop_event))
        except SystemExit as exc:
            # `exit` after `shutdown` is 0, without it 1 (LSP): keep pygls' code.
            self.exit_code = exc.code if isinstance(exc.code, int) else 1
        except (KeyboardInterrupt, BrokenPipeError):
            pass
        finally:
            self.shutdown()

    def start_tcp(self, host: str, port: int) -> None:
        self._stop_event = stop = threading.Event()

        async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.protocol.set_writer(writer)  # type: ignore[arg-type]
            await read_messages(reader, self.pingti_protocol, stop)
            self.shutdown()

        async def serve() -> None:
            self._server = await asyncio.start_server(connection, host, port)
            logger.info("serving on %s:%s", host, port)
            async with self._server:
                await self._server.serve_forever()

        try:
            asyncio.run(serve())
        except (asyncio.CancelledError, KeyboardInterrupt):
            pass

    def report_server_error(self, error: Exception, source: Any) -> None:
        # Errors are logged; requests already get their own error response.
        logger.error("server error (%s): %s", getattr(source, "__name__", source), error)

    # --- messages to the user --------------------------------------------------------------

    def workspace_root(self) -> Path | None:
        """The client's workspace folder (rootUri/first folder), if it is a local directory."""
        try:
            root = self.workspace.root_path
        except (RuntimeError, AttributeError):
            root = None
        if root and Path(root).is_dir():
            return Path(root)
        return None

    def notify_user(self, message: str, kind: types.MessageType = types.MessageType.Warning
                    ) -> None:
        logger.log(logging.ERROR if kind == types.MessageType.Error else logging.WARNING,
                   "%s", message)
        self.window_show_message(types.ShowMessageParams(type=kind, message=f"pingti: {message}"))

    def _backend_changed(self, event: dict[str, Any]) -> None:
        """A backend went down or came back: ``pingti/backendChanged`` (editors show it in
        their status line; no popup for what the failover already handled)."""
        self.protocol.notify(BACKEND_CHANGED_NOTIFICATION, event)

    def _notify_from_service(self, message: str, error: bool) -> None:
        self.notify_user(message, types.MessageType.Error if error else types.MessageType.Warning)

    def apply_settings(self, raw: Any) -> None:
        parsed = parse_settings(raw, self.config)
        for err in parsed.errors:
            self.notify_user(err)
        logging.getLogger("server").setLevel(parsed.config.log_level.value.upper())
        if self.service.apply_config(parsed.config):
            self.start_loading()

    # --- model lifecycle -------------------------------------------------------------------

    def start_loading(self) -> None:
        progress: LspProgress | None = None

        async def begin(config: Config) -> LspProgress | None:
            nonlocal progress
            progress = await LspProgress.begin(self, "pingti: loading model", config.model,
                                               prefix="pingti-load")
            return progress

        def done() -> None:
            if progress is not None:
                progress.end(self.service.state.value)

        self.service.start_loading(begin, done)

    # --- completion ------------------------------------------------------------------------

    def focus(self, uri: str, position: tuple[int, int] | None, advance: int = 0,
              delay_s: float = 0.0) -> None:
        """Tell the service where the user is: ``position`` (line, character in the client's
        encoding) plus ``advance`` code points, or the end of the document when None; its
        prefetch starts after ``delay_s`` (when the user is typing)."""
        doc = self.pingti_protocol.documents.get(uri)
        if doc is None:
            logger.warning("focus on a document that is not open: %s", uri)
            return
        text = doc.text
        if position is None:
            offset = len(text)
        else:
            offset = doc.offset_at(position[0], position[1], self.pingti_protocol.position_encoding)
            offset = min(len(text), offset + advance)
        self.service.focus(CompletionQuery(uri, text, offset, language_id_of(doc.language_id, uri),
                                           Trigger.AUTOMATIC), delay_s)

    async def complete_at(self, uri: str, position: types.Position, trigger: Trigger
                          ) -> tuple[CompletionOutcome | None, Document]:
        """Complete at ``position``; also returns the document snapshot it completed, so the
        answer is built on the text the model saw even if edits arrive meanwhile."""
        doc = self.pingti_protocol.documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(message=f"document is not open: {uri}")
        offset = doc.offset_at(position.line, position.character,
                               self.pingti_protocol.position_encoding)
        snapshot = doc.snapshot()
        query = CompletionQuery(uri, doc.text, offset, language_id_of(doc.language_id, uri),
                                trigger)
        try:
            return await self.service.complete(query), snapshot
        except CompletionFailed as exc:
            raise RequestFailed(message=str(exc)) from exc


server = PingtiServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: PingtiServer, params: types.InitializeParams) -> None:
    ls.apply_settings(params.initialization_options)
    # The workspace folders bound what repository context may read (server/workspace.py).
    folders = [f.uri for f in params.workspace_folders or ()] or \
        [u for u in (params.root_uri,) if u]
    roots = [p for p in (uri_to_path(u) for u in folders) if p is not None]
    if not roots and params.root_path:
        roots = [Path(params.root_path)]
    ls.service.repo.set_roots(roots, _IndexProgress(ls))


def _watch_files(ls: PingtiServer) -> None:
    """Ask the client to report created, changed and deleted source files (the workspace
    index follows them), where it can register watchers dynamically."""
    caps = ls.protocol.client_capabilities
    watched = caps.workspace.did_change_watched_files if caps and caps.workspace else None
    if not ls.service.repo.roots or not (watched and watched.dynamic_registration):
        return
    from server.workspace import EXTENSIONS

    glob = "**/*.{" + ",".join(sorted({e.lstrip(".") for e in EXTENSIONS})) + "}"
    params = types.RegistrationParams(registrations=[types.Registration(
        id="pingti-watch", method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
        register_options=types.DidChangeWatchedFilesRegistrationOptions(
            watchers=[types.FileSystemWatcher(glob_pattern=glob)]))])
    try:
        ls.client_register_capability(params)
    except Exception as exc:  # noqa: BLE001 - without watchers, didSave still refreshes
        logger.info("file watchers not registered: %s", exc)


class _IndexProgress:
    """Work-done progress of the workspace index, reported from the indexer's thread."""

    def __init__(self, ls: PingtiServer) -> None:
        self._ls = ls
        self._progress: Any = None

    def __call__(self, message: str, percentage: int | None) -> None:
        logger.info("repository context: %s", message)
        loop = getattr(self._ls, "loop", None)
        if loop is None or loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self._send(message, percentage), loop)

    async def _send(self, message: str, percentage: int | None) -> None:
        if percentage == 0 and self._progress is None:
            self._progress = await LspProgress.begin(self._ls, "pingti: indexing the workspace",
                                                     message, percentage=0,
                                                     prefix="pingti-index")
        elif self._progress is not None and percentage == 100:
            self._progress.end(message)
            self._progress = None
        elif self._progress is not None:
            self._progress.report(message, percentage)


@server.feature(types.INITIALIZED)
def on_initialized(ls: PingtiServer, params: types.InitializedParams) -> None:
    for msg in ls.pending_messages:
        ls.notify_user(msg)
    ls.pending_messages.clear()
    _watch_files(ls)
    ls.start_loading()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_config(ls: PingtiServer, params: types.DidChangeConfigurationParams) -> None:
    ls.apply_settings(params.settings)


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: PingtiServer, *args: Any) -> None:
    ls.service.cancel_all("shutdown")


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def on_did_open(ls: PingtiServer, params: types.DidOpenTextDocumentParams) -> None:
    uri = params.text_document.uri
    docs = ls.pingti_protocol.documents
    ls.service.repo.opened(uri, lambda: (d.text if (d := docs.get(uri)) is not None else None),
                           params.text_document.language_id)
    # Where the cursor is, didOpen does not say: a request at the end of the file (where code
    # is often added) is the guess, until the client's pingti/focus says better.
    ls.focus(params.text_document.uri, None)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def on_did_change(ls: PingtiServer, params: types.DidChangeTextDocumentParams) -> None:
    # An edit drops the document's pending prefetch (its prompt is out of date). An edit in
    # another file than the focused one: the user switched there (clients without
    # pingti/focus). Edits in the focused file are followed by completion requests instead.
    uri = params.text_document.uri
    ls.service.edited(uri)
    ls.service.repo.changed(uri, [rng.start.line for change in params.content_changes
                                  if (rng := getattr(change, "range", None)) is not None])
    if ls.service.focused_uri == uri or not params.content_changes:
        return
    change = params.content_changes[-1]
    rng = getattr(change, "range", None)
    ls.focus(uri, None if rng is None else (rng.start.line, rng.start.character),
             len(change.text), delay_s=TYPING_IDLE_S)


@server.feature(FOCUS_NOTIFICATION)
def on_focus(ls: PingtiServer, params: Any) -> None:
    """``pingti/focus``: the user moved to a document (or to another part of it)."""
    td = _field(params, "textDocument")
    uri = _field(td, "uri") if td is not None else _field(params, "uri")
    pos = _field(params, "position")
    line, char = _field(pos, "line"), _field(pos, "character")
    if not isinstance(uri, str):
        logger.warning("pingti/focus without a textDocument uri: ignored")
        return
    if pos is not None and not (isinstance(line, int) and isinstance(char, int)
                                and line >= 0 and char >= 0):
        logger.warning("pingti/focus with an invalid position: ignored")
        return
    ls.focus(uri, None if pos is None else (line, char))


def _field(obj: Any, name: str) -> Any:
    """A field of a custom message's params (pygls gives an object, tests may give a dict)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def on_did_close(ls: PingtiServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.service.close_document(params.text_document.uri)
    ls.service.repo.closed(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def on_did_save(ls: PingtiServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.service.repo.saved(params.text_document.uri)


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def on_watched_files(ls: PingtiServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.service.repo.files_changed([(c.uri, c.type == types.FileChangeType.Deleted)
                                   for c in params.changes])


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[testgen_lsp.ACTION_KIND]))
def code_action(ls: PingtiServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    return testgen_lsp.code_actions(ls, params)


@server.command(testgen_lsp.COMMAND)
async def generate_tests(ls: PingtiServer, *args: Any) -> dict[str, Any]:
    return await testgen_lsp.generate_tests_command(ls, *args)


@server.feature(STATUS_REQUEST)
def status(ls: PingtiServer, *args: Any) -> dict[str, Any]:
    """``pingti/status``: what is loaded and how the model thread is doing (for editors' status
    lines, benchmarks and tests). With ``{"uri": ...}`` also the figures of that document's last
    completion (``lastCompletion``: tokens and timings), or null."""
    params = args[0] if args else None
    uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
    out = ls.service.status(uri if isinstance(uri, str) else None)
    out["version"] = __version__
    return out


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(ls: PingtiServer, params: types.InlineCompletionParams
                            ) -> types.InlineCompletionList:
    trigger = (Trigger.AUTOMATIC
               if params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
               else Trigger.INVOKED)
    outcome, _ = await ls.complete_at(params.text_document.uri, params.position, trigger)
    if outcome is None:
        return types.InlineCompletionList(items=[])
    pos = params.position
    # All candidates, best first (repeats included: they are what was sampled); empty ones are
    # left out.
    return types.InlineCompletionList(items=[
        types.InlineCompletionItem(insert_text=text, range=types.Range(start=pos, end=pos))
        for text in (outcome.suggestion, *outcome.alternatives) if text])


@server.feature(types.TEXT_DOCUMENT_COMPLETION)
async def completion(ls: PingtiServer, params: types.CompletionParams) -> types.CompletionList:
    automatic = params.context is not None and \
        params.context.trigger_kind != types.CompletionTriggerKind.Invoked
    outcome, doc = await ls.complete_at(params.text_document.uri, params.position,
                                        Trigger.AUTOMATIC if automatic else Trigger.INVOKED)
    if outcome is None or not outcome.suggestion:
        return types.CompletionList(is_incomplete=True, items=[])
    enc = ls.pingti_protocol.position_encoding
    offset = doc.offset_at(params.position.line, params.position.character, enc)
    # Replace the word being typed so clients that filter by it keep the item visible.
    m = _WORD_TAIL.search(doc.text[max(0, offset - 200):offset])
    word = m.group(0) if m else ""
    line, col = doc.position_at(offset - len(word), enc)
    start = types.Position(line=line, character=col)
    text = word + outcome.suggestion
    first_line = text.split("\n", 1)[0].strip() or text.strip().split("\n", 1)[0]
    return types.CompletionList(is_incomplete=True, items=[types.CompletionItem(
        label=first_line[:80] + ("…" if "\n" in text.strip() else ""),
        kind=types.CompletionItemKind.Snippet,
        detail="pingti",
        documentation=_documentation(ls, text, doc.language_id),
        filter_text=text,
        sort_text="0000",
        insert_text_format=types.InsertTextFormat.PlainText,
        text_edit=types.TextEdit(range=types.Range(start=start, end=params.position),
                                 new_text=text),
    )])


def _documentation(ls: PingtiServer, text: str, language: str) -> types.MarkupContent:
    """The full suggestion, as Markdown only if the client said it renders Markdown."""
    caps = ls.pingti_protocol.client_capabilities
    item_caps = caps and caps.text_document and caps.text_document.completion and \
        caps.text_document.completion.completion_item
    formats = (item_caps and item_caps.documentation_format) or []
    if types.MarkupKind.Markdown in formats:
        return types.MarkupContent(kind=types.MarkupKind.Markdown,
                                   value=f"```{language}\n{text}\n```")
    return types.MarkupContent(kind=types.MarkupKind.PlainText, value=text)
