"""Several suggestions per request (``candidates``) and the per-document figures that
``pingti/status`` reports (what lsp-bench reads for token counts)."""

from __future__ import annotations

import asyncio

from lsprotocol import types
from pytest_lsp import LanguageClient

from server.lspclient import _plain
from tests.e2e.conftest import (
    TIMEOUT,
    inline,
    inline_params,
    open_doc,
    start_session,
    status,
)

URI = "file:///tmp/pingti-e2e/cands.py"
DOC = "def g(x):\n    return x + 1\n\n\ndef f(x):\n    "
POS = (5, 4)


async def doc_status(client: LanguageClient, uri: str) -> dict:
    result = await asyncio.wait_for(
        client.protocol.send_request_async("pingti/status", {"uri": uri}), TIMEOUT)
    return _plain(result)


def texts(result: types.InlineCompletionList) -> list[str]:
    return [item.insert_text for item in result.items]  # type: ignore[misc]


async def test_equal_candidates_are_one_suggestion(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 3})
    open_doc(raw_client, URI, DOC)
    result = await inline(raw_client, URI, *POS)
    assert texts(result) == ["return x + 1"]  # the fake model is sure of its answer
    last = (await doc_status(raw_client, URI))["lastCompletion"]
    assert last["candidates"] == 1 and last["source"] == "model"
    assert [row["origins"] for row in last["ranking"]] == [[0, 1, 2]]
    assert last["generatedTokens"] >= 3 * len("return x + 1")  # all three decoded
    assert last["promptTokens"] > 0
    st = await status(raw_client)
    assert st["batching"]["maxWidth"] == 3  # decoded side by side, one batch
    assert "lastCompletion" not in st  # only when a document is named
    # Unknown documents have no figures; the answer says so rather than failing.
    assert (await doc_status(raw_client, "file:///nowhere.py"))["lastCompletion"] is None


# The fake model copies what followed the latest earlier match of the cursor's line (greedy),
# or an earlier one for sampled candidates: here the greedy answer breaks the docstring's
# example, the second candidate keeps it.
EXAMPLE_DOC = '''def add_one_v1(x):
    result = x
    return result + 1


def add_one_v2(x):
    result = x
    return result - 1


def add_one(x):
    """Add one.

    >>> add_one(1)
    2
    """
    result = x
    '''
EXAMPLE_POS = (17, 4)


async def test_the_files_own_examples_put_the_right_candidate_first(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 3, "rerank": "full",
                                     "rerankEncoder": "none", "sandbox": _sandbox()})
    open_doc(raw_client, URI, EXAMPLE_DOC)
    result = await inline(raw_client, URI, *EXAMPLE_POS, timeout=30)
    assert texts(result) == ["return result + 1", "return result - 1"]
    last = (await doc_status(raw_client, URI))["lastCompletion"]
    best, other = last["ranking"]
    assert best["origins"] == [1] and best["signals"]["examples"] == 1.0
    assert other["origins"] == [0, 2] and other["signals"]["examples"] == 0.0
    # Asked again, the ranked list comes from the cache.
    again = await inline(raw_client, URI, *EXAMPLE_POS)
    assert texts(again) == texts(result)
    assert (await doc_status(raw_client, URI))["lastCompletion"]["source"] == "cache"


async def test_without_reranking_the_greedy_candidate_comes_first(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 3, "rerank": "off"})
    open_doc(raw_client, URI, EXAMPLE_DOC)
    result = await inline(raw_client, URI, *EXAMPLE_POS)
    assert texts(result) == ["return result - 1", "return result + 1"]


async def test_automatic_requests_stay_single_on_a_cpu(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 3, "rerank": "full",
                                     "rerankEncoder": "none"})
    open_doc(raw_client, URI, EXAMPLE_DOC)
    params = inline_params(URI, *EXAMPLE_POS)
    params.context.trigger_kind = types.InlineCompletionTriggerKind.Automatic
    result = await asyncio.wait_for(raw_client.text_document_inline_completion_async(params),
                                    TIMEOUT)
    assert result is not None and texts(result) == ["return result - 1"]
    last = (await doc_status(raw_client, URI))["lastCompletion"]
    assert [row["origins"] for row in last["ranking"]] == [[0]]


def _sandbox() -> str:
    from testgen.sandbox import Isolation, detect

    return "auto" if detect(Isolation.AUTO).usable else "none"


async def test_candidates_setting_is_validated(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "candidates": 99, "temperature": 0.5})
    open_doc(raw_client, URI, DOC)
    # Out of range: the default applies and the server keeps serving.
    assert texts(await inline(raw_client, URI, *POS)) == ["return x + 1"]
