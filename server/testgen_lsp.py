"""The "Generate tests" code action and the ``pingti.generateTests`` command.

Thin: the work is :func:`testgen.pipeline.generate_tests`, on the completion service's jobs
thread; its model calls go through the service (and so through the same batching generator as
completions). The command reports work-done
progress (cancellable, as is the request itself), applies the result with ``workspace/applyEdit``
(a new file is created with ``overwrite: false``; an existing one only gets text appended at its
end) and answers with a summary. Anything that goes wrong is a message, and nothing is written.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from lsprotocol import types

from server.backends.base import CancelledError, CancelToken
from server.config import RegressionMode, SandboxMode
from server.languages import Language, from_lsp_id, from_uri
from server.progress import LspProgress
from server.service import CompletionFailed, testgen_cache_key

if TYPE_CHECKING:
    from server.lsp import PingtiServer
    from testgen.pipeline import TestGenResult

logger = logging.getLogger(__name__)

COMMAND = "pingti.generateTests"
ACTION_KIND = "source.generateTests"


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
    if (from_lsp_id(doc.language_id) or from_uri(uri)) is not Language.PYTHON:
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


@dataclass(frozen=True)
class _Job:
    """What one command works on: the file, its text, the target's 0-based line and column."""

    uri: str
    path: Path
    text: str
    line: int
    character: int


async def generate_tests_command(ls: PingtiServer, *args: Any) -> dict[str, Any]:
    """``pingti.generateTests``: resolve the job, run the pipeline on the service's jobs
    thread (its model calls go through the service), then apply the edit."""
    from testgen.extract import NoTarget
    from testgen.pipeline import Cancelled, TestGenError

    try:
        job = _resolve_job(ls, args)
        await ls.service.ready()
    except (ValueError, CompletionFailed) as exc:
        return _failed(ls, str(exc))
    cancel = threading.Event()
    progress = await LspProgress.begin(ls, "pingti: generating tests", cancellable=True,
                                       percentage=0, prefix="pingti-testgen")
    if progress is not None:
        progress.on_cancel(cancel.set)
    outcome = "failed"
    try:
        result = await _run_pipeline(ls, job, cancel, progress)
    except asyncio.CancelledError:
        cancel.set()
        outcome = "cancelled"
        raise
    except Cancelled:
        outcome = "cancelled"
        return _failed(ls, "test generation cancelled; nothing written", level="info")
    except (TestGenError, NoTarget, CompletionFailed) as exc:
        return _failed(ls, str(exc))
    except Exception as exc:  # noqa: BLE001 - a bug must not take the server down
        logger.exception("test generation failed")
        return _failed(ls, f"test generation failed: {type(exc).__name__}: {exc}")
    finally:
        cancel.set()  # stops a model call still running
        if progress is not None:
            progress.end(outcome)
    if result.regression:
        mode = ls.config.testgen_regression_tests
        if mode is RegressionMode.ALWAYS or (mode is RegressionMode.ASK
                                             and await _ask_regression(ls, result)):
            result.keep_regression()
    if not result.new_text:
        return _failed(ls, f"none of the {result.generated} generated tests for "
                           f"{result.target.qualname} passed reliably in the sandbox, and the "
                           f"{len(result.regression)} regression tests on offer were left out; "
                           "nothing written")
    applied, why = await _apply(ls, result.test_path, result.new_text, result.append)
    if not applied:
        return _failed(ls, f"the client did not apply the tests ({why}); nothing written")
    ls.notify_user(result.summary, types.MessageType.Info)
    mutation = _mutation_json(result)
    if mutation and mutation["notCaught"]:
        # Every change no test catches, in the client's log (the message lists the first few).
        ls.window_log_message(types.LogMessageParams(
            type=types.MessageType.Info,
            message="pingti: changes to " + result.target.qualname + " no test catches:\n"
                    + "\n".join(f"  {x['line']}: {x['diff']}" for x in mutation["notCaught"])))
    return {"ok": True, "message": result.summary, "testFile": result.test_path.as_uri(),
            "kept": result.kept, "generated": result.generated, "parsed": result.parsed,
            "passed": result.passed, "coverageBefore": round(result.coverage_before, 1),
            "coverageAfter": round(result.coverage_after, 1), "rounds": result.rounds,
            "mutation": mutation, "regressionKept": result.regression_kept,
            "regressionLeftOut": len(result.regression)}


KEEP_REGRESSION = "Keep as regression tests"
LEAVE_OUT = "Leave them out"
# How long the question waits for an answer; no answer means the tests are left out.
ASK_TIMEOUT_S = 600.0


async def _ask_regression(ls: PingtiServer, result: TestGenResult) -> bool:
    """Ask whether to keep the regression tests; anything but a yes (no answer, a client that
    cannot ask) leaves them out."""
    n = len(result.regression)
    message = (f"pingti: {n} generated test{'s' if n > 1 else ''} for {result.target.qualname} "
               f"failed only because the value the model expected differs from what the code "
               f"returns now. Keep {'them' if n > 1 else 'it'} as regression tests with today's "
               "values? They pin today's behaviour: if the code is wrong there, they lock the bug "
               "in. Each is marked in the file; check the values.")
    try:
        answer = await asyncio.wait_for(ls.window_show_message_request_async(
            types.ShowMessageRequestParams(
                type=types.MessageType.Info, message=message,
                actions=[types.MessageActionItem(title=KEEP_REGRESSION),
                         types.MessageActionItem(title=LEAVE_OUT)])), ASK_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - a client that cannot ask means no
        logger.info("regression tests left out: the question got no answer (%s)", exc)
        return False
    return answer is not None and getattr(answer, "title", None) == KEEP_REGRESSION


def _mutation_json(result: TestGenResult) -> dict[str, Any] | None:
    """The mutation analysis for the command's answer (None when it did not run)."""
    from testgen.mutation import Fate

    m = result.mutation
    if m is None:
        return None

    def killed(report: Any) -> int | None:
        return None if report is None else int(report.killed)

    return {"changes": len(m.results), "killed": m.killed, "counted": m.counted,
            "score": round(m.score, 1), "equivalentLooking": m.count(Fate.EQUIVALENT),
            "notRun": m.count(Fate.NOT_RUN), "survived": m.count(Fate.SURVIVED),
            "killedByExistingTests": killed(result.mutation_existing),
            "killedBeforeGuidedRounds": killed(result.mutation_unguided),
            "keptFromGuidedRounds": result.mutation_kept,
            "notCaught": [{"line": x.line, "diff": x.diff, "label": x.label}
                          for x in m.survivors]}


def _resolve_job(ls: PingtiServer, args: tuple[Any, ...]) -> _Job:
    """The command's arguments → the file and position (raises ValueError with a message)."""
    uri, line, character = _parse_args(args)
    path = uri_to_path(uri)
    if path is None:
        raise ValueError(f"cannot generate tests for {uri}: not a file on disk")
    doc = ls.pingti_protocol.documents.get(uri)
    text = doc.text if doc is not None else _read(path)
    if text is None:
        raise ValueError(f"cannot generate tests: {uri} is neither open nor readable")
    if doc is not None:  # the client's position is in its encoding's units
        offset = doc.offset_at(line, character, ls.pingti_protocol.position_encoding)
        line, character = _line_col(doc.text, offset)
    return _Job(uri, path, text, line, character)


async def _run_pipeline(ls: PingtiServer, job: _Job, cancel: threading.Event,
                        progress: LspProgress | None) -> TestGenResult:
    from testgen.pipeline import Cancelled, TestGenSettings, generate_tests
    from testgen.sandbox import Isolation, Sandbox

    service, cfg = ls.service, ls.config
    loop = asyncio.get_running_loop()
    sandbox = await service.run_job(lambda: Sandbox(Isolation(cfg.sandbox.value)))
    if cfg.sandbox is SandboxMode.NONE:
        ls.notify_user("sandbox is \"none\": generated tests run without namespace isolation "
                       "(only rlimits, Landlock, seccomp and a timeout).")
    # One token for every model call of this command, on the pipeline's own cancel event:
    # cancelling the command stops the model call that is running.
    token = CancelToken(cancel, "test generation cancelled")
    key = testgen_cache_key(job.uri)

    def model(prompt: str, max_new: int) -> str:  # on the jobs thread
        future = asyncio.run_coroutine_threadsafe(
            service.generate_text(prompt, max_new, token, key), loop)
        try:
            return future.result()
        except CancelledError:
            raise Cancelled() from None

    def report(message: str, pct: int) -> None:
        if progress is not None:
            progress.report(message, pct)

    generator = await service.ready()
    settings = TestGenSettings(
        max_new_tokens=cfg.testgen_max_tokens, time_budget_s=float(cfg.testgen_time_budget_s),
        regression_tests=cfg.testgen_regression_tests is not RegressionMode.NEVER)
    workspace = ls.workspace_root()
    return await service.run_job(lambda: generate_tests(
        job.path, job.text, job.line, job.character, workspace, model,
        generator.capabilities.special_tokens, sandbox, settings, report, cancel))


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _failed(ls: PingtiServer, message: str, level: str = "warning") -> dict[str, Any]:
    kind = types.MessageType.Info if level == "info" else types.MessageType.Warning
    ls.notify_user(message, kind)
    return {"ok": False, "message": message}


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
