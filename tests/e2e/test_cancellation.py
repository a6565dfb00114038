"""$/cancelRequest and superseded requests stop the model within a decoding step.

The fake backend sleeps ``fakeTokenDelay`` seconds per step. LONG_DOC makes it copy a body of
about a thousand characters (about 50 s at 0.05 s per token), so the model thread reporting no
running sequence (``pingti/status``) within a couple of seconds proves the generation stopped
instead of finishing the plan. (A following request being quick proves less: with batching it
would join the running sequence anyway.)
"""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .conftest import inline_params, model_idle, open_doc, start_session, status, suggestion

DELAY = 0.05
BODY_LINES = 100
# Distinct lines (a repeated line would be cut as a degenerate loop).
BODY = [f"    v{i} = {i}" for i in range(BODY_LINES)]
LONG_DOC = "def f():\n" + "".join(line + "\n" for line in BODY) + "\ndef f():\n    "
LONG_POS = (BODY_LINES + 3, 4)
# Repository context off: the fake model's answer follows its whole prompt, and the other open
# documents would change it (the answer cache no longer serves one document's answer to another
# once the open documents changed).
LONG_OPTIONS = {"backend": "fake", "fakeTokenDelay": DELAY, "maxTokensMultiLine": 4096,
                "contextTokens": 32768, "repoContext": "off"}
# Far below the ~50 s the long plan takes; generous for a loaded 2-core machine.
QUICK = 3.0

URI = "file:///tmp/pingti-e2e/long.py"
SHORT_URI = "file:///tmp/pingti-e2e/short.py"
SHORT_DOC = "abc = 1\nab"  # suggestion "c = 1": a few tokens


async def test_long_plan_is_long(raw_client: LanguageClient):
    """The premise of the other tests: without a delay, LONG_DOC completes the whole body."""
    await start_session(raw_client, {**LONG_OPTIONS, "fakeTokenDelay": 0})
    open_doc(raw_client, URI, LONG_DOC)
    # Four candidates (the default) of a thousand syntax-checked tokens each: slow on a loaded
    # 2-core machine, hence the long timeout.
    text = await suggestion(raw_client, URI, *LONG_POS, timeout=60)
    assert text == "\n".join(BODY).lstrip()
    assert len(text) > 1000


async def _send_inline(lsp_client: LanguageClient, uri: str, pos: tuple[int, int], msg_id: str
                       ) -> asyncio.Future:
    """Send an inline completion request with a known id (so it can be cancelled)."""
    return asyncio.wrap_future(lsp_client.protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, inline_params(uri, *pos), msg_id=msg_id))


async def test_cancel_request_stops_the_worker(raw_client: LanguageClient):
    await start_session(raw_client, LONG_OPTIONS)
    open_doc(raw_client, URI, LONG_DOC)
    open_doc(raw_client, SHORT_URI, SHORT_DOC)
    # Warm up: the model is loaded and the short request is fast.
    assert await suggestion(raw_client, SHORT_URI, 1, 2) == "c = 1"

    long = await _send_inline(raw_client, URI, LONG_POS, "long-1")
    await asyncio.sleep(0.5)  # well into the plan: ~10 tokens generated
    assert not long.done()
    raw_client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="long-1"))
    t0 = time.monotonic()
    with pytest.raises(JsonRpcException) as exc:
        await asyncio.wait_for(long, QUICK)
    assert exc.value.code == types.LSPErrorCodes.RequestCancelled  # -32800
    assert time.monotonic() - t0 < QUICK
    await model_idle(raw_client, QUICK)  # the sequence left the model, it did not run on
    steps = (await status(raw_client))["batching"]["steps"]
    assert steps < 100, steps  # the plan is ~1000 steps long

    # The worker is free again: a new request (another document, not cached) is quick.
    open_doc(raw_client, "file:///tmp/pingti-e2e/short2.py", "xyz = 2\nxy")
    t0 = time.monotonic()
    assert await suggestion(raw_client, "file:///tmp/pingti-e2e/short2.py", 1, 2,
                            timeout=QUICK) == "z = 2"
    assert time.monotonic() - t0 < QUICK


async def test_cancel_while_queued_behind_another_request(raw_client: LanguageClient):
    """A cancelled request that never reached the model does not run at all."""
    # One at a time, so the second request really waits in the queue.
    await start_session(raw_client, {**LONG_OPTIONS, "maxBatchSize": 1})
    # Warm up (the syntax constraint's table is built on first use, ~0.3 s): q-1 must be
    # decoding when the cancellations arrive.
    warm = "file:///tmp/pingti-e2e/warm.py"
    open_doc(raw_client, warm, SHORT_DOC)
    assert await suggestion(raw_client, warm, 1, 2, timeout=QUICK) == "c = 1"
    open_doc(raw_client, URI, LONG_DOC)
    other = "file:///tmp/pingti-e2e/long2.py"
    open_doc(raw_client, other, LONG_DOC)
    first = await _send_inline(raw_client, URI, LONG_POS, "q-1")
    second = await _send_inline(raw_client, other, LONG_POS, "q-2")  # queued behind q-1
    await asyncio.sleep(0.3)
    for msg_id in ("q-2", "q-1"):
        raw_client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))
    for fut in (first, second):
        with pytest.raises(JsonRpcException) as exc:
            await asyncio.wait_for(fut, QUICK)
        assert exc.value.code == types.LSPErrorCodes.RequestCancelled
    st = await model_idle(raw_client, QUICK)
    assert st["batching"]["maxWidth"] == 1  # q-2 never decoded beside q-1
    open_doc(raw_client, SHORT_URI, SHORT_DOC)
    assert await suggestion(raw_client, SHORT_URI, 1, 2, timeout=QUICK) == "c = 1"


async def test_newer_request_supersedes_older(raw_client: LanguageClient):
    await start_session(raw_client, LONG_OPTIONS)
    # The same document: the long body, and "ab" completed from "abc = 1" at the top.
    doc = "abc = 1\nab\n" + LONG_DOC
    open_doc(raw_client, URI, doc)
    long_pos = (LONG_POS[0] + 2, LONG_POS[1])

    older = await _send_inline(raw_client, URI, long_pos, "old-1")
    await asyncio.sleep(0.5)
    assert not older.done()
    t0 = time.monotonic()
    newer = await _send_inline(raw_client, URI, (1, 2), "new-1")
    old_result = await asyncio.wait_for(older, QUICK)
    assert time.monotonic() - t0 < QUICK
    assert isinstance(old_result, types.InlineCompletionList)
    assert len(old_result.items) == 0
    new_result = await asyncio.wait_for(newer, QUICK)
    assert [i.insert_text for i in new_result.items] == ["c = 1"]
    await model_idle(raw_client, QUICK)


async def test_cancel_of_a_finished_request_is_harmless(client: LanguageClient):
    open_doc(client, SHORT_URI, SHORT_DOC)
    fut = await _send_inline(client, SHORT_URI, (1, 2), "done-1")
    result = await asyncio.wait_for(fut, 10)
    assert [i.insert_text for i in result.items] == ["c = 1"]
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="done-1"))
    client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id="never-sent"))
    assert await suggestion(client, SHORT_URI, 1, 2) == "c = 1"


async def test_shutdown_cancels_inflight_generation(raw_client: LanguageClient):
    await start_session(raw_client, LONG_OPTIONS)
    open_doc(raw_client, URI, LONG_DOC)
    long = await _send_inline(raw_client, URI, LONG_POS, "long-s")
    await asyncio.sleep(0.5)
    t0 = time.monotonic()
    await asyncio.wait_for(raw_client.shutdown_async(None), QUICK)
    # The in-flight request got an answer (empty or an error), not silence.
    try:
        result = await asyncio.wait_for(long, QUICK)
        assert len(result.items) == 0
    except JsonRpcException:
        pass
    raw_client.exit(None)
    assert raw_client._server is not None
    await asyncio.wait_for(raw_client._server.wait(), QUICK)
    assert time.monotonic() - t0 < QUICK
    assert raw_client._server.returncode == 0
