"""The C-family syntax constraint in a simulated decoder (as test_grammar_simulation.py does for
Python): random logits over a small C-family character/word vocabulary, the constraint as a
logits processor, argmax, and the decoder's lazy exact check (a refused token is masked and the
next best is tried, at most ``MAX_REFUSALS`` times, as ``BatchDecoder._checked`` does; when
every try is refused the decoder fails open and keeps its first pick).

Properties, after every step:

* the mask never masks EOS nor every other token; it masks nothing in JavaScript and
  TypeScript, and in the strict dialects only tokens the lexer refuses (closers that match
  nothing open);
* the cursor's text is the detokenized sequence, and its incremental lexical state equals the
  state of a fresh feed of the whole text;
* every accepted (not failed-open) text satisfies ``still_viable`` relative to the text before
  it, checked again by a separate syntax (no cached verdicts);
* when the decoder fails open, the text accepted so far is viable (the constraint did not walk
  into a dead end by accepting a wrong token earlier).

After a fail-open the text is broken and every later check is a full, fruitless search (the
first-error fallback then decides): the run starts again from its prefix instead, so the time
goes into states the constraint can judge. The oracle's time budget is generous here (a time-out
would make the run depend on the machine's load); searches that still run out are counted, and
a step whose verdict came from one is not checked against the property.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pytest
from _decoder import pick  # tests/unit_core/_decoder.py

from grammar_constraints.clike_lexer import DIALECTS, CState, feed
from grammar_constraints.languages import ClikeSyntax, syntax_for
from grammar_constraints.processor import SyntaxConstraint
from grammar_constraints.ts_oracle import TreeSitterOracle
from grammar_constraints.vocab import TokenTable

EOS = 0
STEPS = 150
SEEDS = (0, 1)
# A refusal searches every continuation (10-300 ms here, depending on the library's version and
# the machine's load): long enough for that, short enough that no search can stall the file.
SIM_BUDGET_S = 1.0

SHARED = ["x", "y", "i", "n", "a", "0", "1", "42", " ", "\n", "\n    ", "(", ")", "{", "}", "[",
          "]", ";", ",", ".", ":", "?", "&", "!", " = ", " + ", " - ", " * ", " / ", " < ", " > ",
          " == ", " != ", " && ", '"', '"a"', "'", "\\", "/", "//", "/*", "*/", "return ",
          "if ", "if (", "else", " else ", "for ", "while ", "break", "true", "false", "int"]
EXTRA = {
    "javascript": ["function ", "const ", "let ", " => ", "`", "${", "this.", "new ", "null",
                   "/a/"],
    "typescript": ["function ", "const ", ": number", "interface ", " => ", "`", "${", "<T>",
                   "as ", "type "],
    "go": ["func ", ":= ", "var ", "`", "package ", "go ", "range ", "nil", "chan ", "struct "],
    "rust": ["fn ", "let ", "mut ", "&'a ", 'r#"', '"#', "::", "-> ", "match ", " => ", "impl ",
             "'a'", "<'a>", "Vec<"],
    "java": ["class ", "public ", "void ", "new ", '"""', "static ", "String ", "this.", "null",
             "@Override"],
    "c": ["void ", "char ", "struct ", "#include ", "->", "*", "NULL", "sizeof(", "'a'",
          "static "],
    "cpp": ["auto ", "template <", "std::", "::", "1'000", "u8'a'", "nullptr", "class ", "->",
            "&&"],
}
PREFIXES = {
    "javascript": ["", "function f(a, b) {\n  return "],
    "typescript": ["", "function f(a: number): number {\n  const x = "],
    "go": ["package main\n\n", "package main\n\nfunc f(a int) int {\n\t"],
    "rust": ["", "fn f(a: i32) -> i32 {\n    let x = "],
    "java": ["", "class A {\n    int f(int a) {\n        "],
    "c": ["", "int f(int a) {\n    "],
    "cpp": ["", "template <typename T>\nT f(T a) {\n    return "],
}
LANGUAGES = tuple(PREFIXES)


@cache
def vocabulary(lang: str) -> tuple[str, ...]:
    """Token 0: EOS (no text, always allowed); then the shared and the language's pieces."""
    return ("", *dict.fromkeys(SHARED + EXTRA[lang]))


@cache
def table(lang: str) -> TokenTable:
    return TokenTable(vocabulary(lang), always_allowed=[EOS])


class CountingOracle(TreeSitterOracle):
    """The tree-sitter oracle with the simulation's budget, counting its time-outs."""

    def __init__(self, name: str, grammar: str | None = None) -> None:
        super().__init__(name, grammar)
        self.timeouts = 0

    def viable(self, text: str, state: CState | None = None,
               budget_s: float = SIM_BUDGET_S) -> bool | None:
        verdict = super().viable(text, state, budget_s)
        self.timeouts += verdict is None
        return verdict


def clike_syntax(lang: str) -> ClikeSyntax:
    syntax = syntax_for(lang)
    assert isinstance(syntax, ClikeSyntax)
    syntax.oracle = CountingOracle(syntax.oracle.name, syntax.oracle.grammar)
    return syntax


def timeouts(syntax: ClikeSyntax) -> int:
    oracle = syntax.oracle
    assert isinstance(oracle, CountingOracle)
    return oracle.timeouts


@dataclass
class Run:
    steps: int = 0  # tokens appended
    checks: int = 0  # exact checks asked
    refusals: int = 0  # tokens refused by the exact check
    restarts: int = 0
    unchecked: int = 0  # steps not checked against the property (a search ran out of time)
    fail_open: list[str] = field(default_factory=list)  # text before each fail-open step
    dead_ends: list[str] = field(default_factory=list)  # fail-open after a text not viable
    unsound: list[str] = field(default_factory=list)  # accepted, but not still_viable
    texts: list[str] = field(default_factory=list)  # the generated text of every episode


def simulate(lang: str, prefix: str, seed: int, steps: int = STEPS) -> Run:
    texts = vocabulary(lang)
    dialect = DIALECTS[lang]
    rng = np.random.default_rng(seed)
    run = Run()

    def detokenize(ids: Sequence[int]) -> str:
        return "".join(texts[i] for i in ids)

    def episode() -> tuple[SyntaxConstraint, ClikeSyntax, list[int]]:
        syntax = clike_syntax(lang)
        constraint = SyntaxConstraint(table(lang), prefix, detokenize, syntax)
        assert constraint.active, "the start prefixes are viable"
        return constraint, syntax, []

    constraint, syntax, generated = episode()
    verify = clike_syntax(lang)  # a second opinion, with no cached verdicts
    tainted = False  # a search of this episode ran out of time: its verdicts are not exact
    for _ in range(steps):
        cursor = constraint.cursor
        raw = rng.standard_normal(len(texts)).astype(np.float32)
        logits = constraint(generated, raw.copy())
        assert np.isfinite(logits[EOS]), "the mask masked EOS"
        assert np.isfinite(logits[1:]).any(), f"every token masked after {cursor.text!r}"
        # The closer mask (strict dialects only) removes only what the lexer refuses.
        masked = np.flatnonzero(~np.isfinite(logits))
        assert dialect.strict or not masked.size, "no mask for JavaScript/TypeScript"
        assert all(feed(dialect, cursor.state, texts[i]) is None for i in masked), \
            (cursor.text, [texts[i] for i in masked if feed(dialect, cursor.state, texts[i])])
        logits[EOS] = -np.inf  # keep generating: EOS is always allowed, so never informative
        before_text, before_state = cursor.base + cursor.text, cursor.state
        first = int(np.argmax(logits))
        seen = timeouts(syntax)
        chosen = pick(constraint, generated, logits, run)
        tainted = tainted or timeouts(syntax) > seen
        if chosen is None:
            # The decoder fails open here (keeps its first pick): the text so far must be
            # viable. Then start again (see the module docstring).
            run.fail_open.append(cursor.text)
            if verify.oracle.viable(before_text, before_state) is False:
                run.dead_ends.append(cursor.text)
            run.texts.append(cursor.text + texts[first])
            run.steps += 1
            run.restarts += 1
            constraint, syntax, generated = episode()
            tainted = False
            continue
        generated.append(chosen)
        run.steps += 1
        cursor.sync(generated)
        assert cursor.text == detokenize(generated)
        state = feed(dialect, CState(), cursor.base + cursor.text)
        assert cursor.state == state, (cursor.text, cursor.state, state)
        seen_verify = timeouts(verify)
        ok = verify.still_viable(cursor.base + cursor.text, cursor.state, before_text,
                                 before_state)
        if tainted or timeouts(verify) > seen_verify:
            run.unchecked += 1
        elif not ok:
            run.unsound.append(cursor.text)
    run.texts.append(constraint.cursor.text)
    assert constraint.active, "the constraint hit an error of its own and switched off"
    return run


RUNS: dict[tuple[str, str, int], Run] = {}


@pytest.mark.parametrize("lang", LANGUAGES)
def test_random_logits_decoding_stays_viable(lang: str) -> None:
    runs = []
    for prefix in PREFIXES[lang]:
        for seed in SEEDS:
            run = simulate(lang, prefix, seed)
            RUNS[(lang, prefix, seed)] = run
            runs.append(run)
    steps = sum(r.steps for r in runs)
    fail_open = sum(len(r.fail_open) for r in runs)
    unsound = [t for r in runs for t in r.unsound]
    dead = [t for r in runs for t in r.dead_ends]
    print(f"\n{lang}: {steps} steps, {sum(r.checks for r in runs)} checks, "
          f"{sum(r.refusals for r in runs)} refused, fail-open {fail_open} "
          f"({fail_open / max(1, steps):.2%}), unchecked (time-outs) "
          f"{sum(r.unchecked for r in runs)}; fail-open after: "
          f"{[t[-40:] for r in runs for t in r.fail_open][:4]}")
    assert steps == STEPS * len(runs)
    assert not unsound, f"accepted texts that are not still_viable: {unsound[:5]}"
    assert not dead, f"fail-open after a text that is not viable: {dead[:5]}"


def _runs() -> list[Run]:
    if not RUNS:
        for lang in LANGUAGES:
            RUNS[(lang, PREFIXES[lang][1], 0)] = simulate(lang, PREFIXES[lang][1], 0, 60)
    return list(RUNS.values())


def test_fail_open_is_rare() -> None:
    """Reported figure; a loose bound so a regression (the oracle refusing far more) shows."""
    runs = _runs()
    steps = sum(r.steps for r in runs)
    fail_open = sum(len(r.fail_open) for r in runs)
    unchecked = sum(r.unchecked for r in runs)
    print(f"\nfail-open: {fail_open}/{steps} steps ({fail_open / max(1, steps):.2%}); "
          f"steps unchecked after a time-out: {unchecked}")
    assert fail_open / steps < 0.05
    assert unchecked / steps < 0.1


def test_the_constraint_refuses_in_every_language() -> None:
    """The runs are not vacuous: random tokens are refused in every language."""
    for lang in LANGUAGES:
        runs = [r for (lg, _, _), r in RUNS.items() if lg == lang] or [
            simulate(lang, PREFIXES[lang][1], 0, 40)]
        assert sum(r.refusals for r in runs) > 0, lang


def test_a_broken_text_is_refused_and_then_judged_relatively() -> None:
    """After a fail-open (the decoder kept a refused token) the constraint stays on: a token
    that does not move the first error earlier is allowed, one that does is refused."""
    texts = ["", "x", " ", ";", ")", "\n", "int ", " = ", "1", "+*"]
    tab = TokenTable(texts, always_allowed=[EOS])

    def detokenize(ids: Sequence[int]) -> str:
        return "".join(texts[i] for i in ids)

    constraint = SyntaxConstraint(tab, "class A {\n  void f() {\n    int y = 1", detokenize,
                                  clike_syntax("java"))
    assert constraint.active
    broken = texts.index("+*")
    assert not constraint.check([], broken)
    generated = [broken]  # failed open: kept anyway
    constraint([], np.zeros(len(texts), dtype=np.float32))
    assert constraint.check(generated, texts.index(" "))  # the error did not move
    assert constraint.active
