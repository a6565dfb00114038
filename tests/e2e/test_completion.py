"""Completion requests end to end: inline and classic completion, edits, errors, progress.

The fake backend copies what followed the longest earlier occurrence of the text before the
cursor, so each document below contains the example that the expected suggestion comes from.
"""

from __future__ import annotations

import asyncio

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .conftest import (
    TIMEOUT,
    change_doc,
    complete,
    inline,
    inline_params,
    open_doc,
    progress_kinds,
    shared,
    start_session,
    suggestion,
    wait_loaded,
)

URI = "file:///tmp/pingti-e2e/mod.py"


async def test_initialize_result(raw_client: LanguageClient):
    result = await start_session(raw_client)
    caps = result.capabilities
    assert caps.completion_provider is not None
    sync = caps.text_document_sync
    change = getattr(sync, "change", sync)
    assert change == types.TextDocumentSyncKind.Incremental
    assert caps.position_encoding in (None, types.PositionEncodingKind.Utf16)
    assert result.server_info is not None and result.server_info.name == "pingti-ls"


async def test_inline_completion_capability_advertised(raw_client: LanguageClient):
    result = await start_session(raw_client)
    # Clients (e.g. vscode-languageclient) only send textDocument/inlineCompletion to servers
    # that advertise it.
    assert result.capabilities.inline_completion_provider


@shared
async def test_inline_suggestion_at_cursor(shared_client: LanguageClient, uri: str):
    doc = "result = compute_total(items)\ntotal = compute_"
    open_doc(shared_client, uri, doc)
    res = await inline(shared_client, uri, 1, 16)
    assert len(res.items) == 1
    item = res.items[0]
    assert item.insert_text == "total(items)"
    assert item.range == types.Range(start=types.Position(line=1, character=16),
                                     end=types.Position(line=1, character=16))


@shared
async def test_completion_text_edit_replaces_word(shared_client: LanguageClient, uri: str):
    doc = "result = compute_total(items)\ntotal = compute_"
    open_doc(shared_client, uri, doc)
    res = await complete(shared_client, uri, 1, 16)
    assert len(res.items) == 1
    item = res.items[0]
    assert isinstance(item.text_edit, types.TextEdit)
    # The word being typed ("compute_") starts at column 8: the edit replaces it.
    assert item.text_edit.range == types.Range(start=types.Position(line=1, character=8),
                                               end=types.Position(line=1, character=16))
    assert item.text_edit.new_text == "compute_total(items)"
    # Clients filter items by the typed word: the item must match it.
    assert (item.filter_text or item.label).startswith("compute_")
    assert item.insert_text_format in (None, types.InsertTextFormat.PlainText)


@shared
async def test_completion_without_word_starts_at_cursor(shared_client: LanguageClient, uri: str):
    doc = "x = [1, 2]\ny = [1, 2]\nz = "
    open_doc(shared_client, uri, doc)
    res = await complete(shared_client, uri, 2, 4)
    assert len(res.items) == 1
    edit = res.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.start == edit.range.end == types.Position(line=2, character=4)
    assert edit.new_text == "[1, 2]"


DOC_BLOCK = "def add(a, b):\n    c = a + b\n    return c\n\ndef add2(a, b):\n    \n"


@shared
async def test_multi_line_inline(shared_client: LanguageClient, uri: str):
    open_doc(shared_client, uri, DOC_BLOCK)
    assert await suggestion(shared_client, uri, 5, 4) == "c = a + b\n    return c"


@shared
async def test_multi_line_completion_text_edit(shared_client: LanguageClient, uri: str):
    open_doc(shared_client, uri, DOC_BLOCK)
    res = await complete(shared_client, uri, 5, 4)
    assert len(res.items) == 1
    item = res.items[0]
    assert isinstance(item.text_edit, types.TextEdit)
    at = types.Position(line=5, character=4)
    assert item.text_edit.range == types.Range(start=at, end=at)
    assert item.text_edit.new_text == "c = a + b\n    return c"
    assert "\n" not in item.label


@shared
async def test_no_suggestion_is_empty_list(shared_client: LanguageClient, uri: str):
    for n, doc in enumerate([
        # The example continues with a line break: single-line mode has nothing to show.
        "x = 1\ny = 2\nx = 1",
        # The example continues with blanks only before the line break: never whitespace-only.
        "a = 1   \nb = 2\na = 1",
    ]):
        uri = f"file:///tmp/pingti-e2e/empty{n}.py"
        open_doc(shared_client, uri, doc)
        res = await inline(shared_client, uri, 2, 5)
        assert len(res.items) == 0, doc
        comp = await complete(shared_client, uri, 2, 5)
        assert len(comp.items) == 0, doc


@shared
async def test_suggestions_are_never_whitespace_only(shared_client: LanguageClient, uri: str):
    """Every cursor position of a small document: a suggestion is either absent or has text."""
    doc = "def f(x):\n    y = x  \n\n    return y\n\t\nz = f(1)  \n"
    open_doc(shared_client, uri, doc)
    lines = doc.split("\n")
    for line_no, line in enumerate(lines):
        for col in range(len(line) + 1):
            res = await inline(shared_client, uri, line_no, col)
            for item in res.items:
                assert isinstance(item.insert_text, str) and item.insert_text.strip(), \
                    (line_no, col, item)
            comp = await complete(shared_client, uri, line_no, col)
            for citem in comp.items:
                assert citem.text_edit is not None and citem.text_edit.new_text.strip()


@shared
async def test_incremental_change_then_completion(shared_client: LanguageClient, uri: str):
    doc = 'first_name = "ada"\nlast_name = "lovelace"\nprint(first_'
    open_doc(shared_client, uri, doc)
    assert await suggestion(shared_client, uri, 2, 12) == 'name = "ada"'
    # Replace "first_" by "last_" on the last line.
    change_doc(shared_client, uri, 2, ((2, 6), (2, 12), "last_"))
    assert await suggestion(shared_client, uri, 2, 11) == 'name = "lovelace"'
    # Several changes in one notification apply in order.
    change_doc(shared_client, uri, 3, ((2, 6), (2, 11), ""), ((2, 6), (2, 6), "first_"))
    assert await suggestion(shared_client, uri, 2, 12) == 'name = "ada"'
    # A full-text change.
    change_doc(shared_client, uri, 4, "alpha = 1\nbeta = 2\nal")
    assert await suggestion(shared_client, uri, 2, 2) == "pha = 1"


@shared
async def test_typing_through_a_suggestion(shared_client: LanguageClient, uri: str):
    doc = "result = compute_total(items)\ntotal = compute_"
    open_doc(shared_client, uri, doc)
    assert await suggestion(shared_client, uri, 1, 16) == "total(items)"
    change_doc(shared_client, uri, 2, ((1, 16), (1, 16), "tot"))
    assert await suggestion(shared_client, uri, 1, 19) == "al(items)"
    res = await complete(shared_client, uri, 1, 19)
    assert res.items[0].text_edit is not None
    assert res.items[0].text_edit.range.start == types.Position(line=1, character=8)
    assert res.items[0].text_edit.new_text == "compute_total(items)"


@shared
async def test_closed_document_is_an_error_not_a_crash(shared_client: LanguageClient, uri: str):
    open_doc(shared_client, uri, "alpha = 1\nal")
    shared_client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=uri)))
    with pytest.raises(JsonRpcException) as exc:
        await inline(shared_client, uri, 1, 2)
    assert exc.value.code == types.ErrorCodes.InvalidParams
    assert "not open" in exc.value.message


@shared
async def test_unknown_document_is_an_error_and_server_keeps_serving(shared_client: LanguageClient,
                                                                    uri: str):
    missing = "file:///tmp/pingti-e2e/never-opened.py"
    with pytest.raises(JsonRpcException) as exc:
        await inline(shared_client, missing, 0, 0)
    assert exc.value.code == types.ErrorCodes.InvalidParams
    assert "not open" in exc.value.message
    with pytest.raises(JsonRpcException) as exc2:
        await complete(shared_client, missing, 3, 1)
    assert exc2.value.code == types.ErrorCodes.InvalidParams
    # Still serving.
    open_doc(shared_client, uri, "alpha = 1\nal")
    assert await suggestion(shared_client, uri, 1, 2) == "pha = 1"
    assert shared_client._server is not None and shared_client._server.returncode is None


@shared
async def test_position_past_end_is_clamped(shared_client: LanguageClient, uri: str):
    open_doc(shared_client, uri, "alpha = 1\nal")
    # A character past the end of the line is the end of the line (LSP spec).
    assert await suggestion(shared_client, uri, 1, 99) == "pha = 1"
    # A line past the end of the document is not an error either.
    res = await inline(shared_client, uri, 42, 0)
    assert len(res.items) <= 1


async def test_load_progress_begin_and_end(client: LanguageClient):
    await wait_loaded(client)
    tokens = [t for t, kinds in progress_kinds(client).items() if "end" in kinds]
    assert len(tokens) == 1
    values = client.progress_reports[tokens[0]]
    assert isinstance(values[0], types.WorkDoneProgressBegin)
    assert "loading model" in values[0].title
    assert isinstance(values[-1], types.WorkDoneProgressEnd)
    assert [v.kind for v in values].count("begin") == 1
    assert [v.kind for v in values].count("end") == 1
    # The model is ready: a completion works.
    open_doc(client, URI, "alpha = 1\nal")
    assert await suggestion(client, URI, 1, 2) == "pha = 1"


async def test_no_progress_without_client_support(raw_client: LanguageClient):
    await start_session(raw_client, progress=False)
    open_doc(raw_client, URI, "alpha = 1\nal")
    assert await suggestion(raw_client, URI, 1, 2) == "pha = 1"
    assert raw_client.progress_reports == {}


async def test_requests_before_load_finishes_wait_for_the_model(raw_client: LanguageClient):
    """A request sent right after ``initialized`` waits for the load instead of failing."""
    await start_session(raw_client)
    open_doc(raw_client, URI, "alpha = 1\nal")
    results = await asyncio.wait_for(asyncio.gather(
        *(raw_client.text_document_inline_completion_async(inline_params(URI, 1, 2))
          for _ in range(3))), TIMEOUT)
    # Three requests for the same document: older ones are superseded (empty) or answered.
    texts = [r.items[0].insert_text if r.items else "" for r in results]
    assert texts[-1] == "pha = 1"
    assert all(t in ("", "pha = 1") for t in texts)


@pytest.mark.filterwarnings("ignore:Client does not support documentation format")
async def test_completion_documentation_respects_client_format(raw_client: LanguageClient):
    await start_session(raw_client, doc_formats=[types.MarkupKind.PlainText])
    open_doc(raw_client, URI, "alpha = 1\nal")
    res = await complete(raw_client, URI, 1, 2)
    doc = res.items[0].documentation
    assert doc is None or isinstance(doc, str) or doc.kind == types.MarkupKind.PlainText


# --- the document changes while a completion is being generated ---------------------------

SLOW = {"backend": "fake", "fakeTokenDelay": 0.05}  # "total(items)" + line break: ~0.65 s


async def test_completion_edit_refers_to_the_requested_version(raw_client: LanguageClient):
    await start_session(raw_client, SLOW)
    doc = "result = compute_total(items)\ntotal = compute_"
    open_doc(raw_client, URI, doc)
    pending = asyncio.ensure_future(complete(raw_client, URI, 1, 16))
    await asyncio.sleep(0.25)
    assert not pending.done()
    change_doc(raw_client, URI, 2, ((0, 0), (0, 0), "xx = 1\n"))
    res = await asyncio.wait_for(pending, TIMEOUT)
    # An answer for the version asked about (or none): never a range that mixes versions.
    for item in res.items:
        assert item.text_edit is not None
        assert item.text_edit.range.start == types.Position(line=1, character=8)
        assert item.text_edit.new_text == "compute_total(items)"


async def test_close_during_completion_is_not_an_internal_error(raw_client: LanguageClient):
    await start_session(raw_client, SLOW)
    open_doc(raw_client, URI, "result = compute_total(items)\ntotal = compute_")
    pending = asyncio.ensure_future(complete(raw_client, URI, 1, 16))
    await asyncio.sleep(0.25)
    raw_client.text_document_did_close(types.DidCloseTextDocumentParams(
        text_document=types.TextDocumentIdentifier(uri=URI)))
    try:
        await asyncio.wait_for(pending, TIMEOUT)
    except JsonRpcException as exc:
        assert exc.code != types.ErrorCodes.InternalError, exc.message
    # And the server is fine afterwards.
    open_doc(raw_client, URI, "alpha = 1\nal")
    assert await suggestion(raw_client, URI, 1, 2) == "pha = 1"


async def test_inline_completion_during_edit_still_answers(raw_client: LanguageClient):
    """Inline completion echoes the request's position, so an edit meanwhile is harmless."""
    await start_session(raw_client, SLOW)
    open_doc(raw_client, URI, "result = compute_total(items)\ntotal = compute_")
    pending = asyncio.ensure_future(inline(raw_client, URI, 1, 16))
    await asyncio.sleep(0.25)
    change_doc(raw_client, URI, 2, ((0, 0), (0, 0), "xx = 1\n"))
    res = await asyncio.wait_for(pending, TIMEOUT)
    assert [i.insert_text for i in res.items] in ([], ["total(items)"])
