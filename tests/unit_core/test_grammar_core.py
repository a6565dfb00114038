"""The syntax constraint's pure parts: lexical state, signatures and masks, the viable-prefix
oracle, and FIM-aware truncation (grammar_constraints/)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grammar_constraints import python_lexer as lx
from grammar_constraints.finish import error_count, fit
from grammar_constraints.python_oracle import anchor, skeleton, viable
from grammar_constraints.vocab import TokenTable

VIABLE = [
    "def f(", "def f(x):\n    return x +", "x = 'abc", "x = 1e", "x = 0x", "if x:\n    pass\nel",
    "if x:\n    pass\nelse", "x = (1,\n", "for i in", "x = [1, 2", "x = f'{a", "import os.", "x.",
    "@dec\n", "try:\n    pass\n", "x = 1 if y", "lambda", 'x = "abc\\', "# comment", "x = 1 \\",
    "async def", "x = not", "x =", "x = 1 an", "x !", "def f() -", "x = ..", "def f():\n    x = 1\n  ",
    "def f():\n", "x = 1\n", "print('a' 'b'", "x = '''a\nb", "x = 1.", "x = 1e+", "x = a if b else",
    "with open(f) as", "x = ''", 'def f():\n    """doc', "x = {1:", "f(**", "a = b[1:", "i.is",
    "x = [i for i in", "def f(a, b=", "if (a and\n    b", "try:\n    x\nexcept ValueError as",
    "def f(a) -> List[str", "x = {'o': 4, '", "for i in s:\n", "for i in s:\n    ", "x = 1 if",
    "match x:\n    case 1:\n        pass\n    ca", "return", "def def", "x = ('a'\n   r",
]
NOT_VIABLE = [
    "x = 1 +* 2", "else:", "def f(:", "x = )", "def f():\n    x = 1\n  y = 2", "x = 'ab\ncd'",
    "x = 1 2", "x = (]", "if x:\npass", "x = [1, 2))", "import 3", "x = 1 $", "class :",
    "for in x", "def f():\nreturn 1", "x = 1\n    y = 2", "x = a b", "if x y", "def f() x",
    "x = = 1", "f(a b)", "x = [1 2", "lambda x y", "import a b", "for x in y z",
    "if x:\n    pass\nelse x", "x = `1`", "x = 'a\nb'",
]


@pytest.mark.parametrize("text", VIABLE)
def test_viable_prefixes(text: str) -> None:
    assert viable(text)


@pytest.mark.parametrize("text", NOT_VIABLE)
def test_invalid_prefixes(text: str) -> None:
    assert not viable(text)


def _stdlib_sources() -> list[str]:
    import argparse
    import json.decoder
    import textwrap

    return [Path(m.__file__).read_text() for m in (argparse, json.decoder, textwrap)]  # type: ignore[arg-type]


def test_every_character_prefix_of_real_files_is_viable() -> None:
    """Soundness at character granularity (stronger than any tokenizer's boundaries), on
    stretches of standard-library modules."""
    rng = random.Random(7)
    refused = []
    for src in _stdlib_sources():
        for _ in range(6):
            start = rng.randrange(0, max(1, len(src) - 600))
            start = src.rfind("\n", 0, start) + 1
            for end in range(start, min(len(src), start + 400)):
                text = src[:end]
                if not viable(text[anchor(text):]):
                    refused.append(text[-60:])
    assert not refused, refused[:5]


# --- the lexical layer ------------------------------------------------------------------------

CODE_PIECES = st.sampled_from(["x", " ", "(", ")", "[", "]", "{", "}", "'", '"', "'''", '"""',
                               "\\", "\n", "#", "a = ", "1", "f(", "\\n", "\r\n", "b'", "ab"])


@given(st.lists(CODE_PIECES, max_size=30), st.integers(0, 30))
@settings(max_examples=300, deadline=None)
def test_feeding_in_pieces_equals_feeding_at_once(pieces: list[str], cut: int) -> None:
    text = "".join(pieces)
    cut = min(cut, len(text))
    whole = lx.feed(lx.START, text)
    first = lx.feed(lx.START, text[:cut])
    split = None if first is None else lx.feed(first, text[cut:])
    assert split == whole


@given(st.lists(CODE_PIECES, max_size=12), st.lists(CODE_PIECES, min_size=1, max_size=4))
@settings(max_examples=400, deadline=None)
def test_the_mask_agrees_with_feeding(before: list[str], token: list[str]) -> None:
    """For any state and token: masked by the table exactly when feeding the token fails."""
    state = lx.feed(lx.START, "".join(before))
    if state is None:
        return
    text = "".join(token)
    table = TokenTable(["", text])
    logits = np.zeros(2, dtype=np.float32)
    table.mask(logits, state.mode, state.stack, state.run)
    if state.run:  # quotes just read in a triple-quoted string: nothing is masked
        assert np.isfinite(logits[1])
        return
    assert np.isfinite(logits[1]) == (lx.feed(state, text) is not None)


def test_lexer_details() -> None:
    assert lx.feed(lx.START, "x = (1, [2") == lx.LexState(lx.CODE, "([", 0)
    assert lx.feed(lx.START, 's = "a\nb"') is None  # a line break in a one-line string
    assert lx.feed(lx.START, "x = )") is None
    assert lx.feed(lx.START, "x = 1 \\\n+ 2") == lx.START
    assert lx.feed(lx.START, "x = 1 \\ 2") is None  # only a line break after a continuation
    assert lx.feed(lx.START, "s = '''a'\n'b''") == lx.LexState(lx.S3, "", 2)
    assert lx.feed(lx.START, "x = 'a\\'b'") == lx.START  # an escaped quote
    assert lx.closing(lx.feed(lx.START, "x = '''ab'")) == "''"
    assert lx.closing(lx.feed(lx.START, 'x = "a\\')) == 'x"'
    assert lx.signature(lx.CODE, ")]") == (False, "([")
    assert lx.signature(lx.CODE, "(]") == (True, "")


def test_table_masks_closers_that_do_not_match() -> None:
    texts = ["", ")", "]", "))", "x", "a\n", "#)", "$"]
    table = TokenTable(texts, always_allowed=[0])
    logits = np.zeros(len(texts), dtype=np.float32)
    table.mask(logits, lx.CODE, "(")
    assert [bool(np.isfinite(v)) for v in logits] == [True, True, False, False, True, True,
                                                      True, False]
    logits = np.zeros(len(texts), dtype=np.float32)
    table.mask(logits, lx.S1, "")  # inside '...
    assert not np.isfinite(logits[5])  # a line break ends the line, not the string
    assert np.isfinite(logits[1]) and np.isfinite(logits[7])  # brackets and $ are text here


# --- anchor, finish ---------------------------------------------------------------------------

def test_anchor_is_the_current_top_level_statement() -> None:
    src = "import os\n\n@d\n@e(1,\n  2)\ndef f():\n    x = 1\n"
    assert src[anchor(src):].startswith("@d\n")
    src = "x = 1\nif x:\n    pass\nelse:\n    y"
    assert src[anchor(src):].startswith("if x:")
    src = 's = """\ndef g\n"""\nclass A:\n  pass'
    assert src[anchor(src):].startswith("class A:")


SKELETON_SRC = """class A:
    \"\"\"doc\"\"\"

    @property
    def f(self):
        if a:
            return 1
        else:
            return 2

    def g(self, y):
        try:
            z = (1,
2)
        except E:
            pass
        w = [
            3]
"""


def test_skeleton_keeps_open_blocks_and_the_statement_being_written() -> None:
    assert skeleton(SKELETON_SRC) == "class A:\n    def g(self, y):\n        w = [\n            3]\n"
    # A clause stays with its statement; the line being written may still become one.
    src = "def g():\n    x = 1\n    if a:\n        pass\n    elif b:\n        pass\n    y"
    assert skeleton(src) == "def g():\n    if a:\n        pass\n    elif b:\n        pass\n    y"
    src = "def g():\n    x = 1\n    try:\n        pass\n    except E:\n        pass\n    el"
    assert skeleton(src) == "def g():\n    try:\n        pass\n    except E:\n        pass\n    el"
    assert viable(skeleton(src) + "se:\n") and viable(src + "se:\n")
    # Tabs: left as they are.
    src = "def g():\n\tx = 1\n\ty = 2\n"
    assert skeleton(src) == src


def test_skeleton_gives_the_same_verdicts_as_the_whole_statement() -> None:
    """On real modules cut anywhere, the true continuation and continuations with pieces that
    are often wrong (clauses at other depths, dedents, stray brackets) get the same verdict
    after the skeleton as after the whole top-level statement."""
    pieces = ["else:", "elif x:", "except E:", "\n", "    ", "x = 1", ")", "(", "return",
              ":", "'", "\n        ", "\n    else:\n", "\n    except:\n", "@d\n", "el",
              "\n    def g(self):\n", "\nx = 2\n"]
    rng = random.Random(11)
    srcs = _stdlib_sources()
    differ = []
    shorter = 0
    for _ in range(60):
        src = rng.choice(srcs)
        end = rng.randrange(1, len(src))
        base = src[:end][anchor(src[:end]):]
        sk = skeleton(base)
        shorter += len(sk) < len(base)
        for k in range(3):
            cont = src[end:end + rng.randrange(1, 60)]
            if k:
                cont = cont[:rng.randrange(0, 20)] + "".join(
                    rng.choice(pieces) for _ in range(rng.randrange(1, 4)))
            if viable(base + cont) != viable(sk + cont):
                differ.append((base[-80:], cont))
    assert not differ, differ[:3]
    assert shorter > 20  # the test exercises elision, not only the identity


def test_folding_the_generated_text_gives_the_same_verdicts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The cursor folds generated lines into its base as the generation grows (issue 22): on
    real modules cut anywhere and continued chunk by chunk (the true text, sometimes spliced
    with pieces that are often wrong), every chunk gets the verdict of a cursor that never
    folds, across rollbacks behind a fold too."""
    from grammar_constraints import cursor as cursor_mod
    from grammar_constraints.cursor import SyntaxCursor

    pieces = ["else:", "elif x:", "except E:", "\n", "    ", "x = 1", ")", "(", "return", ":",
              "\n        ", "\n    else:\n", "\n    except:\n", "el", "\nx = 2\n", "try:\n"]
    rng = random.Random(3)
    srcs = _stdlib_sources()
    differ: list[tuple[str, str]] = []
    folded = 0
    for _ in range(25):
        src = rng.choice(srcs)
        end = rng.randrange(1, len(src) - 1200)
        cont = src[end:end + rng.randrange(300, 1200)]
        chunks: list[str] = []
        i = 0
        while i < len(cont):
            k = rng.randrange(1, 7)
            chunks.append(cont[i:i + k])
            i += k
        if rng.random() < 0.5:  # a wrong piece somewhere
            chunks.insert(rng.randrange(len(chunks)), rng.choice(pieces))
        vocab = sorted(set(chunks) | set(pieces))
        ids = {t: n for n, t in enumerate(vocab)}
        table = TokenTable(vocab)

        def detok(seq: list[int], vocab: list[str] = vocab) -> str:
            return "".join(vocab[t] for t in seq)

        prefix = src[:end]
        monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 60)
        folding = SyntaxCursor(table, prefix, detok)
        monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 10**9)
        plain = SyntaxCursor(table, prefix, detok)
        if not folding.enabled:
            continue
        out: list[int] = []
        after: list[int] = []  # after[k]: the index of the chunk that follows out[k]
        j = steps = 0
        while j < len(chunks) and steps < 3 * len(chunks):
            steps += 1
            tok = ids[chunks[j]]
            monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 60)
            folding.sync(out)
            a = folding.viable_with(tok)
            monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 10**9)
            plain.sync(out)
            b = plain.viable_with(tok)
            if a != b:
                differ.append((detok(out)[-60:], chunks[j]))
            j += 1
            if not b:
                continue  # as the decoder does: a refused token is not taken
            out.append(tok)
            after.append(j)
            if len(out) > 30 and rng.random() < 0.03:  # a rollback, maybe behind a fold
                keep = rng.randrange(len(out) - 30, len(out))
                out, after = out[:keep], after[:keep]
                j = after[-1] if after else 0
        monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 60)
        folding.sync(out)
        folded += len(folding._folds)
    assert not differ, differ[:3]
    assert folded > 20  # the test exercises folding, not only the identity


def test_a_token_taken_against_the_verdict_is_never_folded(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Failing open, the decoder may take a refused token; the broken text must not be folded
    away by the skeleton (it would make later tokens pass that a cursor without folding
    refuses)."""
    from grammar_constraints import cursor as cursor_mod
    from grammar_constraints.cursor import SyntaxCursor

    monkeypatch.setattr(cursor_mod, "FOLD_CHARS", 10)
    vocab = ["    y = 1 2\n", "    z = 3\n", "    w = 4\n"]
    cur = SyntaxCursor(TokenTable(vocab), "def f():\n    x = 1\n",
                       lambda ids: "".join(vocab[i] for i in ids))
    assert not cur.viable_with(0)
    cur.accept(0)  # taken anyway (fail open)
    for tok in (1, 2, 1, 2):
        assert not cur.viable_with(tok)
        cur.accept(tok)
    assert not cur._folds


def test_error_count() -> None:
    assert error_count("def f(x):\n    return x\n") == 0
    assert error_count("def f(x:\n    return x\n") >= 1


def test_fit_keeps_a_good_completion_and_cuts_a_bad_one() -> None:
    prefix, suffix = "def f(x):\n    y = ", "\n    return y\n"
    assert fit(prefix, "x + 1", suffix) == "x + 1"
    # The second line breaks the function that the suffix continues: cut at the line end.
    assert fit(prefix, "x + 1\n  z = (", suffix) == "x + 1"
    # A closer the suffix already has: cut before it.
    assert fit("print(max(a, ", "b))", ")\n") == "b)"
    # Nothing acceptable at all.
    assert fit(prefix, ")))", suffix) == ""


def test_fit_tolerates_errors_the_document_already_has() -> None:
    prefix = "def broken(:\n    pass\n\ndef f(x):\n    return "
    assert fit(prefix, "x * 2", "\n") == "x * 2"


def test_match_statements_are_never_refused() -> None:
    """parso has no `match`; CPython's verdict alone must not refuse a right character there."""
    src = ("def f(x):\n    match x:\n        case [1, 2, *rest] if rest:\n            return 1\n"
           "        case {'k': v, **kw}:\n            return v\n"
           "        case Point(x=0, y=yy) | None:\n            pass\n")
    assert all(viable(src[:i]) for i in range(1, len(src)))
    assert not viable("x = 1 +* 2")  # outside a match statement nothing changed
