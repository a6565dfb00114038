"""Effectiveness of the viable-prefix oracle on a corpus of corrupted HumanEval programs.

Clean code: the 164 HumanEval programs (prompt + canonical solution). Each program is corrupted
once per kind, deterministically (a seeded ``random.Random``), at a random line boundary or token
position inside its canonical solution (the function header kind replaces the entry point's
header in the prompt). A corruption is a point P in the program (the clean text before it) and a
text C inserted there:

* soundness: ``viable(P)`` must hold (P is a prefix of a valid program);
* effectiveness: the corruption is caught if ``viable(P + C[:i])`` is False for some
  ``1 <= i <= len(C)``, i.e. the first refused character lies inside the corruption.

Precision on the clean side: every sampled character-boundary prefix of the clean programs must
be viable (no false rejections at all).

Every text is anchored at its current top-level statement, as :class:`SyntaxCursor` does.
"""

from __future__ import annotations

import ast
import io
import keyword
import random
import re
import tokenize
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import pytest

from grammar_constraints.python_oracle import anchor, viable
from lspbench.tasks import load_humaneval

SEED = 20240611
CUTS_PER_PROGRAM = 20
MIN_RECALL = 0.95

COMPOUND = frozenset({"if", "elif", "else", "for", "while", "try", "except", "finally", "with",
                      "def", "class", "async", "@", "match", "case"})
VALUE_KEYWORDS = frozenset({"True", "False", "None"})
CLOSER_OPS = frozenset(")]}")


def ok(text: str) -> bool:
    """The oracle as the cursor asks it: from the current top-level statement."""
    return viable(text[anchor(text):])


# --- the clean programs, tokenized -------------------------------------------------------------


@dataclass(frozen=True)
class Tok:
    type: int
    string: str
    start: int  # offsets in the program
    end: int
    depth: int  # open brackets before the token


@dataclass(frozen=True)
class Stmt:
    first: int  # index of its first token
    line_start: int  # offset of the start of its first line
    indent: int  # column of its first token
    stack: tuple[int, ...]  # indentation widths of the enclosing blocks (its own included)
    end: int  # offset just after its NEWLINE (the line break included)

    def simple(self, toks: list[Tok]) -> bool:
        return toks[self.first].string not in COMPOUND


@dataclass(frozen=True)
class Program:
    task_id: str
    text: str
    solution_start: int
    entry_point: str
    toks: list[Tok]
    stmts: list[Stmt]


def _parse(task_id: str, text: str, solution_start: int, entry_point: str) -> Program:
    line_starts = [0]
    for m in re.finditer("\n", text):
        line_starts.append(m.end())

    def off(pos: tuple[int, int]) -> int:
        return line_starts[pos[0] - 1] + pos[1]

    toks: list[Tok] = []
    stmts: list[Stmt] = []
    depth, stack, at_start, first = 0, [0], True, -1
    for t in tokenize.generate_tokens(io.StringIO(text).readline):
        if t.type == tokenize.INDENT:
            stack.append(len(t.string.expandtabs()))
        elif t.type == tokenize.DEDENT:
            stack.pop()
        toks.append(Tok(t.type, t.string, off(t.start), off(t.end), depth))
        if t.type == tokenize.OP and t.string in "([{":
            depth += 1
        elif t.type == tokenize.OP and t.string in CLOSER_OPS:
            depth -= 1
        if t.type in (tokenize.NL, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT,
                      tokenize.ENDMARKER):
            continue
        if t.type == tokenize.NEWLINE:
            if first >= 0:
                tok0 = toks[first]
                line_start = line_starts[text.count("\n", 0, tok0.start)]
                stmts.append(Stmt(first, line_start, tok0.start - line_start, tuple(stack),
                                  off(t.end)))
            at_start, first = True, -1
        elif at_start:
            at_start, first = False, len(toks) - 1
    return Program(task_id, text, solution_start, entry_point, toks, stmts)


@lru_cache(maxsize=1)
def programs() -> tuple[Program, ...]:
    out = []
    for task in load_humaneval():
        assert task.reference is not None
        out.append(_parse(task.task_id, task.prefix + task.reference, len(task.prefix),
                          task.entry_point))
    return tuple(out)


# --- corruptions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Corruption:
    kind: str
    task_id: str
    point: int  # P = program[:point]
    text: str  # C


Maker = Callable[[Program, random.Random], "tuple[int, str] | None"]


def _solution_stmts(p: Program, simple_only: bool = False) -> list[Stmt]:
    return [s for s in p.stmts if s.line_start >= p.solution_start
            and (not simple_only or s.simple(p.toks))]


def _solution_toks(p: Program) -> list[int]:
    return [i for i, t in enumerate(p.toks) if t.start >= p.solution_start
            and t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                               tokenize.DEDENT, tokenize.ENDMARKER)]


def _is_operand(t: Tok) -> bool:
    if t.type == tokenize.NAME:
        return t.string in VALUE_KEYWORDS or not (keyword.iskeyword(t.string)
                                                  or keyword.issoftkeyword(t.string))
    return t.type in (tokenize.NUMBER, tokenize.STRING) or (
        t.type == tokenize.OP and t.string in CLOSER_OPS)


def _line_after_simple(p: Program, rng: random.Random, body: Callable[[Stmt], str]
                       ) -> tuple[int, str] | None:
    """A line inserted just after a complete simple statement of the solution."""
    stmts = _solution_stmts(p, simple_only=True)
    if not stmts:
        return None
    s = rng.choice(stmts)
    return s.end, body(s)


def _line_before_stmt(p: Program, rng: random.Random, line: str) -> tuple[int, str] | None:
    """A line inserted at the line boundary before a statement, at its indentation."""
    stmts = _solution_stmts(p)
    if not stmts:
        return None
    s = rng.choice(stmts)
    return s.line_start, " " * s.indent + line


def unmatched_closer(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(a) ``)`` or ``]`` where no bracket is open (after a token at bracket depth 0)."""
    sites = [p.toks[i].end for i in _solution_toks(p)
             if p.toks[i].depth == 0 and not (p.toks[i].type == tokenize.OP
                                              and p.toks[i].string in "([{")]
    return (rng.choice(sites), rng.choice([")", "]", ") + 1", "]\n"])) if sites else None


def plus_star(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(b) ``+*`` after an operand."""
    sites = [p.toks[i].end for i in _solution_toks(p) if _is_operand(p.toks[i])]
    return (rng.choice(sites), rng.choice([" +* 2", "+*", " +*x"])) if sites else None


def broken_header(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(c) the entry point's header replaced by ``def f(:``."""
    m = re.search(rf"^def {re.escape(p.entry_point)}\(", p.text, re.M)
    assert m is not None, p.task_id
    return m.start(), "def f(:\n"


def orphan_else(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(d) ``else:`` at the indentation of a simple statement just before it."""
    return _line_after_simple(p, rng, lambda s: " " * s.indent + "else:\n")


def bad_dedent(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(e) a line dedented to a width that matches no enclosing block."""
    def body(s: Stmt) -> str:
        width = s.indent - 2 if s.indent - 2 not in s.stack else s.indent - 1
        assert 0 < width < s.indent and width not in s.stack
        return " " * width + "y = 2\n"
    return _line_after_simple(p, rng, body)


def string_across_newline(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(f) a one-line string that runs into the next line."""
    return _line_before_stmt(p, rng, rng.choice(["x = 'abc\n", 'x = "abc\n', "print('abc\n"]))


def side_by_side(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(g) two expressions side by side: a name right after an operand, or ``x = a b``."""
    if rng.random() < 0.3:
        return _line_before_stmt(p, rng, "x = a b\n")
    sites = [p.toks[i].end for i in _solution_toks(p) if _is_operand(p.toks[i])]
    return (rng.choice(sites), " " + rng.choice(["y", "val", "n2", "other", "total"])
            ) if sites else None


def keyword_as_name(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """(h) a keyword where a name must be."""
    return _line_before_stmt(p, rng, rng.choice(
        ["for in x:\n", "def class(x):\n", "import if\n", "x = def + 1\n", "class for:\n",
         "for while in x:\n", "x.if = 1\n"]))


def missing_colon(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """A block header without its colon (the rest of its line kept)."""
    sites = []
    for s in _solution_stmts(p):
        if s.simple(p.toks) or p.toks[s.first].string == "@":
            continue
        for t in p.toks[s.first:]:
            if t.type == tokenize.OP and t.string == ":" and t.depth == 0:
                end = p.text.index("\n", t.end) + 1
                sites.append((t.start, p.text[t.end:end]))
                break
    return rng.choice(sites) if sites else None


def assign_for_equals(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """``=`` instead of ``==`` in a condition (if/elif/while/return/assert, outside brackets)."""
    sites = []
    for s in _solution_stmts(p):
        if p.toks[s.first].string not in ("if", "elif", "while", "return", "assert"):
            continue
        for t in p.toks[s.first:]:
            if t.start >= s.end:
                break
            if t.type == tokenize.OP and t.string == "==" and t.depth == 0:
                sites.append((t.start, "=" + p.text[t.end:p.text.index("\n", t.end) + 1]))
    return rng.choice(sites) if sites else None


def nested_broken_def(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """``def f(:`` as a nested function at a line of the solution."""
    return _line_before_stmt(p, rng, "def f(:\n")


def mismatched_closer(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """A closer of the wrong kind: ``(]``."""
    sites = [p.toks[i] for i in _solution_toks(p)
             if p.toks[i].type == tokenize.OP and p.toks[i].string in CLOSER_OPS]
    if not sites:
        return None
    t = rng.choice(sites)
    return t.start, rng.choice(sorted(CLOSER_OPS - {t.string}))


def missing_comma(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """A comma between two items in brackets dropped (``f(a b)``; ``f(a,b)`` too, not
    merging the two); skipped where the result is still valid Python (``'a' 'b'``, ``a *b``,
    ``a -1``)."""
    sites = []
    code = _solution_toks(p)
    for k, i in enumerate(code[1:-1], 1):
        t = p.toks[i]
        if not (t.type == tokenize.OP and t.string == "," and t.depth > 0):
            continue
        prev, nxt = p.toks[code[k - 1]], p.toks[code[k + 1]]
        if nxt.type == tokenize.OP or (nxt.type == tokenize.NAME and keyword.iskeyword(nxt.string)
                                       and nxt.string not in VALUE_KEYWORDS):
            continue
        if prev.type == tokenize.STRING and nxt.type == tokenize.STRING:
            continue
        # ``f(a,b)`` becomes ``f(a b)``, not ``f(ab)``.
        gap = "" if p.text[t.end].isspace() else " "
        sites.append((t.start, gap + p.text[t.end:nxt.end + 1]))
    return rng.choice(sites) if sites else None


def unexpected_indent(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """A line indented deeper than the simple statement before it."""
    return _line_after_simple(p, rng, lambda s: " " * (s.indent + 4) + "y = 2\n")


def python2_print(p: Program, rng: random.Random) -> tuple[int, str] | None:
    """A Python 2 print statement."""
    return _line_before_stmt(p, rng, rng.choice(["print 'done'\n", 'print "x", y\n']))


KINDS: dict[str, Maker] = {
    "a unmatched closer": unmatched_closer,
    "b +* after operand": plus_star,
    "c def f(: header": broken_header,
    "d orphan else": orphan_else,
    "e dedent to no block": bad_dedent,
    "f string across newline": string_across_newline,
    "g two expressions": side_by_side,
    "h keyword as name": keyword_as_name,
    "missing colon": missing_colon,
    "= for ==": assign_for_equals,
    "nested def f(:": nested_broken_def,
    "mismatched closer": mismatched_closer,
    "missing comma": missing_comma,
    "unexpected indent": unexpected_indent,
    "python2 print": python2_print,
}


@lru_cache(maxsize=1)
def corpus() -> tuple[Corruption, ...]:
    rng = random.Random(SEED)
    out = []
    for p in programs():
        for kind, make in KINDS.items():
            made = make(p, rng)
            if made is not None:
                out.append(Corruption(kind, p.task_id, made[0], made[1]))
    return tuple(out)


@dataclass(frozen=True)
class Outcome:
    corruption: Corruption
    prefix: str  # P
    sound: bool  # viable(P)
    caught_at: int | None  # the first i with viable(P + C[:i]) False


@lru_cache(maxsize=1)
def outcomes() -> tuple[Outcome, ...]:
    texts = {p.task_id: p.text for p in programs()}
    out = []
    for c in corpus():
        prefix = texts[c.task_id][: c.point]
        sound = ok(prefix)
        caught_at = next((i for i in range(1, len(c.text) + 1) if not ok(prefix + c.text[:i])),
                         None) if sound else None
        out.append(Outcome(c, prefix, sound, caught_at))
    return tuple(out)


# --- the tests --------------------------------------------------------------------------------


def test_corpus_is_deterministic_and_covers_every_kind() -> None:
    items = corpus()
    counts: dict[str, int] = defaultdict(int)
    for c in items:
        counts[c.kind] += 1
    assert set(counts) == set(KINDS)
    # Kinds that exist in every program (a statement line, an operand, the entry point header).
    for kind in ("a unmatched closer", "b +* after operand", "c def f(: header",
                 "f string across newline", "g two expressions", "h keyword as name"):
        assert counts[kind] == 164, (kind, counts[kind])
    assert len(items) > 1800
    # The same seed gives the same corpus.
    corpus.cache_clear()
    assert corpus() == items


def test_every_corrupted_program_is_invalid() -> None:
    """The corpus is honest: each corruption, inserted into its whole program, is a syntax
    error (so a corruption that is never refused is a miss, not valid code)."""
    texts = {p.task_id: p.text for p in programs()}
    valid = []
    for c in corpus():
        text = texts[c.task_id]
        program = text[: c.point] + c.text + text[c.point:]
        try:
            ast.parse(program)
        except SyntaxError:
            continue
        valid.append((c.kind, c.task_id, c.text))
    assert not valid, valid[:10]


def test_prefixes_before_corruptions_are_viable() -> None:
    """Soundness: the clean text before every corruption point is a viable prefix."""
    unsound = [(o.corruption.kind, o.corruption.task_id, o.prefix[-60:])
               for o in outcomes() if not o.sound]
    assert not unsound, f"{len(unsound)} clean prefixes refused: {unsound[:10]}"


def test_corruptions_are_caught() -> None:
    caught: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    missed: dict[str, list[str]] = defaultdict(list)
    for o in outcomes():
        if not o.sound:
            continue
        c = o.corruption
        total[c.kind] += 1
        if o.caught_at is not None:
            caught[c.kind] += 1
        else:
            missed[c.kind].append(f"{c.task_id}: {o.prefix[-40:]!r} + {c.text!r}")
    recall = {k: caught[k] / total[k] for k in total}
    overall = sum(caught.values()) / sum(total.values())
    report = (f"overall recall {overall:.3f} ({sum(caught.values())}/{sum(total.values())}); "
              + "; ".join(f"{k}: {recall[k]:.3f} ({caught[k]}/{total[k]})" for k in KINDS)
              + "; missed examples: "
              + "; ".join(f"{k}: {v[:2]}" for k, v in missed.items()))
    print(report)
    assert overall >= MIN_RECALL, report


@pytest.mark.parametrize("kind", ["a unmatched closer", "b +* after operand", "c def f(: header",
                                  "d orphan else", "e dedent to no block",
                                  "f string across newline", "mismatched closer"])
def test_kinds_that_no_continuation_can_repair_are_always_caught(kind: str) -> None:
    missed = [(o.corruption.task_id, o.prefix[-40:], o.corruption.text) for o in outcomes()
              if o.corruption.kind == kind and o.sound and o.caught_at is None]
    assert not missed, missed[:5]


def test_clean_prefixes_are_never_refused() -> None:
    """Precision: random character-boundary cut points of the clean programs (prompt and
    solution), plus the whole program."""
    rng = random.Random(SEED + 1)
    refused = []
    checked = 0
    for p in programs():
        cuts = {len(p.text)} | {rng.randrange(1, len(p.text)) for _ in range(CUTS_PER_PROGRAM)}
        # Half of the cut points inside the solution, where generation happens.
        cuts |= {rng.randrange(p.solution_start, len(p.text)) for _ in range(CUTS_PER_PROGRAM // 2)}
        for cut in sorted(cuts):
            checked += 1
            if not ok(p.text[:cut]):
                refused.append((p.task_id, cut, p.text[max(0, cut - 60):cut]))
    print(f"precision: {checked - len(refused)}/{checked} clean prefixes viable")
    assert checked > 164 * CUTS_PER_PROGRAM
    assert not refused, f"{len(refused)} false rejections: {refused[:10]}"
