"""Adaptive debounce of automatic requests, end to end (see server/debounce.py).

Automatic inline completions (``InlineCompletionTriggerKind.Automatic``) wait ``1.25 x`` the
document's average gap between requests (capped at ``debounceMs``) before they run the model;
the first request of a document, and one after a pause longer than ``4 x debounceMs``, do not
wait. Invoked requests never wait, and answers from the completion cache skip both the debounce
and the model worker. A newer request for a document supersedes the older one.

Timing bounds are generous (a loaded 2-core machine): each assertion compares quantities that
differ by a factor of about two or more.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .conftest import (
    TIMEOUT,
    change_doc,
    configure,
    inline_params,
    open_doc,
    start_session,
    suggestion,
)

DELAY = 0.05  # fakeTokenDelay: seconds per generated token

# Typing "total = " on the last line, one key at a time: the fake backend copies the rest of
# the first "total = " line, one token per character (then the end of the line stops it).
EXAMPLE_REST = "alpha_value + beta_value + gamma_value"
EXAMPLE = "# totals\ntotal = " + EXAMPLE_REST + "\n"
TYPED = "total = "
# One generation of the expected suggestion: a token per character, and one more for the stop.
ONE_GENERATION = (len(EXAMPLE_REST) + 1) * DELAY

SHORT_DOC = "abc = 1\nab"  # suggestion "c = 1" at (1, 2)

# A body of about a thousand characters copied by the fake backend (~50 s at DELAY per token):
# a request for it keeps the worker busy for as long as a test needs.
BODY = [f"    v{i} = {i}" for i in range(100)]
LONG_DOC = "def f():\n" + "".join(line + "\n" for line in BODY) + "\ndef f():\n    "
LONG_POS = (len(BODY) + 3, 4)


def auto_params(uri: str, line: int, character: int) -> types.InlineCompletionParams:
    params = inline_params(uri, line, character)
    params.context = types.InlineCompletionContext(
        trigger_kind=types.InlineCompletionTriggerKind.Automatic)
    return params


def send(lsp_client: LanguageClient, params: types.InlineCompletionParams,
         msg_id: str | None = None) -> asyncio.Future:
    """Send an inline completion request without waiting for its answer."""
    return asyncio.wrap_future(lsp_client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id=msg_id))


def texts(result: types.InlineCompletionList) -> list[str]:
    assert isinstance(result, types.InlineCompletionList), result
    return [item.insert_text for item in result.items]  # type: ignore[misc]


async def timed(fut: asyncio.Future, timeout: float = TIMEOUT) -> tuple[list[str], float]:
    """The texts of a request's answer, and the seconds from now until it came."""
    t0 = time.monotonic()
    result = await asyncio.wait_for(fut, timeout)
    return texts(result), time.monotonic() - t0


async def test_burst_of_automatic_requests_runs_the_model_once(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "fakeTokenDelay": DELAY})
    uri = "file:///tmp/pingti-e2e/burst.py"
    open_doc(raw_client, uri, EXAMPLE)
    line = EXAMPLE.count("\n")
    # Warm up: the model is loaded (another document, so this one's debounce is untouched).
    open_doc(raw_client, "file:///tmp/pingti-e2e/burst-warm.py", SHORT_DOC)
    assert await suggestion(raw_client, "file:///tmp/pingti-e2e/burst-warm.py", 1, 2) == "c = 1"

    futures = []
    t0 = time.monotonic()
    for i, char in enumerate(TYPED):
        change_doc(raw_client, uri, i + 2, ((line, i), (line, i), char))
        futures.append(send(raw_client, auto_params(uri, line, i + 1), f"burst-{i}"))
        if i < len(TYPED) - 1:
            await asyncio.sleep(0.03)
    results = [texts(r) for r in await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)]
    elapsed = time.monotonic() - t0

    assert results[:-1] == [[]] * (len(TYPED) - 1)  # superseded: answered empty
    assert results[-1] == [EXAMPLE_REST]
    # Eight requests that each ran the model to the end would take about 8 generations; the
    # burst takes one (plus the ~0.25 s of typing and the last request's short debounce).
    assert elapsed < 2 * ONE_GENERATION, (elapsed, ONE_GENERATION)
    assert elapsed > ONE_GENERATION * 0.9  # the premise: the last one really ran the model


async def test_invoked_requests_are_not_debounced(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "debounceMs": 1500})
    # Warm up another document: the syntax constraint's table is built on first use (~0.3 s),
    # which is not what this test times.
    open_doc(raw_client, "file:///tmp/pingti-e2e/invoked-warm.py", "xyz = 2\nxy")
    assert await suggestion(raw_client, "file:///tmp/pingti-e2e/invoked-warm.py", 1, 2) == "z = 2"
    uri = "file:///tmp/pingti-e2e/invoked.py"
    open_doc(raw_client, uri, "abc = 1\nab")
    # The first automatic request of a document is not delayed.
    answer, first_s = await timed(send(raw_client, auto_params(uri, 1, 2)))
    assert answer == ["c = 1"]
    assert first_s < 0.5, first_s
    # Fast typing (for a 1.5 s cap): 0.6 s later another key, and an automatic request that
    # the cache cannot answer ("x" is not what was suggested). It waits 1.25 x 0.6 = 0.75 s.
    await asyncio.sleep(0.6)
    change_doc(raw_client, uri, 2, ((1, 2), (1, 2), "x"))
    answer, auto_s = await timed(send(raw_client, auto_params(uri, 1, 3)))
    assert answer == ["pass"]  # the fake's answer when the prefix's tail occurs nowhere earlier
    assert auto_s > 0.5, auto_s
    # Right after, in the same rhythm: an invoked request (not cached either) does not wait.
    change_doc(raw_client, uri, 3, ((1, 3), (1, 3), "y"))
    answer, invoked_s = await timed(send(raw_client, inline_params(uri, 1, 4)))
    assert answer == ["pass"]
    assert invoked_s < 0.5, invoked_s


async def test_typed_through_answer_skips_a_busy_worker(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "fakeTokenDelay": DELAY,
                                     "maxTokensMultiLine": 4096, "contextTokens": 32768,
                                     "debounceMs": 1500})
    doc_a = "file:///tmp/pingti-e2e/typed-a.py"
    doc_b = "file:///tmp/pingti-e2e/typed-b.py"
    open_doc(raw_client, doc_a, SHORT_DOC)
    open_doc(raw_client, doc_b, LONG_DOC)
    answer, _ = await timed(send(raw_client, auto_params(doc_a, 1, 2)))
    assert answer == ["c = 1"]
    t_first = time.monotonic()

    long = send(raw_client, inline_params(doc_b, *LONG_POS), "long-b")  # ~50 s of generation
    await asyncio.sleep(0.4)  # the worker is well into it
    assert not long.done()

    # Type the suggestion's first character: the rest comes from the cache, without waiting
    # for the worker, nor for the debounce (a gap of ~0.5 s would otherwise mean ~0.6 s).
    change_doc(raw_client, doc_a, 2, ((1, 2), (1, 2), "c"))
    gap = time.monotonic() - t_first
    answer, typed_s = await timed(send(raw_client, auto_params(doc_a, 1, 3)))
    assert answer == [" = 1"]
    assert typed_s < 0.5, (typed_s, gap)
    assert not long.done()  # the worker really was busy meanwhile

    raw_client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-b"))
    with pytest.raises(JsonRpcException) as exc:
        await asyncio.wait_for(long, 3.0)
    assert exc.value.code == types.LSPErrorCodes.RequestCancelled


async def _auto_after_gap(lsp_client: LanguageClient, uri: str, version: int, col: int,
                          char: str, gap: float) -> tuple[list[str], float]:
    """Wait ``gap`` s, type ``char`` at (1, col), request automatically; the answer and time."""
    await asyncio.sleep(gap)
    change_doc(lsp_client, uri, version, ((1, col), (1, col), char))
    return await timed(send(lsp_client, auto_params(uri, 1, col + 1)))


async def test_configuration_turns_debounce_off(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "debounceMs": 1500,
                                      "repoContext": "off"})
    uri = "file:///tmp/pingti-e2e/off.py"
    open_doc(raw_client, uri, "abc = 1\nab")
    answer, _ = await timed(send(raw_client, auto_params(uri, 1, 2)))
    assert answer == ["c = 1"]
    # On: the same rhythm as above is delayed (keys that differ from every suggestion).
    answer, on_s = await _auto_after_gap(raw_client, uri, 2, 2, "x", 0.6)
    assert answer == ["pass"]
    assert on_s > 0.5, on_s

    configure(raw_client, {"debounceMs": 0})
    # Off: the same rhythm, and faster typing too, answer without a delay.
    answer, off_s = await _auto_after_gap(raw_client, uri, 3, 3, "y", 0.6)
    assert answer == ["pass"]
    assert off_s < 0.3, off_s
    for version, (col, char) in enumerate([(4, "z"), (5, "w"), (6, "q")], start=4):
        answer, s = await _auto_after_gap(raw_client, uri, version, col, char, 0.03)
        assert answer == ["pass"]
        assert s < 0.3, s
    # And the setting changed nothing else: the backend still answers the same.
    open_doc(raw_client, "file:///tmp/pingti-e2e/off2.py", SHORT_DOC)
    assert await suggestion(raw_client, "file:///tmp/pingti-e2e/off2.py", 1, 2) == "c = 1"
