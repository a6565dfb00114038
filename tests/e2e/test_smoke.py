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
