"""What is around the cursor, and whether the user wants one line or a block.

Text after the cursor on the same line, or code before it, means the user is filling in a line
(single-line), unless that code opens a block (``def f(x):``, ``if (x) {``). A cursor on a line
of its own (only indentation) is multi-line: the hole there may be one line or several, and a
fill-in-the-middle model ends the middle itself where it meets the suffix; the multi-line stops
(server/postprocess.py) keep it from rewriting the code that follows. (Until issue 17 such a
line was single-line when code followed at its indentation, which cut 36% of HumanEval's
multi-line holes to their first line; a tree-sitter parse told empty block bodies apart.)

Cost: only the cursor's line is read.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

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


def decide_mode(prefix: str, suffix: str, language: str) -> CompletionMode:
    line_prefix, line_suffix = _line_bounds(prefix + suffix, len(prefix))
    return _decide(line_prefix, line_suffix, language.lower())


def _decide(line_prefix: str, line_suffix: str, language: str) -> CompletionMode:
    if not _TRIVIAL_LINE_SUFFIX.match(line_suffix):
        return CompletionMode.SINGLE_LINE
    code_before = _strip_comment(line_prefix, language).rstrip()
    if code_before:
        # At the end of `def f(x):` / `if (x) {`: the user is about to write the block.
        return (CompletionMode.MULTI_LINE if code_before.endswith(_BLOCK_OPENERS)
                else CompletionMode.SINGLE_LINE)
    # A line of its own: the model decides where the hole ends (see the module's notes).
    return CompletionMode.MULTI_LINE


def build_context(text: str, offset: int, language: str) -> CursorContext:
    language = (language or "").lower()
    line_prefix, line_suffix = _line_bounds(text, offset)
    return CursorContext(text[:offset], text[offset:], line_prefix, line_suffix, language,
                         _decide(line_prefix, line_suffix, language))
