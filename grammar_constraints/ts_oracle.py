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

Why not tree-sitter's own lookahead (``Language.lookahead_iterator`` on the parse state at the
text's end)? The text is unfinished, so its tree is error-recovered: the last leaf's
``next_parse_state`` is often 0 or belongs to another GLR version, and a walk over the valid
next tokens from it completed 2 of 40 texts this search wrongly refused (tried 2026-11-29).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

from grammar_constraints.clike_lexer import (
    CHAR_ONE,
    CHAR_QUOTE,
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
_FILLERS = ("", " x", ";", " x;", " x {}", " {}", "()", " = x", " => x", " := x", "; x {}",
            " x; x {}",
            ": x", " x: x", " x = x;", " x;}", "x", " x =>x", ":x;", " x()", ";;", " x; x",
            " x.x", " 1", " : x", "() {}", "{}", "\n", " from 'x'", "'x'", " := x; x {}",
            " = x; x {}", " x; x; x {}", "; x; x {}", " range x {}",
            " x := x; x {}", " fn x() {}", " x x() {}", " x(x) {}", "x>", " x> x",
            " x := range x {}", " in x {}", "chan x", "x = x {}", "x> x x() {}", " 0;", "x;;", " x;;",
            "> = x", "x> = x", "x x x", " (;;) {}", "(;;) {}",
            " := range x {}", " while (x);", "() => x", " -> x",
            " = x {}", ' "x"', " (x);", " catch (...) {}", " finally {}",
            " class x {}", " function x() {}", " as x from 'x'")
# Between a closed bracket and the block around it: the statement may end there, or need its
# body (``if (x) {}``, Go's ``if x {}``).
_JOINTS = (";", " {}", "", " x;", "; x {}", "() {}", " => x", " x", " = x {}", "x>",
           " while (x);", " in x {}", "{}", " : x", " : x;", " catch (x) {}", " -> x", " => {}",
           " fn x() {}")
# The joints tried after the innermost closer with every filler.
_INNER_JOINTS = (" {}", ";", " => x", ">", " x {}")
# The joints tried in pairs.
_PAIR_JOINTS = ("{}", " {}", ";", " x", " => x", "() {}", " : x")
# The fillers tried with every variation of the joints (the rest only plainly).
_COMMON = 9
# After the last closer: a declaration may still need its end (``struct s {};``), a method its
# name and body (Go's ``func (r *T) m() {}``), arrow parameters their body, an import its
# source. Tried with the common fillers when at most two brackets are open (deeper, the
# declaration's end is far away), and at any depth with the innermost joint varied (last).
_TAILS = ("", ";", " {}", " x() {}", "() {}", " => {}", " fn x() {}", " : x", " from 'x'",
          " while (x);", " {};", " ? x : x")
_NO_ERROR = 1 << 62
_OPERATOR_CHARS = frozenset("-=:<>!&|+*/%^.?")
_OPERATOR_TAILS = ("=", ">", ":", "-", "&", "|", "+", ".", "<", "*")
_DIRECTIVE = re.compile(r"^[ \t]*#[ \t]*(if|ifdef|ifndef|endif)\b", re.M)
# Longest search for a continuation; past it the oracle does not know (and the caller fails
# open). Accepting a token usually takes a few parses; refusing one tries every combination,
# some hundreds of parses of the statement (incremental: only the end is re-parsed).
BUDGET_S = 0.25
# How a probe closes the text: (what goes before the closers, the joints between them, what
# goes after them).
_Layout = tuple[str, list[str], str]


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
def keywords(name: str) -> tuple[str, ...]:
    """The grammar's keywords: its anonymous nodes that are words."""
    lang = language(name)
    kinds = (lang.node_kind_for_id(i) for i in range(lang.node_kind_count)
             if not lang.node_kind_is_named(i))
    return tuple(sorted({k for k in kinds if k and re.fullmatch(r"[a-z][a-z_]+(-[a-z]+)?", k)}))


class _Incremental:
    """A parser that reuses an earlier tree: the probes of one check share their long start, so
    tree-sitter re-parses only around the changed end. One per thread and grammar (a
    tree-sitter parser is not thread-safe; the model thread checks tokens while a worker cuts
    finished completions).

    A probe's tree is built from the *base* (the text being checked, set by ``rebase``), not
    from the previous probe's: chains of incremental parses through trees with errors in them
    can end in a tree with an error that a fresh parse does not have (seen on a Java file: the
    134th probe of a check parsed cleanly alone, not after the 133 before it)."""

    def __init__(self, name: str) -> None:
        import tree_sitter

        self.parser = tree_sitter.Parser(language(name))
        self.source = b""
        self.tree: Any = None
        self.base_source = b""
        self.base_tree: Any = None

    def rebase(self, source: bytes) -> Any:
        """Parse ``source`` and keep its tree as the one later parses that extend it reuse."""
        tree = self.parse(source)
        self.base_source, self.base_tree = source, tree
        return tree

    def parse(self, source: bytes) -> Any:
        if self.base_tree is not None and len(self.base_source) >= 64 and \
                source.startswith(self.base_source):
            old, old_source = self.base_tree.copy(), self.base_source
        else:
            old, old_source = self.tree, self.source
        if old is not None:
            common = _common_prefix(old_source, source)
            if common < 64:  # little to reuse
                old = None
            else:
                if old is self.tree:
                    old = old.copy()
                old.edit(start_byte=common, old_end_byte=len(old_source),
                         new_end_byte=len(source), start_point=_point(source, common),
                         old_end_point=_point(old_source, len(old_source)),
                         new_end_point=_point(source, len(source)))
        tree = self.parser.parse(source, old) if old is not None else self.parser.parse(source)
        self.source, self.tree = source, tree
        return tree


def _common_prefix(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # binary search on slice equality: C-speed comparisons
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _point(source: bytes, offset: int) -> tuple[int, int]:
    row = source.count(b"\n", 0, offset)
    return row, offset - (source.rfind(b"\n", 0, offset) + 1)


_local = threading.local()


def _parser(name: str) -> _Incremental:
    parsers = getattr(_local, "parsers", None)
    if parsers is None:
        parsers = _local.parsers = {}
    parser = parsers.get(name)
    if parser is None:
        parser = parsers[name] = _Incremental(name)
    return parser


def utf8(text: str) -> bytes:
    """The bytes tree-sitter parses. A lone surrogate (an editor's broken character, a sampled
    token of a byte-level vocabulary) is kept as its 3 bytes instead of failing the request."""
    return text.encode("utf-8", "surrogatepass")


def parse(name: str, text: str) -> Any:
    """The tree-sitter tree of ``text`` in grammar ``name`` (this thread's incremental
    parser: cheap when ``text`` shares a long start with the text parsed before)."""
    return _parser(name).parse(utf8(text))


def parses(name: str, text: str, end: int | None = None) -> bool:
    """Does ``text`` parse without any ERROR node, and without MISSING nodes before byte
    ``end`` (None: anywhere)? A MISSING node is a token tree-sitter inserted to repair the
    parse: one after ``end`` is part of a continuation, which may hold it."""
    root = _parser(name).parse(utf8(text)).root_node
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
        # The last continuation that parsed: (text, text + continuation).
        self.witness: tuple[str, str] | None = None
        # The last search ran out of time: the construct being written is one the search does
        # not know, and the next token's search would most likely run out too. Until a search
        # succeeds again, searches get a fifth of the budget (a time-out lets the token through,
        # so this costs no soundness, only the refusals the long search would have made).
        self.behind = False

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
        data = utf8(text)
        end = len(data)
        _parser(self.grammar).rebase(data)
        deadline = time.perf_counter() + (budget_s / 5 if self.behind else budget_s)
        for probe in self._probes(text, state):
            if parses(self.grammar, probe, end):
                self.witness = (text, probe)
                self.behind = False
                return True
            if time.perf_counter() > deadline:
                self.behind = True
                return None
        return False

    def tree(self, text: str) -> Any:
        """The parse of ``text`` (incremental: shares the oracle's parser)."""
        return parse(self.grammar, text)

    def plain_close(self, text: str, state: CState) -> str:
        """What closes ``text`` plainly: its open literal or comment, then its brackets."""
        closers = close_brackets(state.stack, self.dialect)
        return closing(self.dialect, state) + _join(closers, _default_joints(closers))

    def first_error(self, text: str, state: CState) -> int:
        """Where the first error of ``text``, closed plainly, starts (a large number if none):
        a text whose error lies no earlier than its predecessor's did not make it worse."""
        probe = text + self.plain_close(text, state)
        root = _parser(self.grammar).parse(utf8(probe)).root_node
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
        """Candidate continuations, most common first (the first that parses ends the search;
        a refusal tries them all, within the time budget)."""
        heads = self._heads(text, state)
        closers = close_brackets(state.stack, self.dialect)
        default = _default_joints(closers)
        layouts = self._layouts(text, closers, default)
        tails = _TAILS if len(state.stack) <= 2 else _TAILS[:1]
        yield from _plain_probes(heads, closers, layouts)
        yield from _joint_probes(heads, closers, default, layouts)
        yield from _tail_probes(heads, closers, layouts, tails)
        yield from _pair_probes(heads[0], closers, layouts[0])
        yield from _deep_tail_probes(heads, closers, default)

    def _heads(self, text: str, state: CState) -> list[str]:
        """The readings of the text's end, most common first: the text itself, its last word,
        operator or number grown, its open literal or comment closed, generics closed."""
        in_code = state.mode in (CODE, SLASH)
        if in_code:
            heads = self._code_heads(text, state)
        else:
            # An open literal or comment, closed; an escape may still need its digits.
            close = closing(self.dialect, state)
            heads = [text + close, text + "0000" + close]
            if state.mode in (CHAR_QUOTE, CHAR_ONE):  # Rust: or a lifetime ('a, 'static)
                heads.append(text + ("a" if state.mode == CHAR_QUOTE else ""))
        if re.search(r"(?<![\w.])\d[\w']*$", text):  # an unfinished number: 2_, 0x, 1e
            heads.append(text + "1")
        angles = _open_angles(text)
        if angles:
            # Generic arguments or parameters left open (``Array<T``, ``<T extends``): the
            # lexer cannot tell them from a comparison, so they are closed here, after the
            # last word or after a type. In code, right after the common readings (the text
            # itself, its last word grown); in a literal (``Pick<T, "a" | "``, a Rust
            # lifetime's quote), last.
            at = (2 if len(heads) > 1 and heads[1] == text + "x" else 1) if in_code \
                else len(heads)
            heads[at:at] = [h + f + ">" * angles for h in heads[:at] for f in ("", " x", "x")]
        return heads

    def _code_heads(self, text: str, state: CState) -> list[str]:
        """In code: the text, and what its last word or operator may still grow into."""
        heads = [text]
        word = re.search(r"[A-Za-z_]\w*$", text)
        hyphened = re.search(r"\b[a-z]+-[a-z]*$", text)
        if hyphened:  # Java's non-sealed
            w = hyphened.group(0)
            heads += [text + k[len(w):] for k in keywords(self.grammar)
                      if k.startswith(w) and k != w]
        if word:
            # The last word may still grow: into a name (``for`` → ``format``), or into a
            # keyword (``e`` → ``else``).
            heads.append(text + "x")
            w = word.group(0)
            heads += [text + k[len(w):] for k in keywords(self.grammar)
                      if k.startswith(w) and k != w]
        elif text[-1:] in _OPERATOR_CHARS:
            # The first character of a longer operator (``-`` → ``->``, ``:`` → ``:=``).
            heads += [text + t for t in _OPERATOR_TAILS]
        if state.mode == SLASH:
            heads.append(text + "/\n")  # the start of a comment
            if state.aux:  # or of a regular expression
                heads.insert(0, text + "x/")
        return heads

    def _layouts(self, text: str, closers: list[str], default: list[str]) -> list[_Layout]:
        """The ways to lay out the closing around the brackets' closers, plain first."""
        end = ";" if self.name in ("c", "cpp") and closers and closers[-1] == "}" else ""
        # C/C++ conditionals left open: their #endif goes after the brackets (opened before the
        # #if), before them (opened after it), or between (a method's body, in a class body
        # the #if is in).
        endifs, inside = self._endifs(text)
        split = [*default[: inside - 1], default[inside - 1] + endifs, *default[inside:]] \
            if 0 < inside < len(closers) else None

        def layouts_ending(e: str) -> list[_Layout]:
            return [("", default, e + endifs)] + ([(endifs, default, e)] if endifs else []) + \
                ([("", split, e)] if split else [])

        # The ";" ends a struct or class; after a function's body it may not stand.
        return layouts_ending(end) + (layouts_ending("") if end else [])

    def _endifs(self, text: str) -> tuple[str, int]:
        """C and C++: an ``#endif`` for each conditional the text leaves open, and how many
        brackets were opened (net, counted roughly) after the innermost open one."""
        if self.name not in ("c", "cpp") or "#" not in text:
            return "", 0
        opened: list[int] = []
        for m in _DIRECTIVE.finditer(text):
            if m.group(1).startswith("if"):
                opened.append(m.end())
            elif opened:
                opened.pop()
        if not opened:
            return "", 0
        after = text[opened[-1]:]
        inside = sum(after.count(c) for c in "([{") - sum(after.count(c) for c in ")]}")
        return "\n#endif" * len(opened) + "\n", inside

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


def _plain_probes(heads: list[str], closers: list[str], layouts: list[_Layout]
                  ) -> Iterator[str]:
    """1. Each filler, the brackets closed plainly."""
    for head in heads:
        for filler in _FILLERS:
            for before, joints, after in layouts:
                yield head + filler + before + _join(closers, joints) + after


def _joint_probes(heads: list[str], closers: list[str], default: list[str],
                  layouts: list[_Layout]) -> Iterator[str]:
    """2. Common fillers with one bracket's joint varied (``if (x) {}``, ``[&]() {}``); then
    the other fillers with the innermost bracket's most common joints (a Java record's
    ``(@x x x) {}``, Go's ``[]<-chan x) {}``)."""
    for head in heads:
        for filler in _FILLERS[:_COMMON]:
            for i in range(1, len(closers)):
                for joint in _JOINTS:
                    if joint != default[i - 1]:
                        for before, base, after in layouts:
                            joints = [*base[: i - 1], joint, *base[i:]]
                            yield head + filler + before + _join(closers, joints) + after
    for filler in _FILLERS[_COMMON:]:
        for joint in _INNER_JOINTS:
            if len(closers) > 1 and joint != default[0]:
                for before, base, after in layouts[:1]:
                    yield heads[0] + filler + before + _join(closers, [joint, *base[1:]]) + after


def _tail_probes(heads: list[str], closers: list[str], layouts: list[_Layout],
                 tails: tuple[str, ...]) -> Iterator[str]:
    """3. Common fillers with a declaration's end after the brackets."""
    for head in heads:
        for filler in _FILLERS[:_COMMON]:
            for tail in tails[1:]:
                for before, joints, after in layouts:
                    yield head + filler + before + _join(closers, joints) + tail + after


def _pair_probes(text: str, closers: list[str], layout: _Layout) -> Iterator[str]:
    """4. Two joints varied, the text as it is (``&struct {`` in a literal in a range clause:
    ``}{}`` closes the literal, `` {}`` is the loop's body)."""
    before, base, after = layout
    for i in range(1, len(closers)):
        for j in range(i + 1, len(closers)):
            for a in _PAIR_JOINTS:
                for b in _PAIR_JOINTS:
                    joints = [*base[: i - 1], a, *base[i:j - 1], b, *base[j:]]
                    yield text + before + _join(closers, joints) + after


def _deep_tail_probes(heads: list[str], closers: list[str], default: list[str]
                      ) -> Iterator[str]:
    """5. However deep the text, the innermost joint varied with the declaration's end after
    all the brackets (a TypeScript conditional type: ``S extends { f: () => x } ? x : x``,
    ``? { [K in keyof x]: x } : x``)."""
    if len(closers) <= 1:
        return
    for head in [heads[0], *(h for h in heads[1:] if h.endswith(">"))]:
        for filler in ("", " x"):
            for joint in (*_INNER_JOINTS, ": x"):
                for tail in _TAILS[1:]:
                    joints = [joint, *default[1:]]
                    yield head + filler + _join(closers, joints) + tail


# The tokens that open or close generic arguments, and those that only look like them.
_ANGLE = re.compile(r"->|=>|<<=|>>=|<=|>=|<-|<<|>>|<|>|[;{}]")


def _open_angles(text: str) -> int:
    """How many ``<`` of generics the text's last statement leaves open, at a guess (a ``<``
    directly after a name or ``::``, or after ``=``/``static`` in a generic arrow or method,
    counts; a comparison then costs the search some useless probes, never a refusal)."""
    depth = 0
    for m in _ANGLE.finditer(text, max(0, len(text) - 400)):
        t = m.group(0)
        if t in (";", "{", "}"):
            depth = 0
        elif t == "<":
            depth += 1
        elif t == ">":
            depth = max(0, depth - 1)
        elif t == ">>":
            depth = max(0, depth - 2)
    return depth


def _default_joints(closers: list[str]) -> list[str]:
    """What goes between each pair of closers by default: a statement end before a block
    closes after a bracket or a template (``f(x);}``), nothing elsewhere."""
    return [";" if a[-1] in ")]`" and b == "}" else ""
            for a, b in zip(closers, closers[1:], strict=False)]


def _join(closers: list[str], joints: list[str]) -> str:
    if not closers:
        return ""
    return closers[0] + "".join(j + c for j, c in zip(joints, closers[1:], strict=True))
