"""Settings from initializationOptions and workspace/didChangeConfiguration, end to end."""

from __future__ import annotations

import asyncio
import time

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from .conftest import (
    TIMEOUT,
    complete,
    configure,
    inline,
    open_doc,
    progress_kinds,
    start_session,
    suggestion,
    wait_loaded,
    wait_until,
)

URI = "file:///tmp/pingti-e2e/cfg.py"
DOC = "result = compute_total(items)\ntotal = compute_"
POS = (1, 16)
FULL = "total(items)"


def messages_naming(lsp_client: LanguageClient, name: str) -> list[types.ShowMessageParams]:
    return [m for m in lsp_client.messages if name in m.message]


async def test_invalid_initialization_option_is_reported(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "maxTokensSingleLine": "lots",
                                     "temperature": -3})
    await wait_until(lambda: messages_naming(raw_client, "maxTokensSingleLine")
                     and messages_naming(raw_client, "temperature"),
                     what="messages naming both invalid settings")
    msg = messages_naming(raw_client, "maxTokensSingleLine")[0]
    assert msg.type in (types.MessageType.Warning, types.MessageType.Error)
    assert "48" in msg.message  # the default that is used instead
    # The server still completes, with the default token budget.
    open_doc(raw_client, URI, DOC)
    assert await suggestion(raw_client, URI, *POS) == FULL


async def test_unknown_setting_is_reported(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "fake", "maxTokenSingleLine": 3})
    await wait_until(lambda: messages_naming(raw_client, "maxTokenSingleLine"),
                     what="a message naming the unknown setting")
    open_doc(raw_client, URI, DOC)
    assert await suggestion(raw_client, URI, *POS) == FULL


async def test_settings_not_an_object_are_reported(raw_client: LanguageClient):
    # Only the backend is in the environment of this test: settings must be an object.
    await start_session(raw_client, {"backend": "fake"})
    configure(raw_client, ["not", "an", "object"])
    await wait_until(lambda: [m for m in raw_client.messages if "object" in m.message],
                     what="a message about the settings' shape")
    open_doc(raw_client, URI, DOC)
    assert await suggestion(raw_client, URI, *POS) == FULL


async def test_setting_change_takes_effect(client: LanguageClient):
    open_doc(client, URI, DOC)
    assert await suggestion(client, URI, *POS) == FULL
    configure(client, {"maxTokensSingleLine": 3})
    assert await suggestion(client, URI, *POS) == FULL[:3]
    res = await complete(client, URI, *POS)
    assert res.items[0].text_edit is not None
    assert res.items[0].text_edit.new_text == "compute_" + FULL[:3]
    # Nested under "pingti", as VS Code sends a section.
    configure(client, {"pingti": {"maxTokensSingleLine": 5}})
    assert await suggestion(client, URI, *POS) == FULL[:5]
    # Settings merge: another setting leaves the token budget alone.
    configure(client, {"temperature": 0})
    assert await suggestion(client, URI, *POS) == FULL[:5]
    assert client.messages == []


async def test_invalid_change_uses_default(client: LanguageClient):
    open_doc(client, URI, DOC)
    configure(client, {"maxTokensSingleLine": 3})
    assert await suggestion(client, URI, *POS) == FULL[:3]
    configure(client, {"maxTokensSingleLine": 0})  # out of range
    await wait_until(lambda: messages_naming(client, "maxTokensSingleLine"),
                     what="a message naming the invalid setting")
    # The default (48 tokens), not the previous 3 and not 0.
    assert await suggestion(client, URI, *POS) == FULL
    configure(client, {"maxTokensSingleLine": 2})
    configure(client, {"maxTokensSingleLine": True})  # a bool is not an integer
    await wait_until(lambda: len(messages_naming(client, "maxTokensSingleLine")) >= 2,
                     what="a second message")
    assert await suggestion(client, URI, *POS) == FULL


async def test_missing_model_is_an_error_and_fake_recovers(raw_client: LanguageClient):
    await start_session(raw_client, {"backend": "transformers", "model": "/nonexistent.gguf"})
    open_doc(raw_client, URI, DOC)
    # The load failed: the user is told, and requests get an error that says why.
    await wait_until(lambda: [m for m in raw_client.messages
                              if m.type == types.MessageType.Error], timeout=60,
                     what="an error message about the model")
    error_msg = [m for m in raw_client.messages if m.type == types.MessageType.Error][0]
    assert "not found" in error_msg.message and "/nonexistent.gguf" in error_msg.message
    for _ in range(2):
        with pytest.raises(JsonRpcException) as exc:
            await inline(raw_client, URI, *POS, timeout=60)
        assert "not found" in exc.value.message
        assert "/nonexistent.gguf" in exc.value.message
    with pytest.raises(JsonRpcException):
        await complete(raw_client, URI, *POS, timeout=60)
    # Progress began and ended for the failed load too.
    await wait_loaded(raw_client, 1)

    # Back to the fake backend: completions work again.
    configure(raw_client, {"backend": "fake"})
    assert await suggestion(raw_client, URI, *POS) == FULL
    await wait_loaded(raw_client, 2)
    assert all(kinds.count("begin") == 1 and kinds.count("end") == 1
               for kinds in progress_kinds(raw_client).values())


async def test_model_change_reloads_and_requests_wait(client: LanguageClient):
    open_doc(client, URI, DOC)
    await wait_loaded(client, 1)
    configure(client, {"backend": "transformers", "model": "/nonexistent.gguf"})
    configure(client, {"backend": "fake"})
    # Whatever the order of the two loads, the last setting wins.
    assert await suggestion(client, URI, *POS) == FULL
    await asyncio.sleep(0.2)
    assert await suggestion(client, URI, *POS) == FULL


async def test_fake_token_delay_change_takes_effect(client: LanguageClient):
    open_doc(client, URI, DOC)
    await wait_loaded(client)
    configure(client, {"fakeTokenDelay": 0.1})
    t0 = time.monotonic()
    # "total(items)" and its line break: 13 tokens at 0.1 s.
    assert await suggestion(client, URI, *POS, timeout=TIMEOUT) == FULL
    assert time.monotonic() - t0 >= 1.0
