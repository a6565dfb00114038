"""``textDocument/didClose`` frees every per-document structure: opening, completing and closing
1,000 documents leaves the server's memory flat (a long editing session must not grow without
bound)."""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import open_doc, start_session, status, suggestion


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _close(lsp_client: LanguageClient, uri: str) -> None:
    lsp_client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))


async def _round(lsp_client: LanguageClient, start: int, count: int) -> None:
    for i in range(start, start + count):
        uri = f"file:///tmp/pingti-e2e/closed/doc{i}.py"
        # A document of some size, so that a leak per document would show (~40 KB each).
        body = "".join(f"value_{i}_{k} = compute_{k}({k})\n" for k in range(1000))
        text = body + f"other_{i} = compute_"
        open_doc(lsp_client, uri, text)
        assert await suggestion(lsp_client, uri, 1000, len(f"other_{i} = compute_"))
        _close(lsp_client, uri)


async def test_open_complete_close_1000_documents_keeps_memory_flat(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "debounceMs": 0, "constraints": "off"})
    pid = raw_client._server.pid  # type: ignore[union-attr]
    await _round(raw_client, 0, 200)  # warm-up: allocator pools, caches of fixed size
    await asyncio.sleep(0.2)
    before = _rss_kb(pid)
    await _round(raw_client, 200, 800)
    await asyncio.sleep(0.2)
    after = _rss_kb(pid)
    # 800 documents of ~40 KB kept would be 32 MB (plus their cached answers and prompts).
    assert after - before < 8 * 1024, f"RSS grew {after - before} KB over 800 documents"
    st = await status(raw_client)
    assert st["state"] == "ready"


async def test_a_closed_document_is_no_longer_served(raw_client: LanguageClient):
    await start_session(raw_client)
    uri = "file:///tmp/pingti-e2e/closed/once.py"
    open_doc(raw_client, uri, "abc = 1\nab")
    assert await suggestion(raw_client, uri, 1, 2) == "c = 1"
    _close(raw_client, uri)
    from pygls.exceptions import JsonRpcException

    try:
        await suggestion(raw_client, uri, 1, 2)
    except JsonRpcException as exc:
        assert "not open" in str(exc)
    else:
        raise AssertionError("a closed document was completed")
    # Opened again, it is completed again (nothing stale left behind).
    open_doc(raw_client, uri, "xyz = 2\nxy")
    assert await suggestion(raw_client, uri, 1, 2) == "z = 2"
