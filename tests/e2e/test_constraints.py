"""The syntax constraint through the real server (fake backend: its "model" copies an earlier
example, so it can be made to write broken code on purpose)."""

from __future__ import annotations

import ast

from pytest_lsp import LanguageClient

from tests.e2e.conftest import open_doc, start_session, suggestion

# The greedy answer alone: the fake model's logits are flat where the constraint masks its
# planned character, so sampled candidates would be noise (ranking is tested in test_candidates).
ONE = {"candidates": 1}

# The fake model continues `def f(x):` with what followed `def g(x):` in the example: a body
# whose closer has no opener.
DOC = 'EXAMPLE = """\ndef g(x):\n    return x + )\n"""\n\n\ndef f(x):\n    '
POS = (7, 4)
URI = "file:///tmp/pingti-e2e/constrained.py"


async def test_constraint_keeps_the_suggestion_valid(raw_client: LanguageClient):
    await start_session(raw_client, {**ONE, "backend": "fake"})
    open_doc(raw_client, URI, DOC)
    text = await suggestion(raw_client, URI, *POS)
    # `)` was refused (nothing is open), the model had nothing else to say, and the dangling
    # `+` was cut back when it stopped: what is offered leaves the document parseable.
    assert text == "return x"
    ast.parse(DOC + text)
    from server.lspclient import _plain

    st = _plain(await raw_client.protocol.send_request_async("pingti/status", {"uri": URI}))
    syntax = st["lastCompletion"]["syntax"]
    # `)` was masked by the lexical layer, so the exact check had nothing to refuse.
    assert syntax["syntax_steps"] > 0 and syntax["syntax_active"] == 1 and syntax["syntax_refused"] == 0


async def test_constraint_off_lets_the_model_write_anything(raw_client: LanguageClient):
    await start_session(raw_client, {**ONE, "backend": "fake", "constraints": "off"})
    open_doc(raw_client, URI, DOC)
    assert await suggestion(raw_client, URI, *POS) == "return x + )"


async def test_other_languages_are_not_constrained(raw_client: LanguageClient):
    await start_session(raw_client, {**ONE, "backend": "fake", "constraintLanguages": []})
    open_doc(raw_client, URI, DOC)
    assert await suggestion(raw_client, URI, *POS) == "return x + )"


async def test_a_broken_file_does_not_stop_completions(raw_client: LanguageClient):
    """Text before the cursor that is already invalid: the constraint steps aside."""
    doc = "def g(x):\n    return x + 1\n\n\ndef f(x)):\n    "
    await start_session(raw_client, {**ONE, "backend": "fake"})
    open_doc(raw_client, URI, doc)
    assert await suggestion(raw_client, URI, 5, 4) == "return x + 1"


# The same for the tree-sitter languages: the fake model copies a broken example body.
JS_DOC = "/* example\nfunction g(x) {\n  return x + * 2;\n}\n*/\n\nfunction f(x) {\n  "
GO_DOC = "package main\n\n/* example\nfunc g(x int) int {\n\treturn x + ]\n}\n*/\n\nfunc f(x int) int {\n\t"


async def test_javascript_and_go_are_constrained_too(raw_client: LanguageClient):
    await start_session(raw_client, {**ONE, "backend": "fake"})
    from server.lspclient import _plain

    for uri, doc, lang, pos in [("file:///tmp/pingti-e2e/c.js", JS_DOC, "javascript", (7, 2)),
                                ("file:///tmp/pingti-e2e/c.go", GO_DOC, "go", (9, 1))]:
        open_doc(raw_client, uri, doc, language_id=lang)
        text = await suggestion(raw_client, uri, *pos)
        # The operator after `+` (JS `*`, Go `]`) was refused; what is offered parses once the
        # function is closed.
        assert text.startswith("return x"), (lang, text)
        assert "*" not in text and "]" not in text, (lang, text)
        from grammar_constraints.ts_oracle import parses

        assert parses(lang, doc + text + "\n}\n"), (lang, text)
        st = _plain(await raw_client.protocol.send_request_async("pingti/status", {"uri": uri}))
        syntax = st["lastCompletion"]["syntax"]
        assert syntax["syntax_active"] == 1, (lang, syntax)
        # JavaScript: the exact check refused `*`. Go: `]` closes nothing open, so the closer
        # mask removed it over the whole vocabulary and the exact check had nothing to refuse.
        assert syntax["syntax_refused"] == (1 if lang == "javascript" else 0), (lang, syntax)


async def test_javascript_unconstrained_when_not_listed(raw_client: LanguageClient):
    await start_session(raw_client, {**ONE, "backend": "fake", "constraintLanguages": "python,go"})
    uri = "file:///tmp/pingti-e2e/c.js"
    open_doc(raw_client, uri, JS_DOC, language_id="javascript")
    assert (await suggestion(raw_client, uri, 7, 2)).startswith("return x + * 2")
