"""When generation ends: is the completion acceptable together with the text after the cursor?

Fill-in-the-middle means the suffix is part of the program. A completion is kept if the
document with it has no more syntax errors than without it (tree-sitter counts ERROR and
MISSING nodes); otherwise it is cut back to the longest acceptable point, trying line ends
first and then token-free character boundaries on the first line. Only the top-level
statements around the cursor are parsed, so a large file costs no more than a small one.
"""

from __future__ import annotations

import ast
import warnings
from collections.abc import Callable

from grammar_constraints.languages import Syntax, syntax_for
from grammar_constraints.ts_oracle import parse


def error_count(text: str, language: str = "python") -> int:
    """ERROR and MISSING nodes in the parse of ``text`` (``language``: a tree-sitter grammar
    name); for Python, one more if CPython's parser rejects it (tree-sitter's recovery is
    lenient: it accepts a ``def`` whose body is only comments)."""
    tree = parse(language, text)
    count = 0 if language != "python" else int(not _compiles(text))
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            count += 1
        if node.has_error:
            stack.extend(node.children)
    return count


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _compiles(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def _suffix_window(suffix: str, syntax: Syntax) -> str:
    """The suffix up to the next top-level statement (the cursor's statement ends there)."""
    pos = 0
    for line in suffix.splitlines(keepends=True):
        if pos and line[:1] not in (" ", "\t", "\n", "\r", "") and syntax.statement_end(line):
            return suffix[:pos]
        pos += len(line)
    return suffix


def fits(prefix: str, completion: str, suffix: str, language: str = "python") -> bool | None:
    """Does the document parse around the cursor with ``completion`` in the hole (no syntax
    error in the top-level statements the cursor touches)? None: no syntax for ``language``."""
    syntax = syntax_for(language)
    if syntax is None:
        return None
    head = prefix[syntax.anchor(prefix):]
    return syntax.error_count(head + completion + _suffix_window(suffix, syntax)) == 0


def fit(prefix: str, completion: str, suffix: str, language: str = "python",
        count: Callable[[str], int] | None = None) -> str:
    """The longest start of ``completion`` that leaves the document with the fewest syntax
    errors, provided that is no more than without it and the text stays a viable prefix
    (``completion`` itself when nothing shorter does better; '' when no cut qualifies).

    ``language``: an LSP language id with a syntax (:func:`syntax_for`); ``count``: the
    error count (the language's by default).

    Cut points: the line ends, longest first, then the first line's token boundaries.
    """
    syntax = syntax_for(language)
    if not completion or syntax is None:
        return completion
    count = count or syntax.error_count
    head = prefix[syntax.anchor(prefix):]
    tail = _suffix_window(suffix, syntax)
    full = count(head + completion + tail)
    if full == 0:
        return completion  # nothing can do better
    base = count(head + tail)
    first = completion.split("\n", 1)[0]
    cuts = [completion[:i].rstrip() for i in range(len(completion) - 1, -1, -1)
            if completion[i] == "\n"]
    # Within the first line, never inside a word (``de`` of ``def`` parses, but means nothing).
    cuts += [first[:i].rstrip() for i in range(len(first) - 1, 0, -1)
             if not (_is_word(first[i - 1]) and _is_word(first[i]))]
    # Where the text before the cursor is sound, a piece must also leave it a viable prefix
    # (tree-sitter's counts are coarse: one ERROR node may swallow several mistakes).
    def viable(text: str) -> bool:
        state = syntax.feed(syntax.start(), text)
        return state is not None and syntax.viable(text, state)

    check = viable if viable(head) else (lambda _text: True)
    best, choice = None, ""
    for piece in dict.fromkeys(c for c in [completion, *cuts] if c):
        n = full if piece is completion else count(head + piece + tail)
        if (best is None or n < best) and n <= base and check(head + piece):
            best, choice = n, piece
            if n == 0:
                break
    return choice
