"""lsp-bench's LSP client: a request it gave up on (timed out, then cancelled) stays quiet
when the server's answer arrives after all."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import pytest
from lsprotocol import types
from pygls.io_ import run_async
from pygls.lsp.client import LanguageClient

from lspbench.client import BenchClient
from server.lspclient import PingtiClient

PARAMS = types.InlineCompletionParams(
    text_document=types.TextDocumentIdentifier(uri="file:///t.py"),
    position=types.Position(line=0, character=0),
    context=types.InlineCompletionContext(
        trigger_kind=types.InlineCompletionTriggerKind.Invoked))


class _Sink:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def _frame(message: dict[str, Any]) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


async def _late_answers(client: LanguageClient, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Time out on two requests as lsp-bench does (``wait_for`` cancels pygls' future), then
    let pygls' own read loop receive the server's answers: a result and a RequestCancelled
    error. Returns the log records of level WARNING and above."""
    protocol = client.protocol
    protocol.set_writer(_Sink())
    for msg_id in ("bench-1", "bench-2"):
        fut = asyncio.wrap_future(protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION, PARAMS, msg_id=msg_id))
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(fut, 0.01)
    reader = asyncio.StreamReader()
    reader.feed_data(_frame({"jsonrpc": "2.0", "id": "bench-1", "result": {"items": []}}))
    reader.feed_data(_frame({"jsonrpc": "2.0", "id": "bench-2", "error": {
        "code": -32800, "message": 'Request with id "bench-2" is canceled'}}))
    reader.feed_eof()
    with caplog.at_level(logging.DEBUG):
        await run_async(threading.Event(), reader, protocol, logging.getLogger("pygls.io_"))
    assert not protocol._request_futures  # nothing left waiting
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("make", [lambda: BenchClient().client, lambda: PingtiClient().client],
                         ids=["lsp-bench", "pingti-client"])
async def test_late_answer_to_a_cancelled_request_is_dropped_quietly(
        make: Any, caplog: pytest.LogCaptureFixture) -> None:
    assert await _late_answers(make(), caplog) == []


async def test_pygls_alone_logs_a_traceback_for_it(caplog: pytest.LogCaptureFixture) -> None:
    """The premise (pygls 2.1.1): without our protocol the same answers are logged as errors
    with ``InvalidStateError: CANCELLED``. If this fails, pygls handles it now and
    ``QuietCancelProtocol`` can go."""
    logged = await _late_answers(LanguageClient("plain", "1"), caplog)
    assert logged and all("Unable to handle message" in m for m in logged)
    assert any(r.exc_info and "CANCELLED" in str(r.exc_info[1]) for r in caplog.records)


async def test_answers_to_requests_still_waited_for_arrive() -> None:
    client = BenchClient().client
    protocol = client.protocol
    protocol.set_writer(_Sink())
    fut = asyncio.wrap_future(protocol.send_request(
        types.TEXT_DOCUMENT_INLINE_COMPLETION, PARAMS, msg_id="bench-3"))
    reader = asyncio.StreamReader()
    reader.feed_data(_frame({"jsonrpc": "2.0", "id": "bench-3",
                             "result": {"items": [{"insertText": "x = 1"}]}}))
    reader.feed_eof()
    await run_async(threading.Event(), reader, protocol)
    result = await asyncio.wait_for(fut, 1)
    assert isinstance(result, types.InlineCompletionList)
    assert result.items[0].insert_text == "x = 1"
