"""What is around the cursor, and whether the user wants one line or a block.

The decision reads like llm-ls': text after the cursor on the same line means the user is filling
in a line (single-line); an empty block body (``def f():`` followed by nothing, or only a
docstring) means they want the block (multi-line). For Python the block check uses tree-sitter's
parse tree; other languages fall back to brackets and indentation.

Cost: every step looks at a bounded stretch around the cursor, never at the whole document (a
completion in a large file, or on one very long line, must cost what a small one does). The
Python parse covers a window of lines around the cursor (see :func:`_python_window`); the line
scans are regular-expression searches that stop at the first line they need.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Any

from server.documents import split_lines
from server.languages import line_comment


class CompletionMode(enum.Enum):
    SINGLE_LINE = "single_line"
    MULTI_LINE = "multi_line"


@dataclass(frozen=True)
class CursorContext:
    prefix: str  # all text before the cursor
    suffix: str  # all text after the cursor
    line_prefix: str  # current line, before the cursor
    line_suffix: str  # current line, after the cursor (no line break)
    language: str  # LSP languageId, lower case
    mode: CompletionMode

    @property
    def indent(self) -> str:
        """Leading whitespace of the current line."""
        return self.line_prefix[: len(self.line_prefix) - len(self.line_prefix.lstrip())]


# Text after the cursor that does not make the line "filled in": closers and punctuation that
# editors auto-insert.
_TRIVIAL_LINE_SUFFIX = re.compile(r"""^[\s)\]}"'`;:,]*$""")
# A line ending in one of these opens a block the user is about to write. An open `(` or `[`
# does not: `foo(` or `heap[` is usually finished on the same line.
_BLOCK_OPENERS = (":", "{", "=>")
_PY_COMPOUND = {
    "function_definition", "class_definition", "if_statement", "elif_clause", "else_clause",
    "for_statement", "while_statement", "with_statement", "try_statement", "except_clause",
    "finally_clause", "match_statement", "case_clause",
}
_PY_FILLER = {"comment", "pass_statement"}


# The Python block decision parses a window of the document, not all of it: at most this many
# characters before the cursor (it starts at the top-level ``def``/``class`` around the cursor,
# which in usual code is much closer) and after it (it ends at the next top-level statement).
# A document that fits in the window is parsed whole; on larger ones the decision is the one a
# parse of the whole file gives wherever the window starts and ends outside strings (see
# :func:`_python_window`). A tree-sitter parse of the window takes milliseconds.
_WINDOW_BEFORE = 32_768
_WINDOW_AFTER = 8_192
# A line at column 0 that starts a definition: where a window can start (decorators included).
_DEF_AT_COL0 = re.compile(r"(?<![^\r\n])(?:@|(?:async[ \t]+)?(?:def|class)[ \t])")
# The same, indented (a window inside a long class starts at one of its methods).
_DEF_INDENTED = re.compile(r"(?<![^\r\n])([ \t]+)(?:@|(?:async[ \t]+)?(?:def|class)[ \t])")
# A line break, then the indentation of a line that starts a statement (not `else:` and
# friends, which continue the statement before them).
_STATEMENT_LINE = re.compile(
    r"(?:\r\n|\r|\n)([ \t]*)(?=[A-Za-z_@])(?!(?:else|elif|except|finally)\b)")
_INDENT = re.compile(r"(?<![^\r\n])([ \t]*)\S")
_TRIPLE_QUOTE = re.compile(r"\"\"\"|'''")
# The next line with code after the cursor's line.
_NEXT_CODE_LINE = re.compile(r"(?:\r\n|\r|\n)([^\S\r\n]*\S[^\r\n]*)")
_BREAK = re.compile(r"\r\n|\r|\n")


def _line_start(text: str, offset: int) -> int:
    """Where the line holding ``offset`` starts (the search never leaves that line)."""
    nl = text.rfind("\n", 0, offset)
    return max(nl, text.rfind("\r", nl + 1, offset)) + 1


def _line_bounds(text: str, offset: int) -> tuple[str, str]:
    start = _line_start(text, offset)
    m = _BREAK.search(text, offset)
    end = m.start() if m else len(text)
    return text[start:offset], text[offset:end]


def _strip_comment(line: str, language: str) -> str:
    idx = line.find(line_comment(language))
    return line[:idx] if idx != -1 else line


@functools.lru_cache(maxsize=1)
def _python_parser() -> Any:
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def _python_window(text: str, offset: int) -> tuple[str, int, int]:
    """The part of ``text`` the block decision parses: ``(source, start, header)``.

    ``source`` is ``header`` characters of synthetic lines followed by ``text[start:end]``,
    where ``end`` is the next top-level statement after the cursor's line (with an even number
    of triple quotes in between: not inside a string), or ``_WINDOW_AFTER`` characters on.
    ``start`` is the nearest definition at column 0 before the cursor, within
    ``_WINDOW_BEFORE`` characters. Failing that (a long class), it is the nearest
    least-indented definition, under one ``if 1:`` per enclosing indentation (and a statement
    standing for what the enclosing block holds before it), so that it parses as in the
    file; failing that, a line start ``_WINDOW_BEFORE`` characters back.

    What it cannot tell: a ``def`` at column 0 inside a multi-line string is taken for code.
    """
    if offset <= _WINDOW_BEFORE and len(text) - offset <= _WINDOW_AFTER:
        return text, 0, 0
    cursor_line = _line_start(text, offset)
    lo = max(0, cursor_line - _WINDOW_BEFORE)
    end = _window_end(text, offset)
    if lo == 0 and end == len(text):
        return text, 0, 0
    start = None
    for m in _DEF_AT_COL0.finditer(text, lo, cursor_line):
        start = m.start()
    if start is not None:
        return text[start:end], start, 0
    best: re.Match[str] | None = None
    for m in _DEF_INDENTED.finditer(text, lo, cursor_line):
        if best is None or len(m.group(1)) <= len(best.group(1)):
            best = m
    if best is None:
        first_break = _BREAK.search(text, lo, cursor_line) if lo else None
        start = first_break.end() if first_break else lo
        return text[start:end], start, 0
    start, indent = best.start(), best.group(1)
    header = _enclosing_blocks(text, start, end, indent)
    return header + text[start:end], start, len(header)


def _window_end(text: str, offset: int) -> int:
    """Where the window after the cursor ends: at the next statement at column 0; failing
    that (a long block), at the last line within ``_WINDOW_AFTER`` characters that starts a
    statement no deeper than the cursor's line; between lines, outside strings and brackets
    opened after the cursor (triple quotes and brackets are counted, not parsed)."""
    limit = min(len(text), offset + _WINDOW_AFTER)
    cursor_indent = offset - _line_start(text, offset)
    quotes = opened = 0
    pos, fallback = offset, limit
    for m in _STATEMENT_LINE.finditer(text, offset, limit):
        seg = text[pos:m.start()]
        pos = m.start()
        quotes += len(_TRIPLE_QUOTE.findall(seg))
        opened += sum(seg.count(c) for c in "([{") - sum(seg.count(c) for c in ")]}")
        if quotes % 2 or opened > 0:
            continue
        if not m.group(1):
            return m.end()
        if len(m.group(1)) <= cursor_indent:
            fallback = m.end()
    return fallback


def _enclosing_blocks(text: str, start: int, end: int, indent: str) -> str:
    """Synthetic lines that put the line at ``start`` (indented by ``indent``) in blocks, as
    it is in the file: ``if 1:`` at each shallower indentation the window's lines dedent to,
    and a statement before it unless the line before it opens its block (``_is_empty_body``
    must see that the block holds code before the cursor when the file's block does)."""
    levels = {""} | {m.group(1) for m in _INDENT.finditer(text, start, end)
                     if len(m.group(1)) < len(indent) and indent.startswith(m.group(1))}
    header = "".join(f"{level}if 1:\n" for level in sorted(levels, key=len))
    prev = _previous_code_line(text, start)
    prev_indent = len(prev) - len(prev.lstrip())
    if not (prev_indent < len(indent) and _strip_comment(prev, "python").rstrip().endswith(":")):
        header += f"{indent}_ = 0\n"
    return header


def _python_empty_body(text: str, offset: int) -> bool | None:
    """True if the cursor is in the body of a compound statement that has no code yet.

    None when tree-sitter is unavailable or the position cannot be told (caller falls back).
    """
    try:
        parser = _python_parser()
    except Exception:  # grammar wheel missing: fall back to the heuristics
        return None
    source, start, header = _python_window(text, offset)
    prefix = source[: header + offset - start]  # the window's text before the cursor
    head = prefix.rstrip()
    if len(head) <= header:
        return False
    tree = parser.parse(source.encode("utf-8", "surrogatepass"))
    last = len(head.encode("utf-8", "surrogatepass")) - 1
    node = tree.root_node.descendant_for_byte_range(last, last + 1)
    cursor_byte = len(prefix.encode("utf-8", "surrogatepass"))
    cursor_indent = len(prefix) - _line_start(prefix, len(prefix))  # the cursor line is blank
    while node is not None:
        while node is not None and node.type not in _PY_COMPOUND:
            node = node.parent
        if node is None:
            return False
        body = _body_of(node)
        if body is None:
            return head.endswith(":")
        # A cursor dedented to the header's column (or left of it) has left a body that
        # already holds something: look at the enclosing statement instead.
        if cursor_indent <= node.start_point[1] and body.named_child_count > 0:
            node = node.parent
            continue
        return _is_empty_body(body, cursor_byte)
    return False


def _body_of(node: Any) -> Any:
    body = node.child_by_field_name("body") or node.child_by_field_name("consequence")
    if body is None:
        # e.g. `else_clause`, `except_clause` keep their block as a plain child
        body = next((c for c in node.children if c.type == "block"), None)
    return body


def _is_empty_body(body: Any, cursor_byte: int) -> bool:
    for stmt in body.named_children:
        if stmt.type in _PY_FILLER:
            continue
        if stmt.type == "expression_statement" and stmt.named_child_count == 1 and \
                stmt.named_children[0].type == "string":
            continue  # a docstring
        if stmt.start_byte >= cursor_byte or stmt.end_byte > cursor_byte:
            continue  # code after the cursor is the suffix, not the body being written
        return False
    return True


def _next_code_line(text: str, offset: int) -> str | None:
    """The first line after the cursor's line that holds something other than whitespace."""
    m = _NEXT_CODE_LINE.search(text, offset)
    return m.group(1) if m else None


def _previous_code_line(text: str, line_start: int) -> str:
    """The last line before the cursor's line that holds something other than whitespace
    ('' if none within ``_WINDOW_BEFORE`` characters)."""
    lo = max(0, line_start - _WINDOW_BEFORE)
    lines = split_lines(text[lo:line_start])[:-1]
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].strip():
            if i == 0 and lo > 0:  # it may begin before the window: read it whole
                return text[_line_start(text, lo):lo] + lines[0]
            return lines[i]
    return ""


def decide_mode(prefix: str, suffix: str, language: str) -> CompletionMode:
    text = prefix + suffix
    line_prefix, line_suffix = _line_bounds(text, len(prefix))
    return _decide(text, len(prefix), line_prefix, line_suffix, language.lower())


def _decide(text: str, offset: int, line_prefix: str, line_suffix: str, language: str
            ) -> CompletionMode:
    if not _TRIVIAL_LINE_SUFFIX.match(line_suffix):
        return CompletionMode.SINGLE_LINE
    code_before = _strip_comment(line_prefix, language).rstrip()
    if code_before:
        # At the end of `def f(x):` / `if (x) {`: the user is about to write the block.
        return (CompletionMode.MULTI_LINE if code_before.endswith(_BLOCK_OPENERS)
                else CompletionMode.SINGLE_LINE)
    # A blank (or indentation-only) line.
    if language == "python":
        empty = _python_empty_body(text, offset)
        if empty:
            return CompletionMode.MULTI_LINE
    prev = _previous_code_line(text, offset - len(line_prefix))
    if _strip_comment(prev, language).rstrip().endswith(_BLOCK_OPENERS):
        return CompletionMode.MULTI_LINE
    # Code follows at this indentation or deeper: insert one statement, don't rewrite the rest.
    nxt = _next_code_line(text, offset)
    if nxt is not None:
        nxt_indent = len(nxt) - len(nxt.lstrip())
        if nxt_indent >= len(line_prefix) and not _TRIVIAL_LINE_SUFFIX.match(nxt):
            return CompletionMode.SINGLE_LINE
    return CompletionMode.MULTI_LINE


def build_context(text: str, offset: int, language: str) -> CursorContext:
    language = (language or "").lower()
    line_prefix, line_suffix = _line_bounds(text, offset)
    return CursorContext(text[:offset], text[offset:], line_prefix, line_suffix, language,
                         _decide(text, offset, line_prefix, line_suffix, language))
