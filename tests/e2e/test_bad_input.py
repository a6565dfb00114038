"""Malformed and out-of-order input, written as raw bytes to the server's stdin.

Error codes (JSON-RPC 2.0 / LSP 3.17): -32700 parse error, -32600 invalid request, -32601 method
not found, -32602 invalid params, -32002 server not initialized.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from .conftest import TIMEOUT, RawServer, frame

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
NOT_INITIALIZED = -32002

URI = "file:///tmp/pingti-e2e/raw.py"
DOC = "alpha = 1\nal"


def inline_params(line: int = 1, character: int = 2, uri: str = URI) -> dict[str, Any]:
    return {"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
            "context": {"triggerKind": 1}}


async def open_doc(server: RawServer, uri: str = URI, text: str = DOC) -> None:
    await server.notify("textDocument/didOpen", {"textDocument": {
        "uri": uri, "languageId": "python", "version": 1, "text": text}})


async def assert_serving(server: RawServer, msg_id: Any) -> None:
    """A completion request is answered with the expected suggestion."""
    await server.request(msg_id, "textDocument/inlineCompletion", inline_params())
    resp = await server.response(msg_id)
    assert "error" not in resp, resp
    assert [i["insertText"] for i in resp["result"]["items"]] == ["pha = 1"]


def error_code(resp: dict[str, Any]) -> int:
    assert "error" in resp and "result" not in resp, resp
    return resp["error"]["code"]


def assert_one_response_each(server: RawServer) -> None:
    counts = Counter(json.dumps(m.get("id")) for m in server.responses())
    dupes = {k: v for k, v in counts.items() if v > 1 and k != "null"}
    assert not dupes, f"ids answered more than once: {dupes}"


async def test_requests_before_initialize(raw_server: RawServer):
    await raw_server.request(1, "textDocument/inlineCompletion", inline_params())
    resp = await raw_server.response(1)
    assert error_code(resp) == NOT_INITIALIZED
    await raw_server.request("two", "shutdown")
    assert error_code(await raw_server.response("two")) == NOT_INITIALIZED
    # A notification before initialize is dropped (no answer, no crash) ...
    await open_doc(raw_server)
    await raw_server.initialize()
    # ... so the document is not open.
    await raw_server.request(3, "textDocument/inlineCompletion", inline_params())
    assert error_code(await raw_server.response(3)) == INVALID_PARAMS
    await open_doc(raw_server)
    await assert_serving(raw_server, 4)
    # A second initialize is refused.
    await raw_server.request(5, "initialize", {"processId": None, "rootUri": None,
                                               "capabilities": {}})
    assert error_code(await raw_server.response(5)) == INVALID_REQUEST
    await assert_serving(raw_server, 6)
    assert_one_response_each(raw_server)


MALFORMED = {
    "truncated": b'{"jsonrpc": "2.0", "id": 3, "method": ',
    "not-json": b"{not json}",
    "not-utf8": b"\xff\xfe\x00garbage",
    "trailing": b'{"jsonrpc": "2.0", "id": 3, "method": "shutdown"} trailing',
    "empty": b" ",
}


async def test_malformed_json(raw_server: RawServer):
    """One server for all cases: each gets its error, and the server still answers after it."""
    await raw_server.initialize()
    await open_doc(raw_server)
    for n, (case, body) in enumerate(MALFORMED.items()):
        await raw_server.write(frame(body))
        resp = await raw_server.next_message(lambda m: "method" not in m)
        assert error_code(resp) == PARSE_ERROR, case
        assert resp.get("id") is None, case  # see test_null_id_is_sent for the member itself
        await assert_serving(raw_server, f"after-{case}-{n}")
    assert_one_response_each(raw_server)


@pytest.mark.parametrize("body, code", [(b"{oops", PARSE_ERROR), (b"[1]", INVALID_REQUEST)],
                         ids=["parse-error", "invalid-request"])
async def test_null_id_is_sent(raw_server: RawServer, body: bytes, code: int):
    await raw_server.initialize()
    await raw_server.write(frame(body))
    resp = await raw_server.next_message(lambda m: "method" not in m)
    assert error_code(resp) == code
    # JSON-RPC 2.0: "id" is REQUIRED in a response, null when it could not be detected;
    # vscode-jsonrpc does not recognise a response without it.
    assert "id" in resp and resp["id"] is None


NOT_OBJECTS = ["[1, 2]", "[]", "42", '"a string"', "null", "true"]


async def test_not_an_object_is_invalid_request(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    for n, body in enumerate(NOT_OBJECTS):
        await raw_server.write(frame(body))
        resp = await raw_server.next_message(lambda m: "method" not in m)
        assert error_code(resp) == INVALID_REQUEST, body
        assert resp.get("id") is None, body
        await assert_serving(raw_server, f"after-{n}")
    assert_one_response_each(raw_server)


async def test_batch_is_refused(raw_server: RawServer):
    """LSP has no batches: an array of requests is one invalid request, the server goes on."""
    await raw_server.initialize()
    await open_doc(raw_server)
    batch = [{"jsonrpc": "2.0", "id": 20, "method": "textDocument/inlineCompletion",
              "params": inline_params()}]
    await raw_server.write(frame(batch))
    resp = await raw_server.next_message(lambda m: "method" not in m)
    assert error_code(resp) == INVALID_REQUEST
    await assert_serving(raw_server, 21)
    assert not [m for m in raw_server.responses() if m.get("id") == 20]


async def test_object_that_is_not_json_rpc_2(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    # No "jsonrpc" member.
    await raw_server.send({"id": 30, "method": "textDocument/inlineCompletion",
                           "params": inline_params()})
    assert error_code(await raw_server.response(30)) == INVALID_REQUEST
    # The wrong version.
    await raw_server.send({"jsonrpc": "1.0", "id": 31, "method": "textDocument/inlineCompletion",
                           "params": inline_params()})
    assert error_code(await raw_server.response(31)) == INVALID_REQUEST
    # An object with neither method nor id: nothing to answer, and the server goes on.
    await raw_server.send({"jsonrpc": "2.0", "hello": "world"})
    await assert_serving(raw_server, 32)
    assert_one_response_each(raw_server)


INVALID_PARAMS_CASES = {
    "position-string": {"textDocument": {"uri": URI}, "position": "1:2",
                        "context": {"triggerKind": 1}},
    "line-string": {"textDocument": {"uri": URI}, "position": {"line": "one", "character": 2},
                    "context": {"triggerKind": 1}},
    "no-text-document": {"position": {"line": 1, "character": 2}, "context": {"triggerKind": 1}},
    "negative-line": {"textDocument": {"uri": URI}, "position": {"line": -1, "character": 2},
                      "context": {"triggerKind": 1}},
    "no-params": None,
    "array": [URI, 1, 2],
}


async def test_invalid_params(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    for n, (case, params) in enumerate(INVALID_PARAMS_CASES.items()):
        for msg_id in (40 + 2 * n, f"id-{n}"):  # the id comes back as sent, number or string
            await raw_server.request(msg_id, "textDocument/inlineCompletion", params)
            resp = await raw_server.response(msg_id)
            assert error_code(resp) == INVALID_PARAMS, case
            assert resp["id"] == msg_id and type(resp["id"]) is type(msg_id), case
        await assert_serving(raw_server, f"after-{case}")
    assert_one_response_each(raw_server)


async def test_invalid_params_for_completion_and_notifications(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    await raw_server.request(42, "textDocument/completion",
                             {"textDocument": {"uri": URI}, "position": "end"})
    assert error_code(await raw_server.response(42)) == INVALID_PARAMS
    # A notification that does not validate is dropped without an answer.
    await raw_server.notify("textDocument/didChange", {"textDocument": "x", "contentChanges": 3})
    await raw_server.notify("textDocument/didOpen", {"textDocument": None})
    await raw_server.notify("workspace/didChangeConfiguration", {"settings": {"maxTokensSingleLine": "x"}})
    await assert_serving(raw_server, 43)
    assert_one_response_each(raw_server)


async def test_unknown_method(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    await raw_server.request(50, "pingti/doesNotExist", {})
    assert error_code(await raw_server.response(50)) == METHOD_NOT_FOUND
    await raw_server.request(51, "$/unknownRequest", {})
    resp = await raw_server.response(51)
    assert error_code(resp) == METHOD_NOT_FOUND
    # Unknown notifications are ignored, with no answer.
    await raw_server.notify("pingti/unknownNotification", {})
    await raw_server.notify("$/unknownNotification", {})
    await assert_serving(raw_server, 52)
    assert_one_response_each(raw_server)


async def test_unknown_method_without_params(raw_server: RawServer):
    await raw_server.initialize()
    await raw_server.request(55, "pingti/doesNotExist")
    assert error_code(await raw_server.response(55)) == METHOD_NOT_FOUND


JUNK = {
    "glued": b"garbage",  # glued to the next header, no line break
    "line": b"garbage\r\n",
    "blank-lines": b"\r\n\r\n",
    "huge-length": b"Content-Length: 99999999999\r\n\r\n",  # absurd length: ignored
    "zero-length": b"Content-Length: 0\r\n\r\n",
    "stray-header": b"X-Unknown: 1\r\n",  # a header without a body
    "binary": bytes(range(256)).replace(b"\n", b"").replace(b"\r", b""),
}


async def test_resync_after_garbage(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    for case, junk in JUNK.items():
        await raw_server.write(junk)
        try:
            await assert_serving(raw_server, f"after-{case}")
        except asyncio.TimeoutError:
            raise AssertionError(f"no answer after {case!r} junk") from None
    assert_one_response_each(raw_server)


async def test_header_variants(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    msg = {"jsonrpc": "2.0", "id": 70, "method": "textDocument/inlineCompletion",
           "params": inline_params()}
    body = json.dumps(msg).encode()
    # Lower-case name, a Content-Type header, and a garbage line glued before a header.
    await raw_server.write(b"content-length: %d\r\nContent-Type: application/vscode-jsonrpc; "
                           b"charset=utf-8\r\n\r\n" % len(body) + body)
    resp = await raw_server.response(70)
    assert [i["insertText"] for i in resp["result"]["items"]] == ["pha = 1"]
    msg["id"] = 71
    body = json.dumps(msg).encode()
    await raw_server.write(b"}}}Content-Length: %d\r\n\r\n" % len(body) + body)
    assert "result" in await raw_server.response(71)
    # Several messages in one write, the last one split across two writes.
    msg["id"] = 72
    a = frame(msg)
    msg["id"] = 73
    b = frame(msg)
    await raw_server.write(a + b[:10])
    await asyncio.sleep(0.05)
    await raw_server.write(b[10:])
    assert "result" in await raw_server.response(72)
    assert "result" in await raw_server.response(73)
    # A non-ASCII body: Content-Length counts bytes.
    await raw_server.notify("textDocument/didOpen", {"textDocument": {
        "uri": "file:///tmp/pingti-e2e/u.py", "languageId": "python", "version": 1,
        "text": "ä = '😀'\nä "}})
    await raw_server.request(74, "textDocument/inlineCompletion",
                             inline_params(1, 2, "file:///tmp/pingti-e2e/u.py"))
    resp = await raw_server.response(74)
    assert [i["insertText"] for i in resp["result"]["items"]] == ["= '😀'"]
    assert_one_response_each(raw_server)


async def test_shutdown_then_requests_then_exit(raw_server: RawServer):
    await raw_server.initialize()
    await open_doc(raw_server)
    await assert_serving(raw_server, 80)
    await raw_server.request(81, "shutdown")
    resp = await raw_server.response(81)
    assert "error" not in resp and "result" in resp and resp["result"] is None
    await raw_server.request(82, "textDocument/inlineCompletion", inline_params())
    assert error_code(await raw_server.response(82)) == INVALID_REQUEST
    await raw_server.request(83, "shutdown")
    assert error_code(await raw_server.response(83)) == INVALID_REQUEST
    # Notifications after shutdown are ignored; exit ends the process with success.
    await open_doc(raw_server, "file:///tmp/pingti-e2e/late.py")
    await raw_server.notify("exit")
    rc = await asyncio.wait_for(raw_server.proc.wait(), TIMEOUT)
    assert rc == 0
    assert_one_response_each(raw_server)


async def test_exit_ends_the_process(raw_server: RawServer):
    await raw_server.initialize()
    await raw_server.request(90, "shutdown")
    await raw_server.response(90)
    await raw_server.notify("exit")
    assert await asyncio.wait_for(raw_server.proc.wait(), TIMEOUT) == 0


async def test_exit_before_initialize_ends_the_process(raw_server: RawServer):
    await raw_server.notify("exit")
    rc = await asyncio.wait_for(raw_server.proc.wait(), TIMEOUT)
    assert rc is not None


async def test_exit_during_generation_ends_the_process(raw_server: RawServer):
    await raw_server.initialize(options={"backend": "fake", "fakeTokenDelay": 0.05,
                                         "maxTokensMultiLine": 4096, "contextTokens": 32768})
    body = "".join(f"    v{i} = {i}\n" for i in range(100))
    await open_doc(raw_server, text="def f():\n" + body + "\ndef f():\n    ")
    await raw_server.request(95, "textDocument/inlineCompletion", inline_params(103, 4))
    await asyncio.sleep(0.3)
    await raw_server.notify("exit")
    rc = await asyncio.wait_for(raw_server.proc.wait(), 5)
    assert rc is not None


async def test_stdin_closed_ends_the_process(raw_server: RawServer):
    await raw_server.initialize()
    assert raw_server.proc.stdin is not None
    raw_server.proc.stdin.close()
    assert await asyncio.wait_for(raw_server.proc.wait(), TIMEOUT) is not None


async def test_exit_without_shutdown_exits_with_1(raw_server: RawServer):
    await raw_server.initialize()
    await raw_server.notify("exit")
    assert await asyncio.wait_for(raw_server.proc.wait(), TIMEOUT) == 1


async def test_every_request_gets_exactly_one_response(raw_server: RawServer):
    """A mixed stream, then a final request: every id was answered exactly once."""
    await raw_server.request(100, "textDocument/inlineCompletion", inline_params())  # too early
    await raw_server.initialize("init-100")
    await open_doc(raw_server)
    ids: list[Any] = [100, "init-100"]
    await raw_server.write(frame(b"{oops"))
    await raw_server.write(frame("[1]"))
    for i, (method, params) in enumerate([
        ("textDocument/inlineCompletion", inline_params()),
        ("textDocument/completion", inline_params()),
        ("textDocument/inlineCompletion", {"position": 3}),
        ("pingti/nope", None),
        ("textDocument/inlineCompletion", inline_params(uri="file:///not/open.py")),
        ("textDocument/completion", {"textDocument": {"uri": URI}}),
        ("textDocument/inlineCompletion", inline_params(0, 5)),
    ]):
        await raw_server.write(b"junk")
        await raw_server.request(101 + i, method, params)
        ids.append(101 + i)
    await raw_server.send({"id": 120, "method": "textDocument/inlineCompletion"})
    ids.append(120)
    await raw_server.request("last", "shutdown")
    ids.append("last")
    await raw_server.response("last")
    # Read whatever else might still come (a duplicate would arrive by now).
    with pytest.raises(asyncio.TimeoutError):
        await raw_server.next_message(lambda m: False, timeout=0.3)
    answered = Counter(json.dumps(m.get("id")) for m in raw_server.responses())
    for msg_id in ids:
        assert answered[json.dumps(msg_id)] == 1, (msg_id, answered)
    # The two bodies that have no id got one error each, with id null.
    assert answered["null"] == 2
    assert set(answered) == {json.dumps(i) for i in ids} | {"null"}


async def test_zero_and_negative_ids(raw_server: RawServer):
    await raw_server.initialize(msg_id=0)
    await open_doc(raw_server)
    await assert_serving(raw_server, -1)
    await raw_server.request(-2, "pingti/nope", {})
    assert error_code(await raw_server.response(-2)) == METHOD_NOT_FOUND
    await assert_serving(raw_server, "")
    assert_one_response_each(raw_server)


async def test_client_refusing_progress_does_not_block_loading(raw_server: RawServer):
    await raw_server.request("init", "initialize", {
        "processId": None, "rootUri": None, "initializationOptions": {"backend": "fake"},
        "capabilities": {"window": {"workDoneProgress": True}}})
    await raw_server.response("init")
    await raw_server.notify("initialized", {})
    create = await raw_server.next_message(
        lambda m: m.get("method") == "window/workDoneProgress/create")
    await raw_server.send({"jsonrpc": "2.0", "id": create["id"],
                           "error": {"code": -32601, "message": "no progress here"}})
    await open_doc(raw_server)
    await assert_serving(raw_server, 1)
    # Progress was refused, so none was sent for that token.
    assert not [m for m in raw_server.received if m.get("method") == "$/progress"]
