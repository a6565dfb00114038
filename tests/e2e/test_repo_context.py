"""Repository context over LSP (fake backend, which copies what followed the prompt's last
characters earlier in the prompt): with the workspace open as rootUri, a helper module on disk
or an open document reaches the prompt, and the suggestion uses its code; off, it does not."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient

from .conftest import (
    TIMEOUT,
    capabilities,
    change_doc,
    configure,
    open_doc,
    status,
    suggestion,
)

OPTIONS = {"backend": "fake", "debounceMs": 0, "candidates": 1, "constraints": "off",
           "prefetch": "off"}
HELPERS = ("TAX = 0.2\n\n\ndef compute_total_price(items, tax_rate):\n"
           "    return sum(items) * (1 + tax_rate)\n\n\ndef apply(items):\n"
           "    return compute_total_price(items, tax_rate=TAX)\n")
CART = "from .helpers import compute_total_price\n\n\ndef checkout(items):\n" \
       "    return compute_total_"
COLUMN = len("    return compute_total_")


def project(tmp_path: Path) -> Path:
    root = tmp_path / "shop"
    (root / "shop").mkdir(parents=True)
    (root / "shop" / "helpers.py").write_text(HELPERS)
    (root / ".env").write_text("SECRET_TOKEN=hunter2\n")
    return root


async def start(client: LanguageClient, root: Path, mode: str) -> list[Any]:
    """Initialize as an editor with a workspace folder and file watchers; returns the
    registrations the server asks for."""
    registrations: list[Any] = []

    @client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def _register(params: types.RegistrationParams) -> None:
        registrations.extend(params.registrations)

    caps = capabilities()
    caps.workspace = types.WorkspaceClientCapabilities(
        workspace_folders=True,
        did_change_watched_files=types.DidChangeWatchedFilesClientCapabilities(
            dynamic_registration=True))
    await asyncio.wait_for(client.initialize_session(types.InitializeParams(
        capabilities=caps, initialization_options={**OPTIONS, "repoContext": mode},
        root_uri=root.as_uri(),
        workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)])),
        TIMEOUT)
    return registrations


async def indexed(client: LanguageClient) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while True:
        repo = (await status(client)).get("repoContext", {})
        if repo.get("workspaceFiles") and not repo.get("indexing"):
            return repo
        assert asyncio.get_running_loop().time() < deadline, repo
        await asyncio.sleep(0.05)


async def test_workspace_files_reach_the_prompt(raw_client: LanguageClient,
                                                tmp_path: Path) -> None:
    root = project(tmp_path)
    registrations = await start(raw_client, root, "workspace")
    repo = await indexed(raw_client)
    # The server watches the workspace's source files.
    assert [r.method for r in registrations] == [types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    assert repo["mode"] == "workspace" and repo["workspaceFiles"] == 1  # not the .env
    uri = (root / "shop" / "cart.py").as_uri()
    open_doc(raw_client, uri, CART)
    assert await suggestion(raw_client, uri, 4, COLUMN) == "price(items, tax_rate=TAX)"
    from server.lspclient import _plain

    last = _plain(await asyncio.wait_for(raw_client.protocol.send_request_async(
        "pingti/status", {"uri": uri}), TIMEOUT))["repoContext"]["lastChunks"]
    assert last and all(c.startswith("shop/helpers.py:") for c in last)


async def test_off_keeps_to_the_file(raw_client: LanguageClient, tmp_path: Path) -> None:
    root = project(tmp_path)
    await start(raw_client, root, "off")
    uri = (root / "shop" / "cart.py").as_uri()
    open_doc(raw_client, uri, CART)
    # Copied from the import line, the only earlier occurrence.
    assert await suggestion(raw_client, uri, 4, COLUMN) == "price"
    assert (await status(raw_client))["repoContext"]["workspaceFiles"] == 0


async def test_open_documents_without_the_disk(raw_client: LanguageClient,
                                               tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    await start(raw_client, root, "open")
    helper = (root / "helpers.py").as_uri()  # open in the editor, never saved
    open_doc(raw_client, helper, HELPERS)
    uri = (root / "cart.py").as_uri()
    open_doc(raw_client, uri, CART)
    assert await suggestion(raw_client, uri, 4, COLUMN) == "price(items, tax_rate=TAX)"
    # Closed: gone from the context.
    for closed in (helper, uri):
        raw_client.text_document_did_close(types.DidCloseTextDocumentParams(
            text_document=types.TextDocumentIdentifier(uri=closed)))
    # (Another text: the answer cache is keyed by the text and settings, not the context.)
    cart2 = (root / "cart2.py").as_uri()
    open_doc(raw_client, cart2, "# v2\n" + CART)
    assert await suggestion(raw_client, cart2, 5, COLUMN) == "price"


async def test_a_changed_file_on_disk_is_read_again(raw_client: LanguageClient,
                                                     tmp_path: Path) -> None:
    root = project(tmp_path)
    await start(raw_client, root, "workspace")
    await indexed(raw_client)
    helpers = root / "shop" / "helpers.py"
    helpers.write_text(HELPERS.replace("tax_rate=TAX", "rate=TAX"))
    raw_client.workspace_did_change_watched_files(types.DidChangeWatchedFilesParams(changes=[
        types.FileEvent(uri=helpers.as_uri(), type=types.FileChangeType.Changed)]))
    uri = (root / "shop" / "cart.py").as_uri()
    open_doc(raw_client, uri, CART)
    assert await suggestion(raw_client, uri, 4, COLUMN) == "price(items, rate=TAX)"


async def test_a_recently_edited_function_reaches_the_prompt(raw_client: LanguageClient,
                                                             tmp_path: Path) -> None:
    """The user edits a function in one tab, then types in another: the edited function is
    in the context though the cursor's code does not name it; with repoRecentEdits 0 not."""
    from server.lspclient import _plain

    root = tmp_path / "proj"
    root.mkdir()
    await start(raw_client, root, "open")
    lib = "".join(f"def step_{i}(x):\n    return x + {i}\n\n\n" for i in range(40))
    lib_uri, main_uri = (root / "lib.py").as_uri(), (root / "main.py").as_uri()
    open_doc(raw_client, lib_uri, lib)
    line = lib.splitlines().index("def step_23(x):") + 1
    change_doc(raw_client, lib_uri, 2, ((line, 15), (line, 15), " * 2"))
    text = "total = 0\nfor n in range(3):\n    total = "

    async def last_chunks(uri: str) -> list[str]:
        open_doc(raw_client, uri, text)
        await suggestion(raw_client, uri, 2, 12)
        return _plain(await asyncio.wait_for(raw_client.protocol.send_request_async(
            "pingti/status", {"uri": uri}), TIMEOUT))["repoContext"]["lastChunks"]

    assert f"lib.py:{line}" in await last_chunks(main_uri)
    configure(raw_client, {"repoRecentEdits": 0})
    assert f"lib.py:{line}" not in await last_chunks((root / "other.py").as_uri())
