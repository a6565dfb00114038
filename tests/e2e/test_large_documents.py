"""Large documents over LSP: a completion costs what the prompt budget needs, not what the
document or its longest line holds.

Two cases a code-completion server meets in real use:

- a minified file, one line of a megabyte, completed at its end and in its middle (and a
  4 MB Python file completed on a blank line in the middle of a function);
- a burst of 3,000 one-character ``didChange`` notifications (incremental ranges), then a
  completion: it must come about as fast as the same completion on the same text opened in
  one piece.

With the fake backend (always run) and with the real default model (``-m model``). Times are
measured from the request; the limits leave room for a loaded 2-core machine, yet the old code
missed each of them by far: no answer to the 1 MB line within two minutes, 13 s instead of
0.1 s after the 3,000 edits, several seconds in the 4 MB file.

With the syntax constraint on (the default settings), a cursor line longer than
``server.stages.CONSTRAINT_MAX_LINE_CHARS``, or a prefix longer than
``CONSTRAINT_MAX_PREFIX_CHARS``, makes the constraint step aside (it re-reads the statement
around the cursor on every token).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import (
    change_doc,
    inline_params,
    open_doc,
    start_session,
    status,
    wait_loaded,
)

MB = 1 << 20
FAKE = {"backend": "fake", "cacheEntries": 0}  # no answer from the cache: each one is computed
CONSTRAINT_OFF = {"constraints": "off"}
CONSTRAINT_ON = pytest.param({}, id="syntax")


def minified_js(size: int) -> str:
    """One line of ``size`` characters, like a minified bundle (ASCII, no line break)."""
    rng = random.Random(0)
    parts, n = [], 0
    while n < size:
        a, b, k = rng.randrange(10**6), rng.randrange(10**6), rng.randrange(100)
        part = f"var v{a}=function(f{b}){{return f{b}*{k}+[1,2].length}};"
        parts.append(part)
        n += len(part)
    return "".join(parts)[:size]


def python_module(functions: int) -> str:
    return "".join(f"def func_{i}(a, b):\n    x = a + {i}\n    y = b * x\n"
                   f"    if y > {i}:\n        return x\n    return y\n\n\n"
                   for i in range(functions))


async def timed_inline(lsp_client: LanguageClient, uri: str, line: int, character: int,
                       timeout: float) -> tuple[float, str]:
    """Seconds from the request to the answer, and the first suggestion ('' for none)."""
    t0 = time.perf_counter()
    result = await asyncio.wait_for(lsp_client.text_document_inline_completion_async(
        inline_params(uri, line, character)), timeout)
    elapsed = time.perf_counter() - t0
    assert isinstance(result, types.InlineCompletionList), result
    text = result.items[0].insert_text if result.items else ""
    assert isinstance(text, str)
    return elapsed, text


def close_doc(lsp_client: LanguageClient, uri: str) -> None:
    """Close a document: its KV cache goes, so the next completion elsewhere is cold too."""
    lsp_client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


async def opened(lsp_client: LanguageClient, uri: str, text: str, language_id: str) -> None:
    """Open a document and wait until the server has read it (a status round trip), so that
    a time measured afterwards is the completion's alone."""
    open_doc(lsp_client, uri, text, language_id=language_id)
    await status(lsp_client)


async def warm_up(lsp_client: LanguageClient) -> None:
    """One small completion first: what is built once (the syntax constraint's vocabulary
    table) is not charged to the first measured request."""
    uri = "file:///tmp/pingti-e2e/large/warm.py"
    await opened(lsp_client, uri, "def f(x):\n    return x\n\n\ndef g(x):\n    ", "python")
    await timed_inline(lsp_client, uri, 5, 4, 120)
    close_doc(lsp_client, uri)


def type_text(lsp_client: LanguageClient, uri: str, line: int, character: int,
              typed: str) -> tuple[int, int]:
    """Send ``typed`` one character per ``didChange`` (incremental ranges) at a position, as
    an editor does while the user types; returns the position after the last character."""
    version = 1
    for ch in typed:
        version += 1
        pos = (line, character)
        change_doc(lsp_client, uri, version, (pos, pos, ch))
        line, character = (line + 1, 0) if ch == "\n" else (line, character + 1)
    return line, character


# --- fake backend -------------------------------------------------------------------------------


@pytest.mark.parametrize("settings", [CONSTRAINT_OFF, CONSTRAINT_ON], ids=["plain", "syntax"])
@pytest.mark.parametrize("where", ["end", "middle"])
async def test_one_megabyte_line_is_answered_within_two_seconds(
        raw_client: LanguageClient, settings: dict[str, Any], where: str) -> None:
    await start_session(raw_client, {**FAKE, **settings})
    await warm_up(raw_client)
    text = minified_js(MB)
    uri = "file:///tmp/pingti-e2e/large/bundle.min.js"
    await opened(raw_client, uri, text, "javascript")
    column = len(text) if where == "end" else text.index("return", len(text) // 2)
    elapsed, suggestion = await timed_inline(raw_client, uri, 0, column, 10)
    assert elapsed < 2.0, f"{elapsed:.2f}s for a completion on a 1 MB line"
    # The fake model copies what followed the last occurrence of the text before the cursor.
    assert suggestion and "\n" not in suggestion


@pytest.mark.parametrize("settings", [CONSTRAINT_OFF, CONSTRAINT_ON], ids=["plain", "syntax"])
async def test_block_in_a_four_megabyte_file_is_answered_within_two_seconds(
        raw_client: LanguageClient, settings: dict[str, Any]) -> None:
    """A blank line in an empty function body in the middle of a 4 MB file: the block
    decision parses a window around the cursor, and the stop check after every generated
    token does not scan the text after the cursor."""
    await start_session(raw_client, {**FAKE, **settings})
    await warm_up(raw_client)
    body = python_module(40_000)  # ~4 MB, 320,000 lines
    head = body[: body.index("def func_20000(")]
    text = head + "def new_func(a, b):\n    \n\n\n" + body[len(head):]
    line = head.count("\n") + 1
    uri = "file:///tmp/pingti-e2e/large/huge_module.py"
    await opened(raw_client, uri, text, "python")
    elapsed, suggestion = await timed_inline(raw_client, uri, line, 4, 10)
    assert elapsed < 2.0, f"{elapsed:.2f}s for a completion in a 4 MB file"
    # A block body: the fake model copies the body of the functions above.
    assert suggestion.startswith("x = a + ") and "\n" in suggestion, suggestion


# These compare the answer after edits with the answer on the same text opened whole, which
# checks the text the edits gave. Repository context is off for them: the order of its chunks
# follows the document's previous prompts on purpose (it keeps the KV cache), so with it the
# same text may get another prompt; that its chunks depend on the text only is checked in
# tests/unit_core/test_workspace.py.
SYNC_ONLY = {"repoContext": "off"}


async def test_completion_after_3000_edits_is_as_fast_as_on_the_text_opened_whole(
        raw_client: LanguageClient) -> None:
    await start_session(raw_client, {**FAKE, **SYNC_ONLY})
    await warm_up(raw_client)
    await _edits_then_fresh(raw_client, timeout=30, margin_s=0.5)


# --- the real default model --------------------------------------------------------------------


async def real_session(lsp_client: LanguageClient, settings: dict[str, Any]) -> None:
    await start_session(lsp_client, {"cacheEntries": 0, **settings})
    await wait_loaded(lsp_client)
    st = await status(lsp_client)
    assert st["state"] == "ready", st


@pytest.mark.model
@pytest.mark.parametrize("settings", [CONSTRAINT_OFF, CONSTRAINT_ON], ids=["plain", "syntax"])
async def test_real_model_one_megabyte_line_costs_what_a_short_one_does(
        raw_client: LanguageClient, settings: dict[str, Any]) -> None:
    """The real tokenizer never sees more than a window of the line: the 1 MB line is
    answered as fast as a short document holding only the line's last 8 KB (the prompt is
    the same, so is the answer), both with a cold prompt."""
    await real_session(raw_client, settings)
    text = minified_js(MB)
    short = "file:///tmp/pingti-e2e/large/tail.min.js"
    await opened(raw_client, short, text[-8192:], "javascript")
    t_short, expected = await timed_inline(raw_client, short, 0, 8192, 600)
    close_doc(raw_client, short)
    big = "file:///tmp/pingti-e2e/large/bundle.min.js"
    await opened(raw_client, big, text, "javascript")
    t_big, suggestion = await timed_inline(raw_client, big, 0, len(text), 1.5 * t_short + 30)
    assert t_big <= 1.5 * t_short + 2.0, f"1 MB line {t_big:.2f}s, 8 KB line {t_short:.2f}s"
    if not settings:
        return  # with the syntax constraint the long statement may be checked differently
    assert suggestion == expected


@pytest.mark.model
async def test_real_model_completion_after_3000_edits(raw_client: LanguageClient) -> None:
    await real_session(raw_client, SYNC_ONLY)
    await _edits_then_fresh(raw_client, timeout=600, margin_s=2.0)


async def _edits_then_fresh(lsp_client: LanguageClient, timeout: float, margin_s: float
                            ) -> None:
    """3,000 one-character edits in a 100 KB module (letters, spaces and line breaks, as
    typed), then a completion, timed from its request, so that reading the edits counts; then
    the same completion on the final text opened in one piece (its own document, cold)."""
    base = python_module(800)  # ~100 KB, 6,400 lines
    cut = base.index("def func_400(") - 1  # the blank line before it
    line = base[:cut].count("\n")
    typed = "".join(f"def typed_{i}(a, b):\n    return a * {i} + b\n\n\n"
                    for i in range(200))[:3000]
    edited = "file:///tmp/pingti-e2e/large/edited.py"
    await opened(lsp_client, edited, base, "python")
    end_line, end_col = type_text(lsp_client, edited, line, 0, typed)
    t_edited, after_edits = await timed_inline(lsp_client, edited, end_line, end_col, timeout)
    close_doc(lsp_client, edited)
    fresh = "file:///tmp/pingti-e2e/large/fresh.py"
    await opened(lsp_client, fresh, base[:cut] + typed + base[cut:], "python")
    t_fresh, whole = await timed_inline(lsp_client, fresh, end_line, end_col, timeout)
    assert after_edits == whole, "the edits did not give the text opened whole"
    assert t_edited <= 1.5 * t_fresh + margin_s, \
        f"after 3,000 edits {t_edited:.2f}s, on the text opened whole {t_fresh:.2f}s"
