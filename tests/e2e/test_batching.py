"""Dynamic batching over LSP: requests for several documents decode together on the model
thread (``pingti/status`` counts how wide its steps were), each gets its own answer, and
``maxBatchSize`` bounds it (1 = one at a time)."""

from __future__ import annotations

import asyncio

from pytest_lsp import LanguageClient

from .conftest import configure, model_idle, open_doc, start_session, status, suggestion

# Each document teaches the fake model its own completion: "<name>_value = <n>".
DOCS = {f"file:///tmp/pingti-e2e/batch{i}.py": (f"w{i}x_value = {i}{i}\nw{i}x", f"_value = {i}{i}")
        for i in range(4)}
# Each document alone in its prompt (the fake copies from the prompt; other open documents
# would be repository context).
OPTIONS = {"backend": "fake", "fakeTokenDelay": 0.03, "repoContext": "off"}


async def _all_at_once(lsp_client: LanguageClient) -> list[str]:
    return list(await asyncio.gather(*[suggestion(lsp_client, uri, 1, 3) for uri in DOCS]))


async def test_concurrent_documents_decode_together(raw_client: LanguageClient):
    await start_session(raw_client, {**OPTIONS, "maxBatchSize": 4})
    for uri, (text, _) in DOCS.items():
        open_doc(raw_client, uri, text)
    answers = await _all_at_once(raw_client)
    assert answers == [want for _, want in DOCS.values()]
    st = await model_idle(raw_client)
    assert st["batching"]["maxWidth"] >= 2, st
    assert st["batching"]["maxWidth"] <= 4
    assert st["model"]["backend"] == "fake"


async def test_max_batch_size_one_is_one_at_a_time(raw_client: LanguageClient):
    await start_session(raw_client, {**OPTIONS, "maxBatchSize": 1})
    for uri, (text, _) in DOCS.items():
        open_doc(raw_client, uri, text)
    assert await _all_at_once(raw_client) == [want for _, want in DOCS.values()]
    st = await model_idle(raw_client)
    assert st["batching"]["maxWidth"] == 1, st


async def test_max_batch_size_changes_without_reload(raw_client: LanguageClient):
    await start_session(raw_client, {**OPTIONS, "maxBatchSize": 1})
    for uri, (text, _) in DOCS.items():
        open_doc(raw_client, uri, text)
    assert await _all_at_once(raw_client) == [want for _, want in DOCS.values()]
    configure(raw_client, {"maxBatchSize": 3, "cacheEntries": 0})
    # New documents (the old answers are cached), now decoded up to three at a time.
    for uri, (text, _) in DOCS.items():
        open_doc(raw_client, uri.replace("batch", "again"), text, version=1)
    answers = await asyncio.gather(*[suggestion(raw_client, uri.replace("batch", "again"), 1, 3)
                                     for uri in DOCS])
    assert list(answers) == [want for _, want in DOCS.values()]
    st = await model_idle(raw_client)
    assert 2 <= st["batching"]["maxWidth"] <= 3, st
    assert st["batching"]["maxBatchSize"] == 3


async def test_status_before_the_model_is_ready(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "model": "/nonexistent/model.gguf"})
    st = await status(raw_client)
    assert st["state"] in {"not_loaded", "loading", "failed"}
