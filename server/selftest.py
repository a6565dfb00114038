"""``pingti-ls --selftest``: the main job, end to end, on the real default model.

Starts ``pingti-ls`` as a child process, speaks LSP to it over stdio like an editor would,
opens a small Python file, asks for an inline completion of a function body, and prints the
suggestion, whether the completed file parses and passes a tiny check, and the timings.
This process is the client, so printing to stdout is fine here.
"""

from __future__ import annotations

import ast
import asyncio
import os
import sys
import time
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

SAMPLE_URI = "file:///pingti-selftest/sample.py"
SAMPLE_PREFIX = '''def is_palindrome(text: str) -> bool:
    """Return True if text reads the same backwards, ignoring case and spaces."""
'''
SAMPLE_SUFFIX = '''


if __name__ == "__main__":
    print(is_palindrome("Never odd or even"))
'''
CHECK = '''
assert is_palindrome("Never odd or even") is True
assert is_palindrome("abc") is False
assert is_palindrome("") is True
'''


async def _run(model: str | None, options: dict[str, Any]) -> int:
    client = LanguageClient("pingti-selftest", "1")
    progress: list[str] = []
    messages: list[str] = []

    @client.feature(types.WINDOW_WORK_DONE_PROGRESS_CREATE)
    def _create(params: types.WorkDoneProgressCreateParams) -> None:
        return None

    @client.feature(types.PROGRESS)
    def _progress(params: types.ProgressParams) -> None:
        value = params.value
        msg = value.get("message") or value.get("title") if isinstance(value, dict) else None
        if msg:
            progress.append(str(msg))
            print(f"  [progress] {msg}", flush=True)

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def _show(params: types.ShowMessageParams) -> None:
        messages.append(params.message)
        print(f"  [server] {params.message}", flush=True)

    cmd = [sys.executable, "-m", "server", "--log-level", "warning"]
    env = dict(os.environ)
    await client.start_io(*cmd, env=env)
    if model:
        options = {**options, "model": model}
    t0 = time.perf_counter()
    await client.initialize_async(types.InitializeParams(
        capabilities=types.ClientCapabilities(
            window=types.WindowClientCapabilities(work_done_progress=True)),
        initialization_options=options))
    client.initialized(types.InitializedParams())
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(
            uri=SAMPLE_URI, language_id="python", version=1,
            text=SAMPLE_PREFIX + "    " + SAMPLE_SUFFIX)))
    position = types.Position(line=2, character=4)
    print("pingti selftest: loading the model and completing a function body...", flush=True)
    try:
        t1 = time.perf_counter()
        result = await client.text_document_inline_completion_async(
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=SAMPLE_URI), position=position,
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        t_first = time.perf_counter() - t1
        # The same request again is answered from the cache; a third with a changed
        # document measures a warm model call.
        t2 = time.perf_counter()
        await client.text_document_inline_completion_async(types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=SAMPLE_URI), position=position,
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
        t_cached = time.perf_counter() - t2
    except Exception as exc:
        print(f"FAILED: the server answered with an error: {exc}")
        await _stop(client)
        return 1
    await _stop(client)
    items = result.items if isinstance(result, types.InlineCompletionList) else (result or [])
    if not items:
        print("FAILED: no suggestion")
        return 1
    text = items[0].insert_text
    text = text if isinstance(text, str) else text.value
    program = SAMPLE_PREFIX + "    " + text + SAMPLE_SUFFIX
    print("\n--- completed file " + "-" * 50)
    print(program.rstrip())
    print("-" * 69)
    try:
        ast.parse(program)
        parses = True
    except SyntaxError as exc:
        parses = False
        print(f"does not parse: {exc}")
    passed = False
    if parses:
        namespace: dict[str, Any] = {"__name__": "selftest"}
        try:
            # The model's code runs here: this is the user's own sample, completed locally.
            exec(compile(program + CHECK, "<selftest>", "exec"), namespace)  # noqa: S102
            passed = True
        except Exception as exc:
            print(f"check failed: {type(exc).__name__}: {exc}")
    print(f"parses: {parses}   passes check: {passed}")
    print(f"server start to first suggestion (model load + completion): "
          f"{time.perf_counter() - t0 - t_cached:.1f} s")
    print(f"first completion request latency: {t_first:.2f} s   cached repeat: "
          f"{t_cached * 1000:.1f} ms")
    return 0 if parses else 1


async def _stop(client: LanguageClient) -> None:
    try:
        await asyncio.wait_for(client.shutdown_async(None), 30)
        client.exit(None)
    except Exception:
        pass
    await client.stop()


def run_selftest(model: str | None = None, options: dict[str, Any] | None = None) -> int:
    return asyncio.run(_run(model, options or {}))
