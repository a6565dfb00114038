"""Several suggestions per request (``candidates``) and the per-document figures that
``pingti/status`` reports (what lsp-bench reads for token counts)."""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient

from server.lspclient import _plain
from tests.e2e.conftest import TIMEOUT, inline, open_doc, start_session, status

URI = "file:///tmp/pingti-e2e/cands.py"
DOC = "def g(x):\n    return x + 1\n\n\ndef f(x):\n    "
POS = (5, 4)


async def doc_status(client: LanguageClient, uri: str) -> dict:
    result = await asyncio.wait_for(
        client.protocol.send_request_async("pingti/status", {"uri": uri}), TIMEOUT)
    return _plain(result)


def texts(result: types.InlineCompletionList) -> list[str]:
    return [item.insert_text for item in result.items]  # type: ignore[misc]


async def test_sampled_candidates_are_all_offered(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 3, "temperature": 0.8})
    open_doc(raw_client, URI, DOC)
    result = await inline(raw_client, URI, *POS)
    assert texts(result) == ["return x + 1"] * 3  # the fake model is sure of its answer
    last = (await doc_status(raw_client, URI))["lastCompletion"]
    assert last["candidates"] == 3 and last["source"] == "model"
    assert last["generatedTokens"] >= 3 * len("return x + 1")  # all three decoded
    assert last["promptTokens"] > 0
    st = await status(raw_client)
    assert st["batching"]["maxWidth"] == 3  # decoded side by side, one batch
    assert "lastCompletion" not in st  # only when a document is named
    # The same request again is sampled again (the cache holds one suggestion only).
    assert len((await inline(raw_client, URI, *POS)).items) == 3


async def test_greedy_decoding_answers_once(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 4, "temperature": 0})
    open_doc(raw_client, URI, DOC)
    assert texts(await inline(raw_client, URI, *POS)) == ["return x + 1"]
    assert (await doc_status(raw_client, URI))["lastCompletion"]["candidates"] == 1
    # Unknown documents have no figures; the answer says so rather than failing.
    assert (await doc_status(raw_client, "file:///nowhere.py"))["lastCompletion"] is None


async def test_candidates_setting_is_validated(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 99, "temperature": 0.5})
    open_doc(raw_client, URI, DOC)
    # Out of range: the default (1) applies and the server keeps serving.
    assert texts(await inline(raw_client, URI, *POS)) == ["return x + 1"]
