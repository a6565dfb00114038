"""Prefetch over LSP (fake backend): didOpen and ``pingti/focus`` make the model evaluate the
prompt at the cursor in idle time, so the first request there finds it in the KV cache; bad
focus messages are ignored and the server serves on."""

from __future__ import annotations

import asyncio
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import (
    TIMEOUT,
    change_doc,
    configure,
    open_doc,
    start_session,
    status,
    suggestion,
)

# One file's prompt (its windows are what is measured): repository context off.
OPTIONS = {"backend": "fake", "debounceMs": 0, "candidates": 1, "constraints": "off",
           "repoContext": "off"}
BODY = "".join(f"value_{k} = compute({k})\n" for k in range(60))
DOC = BODY + "result = comp"  # the cursor at the end: line 60, character 13


async def _status(client: LanguageClient, uri: str | None = None) -> dict[str, Any]:
    from server.lspclient import _plain

    return _plain(await asyncio.wait_for(client.protocol.send_request_async(
        "pingti/status", {"uri": uri} if uri else None), TIMEOUT))


def _focus(client: LanguageClient, params: Any) -> None:
    client.protocol.notify("pingti/focus", params)


async def _prefetched(client: LanguageClient, count: int) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        p = (await status(client)).get("batching", {}).get("prefetch")
        return p if p is not None and p["completed"] >= count and not p["running"] else None

    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (p := await done()) is None:
        assert asyncio.get_running_loop().time() < deadline, "prefetch did not complete"
        await asyncio.sleep(0.02)
    return p


async def test_focus_prefetches_the_prompt_and_the_request_reuses_it(raw_client: LanguageClient):
    await start_session(raw_client, OPTIONS)
    uri = "file:///tmp/pingti-e2e/prefetch/a.py"
    open_doc(raw_client, uri, DOC)
    _focus(raw_client, {"textDocument": {"uri": uri}, "position": {"line": 60, "character": 13}})
    p = await _prefetched(raw_client, 1)
    assert p["tokens"] > 500  # the prompt (the fake tokenizes by character)
    assert await suggestion(raw_client, uri, 60, 13) == "ute(59)"
    last = (await _status(raw_client, uri))["lastCompletion"]
    assert last["reusedTokens"] == last["promptTokens"] - 1  # only decoding was left


async def test_did_open_alone_prefetches_the_end_of_the_file(raw_client: LanguageClient):
    await start_session(raw_client, OPTIONS)
    uri = "file:///tmp/pingti-e2e/prefetch/b.py"
    open_doc(raw_client, uri, DOC)
    await _prefetched(raw_client, 1)
    assert await suggestion(raw_client, uri, 60, 13) == "ute(59)"
    last = (await _status(raw_client, uri))["lastCompletion"]
    assert last["reusedTokens"] == last["promptTokens"] - 1


async def test_prefetch_off_evaluates_nothing_ahead(raw_client: LanguageClient):
    await start_session(raw_client, {**OPTIONS, "prefetch": "off"})
    uri = "file:///tmp/pingti-e2e/prefetch/c.py"
    open_doc(raw_client, uri, DOC)
    _focus(raw_client, {"textDocument": {"uri": uri}, "position": {"line": 60, "character": 13}})
    assert await suggestion(raw_client, uri, 60, 13) == "ute(59)"
    st = await status(raw_client)
    assert st["batching"]["prefetch"]["requested"] == 0
    assert (await _status(raw_client, uri))["lastCompletion"]["reusedTokens"] == 0


async def test_an_edit_in_another_file_moves_the_focus(raw_client: LanguageClient):
    await start_session(raw_client, OPTIONS)
    a, b = "file:///tmp/pingti-e2e/prefetch/d.py", "file:///tmp/pingti-e2e/prefetch/e.py"
    open_doc(raw_client, a, DOC)
    open_doc(raw_client, b, DOC.replace("value_", "other_"))
    await _prefetched(raw_client, 1)
    before = (await status(raw_client))["batching"]["prefetch"]["requested"]
    change_doc(raw_client, a, 2, ((10, 0), (10, 0), "# note\n"))  # the user went back to a
    p = await _prefetched(raw_client, 2)
    assert p["requested"] == before + 1
    change_doc(raw_client, a, 3, ((11, 0), (11, 0), "x"))  # typing on in a: no new focus
    await asyncio.sleep(0.1)
    assert (await status(raw_client))["batching"]["prefetch"]["requested"] == before + 1


async def test_bad_focus_messages_are_ignored(raw_client: LanguageClient):
    await start_session(raw_client, OPTIONS)
    uri = "file:///tmp/pingti-e2e/prefetch/f.py"
    open_doc(raw_client, uri, DOC)
    await _prefetched(raw_client, 1)
    for bad in ({}, {"textDocument": {}}, {"textDocument": {"uri": 3}},
                {"textDocument": {"uri": "file:///not/open.py"}},
                {"textDocument": {"uri": uri}, "position": {"line": -1, "character": 0}},
                {"textDocument": {"uri": uri}, "position": {"line": "x", "character": 0}},
                None, [1, 2]):
        _focus(raw_client, bad)
    # Past the end of the document: clamped, like any position.
    _focus(raw_client, {"textDocument": {"uri": uri}, "position": {"line": 999, "character": 9}})
    await _prefetched(raw_client, 2)
    await asyncio.sleep(0.1)
    st = await status(raw_client)
    assert st["state"] == "ready" and st["batching"]["prefetch"]["requested"] == 2
    assert await suggestion(raw_client, uri, 60, 13) == "ute(59)"


async def test_the_next_window_is_prefetched_before_the_prompt_start_jumps(
        raw_client: LanguageClient):
    # With the fake one character is one token. The prompt starts at every 32nd line
    # (alignLines) and its prefix gets 573 tokens: here it starts at line 32 and holds 551, so
    # the start is about to jump to line 64. After the answer, the prompt that will start there
    # is evaluated ahead, and the request after the jump finds its beginning cached.
    await start_session(raw_client, OPTIONS)
    uri = "file:///tmp/pingti-e2e/prefetch/g.py"
    text = "".join(f"v_{k:03d} = {k:03d}\n" for k in range(77)) + "result = co"
    open_doc(raw_client, uri, text)
    await _prefetched(raw_client, 1)
    await suggestion(raw_client, uri, 77, 11)
    await _prefetched(raw_client, 2)
    assert (await status(raw_client))["batching"]["prefetch"]["requested"] == 2
    typed = "unt\n" + "w_1 = 1\n" * 3 + "end = co"
    change_doc(raw_client, uri, 2, ((77, 11), (77, 11), typed))
    await suggestion(raw_client, uri, 81, 8)
    last = (await _status(raw_client, uri))["lastCompletion"]
    assert last["source"] == "model" and last["promptTokens"] < 300, last  # the start jumped
    assert last["reusedTokens"] >= 13 * 12 + 11, last  # lines 64-76 and "result = co"


async def test_no_next_window_while_the_start_stays_put(raw_client: LanguageClient):
    await start_session(raw_client, OPTIONS)
    uri = "file:///tmp/pingti-e2e/prefetch/h.py"
    open_doc(raw_client, uri, "".join(f"v_{k:03d} = {k:03d}\n" for k in range(50)) + "r = co")
    await _prefetched(raw_client, 1)
    await suggestion(raw_client, uri, 50, 6)
    await asyncio.sleep(0.2)
    assert (await status(raw_client))["batching"]["prefetch"]["requested"] == 1


async def test_an_edit_drops_the_documents_pending_prefetch(raw_client: LanguageClient):
    # 0.1 s per prefetch chunk of 48 tokens: the 568-token prompt would take 1.2 s.
    await start_session(raw_client, {**OPTIONS, "fakeTokenDelay": 0.1})
    uri = "file:///tmp/pingti-e2e/prefetch/i.py"
    open_doc(raw_client, uri, DOC)
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (await _status(raw_client)).get("batching", {}).get("prefetch", {}).get("chunks", 0) < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    change_doc(raw_client, uri, 2, ((60, 13), (60, 13), "u"))  # the user types
    await asyncio.sleep(1.5)
    p = (await status(raw_client))["batching"]["prefetch"]
    assert p["superseded"] == 1 and p["completed"] == 0 and p["chunks"] <= 3, p


async def test_closing_the_document_or_turning_prefetch_off_drops_it(raw_client: LanguageClient):
    await start_session(raw_client, {**OPTIONS, "fakeTokenDelay": 0.1})
    a, b = "file:///tmp/pingti-e2e/prefetch/j.py", "file:///tmp/pingti-e2e/prefetch/k.py"
    open_doc(raw_client, a, DOC)
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while (await _status(raw_client)).get("batching", {}).get("prefetch", {}).get("chunks", 0) < 1:
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.02)
    raw_client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=a)))
    await asyncio.sleep(0.5)
    p = (await status(raw_client))["batching"]["prefetch"]
    assert p["superseded"] == 1 and p["completed"] == 0, p
    open_doc(raw_client, b, DOC)
    await asyncio.sleep(0.3)
    configure(raw_client, {**OPTIONS, "fakeTokenDelay": 0.1, "prefetch": "off"})
    await asyncio.sleep(0.5)
    p = (await status(raw_client))["batching"]["prefetch"]
    assert p["superseded"] == 2 and p["completed"] == 0 and p["chunks"] <= 6, p
