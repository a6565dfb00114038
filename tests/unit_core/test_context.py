"""Single-line vs multi-line decisions (server/context.py)."""

from __future__ import annotations

import pytest

from server.context import CompletionMode, build_context, decide_mode

S = CompletionMode.SINGLE_LINE
M = CompletionMode.MULTI_LINE


def mode(prefix: str, suffix: str = "", language: str = "python") -> CompletionMode:
    return decide_mode(prefix, suffix, language)


# --- code after the cursor on the same line -------------------------------------------------

@pytest.mark.parametrize("prefix,suffix", [
    ("x = foo(a", ", b)\n"),
    ("x = ", "bar + 1\n"),
    ("def f(x", ", y):\n"),  # even at a block opener line, text after the cursor means "fill in"
    ("x = foo(", "y)\n"),
    ("if x ", "and y:\n"),
])
def test_mid_line_with_code_after_cursor_is_single(prefix: str, suffix: str) -> None:
    assert mode(prefix, suffix) is S


def test_mid_line_javascript_is_single() -> None:
    assert mode("const x = foo(", "a, b);\n", "javascript") is S


# --- end of a line ----------------------------------------------------------------------------

@pytest.mark.parametrize("prefix", [
    "def f(x):",
    "class A(B):",
    "async def f(x):",
    "def f(x) -> int:",
    "for i in range(3):",
    "while True:",
    "with open(p) as fh:",
    "if x:",
    "def f(x):  # a comment",
    "    else:",
])
def test_end_of_block_header_is_multi(prefix: str) -> None:
    assert mode(prefix, "\n") is M
    assert mode(prefix, "") is M


@pytest.mark.parametrize("prefix", [
    "x = foo(bar)",
    "return x + 1",
    "import os",
    "    y = x * 2",
    "x = 1  # ends with a colon in a comment:",
])
def test_end_of_normal_line_is_single(prefix: str) -> None:
    assert mode(prefix, "\n") is S
    assert mode(prefix, "\nprint(1)\n") is S


@pytest.mark.parametrize("prefix", ["x = foo(", "x = [", "heap[", "def f(x) ->", "print("])
def test_end_of_open_call_is_single(prefix: str) -> None:
    # An open `(` or `[` is usually finished on the same line (commit 79589a6).
    assert mode(prefix, "\n") is S
    assert mode(prefix, "") is S


# --- blank (indentation-only) lines: Python / tree-sitter ------------------------------------

@pytest.mark.parametrize("prefix,suffix", [
    ("def f(x):\n    ", "\n"),
    ("def f(x):\n    ", ""),
    ("def f(x):\n", "\n"),  # column 0 on the line after the header
    ("def f(x):\n    ", "\n\ndef g():\n    pass\n"),
    ('def f(x):\n    """Docstring."""\n    ', "\n"),
    ("def f(x):\n    '''Multi\n    line.'''\n    ", "\n"),
    ("def f(x):\n    pass\n    ", "\n"),
    ("def f(x):\n    # todo\n    ", "\n"),
    ("def f(x):\n    # todo\n    pass\n    ", "\n\nx = 1\n"),
    ("class A:\n    def f(self):\n        ", "\n"),
    ("if x:\n    a = 1\nelse:\n    ", "\n"),
    ("try:\n    a = 1\nexcept E:\n    ", "\n"),
    ("@dec\ndef f(x):\n    ", "\n"),
])
def test_blank_line_in_empty_body_is_multi(prefix: str, suffix: str) -> None:
    assert mode(prefix, suffix) is M


@pytest.mark.parametrize("prefix,suffix", [
    ("def f(x):\n    a = 1\n    ", "\n    b = 2\n"),
    ("def f(x):\n    a = 1\n", "\n    b = 2\n"),  # column 0, code follows deeper
    ("x = 1\n", "\ny = 2\n"),
    ("def f(x):\n    a = 1\n    ", "\n    # note\n    b = 2\n"),
    # top level, between a stub function and the next top-level statement
    ("def g():\n    pass\n\n", "\nx = 1\n"),
    # in f's body (which has code after the cursor), after a nested loop whose body is `pass`
    ("def f(x):\n    for i in x:\n        pass\n    ", "\n    return 1\n"),
])
def test_blank_line_with_code_following_is_multi(prefix: str, suffix: str) -> None:
    """The hole may be one line or several: the fill-in-the-middle model ends it where it meets
    the suffix, and the multi-line stops keep it from rewriting the code that follows."""
    assert mode(prefix, suffix) is M


@pytest.mark.parametrize("prefix,suffix", [
    ("def f(x):\n    a = 1\n    ", "\n"),
    ("def f(x):\n    a = 1\n    ", ""),
    ("def f(x):\n    a = 1\n    ", "\n\ndef g():\n    pass\n"),
    ("def f(x):\n    if x:\n        a = 1\n        ", "\n    return a\n"),
])
def test_blank_line_at_end_of_block_is_multi(prefix: str, suffix: str) -> None:
    assert mode(prefix, suffix) is M


# --- other languages: brackets and indentation ------------------------------------------------

@pytest.mark.parametrize("prefix,suffix", [
    ("function f() {", "\n"),
    ("function f() {", "}\n"),  # auto-inserted closer
    ("function f() {\n  ", "\n}\n"),
    ("if (x) { // comment", "\n}"),
    ("const f = () =>", ""),
])
def test_javascript_block_openers_are_multi(prefix: str, suffix: str) -> None:
    assert mode(prefix, suffix, "javascript") is M


def test_javascript_blank_lines_are_multi() -> None:
    assert mode("function f() {\n  a();\n  ", "\n  b();\n}\n", "javascript") is M
    assert mode("function f() {\n  a();\n  ", "\n}\n", "javascript") is M


def test_javascript_statement_end_is_single() -> None:
    assert mode("x = foo(a);", "\n", "javascript") is S


# --- auto-inserted closers count as end of line -------------------------------------------------

@pytest.mark.parametrize("line_prefix", [
    "x = foo(", "if foo(", "def f(x", "x = [1, ", "x = foo(a, b", "call(\"abc",
])
@pytest.mark.parametrize("closers", [")", "):", "]", "\")", "')", " )", ");", "}"])
def test_trivial_closers_after_cursor_count_as_end_of_line(line_prefix: str, closers: str) -> None:
    rest = "\nprint(1)\n"
    assert mode(line_prefix, closers + rest) is mode(line_prefix, rest)


def test_foo_paren_cursor_before_closer() -> None:
    assert mode("if foo(", "):\n") is S
    assert mode("if foo(x)", "):\n") is S
    assert mode("if foo(x):", ")\n") is M  # the closer does not hide a block opener
    assert mode("x = foo(bar", ")\n") is S
    assert mode("x = foo(", "bar)\n") is S  # a real argument after the cursor


# --- CRLF and unicode ------------------------------------------------------------------------------

@pytest.mark.parametrize("prefix,suffix", [
    ("def f(x):\n    ", "\n"),
    ("def f(x):\n    pass\n    ", "\n"),
    ("def f(x):\n    a = 1\n    ", "\n    b = 2\n"),
    ("x = 1\n", "\ny = 2\n"),
    ("def f(x):\n    a = 1\n    ", "\n\ndef g():\n    pass\n"),
    ("x = foo(a", ", b)\n"),
])
def test_crlf_documents_decide_like_lf(prefix: str, suffix: str) -> None:
    crlf = mode(prefix.replace("\n", "\r\n"), suffix.replace("\n", "\r\n"))
    assert crlf is mode(prefix, suffix)


def test_crlf_build_context_line_parts() -> None:
    text = "def f(x):\r\n    return x\r\n"
    offset = text.index("return")
    ctx = build_context(text, offset, "python")
    assert ctx.line_prefix == "    "
    assert ctx.line_suffix == "return x"
    assert "\r" not in ctx.line_suffix and "\n" not in ctx.line_prefix


@pytest.mark.parametrize("prefix,suffix,expected", [
    ("def café(x):\n    ", "\n", M),
    ('s = "héllo 🙂"\ndef f(x):\n    ', "\n", M),
    ('def f(x):\n    s = "🙂é"\n    ', "\n    return s\n", M),
    ('def f(x):\n    s = "🙂é"\n    ', "\n", M),
    ('def f(x):\n    """Dоc 🙂."""\n    ', "\n", M),
    ("x = «", "»\n", S),
    ('名前 = "値"', "\n", S),
])
def test_unicode(prefix: str, suffix: str, expected: CompletionMode) -> None:
    assert mode(prefix, suffix) is expected


def test_build_context_fields() -> None:
    text = "def f(x):\n    return foo(x)\n"
    offset = text.index("x)\n")
    ctx = build_context(text, offset, "Python")
    assert ctx.language == "python"
    assert ctx.prefix == text[:offset] and ctx.suffix == text[offset:]
    assert ctx.line_prefix == "    return foo("
    assert ctx.line_suffix == "x)"
    assert ctx.indent == "    "
    assert ctx.mode is S


def test_build_context_at_document_edges() -> None:
    assert build_context("", 0, "python").mode is M
    ctx = build_context("abc", 3, "")
    assert (ctx.prefix, ctx.suffix, ctx.line_prefix, ctx.line_suffix) == ("abc", "", "abc", "")
    ctx = build_context("abc", 0, "python")
    assert (ctx.line_prefix, ctx.line_suffix) == ("", "abc")
    assert ctx.mode is S


# --- comment markers come from server.languages ---------------------------------------------------

@pytest.mark.parametrize("language,line,expected", [
    ("python", "x = 1  # ends with a colon in a comment:", S),
    ("perl", "my $x = 1;  # a colon in a comment:", S),  # '#' languages beyond Python
    ("toml", "key = 1  # note:", S),
    ("rust", "if x { // comment", M),
    ("typescriptreact", "const f = () => { // comment", M),
    ("go", "x := 1 // a colon in a comment:", S),
])
def test_comment_marker_of_each_language(language: str, line: str,
                                         expected: CompletionMode) -> None:
    assert mode(line, "\n", language) is expected


# --- large documents ---------------------------------------------------------------------------

def test_large_documents_and_long_lines_decide_from_the_cursor_line() -> None:
    module = "".join(f"def top_{i}(a, b):\n    if a:\n        return b\n    return a\n\n\n"
                     for i in range(30_000))  # ~1.7 MB
    mid = module.index("def top_15000(")
    text = module[:mid] + "def new(a):\n    \n" + module[mid:]
    assert build_context(text, mid + len("def new(a):\n    "), "python").mode is M
    assert build_context(text, mid + len("def new(a"), "python").mode is S
    long_line = "x = [" + "1, " * 400_000 + "]\n"  # 1.2 MB on one line, then a blank line
    text = long_line + "def f(a):\n    "
    assert build_context(text, len(text), "python").mode is M
    text = "def f(a):\n    \n" + long_line
    assert build_context(text, len("def f(a):\n    "), "python").mode is M
