"""Effectiveness of the C-family syntax constraint (JavaScript, TypeScript, Go, Rust, Java, C,
C++) on a hand-written corpus of corrupted programs.

One clean program per language; each corruption is a point in it (the clean text before the
point is the prefix P) and a corrupting token text C inserted there: an unmatched closer, a
doubled binary operator, ``else`` without ``if``, a keyword twice or where a name must be, a
missing operand, a broken parameter list, a one-line string running into the next line, two
literals in a row, ``=>``/``=``/``->`` mix-ups, a wrong closer, ... The corruptions were written
first, naturally, for each language, and then measured; none was dropped or reworded because the
constraint misses it. (Where a corruption is valid in some language it is not used there:
``a +* b`` is ``a + (*b)`` in Go, Rust, C and C++, which get ``a +/ b``; ``return return x`` is
valid Rust, which gets ``let let``; Rust strings may span lines, so Rust gets a character
literal across a line break; ``f(:`` may begin ``f(::path)`` in Rust and C++, which get a
parameter list missing a separator.)

The measures:

* soundness: P must be viable (the oracle finds a continuation; every P here is a prefix of the
  clean program);
* the check as the cursor asks it: ``still_viable(P + C, state, P, state_P)`` is False, or
  ``P + C`` is lexically impossible;
* the decoder's view: a :class:`SyntaxConstraint` after P, over a tiny vocabulary (printable
  characters and common C-family words), refuses one of the pieces C is made of.

The oracle searches within a time budget and, out of time, does not refuse (fails open). A
refusal tries every continuation (hundreds of parses: 10-60 ms on a loaded 2-core machine with
the library as of this test, 50-160 ms with an earlier version), so whether it finishes within
the production budget depends on the machine; the recall floor is asserted with a generous
budget (deterministic), and the production-budget figures are printed.
"""

from __future__ import annotations

import string
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

import pytest

from grammar_constraints import ts_oracle
from grammar_constraints.clike_lexer import DIALECTS, CState, feed
from grammar_constraints.languages import ClikeSyntax, syntax_for
from grammar_constraints.processor import SyntaxConstraint
from grammar_constraints.ts_oracle import TreeSitterOracle, parses
from grammar_constraints.vocab import TokenTable

LANGUAGES = ("javascript", "typescript", "go", "rust", "java", "c", "cpp")
# Long enough that no check here runs out of time (a refusal takes < 0.3 s even under load).
PATIENT_S = 5.0
# Measured (generous budget, and the same at the production budget on an idle machine),
# 2026-11-29: 134/136 = 0.985, both through still_viable and through the constraint
# (javascript, typescript, java, c, cpp all caught; go 19/20, rust 18/19). The two misses are
# tree-sitter's leniency (TREE_SITTER_ACCEPTS): Go's ``a++ + b`` read as ``a + +(+b)``, and a
# hole in a Rust argument list (which a macro's arguments may really hold). The bar.
MIN_RECALL = 0.95


class PatientOracle(TreeSitterOracle):
    """The tree-sitter oracle with a generous time budget, counting its time-outs."""

    def __init__(self, name: str, grammar: str | None = None,
                 budget_s: float = PATIENT_S) -> None:
        super().__init__(name, grammar)
        self.budget_s = budget_s
        self.timeouts = 0

    def viable(self, text: str, state: CState | None = None,
               budget_s: float | None = None) -> bool | None:
        verdict = super().viable(text, state, self.budget_s if budget_s is None else budget_s)
        self.timeouts += verdict is None
        return verdict


def clike_syntax(lang: str, budget_s: float | None = PATIENT_S) -> ClikeSyntax:
    """``syntax_for(lang)``, its oracle searching ``budget_s`` (None: the production budget)
    and counting its time-outs."""
    syntax = syntax_for(lang)
    assert isinstance(syntax, ClikeSyntax)
    budget = ts_oracle.BUDGET_S if budget_s is None else budget_s
    syntax.oracle = PatientOracle(syntax.oracle.name, syntax.oracle.grammar, budget)
    return syntax


# --- the clean programs -----------------------------------------------------------------------

PROGRAMS = {
    "javascript": """\
import { readFile } from "fs";

// Sum two numbers.
function add(a, b) {
  let total = a + b;
  if (total > 10) {
    console.log("big", total);
    return total;
  } else {
    total += 1;
  }
  for (let i = 0; i < 3; i++) {
    console.log(`i = ${i}`);
  }
  const xs = [1, 2, 3].map((x) => x * 2);
  const re = /[(]+/g;
  return xs.length / 2 + (re.test("(") ? 1 : 0);
}

class Point {
  constructor(x, y) {
    this.x = x;
    this.y = { y, tag: 'p' };
  }
}
""",
    "typescript": """\
import { readFile } from "fs";

interface Point {
  x: number;
  y?: string;
}

type Pair<T> = [T, T];

function add(a: number, b: number): number {
  let total: number = a + b;
  if (total > 10) {
    return total;
  } else {
    total += 1;
  }
  const xs: Array<number> = [1, 2, 3].map((x: number): number => x * 2);
  for (const x of xs) {
    console.log(`x = ${x}`);
  }
  return xs.length as number;
}

export class Box<T> {
  private value: T;
  constructor(value: T) {
    this.value = value;
  }
}
""",
    "go": """\
package main

import (
\t"fmt"
\t"strings"
)

type Point struct {
\tX, Y int
}

// Add sums two numbers.
func add(a int, b int) int {
\ttotal := a + b
\tif total > 10 {
\t\treturn total
\t} else {
\t\ttotal++
\t}
\tfor i := 0; i < 3; i++ {
\t\tfmt.Println("i =", i)
\t}
\ts := `raw
string`
\treturn total + len(strings.Fields(s))
}

func (p *Point) Norm() int {
\treturn p.X*p.X + p.Y*p.Y
}
""",
    "rust": """\
use std::collections::HashMap;

struct Point<'a> {
    name: &'a str,
    x: i32,
}

/// Sum two numbers.
fn add(a: i32, b: i32) -> i32 {
    let mut total = a + b;
    if total > 10 {
        return total;
    } else {
        total += 1;
    }
    let v: Vec<i32> = vec![1, 2, 3];
    for i in 0..3 {
        println!("i = {}", i);
    }
    let c = '(';
    let m: HashMap<String, i32> = HashMap::new();
    total + v.len() as i32 + m.len() as i32
}

impl<'a> Point<'a> {
    fn norm(&self) -> i32 {
        self.x * self.x
    }
}
""",
    "java": """\
import java.util.List;

public class Calc {
    private int count = 0;

    /** Sum two numbers. */
    public int add(int a, int b) {
        int total = a + b;
        if (total > 10) {
            return total;
        } else {
            total += 1;
        }
        for (int i = 0; i < 3; i++) {
            System.out.println("i = " + i);
        }
        List<Integer> xs = List.of(1, 2, 3);
        char c = '(';
        return total + xs.size();
    }
}
""",
    "c": """\
#include <stdio.h>

struct point {
    int x;
    int y;
};

/* Sum two numbers. */
int add(int a, int b) {
    int total = a + b;
    if (total > 10) {
        return total;
    } else {
        total += 1;
    }
    for (int i = 0; i < 3; i++) {
        printf("i = %d\\n", i);
    }
    char c = '(';
    struct point p = {1, 2};
    return total + p.x + c;
}
""",
    "cpp": """\
#include <vector>

template <typename T>
struct Box {
    T value;
};

// Sum two numbers.
int add(int a, int b) {
    int total = a + b;
    if (total > 10) {
        return total;
    } else {
        total += 1;
    }
    std::vector<int> v{1, 2, 3};
    for (int x : v) {
        total += x;
    }
    auto f = [&](int y) { return y * 2; };
    return total + f(1'000);
}
""",
}

# --- the corruptions: (kind, insert after the first occurrence of this text (None: at the
# end), the corrupting text) --------------------------------------------------------------------
# The corrupting text must leave no continuation: ``a +/`` may still become ``a +// note`` and
# the next line, so the ``+/`` corruptions include the space after the slash.

CORRUPTIONS: dict[str, list[tuple[str, str | None, str]]] = {
    "javascript": [
        ("unmatched closer", "let total = a + b", ")"),
        ("doubled operator", "let total = a ", "+*"),
        ("else without if", "let total = a + b;\n  ", "else {"),
        ("return return", "    return ", "return "),
        ("missing operand (,", "console.log(", ","),
        ("broken parameters", "function add(", ":"),
        ("string across newline", "const xs = ", '"abc\n'),
        ("two literals", "[1", " 2"),
        ("=> for =", "let total ", "=> "),
        ("= =", "let total =", " ="),
        ("mismatched closer", "if (total > 10", "]"),
        ("keyword as name", "const ", "return "),
        ("missing operand", "let total = a +", ";"),
        ("extra closing brace", None, "}"),
        ("if without parentheses", "  if", " total"),
        ("double dot", "console.", "."),
        ("=> after a declaration", "function add(a, b) ", "=> "),
        ("-> for =>", "map((x) ", "->"),
        ("; before )", "i < 3; i++", ";"),
        ("else else", "} else ", "else "),
        ("class with parameters", "class Point", "("),
    ],
    "typescript": [
        ("unmatched closer", "let total: number = a + b", ")"),
        ("doubled operator", "let total: number = a ", "+*"),
        ("else without if", "a + b;\n  ", "else {"),
        ("return return", "    return ", "return "),
        ("missing operand (,", "console.log(", ","),
        ("broken parameters", "function add(", ":"),
        ("string across newline", "const xs: Array<number> = ", '"abc\n'),
        ("two literals", "[1", " 2"),
        ("=> for =", "let total: number ", "=> "),
        ("= =", "let total: number =", " ="),
        ("mismatched closer", "if (total > 10", "]"),
        ("keyword as name", "  let ", "return "),
        ("missing operand", "let total: number = a +", ";"),
        ("extra closing brace", None, "}"),
        ("type annotation ::", "  x: ", ":"),
        ("=> for a return type", "function add(a: number, b: number): ", "=> "),
        ("if without parentheses", "  if", " total"),
        ("doubled >", "Array<number", ">>"),
        ("interface with =", "interface Point ", "= "),
    ],
    "go": [
        ("unmatched closer", "total := a + b", ")"),
        ("doubled operator", "total := a ", "+/ "),
        ("else without if", "total := a + b\n\t", "else {"),
        ("return return", "\t\treturn ", "return "),
        ("missing operand (,", "fmt.Println(", ","),
        ("broken parameters", "func add(", ":"),
        ("string across newline", "fmt.Println(", '"abc\n'),
        ("two literals", "for i := 0", " 1"),
        ("=> for =", "\ttotal ", "=> "),
        ("= =", "total :=", " ="),
        ("mismatched closer", "strings.Fields(s", "]"),
        ("keyword as name", "type ", "func "),
        ("missing operand", "total := a +", ";"),
        ("extra closing brace", None, "}"),
        ("C-style for", "\tfor ", "(i := 0;"),
        ("x++ as an expression", "total := a", "++ "),
        ("elif", "\t} ", "elif "),
        ("=> after a signature", "func add(a int, b int) int ", "=> "),
        ("-> for a result type", "func add(a int, b int) ", "-> "),
        ("ternary", "total := a + b", " ? "),
    ],
    "rust": [
        ("unmatched closer", "let mut total = a + b", ")"),
        ("doubled operator", "let mut total = a ", "+/ "),
        ("else without if", "let mut total = a + b;\n    ", "else {"),
        ("let let", "    let ", "let "),
        ("missing operand (,", "HashMap::new(", ","),
        ("broken parameters", "fn add(a", " i32"),
        ("char literal across newline", "let c = ", "'(\n"),
        ("two literals", "0..3", " 4"),
        ("=> for =", "let mut total ", "=> "),
        ("= =", "let mut total =", " ="),
        ("mismatched closer", "HashMap::new(", "]"),
        ("keyword as name", "struct ", "fn "),
        ("missing operand", "let mut total = a +", ";"),
        ("extra closing brace", None, "}"),
        ("C-style for", "    for", " (i = 0;"),
        ("=> for ->", "fn add(a: i32, b: i32) ", "=> "),
        ("::::", "HashMap::", "::"),
        ("missing type", "let v:", " ="),
        ("ternary", "let mut total = a + b", " ? 1 : 2"),
    ],
    "java": [
        ("unmatched closer", "int total = a + b", ")"),
        ("doubled operator", "int total = a ", "+*"),
        ("else without if", "int total = a + b;\n        ", "else {"),
        ("return return", "            return ", "return "),
        ("missing operand (,", "System.out.println(", ","),
        ("broken parameters", "public int add(", ":"),
        ("string across newline", "System.out.println(", '"abc\n'),
        ("two literals", "List.of(1", " 2"),
        ("=> for =", "int total ", "=> "),
        ("= =", "int total =", " ="),
        ("mismatched closer", "if (total > 10", "]"),
        ("keyword as name", "char ", "class "),
        ("missing operand", "int total = a +", ";"),
        ("extra closing brace", None, "}"),
        ("; before )", "i < 3; i++", ";"),
        ("if without parentheses", "        if", " total"),
        ("field without a type", "    private ", "= "),
        ("=> after a signature", "public int add(int a, int b) ", "=> "),
        ("char literal across newline", "char c = ", "'(\n"),
    ],
    "c": [
        ("unmatched closer", "int total = a + b", ")"),
        ("doubled operator", "int total = a ", "+/ "),
        ("else without if", "int total = a + b;\n    ", "else {"),
        ("return return", "        return ", "return "),
        ("missing operand (,", "printf(", ","),
        ("broken parameters", "int add(", ":"),
        ("string across newline", "printf(", '"abc\n'),
        ("two literals", "{1", " 3"),
        ("=> for =", "int total ", "=> "),
        ("= =", "int total =", " ="),
        ("mismatched closer", "if (total > 10", "]"),
        ("keyword as name", "char ", "return "),
        ("missing operand", "int total = a +", ";"),
        ("extra closing brace", None, "}"),
        ("; before )", "i < 3; i++", ";"),
        ("if without parentheses", "    if", " total"),
        ("=> after a signature", "int add(int a, int b) ", "=> "),
        ("struct struct", "struct point ", "struct "),
        ("char literal across newline", "char c = ", "'(\n"),
    ],
    "cpp": [
        ("unmatched closer", "int total = a + b", ")"),
        ("doubled operator", "int total = a ", "+/ "),
        ("else without if", "int total = a + b;\n    ", "else {"),
        ("return return", "        return ", "return "),
        ("missing operand (,", "f(", ","),
        ("broken parameters", "int add(int a", " int"),
        ("string across newline", "auto f = ", '"abc\n'),
        ("two literals", "v{1", " 3"),
        ("=> for =", "int total ", "=> "),
        ("= =", "int total =", " ="),
        ("mismatched closer", "if (total > 10", "]"),
        ("keyword as name", "    int ", "class "),
        ("missing operand", "int total = a +", ";"),
        ("extra closing brace", None, "}"),
        (":::", "std:", "::"),
        ("template <,", "template <", ","),
        ("if without parentheses", "    if", " total"),
        ("=> after a signature", "int add(int a, int b) ", "=> "),
        ("=> in a lambda", "[&](int y) ", "=> "),
    ],
}


@dataclass(frozen=True)
class Case:
    lang: str
    kind: str
    prefix: str  # P: the clean program up to the corruption
    token: str  # C
    rest: str  # the clean program after P

    def __str__(self) -> str:
        return f"{self.lang}/{self.kind}: {self.prefix[-30:]!r} + {self.token!r}"


@cache
def corpus() -> tuple[Case, ...]:
    out = []
    for lang, items in CORRUPTIONS.items():
        program = PROGRAMS[lang]
        for kind, after, token in items:
            if after is None:
                point = len(program)
            else:
                at = program.find(after)
                assert at >= 0, (lang, after)
                point = at + len(after)
            out.append(Case(lang, kind, program[:point], token, program[point:]))
    return tuple(out)


# --- the decoder's view: a tiny vocabulary -----------------------------------------------------

EOS = 0
WORDS = ["return ", "else ", "else", "const ", "let ", "if ", "for ", "class ", "fn ", "func ",
         "struct ", "int ", "char ", "function ", "=>", "->", "::", "++", "+=", "==", " {",
         "    ", "\n", "  ", "\t"]
TEXTS = [""] + list(dict.fromkeys(WORDS + list(string.printable)))
TABLE = TokenTable(TEXTS, always_allowed=[EOS])
_BY_LENGTH = sorted(TEXTS[1:], key=len, reverse=True)


def tokenize(text: str) -> list[int]:
    """Greedy longest match over the tiny vocabulary."""
    ids, i = [], 0
    while i < len(text):
        piece = next(p for p in _BY_LENGTH if text.startswith(p, i))
        ids.append(TEXTS.index(piece))
        i += len(piece)
    return ids


def detokenize(ids: list[int]) -> str:
    return "".join(TEXTS[i] for i in ids)


# --- the measurements -------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    case: Case
    prefix_viable: bool | None
    by_check: bool  # still_viable(P + C, ..., P, ...) is False (or P + C lexically impossible)
    by_constraint: bool  # the constraint refused one of C's pieces
    timeouts: int  # oracle searches that ran out of time


def measure(case: Case, budget_s: float | None) -> Outcome:
    syntax = clike_syntax(case.lang, budget_s)
    dialect = DIALECTS[case.lang]
    base = case.prefix[syntax.anchor(case.prefix):]
    before = feed(dialect, CState(), base)
    assert before is not None, case
    prefix_viable = syntax.oracle.viable(base, before)
    after = feed(dialect, before, case.token)
    by_check = after is None or not syntax.still_viable(base + case.token, after, base, before)
    # A fresh syntax for the constraint: no verdict cached by the check above.
    syntax2 = clike_syntax(case.lang, budget_s)
    constraint = SyntaxConstraint(TABLE, case.prefix, detokenize, syntax2)
    assert constraint.active, case
    generated: list[int] = []
    by_constraint = False
    for tok in tokenize(case.token):
        if not constraint.check(generated, tok):
            by_constraint = True
            break
        generated.append(tok)
    timeouts = sum(s.oracle.timeouts for s in (syntax, syntax2))  # type: ignore[attr-defined]
    return Outcome(case, prefix_viable, by_check, by_constraint, timeouts)


@cache
def outcomes(budget_s: float | None = PATIENT_S) -> tuple[Outcome, ...]:
    return tuple(measure(c, budget_s) for c in corpus())


def recall_report(outs: tuple[Outcome, ...]) -> tuple[float, float, str]:
    caught: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    missed: dict[str, list[str]] = defaultdict(list)
    for o in outs:
        row = caught[o.case.lang]
        row[0] += o.by_check
        row[1] += o.by_constraint
        row[2] += 1
        if not o.by_check:
            missed[o.case.lang].append(o.case.kind)
    n = len(outs)
    check = sum(r[0] for r in caught.values()) / n
    constraint = sum(r[1] for r in caught.values()) / n
    lines = [f"overall: still_viable {check:.3f}, constraint {constraint:.3f} ({n} cases)"]
    for lang in LANGUAGES:
        r = caught[lang]
        lines.append(f"  {lang:10} still_viable {r[0]}/{r[2]} = {r[0] / r[2]:.3f}, "
                     f"constraint {r[1]}/{r[2]}; missed: {', '.join(missed[lang]) or '-'}")
    return check, constraint, "\n".join(lines)


# --- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_clean_programs_parse(lang: str) -> None:
    syntax = clike_syntax(lang)
    assert parses(syntax.oracle.grammar, PROGRAMS[lang]), lang
    end = feed(DIALECTS[lang], CState(), PROGRAMS[lang])
    assert end is not None and (end.mode, end.stack) == (CState().mode, ""), end


def test_the_corpus_covers_every_language() -> None:
    counts: dict[str, int] = defaultdict(int)
    for case in corpus():
        counts[case.lang] += 1
        assert case.prefix + case.rest == PROGRAMS[case.lang]
    assert set(counts) == set(LANGUAGES)
    assert min(counts.values()) >= 15, counts
    assert len(corpus()) == len(set(corpus()))


# Corrupted programs that tree-sitter parses without an error (its grammars are lenient): in
# JavaScript, TypeScript and Rust an argument list may have holes (``f(, a)``); tree-sitter-go
# splits ``a++ + b`` as ``a + +(+b)``; tree-sitter-c reads ``struct point struct {`` and
# tree-sitter-cpp ``std:::vector`` without complaint.
TREE_SITTER_ACCEPTS = {"javascript": {"missing operand (,"}, "typescript": {"missing operand (,"},
                       "rust": {"missing operand (,"}, "go": {"x++ as an expression"},
                       "c": {"struct struct"}, "cpp": {":::"}}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_corrupted_programs_do_not_parse(lang: str) -> None:
    """Honesty, as far as tree-sitter can tell: the corruption inserted into the clean program
    breaks it. tree-sitter's grammars accept some invalid programs (a keyword used as a name,
    ``f(, a)``, an identifier run into ``++``); those are listed (printed), and a corruption
    that tree-sitter accepts cannot be refused by an oracle built on it."""
    accepted = set()
    syntax = clike_syntax(lang)
    for case in corpus():
        if case.lang == lang and parses(syntax.oracle.grammar, case.prefix + case.token + case.rest):
            accepted.add(case.kind)
    print(f"\n{lang}: corruptions tree-sitter accepts: {sorted(accepted) or '-'}")
    assert accepted <= TREE_SITTER_ACCEPTS.get(lang, set()), accepted


def test_the_prefixes_are_viable() -> None:
    """Soundness: every P is a prefix of its clean program, so the oracle must find a
    continuation (with a generous budget, so a time-out does not hide a false refusal)."""
    refused = [str(o.case) for o in outcomes() if o.prefix_viable is not True]
    assert not refused, refused


def test_recall() -> None:
    outs = outcomes()
    check, constraint, report = recall_report(outs)
    print("\n" + report)
    assert sum(o.timeouts for o in outs) == 0
    # The cursor's relative check and the constraint see the same thing: a corruption the
    # token-level check catches, the constraint catches at the latest on its last piece.
    assert all(o.by_constraint for o in outs if o.by_check), [
        str(o.case) for o in outs if o.by_check and not o.by_constraint]
    assert check >= MIN_RECALL, report
    assert constraint >= MIN_RECALL, report


@pytest.mark.parametrize("kind", ["unmatched closer", "mismatched closer", "extra closing brace",
                                  "broken parameters", "= =", "missing operand"])
def test_kinds_no_continuation_repairs_are_caught_everywhere(kind: str) -> None:
    missed = [str(o.case) for o in outcomes() if o.case.kind == kind and not o.by_check]
    assert not missed, missed


def test_recall_at_the_production_budget() -> None:
    """The figure the decoder gets on this machine (time-dependent: printed, not asserted
    beyond the lexical refusals, which need no search)."""
    outs = outcomes(None)
    check, constraint, report = recall_report(outs)
    timeouts = sum(o.timeouts for o in outs)
    print(f"\nproduction budget: {timeouts} searches out of time\n{report}")
    lexical = [o for o in outs if feed(DIALECTS[o.case.lang], CState(),
                                       o.case.prefix + o.case.token) is None]
    assert lexical and all(o.by_check and o.by_constraint for o in lexical)


# --- soundness at character granularity on the clean programs ----------------------------------

# Clean prefixes (cut at every character) that the oracle refuses, measured when this test was
# written; the test fails if a language gets more. The causes: a '/' that starts a comment at
# statement level (Go, Rust, Java, C, C++), 'for ' before its parenthesis (JavaScript,
# TypeScript, Java, C, C++) and Rust's 'for ' and 'for i i' before 'in', the first letters of a
# keyword where only that keyword fits ('} e' in Go, 'export c', 'import { a } f', 'xs.length a'
# before 'as', 'f' before 'fn' in a Rust impl), the first character of a two-character operator
# ('-' of Rust's '->', '=' of TypeScript's '=>', ':' of Go's ':=').
MAX_CHAR_REFUSALS = {"javascript": 4, "typescript": 11, "go": 5, "rust": 8, "java": 2, "c": 2,
                     "cpp": 2}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_clean_prefixes_at_every_character(lang: str) -> None:
    syntax = clike_syntax(lang)
    program = PROGRAMS[lang]
    refused = []
    for i in range(1, len(program) + 1):
        text = program[: i]
        base = text[syntax.anchor(text):]
        state = feed(DIALECTS[lang], CState(), base)
        if state is None or syntax.oracle.viable(base, state) is not True:
            refused.append(base[-40:])
    print(f"\n{lang}: {len(refused)}/{len(program)} clean character prefixes refused:"
          + "".join(f"\n    {t!r}" for t in refused))
    assert len(refused) <= MAX_CHAR_REFUSALS[lang], refused
