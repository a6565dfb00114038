"""Positions on the wire: UTF-16 by default, UTF-8/UTF-32 when negotiated; LSP line breaks only.

Each document is built so that a column read in the wrong unit puts the cursor somewhere else,
which changes the fake backend's suggestion (so these tests see misreadings, not only echoes).
"""

from __future__ import annotations

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import change_doc, complete, inline, open_doc, shared, start_session, suggestion

URI = "file:///tmp/pingti-e2e/pos.py"


def col(text: str, encoding: str) -> int:
    """The LSP column just after ``text`` (the start of its line) in ``encoding`` units."""
    if encoding == "utf-8":
        return len(text.encode("utf-8"))
    if encoding == "utf-32":
        return len(text)
    return len(text.encode("utf-16-le")) // 2


# The cursor sits after "foo_" with more text after it on the line: read in another unit, the
# column lands elsewhere and the suggestion changes.
EMOJI_LINE0 = 'x = "😀中" + foo_bar(1)'
EMOJI_HEAD = 'y = "😀中" + '
EMOJI_WORD = "foo_"
EMOJI_DOC = f"{EMOJI_LINE0}\n{EMOJI_HEAD}{EMOJI_WORD} or 0\n"


@pytest.mark.parametrize("offered, negotiated", [
    (None, "utf-16"),
    (["utf-16"], "utf-16"),
    (["utf-8"], "utf-8"),
    (["utf-8", "utf-16"], "utf-8"),
    (["utf-16", "utf-8"], "utf-8"),  # UTF-8 whenever offered
    (["utf-32"], "utf-32"),
], ids=["default", "utf16", "utf8", "utf8-preferred", "utf8-offered-second", "utf32"])
async def test_columns_follow_negotiated_encoding(raw_client: LanguageClient,
                                                  offered: list[str] | None, negotiated: str):
    result = await start_session(raw_client, encodings=offered)
    assert (result.capabilities.position_encoding or "utf-16") == negotiated
    open_doc(raw_client, URI, EMOJI_DOC)
    cursor = col(EMOJI_HEAD + EMOJI_WORD, negotiated)
    word_start = col(EMOJI_HEAD, negotiated)
    assert cursor != len(EMOJI_HEAD + EMOJI_WORD) or negotiated == "utf-32"

    res = await inline(raw_client, URI, 1, cursor)
    assert [i.insert_text for i in res.items] == ["bar(1)"]
    at = types.Position(line=1, character=cursor)
    assert res.items[0].range == types.Range(start=at, end=at)

    comp = await complete(raw_client, URI, 1, cursor)
    assert len(comp.items) == 1
    edit = comp.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range == types.Range(start=types.Position(line=1, character=word_start), end=at)
    assert edit.new_text == "foo_bar(1)"


@shared
async def test_column_inside_surrogate_pair_is_clamped(shared_client: LanguageClient, uri: str):
    # "😀" is two UTF-16 units; column 1 points between them: the spec says use the
    # character boundary before, so the cursor is at the start of the line.
    doc = "😀bc = 1\n😀"
    open_doc(shared_client, uri, doc)
    assert await suggestion(shared_client, uri, 1, 2) == "bc = 1"
    # Inside the pair on line 1: the boundary before the emoji; still no error.
    res = await inline(shared_client, uri, 1, 1)
    assert len(res.items) <= 1


# Characters that Python's str.splitlines() treats as line breaks but LSP does not.
NOT_LINE_BREAKS = ["\u2028", "\u2029", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\x85"]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_unicode_separators_do_not_split_lines(raw_client: LanguageClient, encoding: str):
    await start_session(raw_client, encodings=[encoding])
    for i, sep in enumerate(NOT_LINE_BREAKS):
        uri = f"file:///tmp/pingti-e2e/sep{i}.py"
        head = f'b = "p{sep}q" + '
        doc = f'a = "p{sep}q" + foo_bar(1)\n{head}foo_ or 0\n'
        open_doc(raw_client, uri, doc)
        cursor = col(head + "foo_", encoding)
        assert await suggestion(raw_client, uri, 1, cursor) == "bar(1)", repr(sep)
        comp = await complete(raw_client, uri, 1, cursor)
        edit = comp.items[0].text_edit
        assert isinstance(edit, types.TextEdit)
        assert edit.range.start == types.Position(line=1, character=col(head, encoding)), \
            repr(sep)
        # A separator at the start of the document does not shift later line numbers.
        uri2 = f"file:///tmp/pingti-e2e/sep{i}-top.py"
        open_doc(raw_client, uri2, f"{sep}\nalpha = 1\nal")
        assert await suggestion(raw_client, uri2, 2, 2) == "pha = 1", repr(sep)


@shared
async def test_edits_across_a_separator(shared_client: LanguageClient, uri: str):
    """A range that ends after \\u2028 on the same line is applied within that line."""
    doc = 'k = "\u2028"; first = 1\nk = "\u2028"; second = 2\nk = "\u2028"; '
    open_doc(shared_client, uri, doc)
    head = 'k = "\u2028"; '
    assert await suggestion(shared_client, uri, 2, col(head, "utf-16")) == "second = 2"
    # Delete "second = 2" on line 1 (columns measured past the separator).
    change_doc(shared_client, uri, 2, ((1, col(head, "utf-16")), (1, col(head + "second = 2", "utf-16")),
                                "third = 3"))
    assert await suggestion(shared_client, uri, 2, col(head, "utf-16")) == "third = 3"


@shared
async def test_crlf_document(shared_client: LanguageClient, uri: str):
    doc = "result = compute_total(items)\r\ntotal = compute_\r\n"
    open_doc(shared_client, uri, doc)
    assert await suggestion(shared_client, uri, 1, 16) == "total(items)"
    comp = await complete(shared_client, uri, 1, 16)
    edit = comp.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.start == types.Position(line=1, character=8)
    assert edit.new_text == "compute_total(items)"


@shared
async def test_crlf_multi_line_block(shared_client: LanguageClient, uri: str):
    doc = "def add(a, b):\r\n    c = a + b\r\n    return c\r\n\r\ndef add2(a, b):\r\n    \r\n"
    open_doc(shared_client, uri, doc)
    text = await suggestion(shared_client, uri, 5, 4)
    assert "\r" not in text.replace("\r\n", "")  # no stray carriage returns
    assert text.replace("\r\n", "\n") == "c = a + b\n    return c"


@shared
async def test_crlf_incremental_edits(shared_client: LanguageClient, uri: str):
    doc = "alpha = 1\r\nbeta = 2\r\nx = 0\r\n"
    open_doc(shared_client, uri, doc)
    # Insert a line at the start of line 2 and type "al" on it.
    change_doc(shared_client, uri, 2, ((2, 0), (2, 0), "al\r\n"))
    assert await suggestion(shared_client, uri, 2, 2) == "pha = 1"
    # Join lines 0 and 1 by deleting the CRLF (a range that spans the two-character break).
    change_doc(shared_client, uri, 3, ((0, 9), (1, 0), "; "))
    # Now: "alpha = 1; beta = 2\r\nal\r\nx = 0\r\n"
    assert await suggestion(shared_client, uri, 1, 2) == "pha = 1; beta = 2"


@shared
async def test_lone_cr_document_single_line(shared_client: LanguageClient, uri: str):
    doc = "alpha = 1\rbeta = 2\ral"
    open_doc(shared_client, uri, doc)
    text = await suggestion(shared_client, uri, 2, 2)
    assert text == "pha = 1"


@shared
async def test_lone_cr_positions(shared_client: LanguageClient, uri: str):
    doc = "result = compute_total(items)\rtotal = compute_"
    open_doc(shared_client, uri, doc)
    comp = await complete(shared_client, uri, 1, 16)
    edit = comp.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.start == types.Position(line=1, character=8)
    assert edit.new_text.startswith("compute_total(items)")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-8"])
async def test_incremental_edits_with_emoji(raw_client: LanguageClient, encoding: str):
    result = await start_session(raw_client, encodings=[encoding])
    assert result.capabilities.position_encoding == encoding
    lines = ['a = "中x"; first = 1', 'a = "😀x"; second = 2', 'a = "😀x"; ']
    open_doc(raw_client, URI, "\n".join(lines))
    assert await suggestion(raw_client, URI, 2, col(lines[2], encoding)) == "second = 2"

    # Replace the emoji on line 2 by "中": the range spans exactly the emoji's code units.
    e0, e1 = col('a = "', encoding), col('a = "😀', encoding)
    change_doc(raw_client, URI, 2, ((2, e0), (2, e1), "中"))
    lines[2] = 'a = "中x"; '
    assert await suggestion(raw_client, URI, 2, col(lines[2], encoding)) == "first = 1"

    # Insert "y" right after the emoji on line 1, then make line 2 match it again.
    change_doc(raw_client, URI, 3, ((1, e1), (1, e1), "y"))
    c0, c1 = col('a = "', encoding), col('a = "中', encoding)
    change_doc(raw_client, URI, 4, ((2, c0), (2, c1), "😀y"))
    lines[2] = 'a = "😀yx"; '
    assert await suggestion(raw_client, URI, 2, col(lines[2], encoding)) == "second = 2"

    # The classic completion's word start after emoji, after all those edits.
    change_doc(raw_client, URI, 5, ((2, col(lines[2], encoding)), (2, col(lines[2], encoding)),
                                    "sec"))
    lines[2] += "sec"
    comp = await complete(raw_client, URI, 2, col(lines[2], encoding))
    edit = comp.items[0].text_edit
    assert isinstance(edit, types.TextEdit)
    assert edit.range.start.character == col('a = "😀yx"; ', encoding)
    assert edit.new_text == "second = 2"
