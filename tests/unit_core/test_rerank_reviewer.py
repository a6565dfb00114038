"""The reviewer prompt of reranking (server/rerank/reviewer.py): the candidate's code without
the docstring, then the docstring to score; None where there is no docstring to score."""

from __future__ import annotations

from server.rerank.reviewer import MAX_DOC_CHARS, docstring_span, reviewer_prompt

HEAD = "from typing import List\n\n\ndef add(xs: List[int], k: int) -> List[int]:\n"
DOC = '    """ Add k to every item.\n    >>> add([1, 2], 1)\n    [2, 3]\n    """\n'


def test_the_docstring_moves_after_the_code() -> None:
    p = reviewer_prompt(HEAD + DOC, "    return [x + k for x in xs]\n")
    assert p is not None
    assert p.head.startswith(HEAD + "    return [x + k for x in xs]\n")
    assert "Add k" not in p.head and ">>>" not in p.head
    assert p.tail == 'Add k to every item.\n>>> add([1, 2], 1)\n[2, 3]\n"""\n'
    assert p.head.endswith('"""\n')


def test_no_docstring_no_prompt() -> None:
    assert reviewer_prompt(HEAD, "    return xs\n") is None
    assert reviewer_prompt("x = 1\n", "y = 2\n") is None
    assert reviewer_prompt(HEAD + '    """   """\n', "    return xs\n") is None
    # The cursor still in the docstring: it is not written yet.
    assert reviewer_prompt(HEAD + '    """ Add k to', " every item") is None


def test_quotes_and_prefixes() -> None:
    for q, pre in (("'''", ""), ('"""', "r"), ('"""', "")):
        text = f"def f(a):\n    {pre}{q}Return a.{q}\n"
        p = reviewer_prompt(text, "    return a\n")
        assert p is not None and p.tail.startswith("Return a.") and "Return" not in p.head


def test_body_above_the_cursor_and_the_rest_of_the_function_below() -> None:
    """Infill: the lines written before the cursor and the function's remaining lines belong
    to the code; the next top-level statement does not."""
    prefix = HEAD + DOC + "    out = []\n"
    suffix = "    return out\n\n\ndef other():\n    pass\n"
    p = reviewer_prompt(prefix, "    for x in xs:\n        out.append(x + k)\n", suffix)
    assert p is not None
    assert "    out = []\n    for x in xs:\n        out.append(x + k)\n    return out\n" in p.head
    assert "def other" not in p.head


def test_a_method() -> None:
    prefix = "class A:\n    def m(self):\n        '''Say hi.'''\n"
    suffix = "        return 1\n    def n(self):\n        pass\n"
    p = reviewer_prompt(prefix, "        x = 0\n", suffix)
    assert p is not None and p.tail == 'Say hi.\n"""\n'
    assert "def n" not in p.head and "        return 1\n" in p.head


def test_long_docstrings_are_cut() -> None:
    text = 'def f():\n    """' + "word " * 2000 + '"""\n'
    span = docstring_span(text)
    assert span is not None
    p = reviewer_prompt(text, "    pass\n")
    assert p is not None and len(p.tail) <= MAX_DOC_CHARS + 5
