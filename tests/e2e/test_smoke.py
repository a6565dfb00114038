from lsprotocol import types
from pytest_lsp import LanguageClient

DOC = "def add(a, b):\n    return a + b\n\ndef add2(a, b):\n    \n"


async def test_inline(client: LanguageClient):
    uri = "file:///tmp/x.py"
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        text_document=types.TextDocumentItem(uri=uri, language_id="python", version=1, text=DOC)))
    res = await client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=4, character=4),
        context=types.InlineCompletionContext(trigger_kind=types.InlineCompletionTriggerKind.Invoked)))
    print(res)
    assert res.items[0].insert_text == "return a + b"


def test_the_stdio_flag_that_clients_add_is_accepted():
    """vscode-languageclient appends --stdio for its default transport."""
    import json
    import subprocess
    import sys

    def frame(msg: dict) -> bytes:
        body = json.dumps(msg).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    msgs = frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                  "params": {"processId": None, "rootUri": None, "capabilities": {},
                             "initializationOptions": {"backend": "fake"}}})
    msgs += frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
    msgs += frame({"jsonrpc": "2.0", "method": "exit"})
    out = subprocess.run([sys.executable, "-m", "server", "--stdio"], input=msgs,
                         capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert b'"inlineCompletionProvider"' in out.stdout
