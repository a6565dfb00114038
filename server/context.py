"""What is around the cursor, and whether the user wants one line or a block.

The decision reads like llm-ls': text after the cursor on the same line means the user is filling
in a line (single-line); an empty block body (``def f():`` followed by nothing, or only a
docstring) means they want the block (multi-line). For Python the block check uses tree-sitter's
parse tree; other languages fall back to brackets and indentation.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Any

from server.documents import split_lines


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


def _line_bounds(text: str, offset: int) -> tuple[str, str]:
    start = max(text.rfind("\n", 0, offset), text.rfind("\r", 0, offset)) + 1
    nl = [i for i in (text.find("\n", offset), text.find("\r", offset)) if i != -1]
    end = min(nl) if nl else len(text)
    return text[start:offset], text[offset:end]


def _strip_comment(line: str, language: str) -> str:
    marker = "#" if language in ("python", "shellscript", "ruby", "r", "yaml") else "//"
    idx = line.find(marker)
    return line[:idx] if idx != -1 else line


@functools.lru_cache(maxsize=1)
def _python_parser() -> Any:
    import tree_sitter
    import tree_sitter_python

    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))


def _python_empty_body(prefix: str, suffix: str) -> bool | None:
    """True if the cursor is in the body of a compound statement that has no code yet.

    None when tree-sitter is unavailable or the position cannot be told (caller falls back).
    """
    try:
        parser = _python_parser()
    except Exception:  # grammar wheel missing: fall back to the heuristics
        return None
    head = prefix.rstrip()
    if not head:
        return False
    source = (prefix + suffix).encode("utf-8")
    tree = parser.parse(source)
    last = len(head.encode("utf-8")) - 1
    node = tree.root_node.descendant_for_byte_range(last, last + 1)
    cursor_byte = len(prefix.encode("utf-8"))
    line_start = max(prefix.rfind("\n"), prefix.rfind("\r")) + 1
    cursor_indent = len(prefix) - line_start  # the cursor line is blank here
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


def _next_code_line(suffix: str) -> str | None:
    lines = split_lines(suffix)
    for line in lines[1:]:
        if line.strip():
            return line
    return None


def decide_mode(prefix: str, suffix: str, language: str) -> CompletionMode:
    line_prefix, line_suffix = _line_bounds(prefix + suffix, len(prefix))
    if not _TRIVIAL_LINE_SUFFIX.match(line_suffix):
        return CompletionMode.SINGLE_LINE
    code_before = _strip_comment(line_prefix, language).rstrip()
    if code_before:
        # At the end of `def f(x):` / `if (x) {`: the user is about to write the block.
        return (CompletionMode.MULTI_LINE if code_before.endswith(_BLOCK_OPENERS)
                else CompletionMode.SINGLE_LINE)
    # A blank (or indentation-only) line.
    if language == "python":
        empty = _python_empty_body(prefix, suffix)
        if empty:
            return CompletionMode.MULTI_LINE
    prev = next((ln for ln in reversed(split_lines(prefix)[:-1]) if ln.strip()), "")
    if _strip_comment(prev, language).rstrip().endswith(_BLOCK_OPENERS):
        return CompletionMode.MULTI_LINE
    # Code follows at this indentation or deeper: insert one statement, don't rewrite the rest.
    nxt = _next_code_line(suffix)
    if nxt is not None:
        nxt_indent = len(nxt) - len(nxt.lstrip())
        if nxt_indent >= len(line_prefix) and not _TRIVIAL_LINE_SUFFIX.match(nxt):
            return CompletionMode.SINGLE_LINE
    return CompletionMode.MULTI_LINE


def build_context(text: str, offset: int, language: str) -> CursorContext:
    prefix, suffix = text[:offset], text[offset:]
    line_prefix, line_suffix = _line_bounds(text, offset)
    language = (language or "").lower()
    return CursorContext(prefix, suffix, line_prefix, line_suffix, language,
                         decide_mode(prefix, suffix, language))
