"""End-to-end fixtures: the real ``pingti-ls`` process over stdio, driven by pytest-lsp."""

from __future__ import annotations

import os
import sys

import pytest_lsp
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient

SERVER = [sys.executable, "-m", "server", "--log-level", "debug"]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}

FAKE_OPTIONS = {"backend": "fake"}


def capabilities(*, progress: bool = True, encodings: list[str] | None = None
                 ) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        window=types.WindowClientCapabilities(work_done_progress=progress),
        general=types.GeneralClientCapabilities(position_encodings=encodings)
        if encodings else None,
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            completion=types.CompletionClientCapabilities(),
        ),
    )


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(types.InitializeParams(
        capabilities=capabilities(), initialization_options=FAKE_OPTIONS))
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=ClientServerConfig(server_command=SERVER, server_env=ENV))
async def raw_client(lsp_client: LanguageClient):
    """A client that has not initialized the server yet."""
    yield
