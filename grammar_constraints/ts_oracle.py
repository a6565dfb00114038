"""Viable prefixes of C-family code (JavaScript, TypeScript, Go, Rust, Java, C, C++) on
tree-sitter, through the official per-language grammar wheels.

tree-sitter recovers from errors, so an ERROR node alone does not say whether a text is
unfinished (``return a +``) or wrong whatever follows (``return a + * b``): both parse with
errors. The text is viable when *some* continuation parses without any: the lexer closes what
is open (a string, a comment, the brackets, innermost first), and between the text and each
closer short fillers are tried (an operand, a statement end, an empty block, ...), the kinds of
tokens that finish a construct. The text is refused only when no combination parses; a
construct the fillers do not cover is therefore refused wrongly, which is why the soundness
tests teacher-force real files of every language through this check.

Each filler combination is one parse of the statement around the cursor (``anchor``), tens of
microseconds for a function; the common cases (the text already parses once closed, or with an
operand) come first.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from grammar_constraints.clike_lexer import (
    CODE,
    DIALECTS,
    SLASH,
    CState,
    close_brackets,
    closing,
    feed,
)

# Fillers before the closers (and before the end): what may finish the construct that is open.
# The first that parses wins, so the common ones come first.
_FILLERS = ("", " x", ";", " x;", " x {}", " {}", " x)", "()", "; x {}", " x; x {}", ": x",
            " x: x", " x = x;", " x;}", "x", " x =>x", ":x;", " x()", ";;)", " x; x)", " x.x",
            " x]", " 1", " : x", " x) {}", "() {}", "{}", "\n", " from 'x'", "'x'")
# Between a closed bracket and the block around it: the statement may end there, or need its
# body (``if (x) {}``, Go's ``if x {}``).
_JOINTS = (";", " {}", "", " x;")
# After the last closer: a declaration may still need its end (``struct s {};``), a function
# literal its call (``go func() {...}()``), arrow parameters their body.
_TAILS = ("", ";", "()", " => {}")
_NO_ERROR = 1 << 62
# Longest search for a continuation; past it the oracle does not know (and the caller fails
# open). A refusal tries every combination, ~1,000 parses of the statement at most.
BUDGET_S = 0.02


# The grammar wheels: (module, its language function).
_GRAMMARS = {
    "javascript": ("tree_sitter_javascript", "language"),
    "typescript": ("tree_sitter_typescript", "language_typescript"),
    "tsx": ("tree_sitter_typescript", "language_tsx"),
    "go": ("tree_sitter_go", "language"),
    "rust": ("tree_sitter_rust", "language"),
    "java": ("tree_sitter_java", "language"),
    "c": ("tree_sitter_c", "language"),
    "cpp": ("tree_sitter_cpp", "language"),
    "python": ("tree_sitter_python", "language"),
}


@cache
def language(name: str) -> Any:
    """The tree-sitter Language of a supported name (grammar wheels, imported lazily)."""
    import importlib

    import tree_sitter

    if name not in _GRAMMARS:
        raise ValueError(f"no tree-sitter grammar for {name!r}")
    module, function = _GRAMMARS[name]
    return tree_sitter.Language(getattr(importlib.import_module(module), function)())


@cache
def _parser(name: str) -> Any:
    import tree_sitter

    return tree_sitter.Parser(language(name))


def parses(name: str, text: str, end: int | None = None) -> bool:
    """Does ``text`` parse without any ERROR node, and without MISSING nodes before byte
    ``end`` (None: anywhere)? A MISSING node is a token tree-sitter inserted to repair the
    parse: one after ``end`` is part of a continuation, which may hold it."""
    root = _parser(name).parse(text.encode("utf-8")).root_node
    if not root.has_error:
        return True
    if end is None:
        return False
    stack = [root]
    while stack:
        node = stack.pop()
        if node.is_error or (node.is_missing and node.start_byte < end):
            return False
        if node.has_error:
            stack.extend(node.children)
    return True


class TreeSitterOracle:
    """The viable-prefix check for one C-family language."""

    def __init__(self, name: str, grammar: str | None = None) -> None:
        self.name = name
        self.grammar = grammar or name  # the parser: "tsx" for typescriptreact
        self.dialect = DIALECTS[name]

    def start(self) -> CState:
        return CState()

    def feed(self, state: CState, text: str) -> CState | None:
        return feed(self.dialect, state, text)

    def viable(self, text: str, state: CState | None = None,
               budget_s: float = BUDGET_S) -> bool | None:
        """Does some short continuation of ``text`` parse? (See the module docstring.) None
        when the search ran out of time without an answer."""
        if state is None:
            state = self.feed(CState(), text)
            if state is None:
                return False
        end = len(text.encode("utf-8"))
        deadline = time.perf_counter() + budget_s
        for probe in self._probes(text, state):
            if parses(self.grammar, probe, end):
                return True
            if time.perf_counter() > deadline:
                return None
        return False

    def first_error(self, text: str, state: CState) -> int:
        """Where the first error of ``text``, closed plainly, starts (a large number if none):
        a text whose error lies no earlier than its predecessor's did not make it worse."""
        probe = text + closing(self.dialect, state) + _between(close_brackets(state.stack), ";")
        root = _parser(self.grammar).parse(probe.encode("utf-8")).root_node
        if not root.has_error:
            return _NO_ERROR
        best = _NO_ERROR
        stack = [root]
        while stack:
            node = stack.pop()
            if node.start_byte >= best:
                continue
            if node.is_error or node.is_missing:
                best = node.start_byte
                continue
            if node.has_error:
                stack.extend(node.children)
        return best

    def _probes(self, text: str, state: CState) -> Iterator[str]:
        close = closing(self.dialect, state)
        in_code = state.mode in (CODE, SLASH)
        if in_code:
            # The last word may still grow (``for`` → ``format``): try it finished as a name.
            heads = [text, text + "x"] if re.search(r"\w$", text) else [text]
            fillers: tuple[str, ...] = _FILLERS
        else:
            # An open literal or comment, closed; an escape may still need its digits.
            heads = [text + close, text + "0000" + close]
            fillers = ("", " x", ";", " x;", " x {}", ": x", " x: x")
        closers = close_brackets(state.stack)
        joints = _JOINTS if re.search(r"[)\]`][}]", closers) else ("",)
        for head in heads:
            for filler in fillers:
                for joint in joints:
                    for tail in _TAILS:
                        yield head + filler + _between(closers, joint) + tail

    def anchor(self, prefix: str) -> int:
        """Where the top-level declaration that ``prefix`` ends in begins: the last line at
        column 0, outside comments, strings and brackets, such that the text before it parses
        without errors (so it holds only complete declarations)."""
        state: CState | None = CState()
        starts: list[int] = []
        pos = 0
        for line in re.findall(r"[^\n]*\n|[^\n]+", prefix):
            if state is not None and state.mode == CODE and not state.stack and pos and \
                    line[:1] not in (" ", "\t", "\n", "\r", "}", ")", "]", ".", "/", "*", ",",
                                     "?", ":", "&", "|", "+", "-", "=", "<", ">"):
                starts.append(pos)
            if state is not None:
                state = self.feed(state, line)
            pos += len(line)
        for start in reversed(starts[-8:]):
            if parses(self.grammar, prefix[:start]):
                return start
        return 0


def _between(closers: str, joint: str) -> str:
    """The closers, with ``joint`` wherever a block closes right after another bracket."""
    if not closers:
        return ""
    out = closers[0]
    for ch in closers[1:]:
        out += (joint if out[-1] in ")]`" and ch == "}" else "") + ch
    return out
