"""The "Generate tests" code action over LSP, with the fake model (it turns the doctest examples
in the prompt into tests, the wrong ones included) and the real sandbox.

The client applies the server's workspace edits to disk like an editor would, then the generated
file is run with pytest in a separate process: the kept tests must pass there too.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from testgen.sandbox import detect

from .conftest import TIMEOUT, capabilities, open_doc

pytestmark = pytest.mark.skipif(not detect().usable,
                                reason="no sandbox here (bubblewrap missing): " +
                                detect().layer("bubblewrap").detail)

MODULE = textwrap.dedent('''\
    """Arithmetic helpers."""


    def double(x: int) -> int:
        """Twice x.

        >>> double(2)
        4
        >>> double(3)
        7
        >>> double(-1)
        -2
        """
        return 2 * x


    TOP_LEVEL = 1
    ''')
GEN_TIMEOUT = 120.0


def _caps() -> types.ClientCapabilities:
    caps = capabilities()
    caps.workspace = types.WorkspaceClientCapabilities(
        apply_edit=True,
        workspace_edit=types.WorkspaceEditClientCapabilities(
            document_changes=True,
            resource_operations=[types.ResourceOperationKind.Create]))
    return caps


def _install_apply_edit(lsp_client: LanguageClient, applied: list[Any]) -> None:
    """Apply workspace edits to disk as an editor would (create files, insert text)."""

    @lsp_client.feature(types.WORKSPACE_APPLY_EDIT)
    def apply(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
        applied.append(params.edit)
        for change in params.edit.document_changes or []:
            if isinstance(change, types.CreateFile):
                path = Path(change.uri.removeprefix("file://"))
                if path.exists():
                    return types.ApplyWorkspaceEditResult(applied=False,
                                                          failure_reason="file exists")
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("")
            elif isinstance(change, types.TextDocumentEdit):
                path = Path(change.text_document.uri.removeprefix("file://"))
                text = path.read_text() if path.exists() else ""
                for edit in change.edits:
                    assert isinstance(edit, types.TextEdit)
                    text = _apply_text_edit(text, edit)
                path.write_text(text)
        for uri, edits in (params.edit.changes or {}).items():
            path = Path(uri.removeprefix("file://"))
            text = path.read_text() if path.exists() else ""
            for edit in edits:
                text = _apply_text_edit(text, edit)
            path.write_text(text)
        return types.ApplyWorkspaceEditResult(applied=True)


def _apply_text_edit(text: str, edit: types.TextEdit) -> str:
    lines = text.split("\n")

    def offset(pos: types.Position) -> int:
        return sum(len(line) + 1 for line in lines[: pos.line]) + pos.character

    a, b = offset(edit.range.start), offset(edit.range.end)
    return text[:a] + edit.new_text + text[b:]


def _answer_questions(lsp_client: LanguageClient, answer: str | None,
                      asked: list[types.ShowMessageRequestParams] | None) -> None:
    @lsp_client.feature(types.WINDOW_SHOW_MESSAGE_REQUEST)
    def reply(params: types.ShowMessageRequestParams) -> types.MessageActionItem | None:
        if asked is not None:
            asked.append(params)
        return next((a for a in params.actions or [] if a.title == answer), None)


async def _start(lsp_client: LanguageClient, workspace: Path, applied: list[Any],
                 answer: str | None = None,
                 asked: list[types.ShowMessageRequestParams] | None = None) -> None:
    """Initialize; the user answers a question (window/showMessageRequest) with the action
    titled ``answer``, or dismisses it (None)."""
    _install_apply_edit(lsp_client, applied)
    _answer_questions(lsp_client, answer, asked)

    await asyncio.wait_for(lsp_client.initialize_session(types.InitializeParams(
        capabilities=_caps(), root_uri=workspace.as_uri(),
        initialization_options={"backend": "fake"})), TIMEOUT)


async def _actions(lsp_client: LanguageClient, uri: str, line: int) -> list[Any]:
    pos = types.Position(line=line, character=4)
    result = await asyncio.wait_for(lsp_client.text_document_code_action_async(
        types.CodeActionParams(text_document=types.TextDocumentIdentifier(uri=uri),
                               range=types.Range(start=pos, end=pos),
                               context=types.CodeActionContext(diagnostics=[]))), TIMEOUT)
    return list(result or [])


async def _generate(lsp_client: LanguageClient, uri: str, line: int) -> dict[str, Any]:
    from server.lspclient import _plain

    result = await asyncio.wait_for(lsp_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pingti.generateTests",
                                   arguments=[uri, {"line": line, "character": 4}])),
        GEN_TIMEOUT)
    plain = _plain(result)
    assert isinstance(plain, dict), plain
    return plain


def _pytest(workspace: Path, test_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(test_file)], cwd=workspace, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "mathx.py").write_text(MODULE)
    return tmp_path


async def test_code_action_is_offered_on_a_function_only(raw_client: LanguageClient,
                                                          workspace: Path):
    await _start(raw_client, workspace, [])
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    inside = await _actions(raw_client, uri, MODULE.splitlines().index("    return 2 * x"))
    assert [a.title for a in inside] == ["Generate tests for double"]
    # lsprotocol's client side structures Union[Command, CodeAction] as a Command, with the
    # CodeAction's command object flattened into its `command` field (a client-side quirk).
    assert "pingti.generateTests" in str(inside[0].command)
    outside = await _actions(raw_client, uri, MODULE.splitlines().index("TOP_LEVEL = 1"))
    assert outside == []


async def test_generated_tests_are_written_and_pass(raw_client: LanguageClient, workspace: Path):
    applied: list[Any] = []
    await _start(raw_client, workspace, applied)
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    res = await _generate(raw_client, uri, MODULE.splitlines().index("    return 2 * x"))
    assert res["ok"], res
    test_file = workspace / "tests" / "test_mathx.py"
    assert res["testFile"] == test_file.as_uri()
    text = test_file.read_text()
    # The wrong doctest example (double(3) == 7) failed in the sandbox and was dropped.
    assert "double(2) == 4" in text and "double(-1) == -2" in text
    assert "double(3) == 7" not in text
    assert res["generated"] >= 3 and len(res["kept"]) >= 2
    assert res["coverageAfter"] > res["coverageBefore"]
    assert "kept" in res["message"]
    # The mutation analysis ran on double's line (`2 * x` → `2 / x`, ...) with the kept tests.
    mutation = res["mutation"]
    assert mutation["changes"] >= 1 and mutation["killed"] >= 1
    assert mutation["killed"] + mutation["notRun"] + mutation["survived"] \
        + mutation["equivalentLooking"] == mutation["changes"]
    assert "changes mutmut made to double" in res["message"]
    # double(3) == 7 could be pinned to 6 as a regression test; the user dismissed the
    # question, so it is left out.
    assert res["regressionLeftOut"] == 1 and res["regressionKept"] == 0
    assert "double(3) == 6" not in text
    run = _pytest(workspace, test_file)
    assert run.returncode == 0, run.stdout + run.stderr
    assert any(isinstance(c, types.CreateFile) and c.options and c.options.overwrite is False
               for e in applied for c in (e.document_changes or []))


async def test_regression_tests_are_written_only_when_the_user_agrees(
        raw_client: LanguageClient, workspace: Path):
    asked: list[types.ShowMessageRequestParams] = []
    await _start(raw_client, workspace, [], answer="Keep as regression tests", asked=asked)
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    res = await _generate(raw_client, uri, MODULE.splitlines().index("    return 2 * x"))
    assert res["ok"], res
    assert len(asked) == 1 and "lock the bug" in asked[0].message
    assert res["regressionKept"] == 1 and res["regressionLeftOut"] == 0
    test_file = workspace / "tests" / "test_mathx.py"
    text = test_file.read_text()
    # The model's wrong guess (7) is pinned to what double returns (6), and marked as such.
    assert "double(3) == 6" in text and "double(3) == 7" not in text
    assert "# Regression test: the expected value is what the code returned" in text
    assert "+ 1 regression test you chose to keep" in res["message"]
    run = _pytest(workspace, test_file)
    assert run.returncode == 0, run.stdout + run.stderr


async def test_existing_test_file_is_only_appended_to(raw_client: LanguageClient,
                                                      workspace: Path):
    await _start(raw_client, workspace, [])
    tests = workspace / "tests"
    tests.mkdir()
    existing = "from mathx import double\n\n\ndef test_example_0():\n    assert double(0) == 0\n"
    (tests / "test_mathx.py").write_text(existing)
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    res = await _generate(raw_client, uri, MODULE.splitlines().index("    return 2 * x"))
    assert res["ok"], res
    text = (tests / "test_mathx.py").read_text()
    assert text.startswith(existing)  # nothing before it changed
    # The user's test_example_0 is not shadowed: the generated one got another name.
    assert text.count("def test_example_0(") == 1
    run = _pytest(workspace, tests / "test_mathx.py")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "passed" in run.stdout


async def test_module_that_does_not_import_writes_nothing(raw_client: LanguageClient,
                                                          workspace: Path):
    await _start(raw_client, workspace, [])
    broken = "import no_such_module_pingti\n\n\ndef f(x):\n    return x\n"
    (workspace / "broken.py").write_text(broken)
    uri = (workspace / "broken.py").as_uri()
    open_doc(raw_client, uri, broken)
    res = await _generate(raw_client, uri, 4)
    assert not res["ok"]
    assert "does not import" in res["message"]
    assert not (workspace / "tests").exists()


async def test_no_target_and_bad_arguments_get_clear_messages(raw_client: LanguageClient,
                                                               workspace: Path):
    await _start(raw_client, workspace, [])
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    res = await _generate(raw_client, uri, MODULE.splitlines().index("TOP_LEVEL = 1"))
    assert not res["ok"] and "no Python function or class" in res["message"]
    from server.lspclient import _plain

    bad = _plain(await asyncio.wait_for(raw_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pingti.generateTests", arguments=[42])), TIMEOUT))
    assert not bad["ok"] and "expects" in bad["message"]
    assert not (workspace / "tests").exists()


REAL_MODULE = textwrap.dedent('''\
    """Small string helpers."""


    def is_palindrome(text: str) -> bool:
        """True when text reads the same backwards, ignoring case and spaces.

        >>> is_palindrome("Never odd or even")
        True
        """
        cleaned = text.replace(" ", "").lower()
        return cleaned == cleaned[::-1]
    ''')


@pytest.mark.model
async def test_real_model_generates_tests_that_pass(raw_client: LanguageClient, tmp_path: Path):
    """The real default model (llama.cpp on a CPU) through the real server and sandbox."""
    (tmp_path / "strings_util.py").write_text(REAL_MODULE)
    _install_apply_edit(raw_client, [])
    _answer_questions(raw_client, None, None)
    await asyncio.wait_for(raw_client.initialize_session(types.InitializeParams(
        capabilities=_caps(), root_uri=tmp_path.as_uri(),
        initialization_options={"testgenTimeBudgetS": 240})), TIMEOUT)
    uri = (tmp_path / "strings_util.py").as_uri()
    open_doc(raw_client, uri, REAL_MODULE)
    from server.lspclient import _plain

    res = _plain(await asyncio.wait_for(raw_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pingti.generateTests",
                                   arguments=[uri, {"line": 9, "character": 4}])), 900))
    assert res["ok"], res
    assert len(res["kept"]) >= 1
    test_file = tmp_path / "tests" / "test_strings_util.py"
    run = _pytest(tmp_path, test_file)
    assert run.returncode == 0, run.stdout + run.stderr


async def test_progress_cancel_stops_generation_and_writes_nothing(raw_client: LanguageClient,
                                                                   workspace: Path):
    _install_apply_edit(raw_client, [])
    # Slow fake model: its answer takes several seconds, so there is time to cancel.
    await asyncio.wait_for(raw_client.initialize_session(types.InitializeParams(
        capabilities=_caps(), root_uri=workspace.as_uri(),
        initialization_options={"backend": "fake", "fakeTokenDelay": 0.05})), TIMEOUT)
    uri = (workspace / "mathx.py").as_uri()
    open_doc(raw_client, uri, MODULE)
    from server.lspclient import _plain

    request = asyncio.ensure_future(raw_client.workspace_execute_command_async(
        types.ExecuteCommandParams(command="pingti.generateTests",
                                   arguments=[uri, {"line": 13, "character": 4}])))

    def testgen_token() -> Any:
        return next((t for t in raw_client.progress_reports if "testgen" in str(t)), None)

    from .conftest import wait_until

    token = await wait_until(testgen_token, what="the test generation's progress")
    await asyncio.sleep(0.5)
    raw_client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL,
                               types.WorkDoneProgressCancelParams(token=token))
    res = _plain(await asyncio.wait_for(request, 30))
    assert not res["ok"] and "cancelled" in res["message"]
    assert not (workspace / "tests").exists()
    begin = raw_client.progress_reports[token][0]
    assert getattr(begin, "cancellable", False) is True
