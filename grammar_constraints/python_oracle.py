"""Is this Python text a viable prefix — can some continuation still make it a valid program?

The judge is CPython's own parser (the reference grammar, exact and fast: ~20 µs for a
3,000-character statement). A parser answers "valid or not" for a whole program, so the text is
closed lexically (an open string or comment is ended) and followed by a sentinel character that
is never valid Python (``$``). CPython parses and tokenizes on demand: it only asks for the token
at the sentinel after every token of the text was consumed by the grammar. So

* the error is at the sentinel (or "incomplete input")  → every token fit: viable;
* the error is earlier                                  → the text itself is wrong: not viable.

The last word may be unfinished (``an`` of ``and``, ``1e`` of ``1e5``, ``!`` of ``!=``): if the
plain probe fails inside it, the probe is retried with short completions of it.

Only parsing is done (``PyCF_ONLY_AST``): ``return`` outside a function and similar compile-time
checks are not syntax in this sense and pass.
"""

from __future__ import annotations

import ast
import keyword
import re
import warnings
from typing import Any

from grammar_constraints.python_lexer import CODE, CODE_ESC, OPENERS, LexState, closing, feed

_FLAGS = ast.PyCF_ONLY_AST | 0x4000 | 0x200  # PyCF_ALLOW_INCOMPLETE_INPUT | DONT_IMPLY_DEDENT
_SENTINEL = "$"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_NUMBER_TAIL = re.compile(
    r"(?<![A-Za-z_0-9.])(\d[\d_]*\.?\d*([eE][+-]?)?|0[xXoObB]|\d[\d_]*_|\.\d*[eE][+-]?)$")
_MATCH = re.compile(r"^[ \t]*match\b[^\n]*:[ \t]*(#.*)?$", re.M)
_STRING_PREFIXES = frozenset({"r", "u", "b", "f", "br", "rb", "fr", "rf"})
# Line breaks as CPython and parso count them (a lone \r is one; \x0b, \x0c are not).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_KEYWORDS = sorted(set(keyword.kwlist) | set(keyword.softkwlist))
# Operators that are the start of a longer one: what to append to finish them.
_OP_TAILS = ("=", ">", ".", "*", "/")


def _probe(text: str, stack: str = "") -> str | None:
    """None if the parser consumed all of ``text`` (closed lexically by the caller; ``stack``:
    its open brackets), else the error message."""
    lines = _LINE_BREAK.split(text)
    closers = "".join(OPENERS[b] for b in reversed(stack))
    if lines[-1].strip(" \t\f"):
        return _compile(text + " " + _SENTINEL + closers, len(lines), len(lines[-1]) + 2,
                        len(lines[-1]) + 1)
    # An unfinished indentation: its width is not decided yet. Try the sentinel at the start
    # of the line, then indented one column deeper than the last line with code (after
    # ``if x:`` only a deeper line can follow), then at that line's indentation.
    head = text[: len(text) - len(lines[-1])]
    error = _compile(head + _SENTINEL + closers, len(lines), 1, 0)
    if error is None or stack:
        return error
    code = [ln for ln in lines[:-1] if ln.strip() and not ln.lstrip().startswith("#")]
    if not code:
        return error
    ws = code[-1][: len(code[-1]) - len(code[-1].lstrip())]
    indent = len(ws) + 1
    deeper = _compile(head + " " * indent + _SENTINEL, len(lines), indent + 1, indent)
    if deeper is None or not ws:
        return deeper
    # The block being written goes on: inside ``try:`` (no ``except`` yet) a statement at
    # column 0 is refused too, and without this witness parso had to decide, at 1-3 ms a check.
    return _compile(head + ws + _SENTINEL, len(lines), len(ws) + 1, len(ws))


def _compile(probe: str, line: int, col: int, end_col: int = 0) -> str | None:
    """Compile ``probe``, whose sentinel sits at (line, col) (1-based); None if the parser got
    to the sentinel."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes etc. are warnings, not errors
            compile(probe, "<pingti>", "exec", _FLAGS, dont_inherit=True)
    except SyntaxError as exc:
        msg = exc.msg or "invalid syntax"
        if msg == "incomplete input" or (exc.lineno == line and exc.offset == col):
            return None
        return msg
    except (ValueError, MemoryError, RecursionError) as exc:  # NUL bytes, absurd nesting
        return str(exc)
    return None  # the sentinel compiled?! only if it sat in a string or comment: fine


def viable(text: str, state: LexState | None = None) -> bool:
    """Can ``text`` (a run of whole top-level statements, unfinished at its end) still become
    a valid program? ``state``: its lexical state, if the caller tracks it."""
    if state is None:
        state = feed(LexState(), text)
        if state is None:
            return False
    closed = text + closing(state)
    if _reaches_end(closed, state.stack):
        return True
    if state.mode != CODE:
        return False  # the open string or comment was closed: no unfinished word to blame
    return any(_reaches_end(closed + tail, state.stack) for tail in _completions(text))


def _reaches_end(text: str, stack: str) -> bool:
    """Did a parser get through every token of ``text``? CPython first (fast, and the
    reference grammar); when it blames something, parso's LL(1) parser, which stops at exactly
    the first token that no program can continue with (CPython's second, error-reporting pass
    often points at the start of the construct instead)."""
    if _probe(text, stack) is None or _parso_reaches_end(text):
        return True
    # parso's grammar has no `match` statement: inside one, CPython's answer alone is not
    # reliable enough to refuse a token (fail open).
    return _MATCH.search(text) is not None


_parso_grammar: Any = None


def _parso_reaches_end(text: str) -> bool:
    global _parso_grammar
    import parso  # lazy: only when CPython's answer is not clear

    if _parso_grammar is None:
        _parso_grammar = parso.load_grammar(version="3.11")
    try:
        _parso_grammar.parse(text, error_recovery=False)
    except parso.ParserSyntaxError as exc:
        leaf = exc.error_leaf
        if leaf.value != "":
            return False  # a real token that cannot continue the program
        lines = _LINE_BREAK.split(text.rstrip())
        end = (len(lines), len(lines[-1]))
        return tuple(leaf.start_pos) >= end  # the end of the input, not a misplaced dedent
    except (RecursionError, MemoryError):
        return False
    return True


def _completions(text: str) -> list[str]:
    """Short continuations that finish an unfinished last word or operator."""
    out: list[str] = []
    m = _WORD.search(text)
    if m:
        # A word can still become a keyword, or an ordinary name (``i.is`` → ``i.isalpha``).
        word = m.group(0)
        out.append("x")
        if word.lower() in _STRING_PREFIXES:
            out.append("''")  # r → r'...': a string prefix, not a name
        if not text[: m.start()].endswith("."):
            out += [k[len(word):] for k in _KEYWORDS if k.startswith(word) and k != word]
    if _NUMBER_TAIL.search(text):
        out.append("1")
    stripped = text.rstrip(" \t")
    if stripped and stripped[-1] in "!-<>=*/.:%&|^@+~":
        out += list(_OP_TAILS)
    return out


_STATEMENT_CONTINUATIONS = ("else", "elif", "except", "finally")


def anchor(prefix: str) -> int:
    """Where the top-level statement that ``prefix`` ends in begins: the last line at column 0
    that starts a statement (outside strings and brackets), its decorators included. The
    statements before it are complete, so viability only needs the text from here."""
    state: LexState | None = LexState()
    starts: list[int] = []
    continued = False  # the previous line ended in a backslash continuation
    for m in _LINE.finditer(prefix):
        line = m.group(0)
        if state is not None and state.mode == CODE and not state.stack and not continued and \
                line[:1] not in (" ", "\t", "\f", "\n", "\r", "#"):
            word = re.match(r"[A-Za-z_]+", line)
            if not (word and word.group(0) in _STATEMENT_CONTINUATIONS):
                starts.append(m.start())
        if state is not None:
            body = line.rstrip("\r\n")
            state = feed(state, body)
            continued = state is not None and state.mode == CODE_ESC
            if state is not None:
                state = feed(state, line[len(body):])
    if not starts:
        return 0
    i = len(starts) - 1
    # Decorators belong to the definition below them.
    while i > 0 and prefix.startswith("@", starts[i - 1]) and _only_decorators(
            prefix[starts[i - 1]:starts[i]]):
        i -= 1
    return starts[i]


def skeleton(base: str) -> str:
    """``base`` (text from :func:`anchor`) without the complete statements that a later
    statement of the same block follows: the open blocks' headers and the statement being
    written stay. Every continuation of the result is viable exactly when the same continuation
    of ``base`` is (a block's other statements cannot change what may follow its last one, and
    ``else``/``except``… clauses stay with their statement), so the oracle parses a method
    rather than its whole class: measured at a 1,536-token prompt, the per-token check was 3 ms,
    mostly parso re-parsing the class when CPython blamed a token.

    Indentation is compared as text widths; with a tab in any statement's indentation the base
    is returned as it is (Python's tab rules are not worth reproducing for a speed-up)."""
    state: LexState | None = LexState()
    starts: list[tuple[int, int, bool]] = []  # (offset, indent width, a continuation clause)
    continued = False
    for m in _LINE.finditer(base):
        line = m.group(0)
        stripped = line.lstrip(" \t\f")
        if state is not None and state.mode == CODE and not state.stack and not continued \
                and stripped[:1] not in ("", "#", "\n", "\r"):
            indent = line[: len(line) - len(stripped)]
            if "\t" in indent or "\f" in indent:
                return base
            word = re.match(r"[A-Za-z_]+", stripped)
            # The line being written may still become a clause (``el`` → ``else:``).
            unfinished = not line.endswith(("\n", "\r"))
            starts.append((m.start(), len(indent), unfinished or bool(
                word and word.group(0) in _STATEMENT_CONTINUATIONS)))
        if state is None:
            return base
        body = line.rstrip("\r\n")
        state = feed(state, body)
        continued = state is not None and state.mode == CODE_ESC
        if state is not None:
            state = feed(state, line[len(body):])
    # A statement (with its continuation clauses) ends where the next statement at its width
    # or shallower begins; it can go when that one is a sibling (same width), not a dedent.
    # That next statement, for every start at once: the next start whose key is at most this
    # one's, where a clause's key is its width + 0.5 (a clause at the same width does not end
    # the statement, a shallower one does). A stack scan from the end: linear, where looking
    # ahead from each start was quadratic in a long block.
    keys = [w + 0.5 if c else float(w) for _, w, c in starts]
    nxt: list[int | None] = [None] * len(starts)
    stack: list[int] = []
    for i in range(len(starts) - 1, -1, -1):
        while stack and keys[stack[-1]] > keys[i]:
            stack.pop()
        nxt[i] = stack[-1] if stack else None
        stack.append(i)
    keep: list[str] = []
    pos = 0
    for i, (offset, width, clause) in enumerate(starts):
        if clause or offset < pos:  # a clause stays with its statement; elided already
            continue
        j = nxt[i]
        if j is not None and starts[j][1] == width:
            keep.append(base[pos:offset])
            pos = starts[j][0]
    if not keep:
        return base
    return "".join(keep) + base[pos:]


def _only_decorators(text: str) -> bool:
    return all(not line.strip() or line.lstrip().startswith(("@", "#")) or line[:1] in " \t)"
               for line in _LINE_BREAK.split(text))
