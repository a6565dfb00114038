"""The "Generate tests" code action and the ``pingti.generateTests`` command.

Thin: the work is :func:`testgen.pipeline.generate_tests`, on a thread of its own; the model
answers through the same batching model thread as completions. The command reports work-done
progress (cancellable, as is the request itself), applies the result with ``workspace/applyEdit``
(a new file is created with ``overwrite: false``; an existing one only gets text appended at its
end) and answers with a summary. Anything that goes wrong is a message, and nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from server.backends.base import CancelToken, GenerationRequest
from server.config import SandboxMode

if TYPE_CHECKING:
    from server.lsp import PingtiServer

logger = logging.getLogger(__name__)

COMMAND = "pingti.generateTests"
ACTION_KIND = "source.generateTests"
_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pingti-testgen")


def uri_to_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def code_actions(ls: PingtiServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    from testgen.extract import NoTarget, find_target

    uri = params.text_document.uri
    doc = ls.pingti_protocol.documents.get(uri)
    if doc is None or uri_to_path(uri) is None:
        return []
    language = doc.language_id or ""
    if language != "python" and not uri.endswith((".py", ".pyi")):
        return []
    if params.context.only and not any(ACTION_KIND.startswith(k) or k.startswith(ACTION_KIND)
                                       for k in params.context.only):
        return []
    start = params.range.start
    offset = doc.offset_at(start.line, start.character, ls.pingti_protocol.position_encoding)
    line, col = _line_col(doc.text, offset)
    try:
        target = find_target(doc.text, line, col)
    except NoTarget:
        return []
    title = f"Generate tests for {target.qualname}"
    args = [uri, {"line": start.line, "character": start.character}]
    return [types.CodeAction(title=title, kind=ACTION_KIND,
                             command=types.Command(title=title, command=COMMAND, arguments=args))]


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """0-based line and code-point column of ``offset`` (``\\n`` lines, as testgen parses)."""
    before = text[:offset]
    line = before.count("\n")
    return line, offset - (before.rfind("\n") + 1)


def _parse_args(args: tuple[Any, ...]) -> tuple[str, int, int]:
    """``[uri, {line, character}]`` or ``[{uri, position: {line, character}}]``."""
    try:
        first = args[0]
        if isinstance(first, str):
            pos = args[1] if len(args) > 1 else {"line": 0, "character": 0}
            uri = first
        else:
            uri, pos = _get(first, "uri"), _get(first, "position")
        return str(uri), int(_get(pos, "line")), int(_get(pos, "character"))
    except (IndexError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError("pingti.generateTests expects [uri, {line, character}]") from exc


def _get(obj: Any, key: str) -> Any:
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


async def generate_tests_command(ls: PingtiServer, *args: Any) -> dict[str, Any]:
    from testgen.extract import NoTarget
    from testgen.pipeline import Cancelled, TestGenError, TestGenSettings, generate_tests
    from testgen.sandbox import Isolation, Sandbox

    try:
        uri, line, character = _parse_args(args)
    except ValueError as exc:
        return _failed(ls, str(exc))
    doc = ls.pingti_protocol.documents.get(uri)
    path = uri_to_path(uri)
    if path is None:
        return _failed(ls, f"cannot generate tests for {uri}: not a file on disk")
    text = doc.text if doc is not None else _read(path)
    if text is None:
        return _failed(ls, f"cannot generate tests: {uri} is neither open nor readable")
    if doc is not None:
        offset = doc.offset_at(line, character, ls.pingti_protocol.position_encoding)
        line, character = _line_col(doc.text, offset)
    try:
        engine = await ls.ready_engine()
    except Exception as exc:  # noqa: BLE001 - the model is missing: say so
        return _failed(ls, str(getattr(exc, "message", exc)))
    cfg = ls.config
    sandbox = await asyncio.get_running_loop().run_in_executor(
        _executor, lambda: Sandbox(Isolation(cfg.sandbox.value)))
    if cfg.sandbox is SandboxMode.NONE:
        ls.notify_user("sandbox is \"none\": generated tests run without namespace isolation "
                       "(only rlimits, Landlock, seccomp and a timeout).")
    cancel = threading.Event()
    token = f"pingti-testgen-{uuid.uuid4().hex[:8]}"
    progress = await _start_progress(ls, token, cancel)
    loop = asyncio.get_running_loop()
    backend = engine.backend
    scheduler = engine.scheduler

    def model(prompt: str, max_new: int) -> str:
        ids = backend.encode(prompt, special=True)
        window = backend.info.context_window
        if window and len(ids) + max_new > window:
            max_new = max(64, window - len(ids))
            ids = ids[-(window - max_new):]
        req = GenerationRequest(ids, max_new, temperature=0.0, cache_key=f"testgen:{uri}")
        ct = CancelToken()

        def watch() -> None:  # the pipeline's cancel event stops the model too
            cancel.wait()
            ct.cancel("test generation cancelled")

        threading.Thread(target=watch, daemon=True).start()
        if scheduler is not None:
            result = scheduler.submit(req, ct).result()
        else:
            result = backend.generate(req, ct)
        if cancel.is_set():
            raise Cancelled()
        return result.text

    def report(message: str, pct: int) -> None:
        if progress:
            loop.call_soon_threadsafe(ls.work_done_progress.report, token,
                                      types.WorkDoneProgressReport(message=message,
                                                                   percentage=pct))

    workspace = ls.workspace_root()
    settings = TestGenSettings(max_new_tokens=cfg.testgen_max_tokens,
                               time_budget_s=float(cfg.testgen_time_budget_s))
    outcome = "failed"
    try:
        result = await loop.run_in_executor(
            _executor, lambda: generate_tests(path, text, line, character, workspace, model,
                                              backend.info.special_tokens, sandbox, settings,
                                              report, cancel))
    except asyncio.CancelledError:
        cancel.set()
        outcome = "cancelled"
        raise
    except Cancelled:
        outcome = "cancelled"
        return _failed(ls, "test generation cancelled; nothing written", level="info")
    except (TestGenError, NoTarget) as exc:
        return _failed(ls, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
        logger.exception("test generation failed")
        return _failed(ls, f"test generation failed: {type(exc).__name__}: {exc}")
    finally:
        cancel.set()  # also releases the model-cancel watcher threads
        if progress:
            ls.work_done_progress.end(token, types.WorkDoneProgressEnd(message=outcome))
    applied, why = await _apply(ls, result.test_path, result.new_text, result.append)
    if not applied:
        return _failed(ls, f"the client did not apply the tests ({why}); nothing written")
    outcome = "done"
    ls.notify_user(result.summary, types.MessageType.Info)
    return {"ok": True, "message": result.summary, "testFile": result.test_path.as_uri(),
            "kept": result.kept, "generated": result.generated, "parsed": result.parsed,
            "passed": result.passed, "coverageBefore": round(result.coverage_before, 1),
            "coverageAfter": round(result.coverage_after, 1), "rounds": result.rounds}


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _failed(ls: PingtiServer, message: str, level: str = "warning") -> dict[str, Any]:
    kind = types.MessageType.Info if level == "info" else types.MessageType.Warning
    ls.notify_user(message, kind)
    return {"ok": False, "message": message}


async def _start_progress(ls: PingtiServer, token: str, cancel: threading.Event) -> bool:
    if not ls._supports_progress():
        return False
    try:
        await asyncio.wait_for(ls.work_done_progress.create_async(token), 10)
    except Exception:  # noqa: BLE001 - no progress then
        return False
    ls.work_done_progress.begin(token, types.WorkDoneProgressBegin(
        title="pingti: generating tests", cancellable=True, percentage=0))
    fut = ls.work_done_progress.tokens.get(token)
    if fut is not None:
        fut.add_done_callback(lambda f: cancel.set() if f.cancelled() else None)
    return True


async def _apply(ls: PingtiServer, path: Path, text: str, append: bool) -> tuple[bool, str]:
    uri = path.as_uri()
    caps = ls.pingti_protocol.client_capabilities
    we = caps.workspace.workspace_edit if caps and caps.workspace else None
    doc_changes = bool(we and we.document_changes)
    can_create = bool(we and we.resource_operations
                      and types.ResourceOperationKind.Create in we.resource_operations)
    if append:
        open_doc = ls.pingti_protocol.documents.get(uri)
        current = open_doc.text if open_doc is not None else (_read(path) or "")
        end = _end_position(current, ls)
        edit = types.TextEdit(range=types.Range(start=end, end=end), new_text=text)
        if doc_changes:
            version = open_doc.version if open_doc is not None else None
            changes: Any = types.WorkspaceEdit(document_changes=[types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri,
                                                                            version=version),
                edits=[edit])])
        else:
            changes = types.WorkspaceEdit(changes={uri: [edit]})
    elif can_create and doc_changes:
        start = types.Position(line=0, character=0)
        changes = types.WorkspaceEdit(document_changes=[
            types.CreateFile(uri=uri, options=types.CreateFileOptions(overwrite=False,
                                                                      ignore_if_exists=False)),
            types.TextDocumentEdit(
                text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=None),
                edits=[types.TextEdit(range=types.Range(start=start, end=start), new_text=text)]),
        ])
    else:
        # The client cannot create files: write the new file ourselves, refusing to replace one.
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
            return True, ""
        except OSError as exc:
            return False, str(exc)
    try:
        res = await asyncio.wait_for(ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=changes, label="pingti: generated tests")), 60)
    except Exception as exc:  # noqa: BLE001
        return False, str(exc)
    return bool(res.applied), res.failure_reason or "refused"


def _end_position(text: str, ls: PingtiServer) -> types.Position:
    from server.documents import Document

    line, character = Document("x", text).position_at(len(text),
                                                      ls.pingti_protocol.position_encoding)
    return types.Position(line=line, character=character)
