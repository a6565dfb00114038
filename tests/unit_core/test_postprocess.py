"""Where to stop and what to keep (server/postprocess.py)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.context import CompletionMode, CursorContext, build_context
from server.postprocess import (
    cut_special,
    drop_suffix_overlap,
    postprocess,
    prompt_prefix,
    should_stop,
    strip_cursor_indent,
    truncate,
)

S = CompletionMode.SINGLE_LINE
M = CompletionMode.MULTI_LINE
SPECIALS = ("<|endoftext|>", "<|file_sep|>", "<|fim_middle|>", "<|im_end|>")


def ctx_at(prefix: str, suffix: str = "", language: str = "python",
           mode: CompletionMode | None = None) -> CursorContext:
    ctx = build_context(prefix + suffix, len(prefix), language)
    if mode is not None and ctx.mode is not mode:
        ctx = dataclasses.replace(ctx, mode=mode)
    return ctx


# Common contexts
BODY = ctx_at("def f(x):\n    ", "\n")  # blank indented line in an empty body
HEADER = ctx_at("def f(x):", "\n")  # end of a block header
LINE = ctx_at("x = ", "\n")  # end of a normal line
IF_BODY = ctx_at("def f(x):\n    if x:\n        ", "\n    return 1\n")


def test_fixture_modes() -> None:
    assert BODY.mode is M and HEADER.mode is M and IF_BODY.mode is M
    assert LINE.mode is S


# --- single line --------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,expected", [
    ("foo(1)\ny = 2\n", "foo(1)"),
    ("foo(1)", "foo(1)"),
    ("foo(1)   \nmore", "foo(1)"),
    ("foo(1)\r\ny = 2", "foo(1)"),
    ("\nfoo(1)", ""),  # a leading newline leaves nothing for this line
])
def test_single_line_keeps_first_line(raw: str, expected: str) -> None:
    assert postprocess(raw, LINE) == expected


def test_single_line_truncate_reports_cut() -> None:
    assert truncate("a\nb", LINE) == ("a", True)
    assert truncate("ab", LINE) == ("ab", False)
    assert truncate("ab<|endoftext|>c", LINE, SPECIALS) == ("ab", True)


# --- multi line -----------------------------------------------------------------------------------

def test_multi_line_stops_at_dedent_to_new_top_level_def() -> None:
    raw = "y = x + 1\n    return y\n\ndef g():\n    pass\n"
    assert postprocess(raw, BODY) == "y = x + 1\n    return y"


def test_multi_line_from_header_keeps_body_only() -> None:
    raw = "\n    return x\n\ndef g():\n    pass\n"
    assert postprocess(raw, HEADER) == "\n    return x"
    # the first body line must be deeper than the header line
    assert postprocess("\nprint(1)\n", HEADER) == ""


def test_multi_line_keeps_nested_deeper_blocks() -> None:
    raw = ("for i in x:\n        if i:\n            print(i)\n\n        else:\n            pass\n"
           "    return x\nprint(1)\n")
    assert postprocess(raw, BODY) == (
        "for i in x:\n        if i:\n            print(i)\n\n        else:\n            pass\n"
        "    return x")


def test_multi_line_stops_where_suffix_first_line_repeats() -> None:
    ctx = ctx_at("def f(x):\n    ", "\n    return y\n")
    assert ctx.mode is M
    assert postprocess("y = x * 2\n    return y\n    z = 3", ctx) == "y = x * 2"
    # the first *non-blank* line of the suffix is the one that counts
    ctx2 = ctx_at("def f(x):\n    ", "\n\n    # done\n    return y\n")
    assert ctx2.mode is M
    assert postprocess("y = 1\n    # done\n    return y\n", ctx2) == "y = 1"
    # a partial last line that merely equals the suffix line so far is not cut yet
    assert not should_stop("y = x * 2\n    return y", ctx)


def test_multi_line_short_suffix_lines_do_not_trigger_repeat_cut() -> None:
    ctx = ctx_at("def f(x):\n    ", "\n    )\n")
    assert postprocess("a = (\n        1\n    )\n    b = 2", ctx) == "a = (\n        1\n    )\n    b = 2"


@pytest.mark.parametrize("keyword", ["else:", "elif y:", "except ValueError:", "finally:"])
def test_lower_indented_clause_ends_if_body(keyword: str) -> None:
    raw = f"y = 1\n    {keyword}\n        y = 2\n    return y"
    assert postprocess(raw, IF_BODY) == "y = 1"
    assert should_stop(raw, IF_BODY)


def test_lower_indented_closer_continues_statement() -> None:
    raw = "x = foo(\n        1,\n    )\n    return x"
    # closers at a lower indentation continue the statement rather than end the block
    ctx = ctx_at("def f():\n    if a:\n        ", "\n")
    assert ctx.mode is M
    assert postprocess(raw, ctx) == "x = foo(\n        1,\n    )"


def test_top_level_one_unit_per_suggestion() -> None:
    ctx = ctx_at("import os\n", "\n")
    assert ctx.mode is M and ctx.line_prefix == ""
    raw = "def g():\n    return 1\n\ndef h():\n    return 2\n"
    assert postprocess(raw, ctx) == "def g():\n    return 1"


def test_multi_line_drops_repeated_line_loop() -> None:
    raw = "y = 0\n    x += 1\n    x += 1\n    x += 1\n    x += 1\n"
    assert postprocess(raw, BODY) == "y = 0\n    x += 1"


def test_repeated_line_loop_starting_on_cursor_line_keeps_one_copy() -> None:
    raw = "x += 1\n    x += 1\n    x += 1\n    x += 1\n"
    assert postprocess(raw, BODY) == "x += 1"


def test_multi_line_strips_trailing_whitespace_and_leading_newline_on_blank_cursor() -> None:
    assert postprocess("return x   \n", BODY) == "return x"
    ctx = ctx_at("def f(x):\n", "\n")  # column 0, empty body
    assert ctx.mode is M and ctx.line_prefix == ""
    assert postprocess("\n\n    return x\n", ctx) == "    return x"
    # not on a blank line: the leading newline is the line break after the header, kept
    assert postprocess("\n    return x", HEADER).startswith("\n")


# --- bracket overlap with the rest of the line ----------------------------------------------------

@pytest.mark.parametrize("prefix,suffix,raw,expected", [
    ("x = foo(", ")", "a, b)", "a, b"),
    ("x = foo(", ")", "bar(x)", "bar(x)"),
    ("x = foo(", ")", "a, b", "a, b"),
    ("x = [foo(", ")]", "a)]", "a"),
    ("x = [foo(", ")]", "a)", "a"),
    ('x = {"a": [', "]}", "1, 2]}", "1, 2"),
    ("if foo(", "):", "a):", "a"),
    ('print("', '")', 'hello")', "hello"),
    # the line's own `)` closes the call; what the model wrote after its `)` would be left
    # outside the parentheses, so the suggestion ends where the existing closer takes over
    ("x = foo(", ")", "a) + b", "a"),
    ("x = foo(", ")", "(a, b))", "(a, b)"),
    ("x = foo(a, ", ")", "b)", "b"),
])
def test_closing_overlap(prefix: str, suffix: str, raw: str, expected: str) -> None:
    ctx = ctx_at(prefix, suffix)
    assert postprocess(raw, ctx) == expected


def test_closing_overlap_noop_without_line_suffix() -> None:
    ctx = ctx_at("x = foo(", "\n")
    assert drop_suffix_overlap("a, b)", ctx) == "a, b)"


def test_closing_overlap_on_last_line_of_multi_line_completion() -> None:
    ctx = ctx_at("function f() {", "}\n", "javascript")
    assert ctx.mode is M
    assert postprocess("\n  return 1;\n}", ctx) == "\n  return 1;\n"


def test_closing_overlap_followed_by_colon() -> None:
    ctx = ctx_at("def f(", ")\n")
    out = postprocess("x):", ctx)
    line = ctx.line_prefix + out + ctx.line_suffix
    assert line.count(")") <= line.count("("), line


# --- special tokens and empty output ----------------------------------------------------------

@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("ctx", [LINE, BODY], ids=["single", "multi"])
def test_special_token_text_is_cut(special: str, ctx: CursorContext) -> None:
    assert postprocess(f"foo(1){special}junk\nmore", ctx, SPECIALS) == "foo(1)"
    kept, cut = truncate(f"foo(1){special}", ctx, SPECIALS)
    assert kept == "foo(1)" and cut


def test_earliest_special_wins_and_empty_specials_ignored() -> None:
    text = "a<|file_sep|>b<|endoftext|>c"
    assert cut_special(text, ["<|endoftext|>", "<|file_sep|>"]) == "a"
    assert cut_special(text, ["", "<|endoftext|>"]) == "a<|file_sep|>b"
    assert cut_special(text, []) == text
    assert postprocess("<|endoftext|>x = 1", LINE, SPECIALS) == ""


@pytest.mark.parametrize("raw", ["", " ", "   \n  ", "\n\n", "\t", "  \r\n"])
@pytest.mark.parametrize("ctx", [LINE, BODY, HEADER], ids=["single", "multi-body", "header"])
def test_whitespace_only_is_empty(raw: str, ctx: CursorContext) -> None:
    assert postprocess(raw, ctx) == ""


# --- prompt_prefix / strip_cursor_indent -----------------------------------------------------------

def test_prompt_prefix_drops_cursor_indentation_only_on_blank_lines() -> None:
    assert prompt_prefix(BODY) == "def f(x):\n"
    assert prompt_prefix(HEADER) == "def f(x):"
    assert prompt_prefix(LINE) == "x = "
    col0 = ctx_at("def f(x):\n", "\n")
    assert prompt_prefix(col0) == "def f(x):\n"
    tabbed = ctx_at("def f(x):\n\t", "\n")
    assert prompt_prefix(tabbed) == "def f(x):\n"
    crlf = ctx_at("def f(x):\r\n    ", "\r\n")
    assert prompt_prefix(crlf) == "def f(x):\r\n"


@pytest.mark.parametrize("raw,expected", [
    ("    return x", "return x"),
    ("    return x\n    y", "return x\n    y"),
    ("      return x", "  return x"),  # deeper than the cursor: the extra stays
    ("  return x", "return x"),  # another indentation: the cursor's wins
    ("\treturn x", "return x"),
    ("return x", "return x"),
    ("", ""),
    ("  ", ""),  # the indentation is still being written
    ("    ", ""),
    ("  \n    y", "\n    y"),
])
def test_strip_cursor_indent(raw: str, expected: str) -> None:
    assert strip_cursor_indent(raw, BODY) == expected


@pytest.mark.parametrize("ctx", [LINE, HEADER, ctx_at("def f(x):\n", "\n")],
                         ids=["code-before", "header", "column-0"])
def test_strip_cursor_indent_noop_unless_blank_indented_line(ctx: CursorContext) -> None:
    for raw in ("    return x", "  a\n  b", "", "x"):
        assert strip_cursor_indent(raw, ctx) == raw


# --- should_stop vs truncate: properties ----------------------------------------------------------

CONTEXTS = [
    LINE,
    BODY,
    HEADER,
    IF_BODY,
    ctx_at("def f(x):\n    ", "\n    return y\n"),
    ctx_at("import os\n", "\n"),
    ctx_at("def f(x):\n", "\n"),
    ctx_at("x = foo(", ")\n"),
    ctx_at("function f() {", "}\n", "javascript"),
    ctx_at("def f(x):\n\t", "\n"),
]
LINE_POOL = ["", "    ", "x = 1", "    return y", "        y()", "def g():", ")", "    )",
             "    else:", "    b = 2", "b = 2", "\tpass", "  # c", "    x += 1", "}"]

raw_texts = st.one_of(
    st.text(alphabet="ab(): \n\t}#", max_size=40),
    st.lists(st.sampled_from(LINE_POOL), max_size=8).map("\n".join),
    st.tuples(st.lists(st.sampled_from(LINE_POOL), max_size=8).map("\n".join),
              st.text(alphabet="ab(): \n", max_size=6)).map("".join),
)
contexts = st.sampled_from(CONTEXTS)


def _first_stop(text: str, stop) -> int | None:  # type: ignore[no-untyped-def]
    return next((i for i in range(len(text) + 1) if stop(text[:i])), None)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=raw_texts, ctx=contexts)
def test_should_stop_agrees_with_truncate(text: str, ctx: CursorContext) -> None:
    kept, cut = truncate(text, ctx)
    # without special tokens: should_stop is exactly "truncate cut something"
    assert should_stop(text, ctx) == cut
    # truncate keeps a prefix of the raw text
    assert text.startswith(kept)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=raw_texts, ctx=contexts)
def test_should_stop_is_monotone_and_stopping_loses_nothing(text: str, ctx: CursorContext) -> None:
    """Once should_stop fires on a prefix, generating more cannot change the suggestion.

    So stopping generation at the first stop point gives exactly what running on would give.
    """
    j = _first_stop(text, lambda t: should_stop(t, ctx))
    if j is None:
        return
    for k in range(j, len(text) + 1):
        assert should_stop(text[:k], ctx)
    kept_at_stop, _ = truncate(text[:j], ctx)
    assert truncate(text, ctx)[0] == kept_at_stop
    assert len(kept_at_stop) < j  # never keeps text beyond the stop point
    assert postprocess(text, ctx) == postprocess(text[:j], ctx)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=raw_texts, ctx=contexts)
def test_engine_stop_predicate_loses_nothing(text: str, ctx: CursorContext) -> None:
    """The engine stops on should_stop(strip_cursor_indent(raw)); same guarantee on raw output."""
    def stop(t: str) -> bool:
        return should_stop(strip_cursor_indent(t, ctx), ctx)

    j = _first_stop(text, stop)
    if j is None:
        return
    assert all(stop(text[:k]) for k in range(j, len(text) + 1))
    assert postprocess(strip_cursor_indent(text, ctx), ctx) == \
        postprocess(strip_cursor_indent(text[:j], ctx), ctx)


@settings(max_examples=200, deadline=None)
@given(text=raw_texts, ctx=contexts, special=st.sampled_from(SPECIALS),
       tail=st.text(alphabet="ab\n ", max_size=10))
def test_nothing_after_a_special_token_survives(text: str, ctx: CursorContext, special: str,
                                                tail: str) -> None:
    out = postprocess(text + special + tail, ctx, SPECIALS)
    assert out == postprocess(text, ctx, SPECIALS)
    assert "<|" not in out


@settings(max_examples=200, deadline=None)
@given(text=raw_texts, ctx=contexts)
def test_postprocess_output_shape(text: str, ctx: CursorContext) -> None:
    out = postprocess(text, ctx)
    assert out == "" or out.strip()
    if ctx.mode is S:
        assert "\n" not in out
    assert postprocess(out, ctx) == out or ctx.line_suffix.strip()  # idempotent w/o overlap


def test_idempotent_when_cursor_line_left_empty_at_top_level() -> None:
    # Found by hypothesis: the leading break moved the base indentation between passes.
    ctx = CursorContext(prefix="import os\n", suffix="\n", line_prefix="", line_suffix="",
                        language="python", mode=CompletionMode.MULTI_LINE)
    out = postprocess("\nx = 1\n    return y\nx = 1", ctx)
    assert out == "x = 1\n    return y\nx = 1"
    assert postprocess(out, ctx) == out


def test_empty_cursor_line_then_indented_body_is_not_indented_twice() -> None:
    ctx = CursorContext(prefix="def f():\n    ", suffix="\n", line_prefix="    ",
                        line_suffix="", language="python", mode=CompletionMode.MULTI_LINE)
    assert postprocess("\n    return 1", ctx) == "return 1"


# --- a line of its own is multi-line: the model ends the hole ------------------------------------

# After Enter and auto-indent, with the next statement at the same indentation: a whole block
# may have been removed here (the cursor line is the hole), or one line.
HOLE = ctx_at("def f(xs):\n    out = []\n    ", "\n    return out\n", mode=M)


def test_a_header_whose_body_is_missing_keeps_its_body() -> None:
    raw = "for x in xs:\n        out.append(x)\n    return out\n"
    assert not should_stop("for x in xs:\n", HOLE)
    assert not should_stop("for x in xs:\n        out.append(x)\n", HOLE)
    assert should_stop(raw, HOLE)  # the suffix's line comes back at the header's level
    assert postprocess(raw, HOLE) == "for x in xs:\n        out.append(x)"


def test_plain_lines_end_where_the_model_meets_the_suffix() -> None:
    assert not should_stop("out.append(1)\n", HOLE)  # the model may add lines: it decides
    assert should_stop("out.append(1)\n    return out\n", HOLE)  # the suffix comes back
    assert postprocess("out.append(1)\n    return out\n", HOLE) == "out.append(1)"
    typed = ctx_at("def f(xs):\n    out = []\n    for x", "\n    return out\n", mode=S)
    assert should_stop(" in xs:\n", typed)  # the user typed part of it: one line, as before
    assert postprocess(" in xs:\n        out.append(x)\n", typed) == " in xs:"


def test_a_header_at_the_end_of_the_file_gets_its_body() -> None:
    ctx = ctx_at("def f(xs):\n    ", "", mode=M)
    assert postprocess("while xs:\n        xs.pop()\n\n\ndef g():\n", ctx) == \
        "while xs:\n        xs.pop()"
