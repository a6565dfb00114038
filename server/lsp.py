"""pingti-ls: the language server. Thin handlers over :mod:`server.engine`.

Life of a completion request: the handler snapshots the document, cancels any older request for
the same document, builds the prompt on the worker thread (:meth:`CompletionEngine.prepare`) and
submits it to the model thread (``server/batching.py``), which decodes it together with the
requests of other documents. If the client sends ``$/cancelRequest``, pygls cancels the handler's
task; the handler then sets the request's :class:`CancelToken`, which the decoding loop checks
after every step.

The model loads on the same worker when the client says ``initialized`` (with work-done
progress), and again when a model-affecting setting changes. Requests that arrive meanwhile
wait for it; if loading failed they get an error that says why, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import re
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.io_ import StdinAsyncReader, StdoutWriter
from pygls.lsp.server import LanguageServer

from server import __version__, testgen_lsp
from server.backends.base import CancelledError, CancelToken
from server.config import Config, config_from_environment, parse_settings
from server.context import CursorContext, build_context
from server.debounce import Debouncer
from server.documents import Document
from server.engine import CompletionEngine, CompletionOutcome, PreparedCompletion, load_backend
from server.model_assets import ModelError
from server.protocol import PingtiProtocol, read_messages

logger = logging.getLogger(__name__)

# LSP 3.17 "RequestFailed": the request was valid but could not be carried out.
REQUEST_FAILED = -32803
STATUS_REQUEST = "pingti/status"
_LAST_OUTCOMES = 256  # documents whose last completion figures pingti/status can report
_WORD_TAIL = re.compile(r"\w+$")  # identifiers, Unicode ones included


class ModelState(enum.Enum):
    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


class RequestFailed(JsonRpcException):
    CODE = REQUEST_FAILED
    MESSAGE = "Request failed"


class PingtiServer(LanguageServer):
    def __init__(self, base_config: Config | None = None) -> None:
        super().__init__("pingti-ls", __version__, protocol_cls=PingtiProtocol)
        env = config_from_environment()
        self.config = base_config or env.config
        self.pending_messages: list[str] = list(env.errors)
        # One worker: the model is neither thread-safe nor worth sharing 2 cores between runs.
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pingti-model")
        self.engine: CompletionEngine | None = None
        self.state = ModelState.NOT_LOADED
        self.load_error = ""
        self._load_task: asyncio.Task[CompletionEngine | None] | None = None
        self.inflight: dict[str, CancelToken] = {}
        # The last completion's figures per document, oldest first (pingti/status).
        self.last_outcomes: dict[str, dict[str, Any]] = {}
        self.exit_code = 0
        self.debouncer = Debouncer(self.config.debounce_ms / 1000)

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

    def apply_settings(self, raw: Any) -> None:
        parsed = parse_settings(raw, self.config)
        for err in parsed.errors:
            self.notify_user(err)
        old, self.config = self.config, parsed.config
        self.debouncer.max_delay_s = self.config.debounce_ms / 1000
        logging.getLogger("server").setLevel(self.config.log_level.value.upper())
        if self.state is ModelState.NOT_LOADED:
            return
        if old.model_key() != self.config.model_key() or self.state is ModelState.FAILED:
            self.start_loading()
        elif self.engine is not None:
            # Applied right away (not queued behind the worker): the cache fast path runs on
            # the event loop and must not answer with the old settings. Cache entries are keyed
            # by the settings, so a generation still running with the old ones cannot leak.
            self.engine.update_config(self.config)

    # --- model lifecycle -------------------------------------------------------------------

    def _supports_progress(self) -> bool:
        caps = self.pingti_protocol.client_capabilities
        return bool(caps and caps.window and caps.window.work_done_progress)

    def start_loading(self) -> None:
        for token in self.inflight.values():
            token.cancel("model reload")
        self.state = ModelState.LOADING
        self._load_task = asyncio.ensure_future(self._load(self.config))

    async def _load(self, config: Config) -> CompletionEngine | None:
        loop = asyncio.get_running_loop()
        token = f"pingti-load-{uuid.uuid4().hex[:8]}"
        progress_ok = False
        if self._supports_progress():
            try:
                await asyncio.wait_for(self.work_done_progress.create_async(token), 10)
                self.work_done_progress.begin(token, types.WorkDoneProgressBegin(
                    title="pingti: loading model", message=config.model, cancellable=False))
                progress_ok = True
            except Exception as exc:  # a client may refuse; loading goes on without progress
                logger.info("work-done progress unavailable: %s", exc)

        def report(message: str) -> None:
            logger.info("loading: %s", message)
            if progress_ok:
                loop.call_soon_threadsafe(self.work_done_progress.report, token,
                                          types.WorkDoneProgressReport(message=message))

        def build() -> CompletionEngine:
            if self.engine is not None:
                self.engine.close()
                self.engine = None
            backend = load_backend(config, report)
            return CompletionEngine(backend, config, batching=True)

        engine: CompletionEngine | None
        try:
            loaded = await loop.run_in_executor(self.worker, build)
        except Exception as exc:
            engine = None
            if isinstance(exc, ModelError):
                error, prefix = str(exc), "model not available"
            else:
                logger.exception("model load failed")
                error, prefix = f"{type(exc).__name__}: {exc}", "model failed to load"
            self.notify_user(f"{prefix}: {error}", types.MessageType.Error)
            if config.model_key() == self.config.model_key():  # else a newer load is running
                self.state, self.load_error = ModelState.FAILED, error
        else:
            engine = loaded
            # Settings may have changed while loading; only a model-affecting change (which
            # started another load) makes this engine stale.
            if config.model_key() == self.config.model_key():
                if config != self.config:
                    loaded.update_config(self.config)
                self.engine, self.state, self.load_error = loaded, ModelState.READY, ""
            info = loaded.backend.info
            logger.info("model ready: %s on %s (%s, %s) in %.1fs", info.name, info.device,
                        info.quantization, info.dtype, info.load_s)
        finally:
            if progress_ok:
                self.work_done_progress.end(token, types.WorkDoneProgressEnd(
                    message=self.state.value))
        return engine

    async def ready_engine(self) -> CompletionEngine:
        if self._load_task is None:
            self.start_loading()
        assert self._load_task is not None
        while True:
            task = self._load_task
            await asyncio.shield(task)
            if task is self._load_task:  # not replaced by a reload meanwhile
                break
        if self.engine is None:
            raise RequestFailed(message=f"pingti: model not available: {self.load_error}")
        return self.engine

    # --- completion ------------------------------------------------------------------------

    async def complete_at(self, uri: str, position: types.Position, automatic: bool = False
                          ) -> tuple[CompletionOutcome | None, Document]:
        """Complete at ``position``; also returns the document snapshot it completed, so the
        answer is built on the text the model saw even if edits arrive meanwhile."""
        doc = self.pingti_protocol.documents.get(uri)
        if doc is None:
            raise JsonRpcInvalidParams(message=f"document is not open: {uri}")
        offset = doc.offset_at(position.line, position.character,
                               self.pingti_protocol.position_encoding)
        snapshot = Document(uri, doc.text, doc.version, doc.language_id)
        text, language = doc.text, doc.language_id or _language_from_uri(uri)
        engine = await self.ready_engine()
        token = CancelToken()
        if (older := self.inflight.get(uri)) is not None:
            older.cancel("superseded by a newer request")
        self.inflight[uri] = token
        loop = asyncio.get_running_loop()
        delay = self.debouncer.delay(uri, loop.time()) if automatic else 0.0
        try:
            # Answers that need no model skip the worker queue and the debounce.
            # The cursor context (a tree-sitter parse) is built once, for both cache checks.
            ctx = build_context(text, offset, language)
            if (quick := engine.cached(uri, text, offset, language, ctx)) is not None:
                self.remember_outcome(uri, quick)
                return quick, snapshot
            if delay > 0:
                await asyncio.sleep(delay)
                if token.cancelled:  # the user typed on: the newer request answers
                    return None, snapshot
            prepared = await loop.run_in_executor(
                self.worker, _prepare, engine, uri, text, offset, language, ctx, token)
            if isinstance(prepared, CompletionOutcome):
                self.remember_outcome(uri, prepared)
                return prepared, snapshot
            assert engine.scheduler is not None
            # The model thread batches this request (and its further candidates, which share
            # the prompt's KV cache) with those of other documents.
            results = await asyncio.gather(*(
                asyncio.wrap_future(engine.scheduler.submit(r, token))
                for r in engine.requests(prepared)))
            if token.cancelled:
                raise CancelledError(token.reason)
            outcome = await loop.run_in_executor(
                self.worker, lambda: engine.finish(prepared, *results))
        except asyncio.CancelledError:
            token.cancel("$/cancelRequest")
            raise
        except CancelledError:
            return None, snapshot  # superseded: the newer request answers
        except MemoryError as exc:
            raise RequestFailed(message="pingti: out of memory while generating; lower "
                                "contextTokens or use quantization") from exc
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():
                raise RequestFailed(message="pingti: out of memory while generating; lower "
                                    "contextTokens or use quantization") from exc
            logger.exception("generation failed")
            raise RequestFailed(message=f"pingti: generation failed: {exc}") from exc
        finally:
            if self.inflight.get(uri) is token:
                del self.inflight[uri]
        self.remember_outcome(uri, outcome)
        return outcome, snapshot

    def remember_outcome(self, uri: str, outcome: CompletionOutcome) -> None:
        """Keep the figures of the last answer per document for ``pingti/status``
        (benchmark clients read token counts and timings there; LSP results cannot carry them)."""
        self.last_outcomes.pop(uri, None)
        self.last_outcomes[uri] = {
            "source": outcome.source.value, "mode": outcome.mode.value,
            "candidates": 1 + len(outcome.alternatives),
            "promptTokens": outcome.prompt_tokens, "generatedTokens": outcome.generated_tokens,
            "reusedTokens": outcome.reused_tokens, "prefillS": round(outcome.prefill_s, 4),
            "decodeS": round(outcome.decode_s, 4), "totalS": round(outcome.total_s, 4),
            "finish": outcome.finish, "syntax": outcome.syntax or None}
        while len(self.last_outcomes) > _LAST_OUTCOMES:
            self.last_outcomes.pop(next(iter(self.last_outcomes)))


def _prepare(engine: CompletionEngine, uri: str, text: str, offset: int, language: str,
             ctx: CursorContext, token: CancelToken) -> CompletionOutcome | PreparedCompletion:
    if token.cancelled:  # cancelled while queued behind another request
        raise CancelledError(token.reason)
    return engine.prepare(uri, text, offset, language, ctx)


_EXT_LANG = {".py": "python", ".pyi": "python", ".js": "javascript", ".ts": "typescript",
             ".go": "go", ".rs": "rust", ".java": "java", ".c": "c", ".h": "c", ".cpp": "cpp"}


def _language_from_uri(uri: str) -> str:
    for ext, lang in _EXT_LANG.items():
        if uri.endswith(ext):
            return lang
    return ""


server = PingtiServer()


@server.feature(types.INITIALIZE)
def on_initialize(ls: PingtiServer, params: types.InitializeParams) -> None:
    ls.apply_settings(params.initialization_options)


@server.feature(types.INITIALIZED)
def on_initialized(ls: PingtiServer, params: types.InitializedParams) -> None:
    for msg in ls.pending_messages:
        ls.notify_user(msg)
    ls.pending_messages.clear()
    ls.start_loading()


@server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
def on_config(ls: PingtiServer, params: types.DidChangeConfigurationParams) -> None:
    ls.apply_settings(params.settings)


@server.feature(types.SHUTDOWN)
def on_shutdown(ls: PingtiServer, *args: Any) -> None:
    for token in ls.inflight.values():
        token.cancel("shutdown")


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
    out: dict[str, Any] = {"state": ls.state.value, "version": __version__}
    params = args[0] if args else None
    uri = params.get("uri") if isinstance(params, dict) else getattr(params, "uri", None)
    if isinstance(uri, str):
        out["lastCompletion"] = ls.last_outcomes.get(uri)
    if ls.load_error:
        out["error"] = ls.load_error
    if ls.engine is not None:
        info = ls.engine.backend.info
        out["model"] = {"name": info.name, "backend": info.backend, "device": info.device,
                        "quantization": info.quantization, "contextWindow": info.context_window}
        if ls.engine.scheduler is not None:
            out["batching"] = ls.engine.scheduler.stats()
    return out


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION, types.InlineCompletionOptions())
async def inline_completion(ls: PingtiServer, params: types.InlineCompletionParams
                            ) -> types.InlineCompletionList:
    automatic = params.context.trigger_kind == types.InlineCompletionTriggerKind.Automatic
    outcome, _ = await ls.complete_at(params.text_document.uri, params.position, automatic)
    if outcome is None:
        return types.InlineCompletionList(items=[])
    pos = params.position
    # All candidates in seed order (repeats included: they are what was sampled); empty ones
    # are left out.
    return types.InlineCompletionList(items=[
        types.InlineCompletionItem(insert_text=text, range=types.Range(start=pos, end=pos))
        for text in (outcome.suggestion, *outcome.alternatives) if text])


@server.feature(types.TEXT_DOCUMENT_COMPLETION)
async def completion(ls: PingtiServer, params: types.CompletionParams) -> types.CompletionList:
    automatic = params.context is not None and \
        params.context.trigger_kind != types.CompletionTriggerKind.Invoked
    outcome, doc = await ls.complete_at(params.text_document.uri, params.position, automatic)
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
