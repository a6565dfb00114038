"""``pingti-ls --selftest``: the main job, end to end, on the real default model.

Starts ``pingti-ls`` as a child process, speaks LSP to it over stdio like an editor would,
opens a small Python file, asks for an inline completion of a function body, and prints the
suggestion, whether the completed file parses and passes a tiny check, and the timings.
This process is the client, so printing to stdout is fine here.
"""

from __future__ import annotations

import ast
import asyncio
import time
from typing import Any

from server.lspclient import PingtiClient

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
    client = PingtiClient(echo=True)
    if model:
        options = {**options, "model": model}
    t0 = time.perf_counter()
    print("pingti selftest: loading the model and completing a function body...", flush=True)
    await client.start(options)
    document = SAMPLE_PREFIX + "    " + SAMPLE_SUFFIX
    client.open(SAMPLE_URI, document)
    try:
        await client.wait_ready()
        t_ready = time.perf_counter() - t0
        t1 = time.perf_counter()
        text = await client.inline(SAMPLE_URI, 2, 4)
        t_first = time.perf_counter() - t1
        # The same request again is answered from the completion cache.
        t2 = time.perf_counter()
        await client.inline(SAMPLE_URI, 2, 4)
        t_cached = time.perf_counter() - t2
    except Exception as exc:
        print(f"FAILED: the server answered with an error: {exc}")
        await client.stop()
        return 1
    await client.stop()
    if not text:
        print("FAILED: no suggestion")
        return 1
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
            # Runs model-written code in this process: it is the fixed sample above, completed
            # by the local model, and only with --selftest.
            exec(compile(program + CHECK, "<selftest>", "exec"), namespace)  # noqa: S102
            passed = True
        except Exception as exc:
            print(f"check failed: {type(exc).__name__}: {exc}")
    print(f"parses: {parses}   passes check: {passed}")
    print(f"model ready after {t_ready:.1f} s (server start, model assembly/conversion, load)")
    print(f"completion latency: {t_first:.2f} s   cached repeat: {t_cached * 1000:.1f} ms")
    return 0 if parses else 1


def run_selftest(model: str | None = None, options: dict[str, Any] | None = None) -> int:
    return asyncio.run(_run(model, options or {}))
