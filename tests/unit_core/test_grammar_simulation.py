"""The syntax constraint in a simulated decoder: random logits over a small character-level
vocabulary, the constraint as a logits processor, argmax, and the decoder's lazy exact check
(a refused token is masked and the next best is tried, at most ``MAX_REFUSALS`` times, as
``server/backends/decoding.py`` ``BatchDecoder._checked`` does; when every try is refused the
decoder fails open).

Properties, after every step:

* every accepted (not failed-open) token leaves a viable text: ``viable(prefix + text)``, both
  as the cursor anchors it (the prefix at its top-level statement) and re-anchored at the
  statement the generated text ends in (as the next request's cursor, whose prefix holds this
  completion, would anchor it);
* the lexical mask never masks EOS, and never masks every other token;
* the cursor's incremental lexical state equals the state computed from scratch;
* when the decoder fails open, the text accepted so far is still viable, and some token of the
  vocabulary can still continue it (the oracle has no dead ends).

The bugs this simulation found have regression tests at the end of this file (a lone ``\r``,
``\x0b`` and ``\x0c``, a column-0 line after a backslash continuation). One known limitation
keeps a strict xfail: invalid assignment targets (the parso fallback is permissive). The main
simulation leaves the three characters out of its vocabulary, to keep its figures comparable;
the full printable vocabulary runs in ``test_full_printable_vocabulary``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest
from _decoder import pick  # tests/unit_core/_decoder.py

from grammar_constraints.processor import SyntaxConstraint
from grammar_constraints.python_lexer import CODE, CODE_ESC, LexState, feed
from grammar_constraints.python_oracle import anchor, viable
from grammar_constraints.vocab import TokenTable

EOS = 0
STEPS = 200
SEEDS_PER_PREFIX = 8

PIECES = [
    "def ", "return ", "    ", "        ", "\n", "\n    ", "\n        ", "):", "((", "))", "'''",
    '"""', '"', "'", "#", "\\", "if ", "else", "else:", "elif ", ":\n", "[", "]", "{", "}", "(",
    ")", "()", "[]", "{}", "for ", " in ", "while ", "try:", "except ", "finally:", "with ",
    " as ", "class ", "import ", "from ", "lambda ", "yield ", "pass", "break", "continue",
    "None", "True", "False", " and ", " or ", "not ", " is ", "self", "self.", "x", "y", "i",
    "n", "result", "range(", "len(", "print(", " = ", " == ", " != ", " += ", " -= ", " + ",
    " - ", " * ", " / ", " // ", " % ", " ** ", " < ", " > ", " <= ", " >= ", "->", ", ", ",",
    ".", ":", ";", "=", "0", "1", "10", "0x", "1e", "1.5", "'a'", '"b"', "f'", 'f"', "b'", "r'",
    "\\n", "\\'", "# comment\n", "async ", "await ", "global ", "nonlocal ", "del ", "assert ",
    "raise ", "match ", "case ", "*", "**", "@", "...", ":=", "\r\n", "\t", " ", "  ",
    "x = ", "def f(", "(x)", "[i]", "return x\n", "if x:\n", "else:\n", "\n\n",
]
# Token 0: EOS (no text, always allowed); then every printable ASCII character, then pieces.
FULL_TEXTS = [""] + list(dict.fromkeys(list(string.printable) + PIECES))
# Characters that hit library bugs once (see the regression tests at the end): a lone carriage
# return, a vertical tab and a form feed. The main simulation runs without them as tokens
# (``\r\n`` stays); the full vocabulary runs in its own test.
BUG_CHARS = ("\r", "\x0b", "\x0c")
TEXTS = [t for t in FULL_TEXTS if t not in BUG_CHARS]
VOCAB = len(TEXTS)

PREFIXES = ["", "def f(x):\n    ", "x = [1, 2,", "class A:\n    def g(self):\n        return "]


def detokenize(ids: Sequence[int]) -> str:
    return "".join(TEXTS[i] for i in ids)


def full_detokenize(ids: Sequence[int]) -> str:
    return "".join(FULL_TEXTS[i] for i in ids)


def ok(text: str) -> bool:
    """The oracle from the current top-level statement, as the cursor starts its texts."""
    return viable(text[anchor(text):])


def reference_anchor(prefix: str) -> int:
    """``python_oracle.anchor`` with Python's own idea of lines: they end at ``\\n``,
    ``\\r\\n`` or ``\\r`` only (``str.splitlines`` also splits at ``\\x0b``, ``\\x0c``,
    ``\\x1c``-``\\x1e``, ...), and a line after a backslash continuation continues its statement."""
    state: LexState | None = LexState()
    starts: list[int] = []
    pos, continued = 0, False
    for line in re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", prefix):
        if (state is not None and state.mode == CODE and not state.stack and not continued
                and line[:1] not in (" ", "\t", "\f", "\n", "\r", "#", "")):
            word = re.match(r"[A-Za-z_]+", line)
            if not (word and word.group(0) in ("else", "elif", "except", "finally")):
                starts.append(pos)
        if state is not None:
            body = feed(state, line.rstrip("\r\n"))
            continued = body is not None and body.mode == CODE_ESC
            state = feed(state, line)
        pos += len(line)
    i = len(starts) - 1
    while i > 0 and prefix.startswith("@", starts[i - 1]) and all(
            not ln.strip() or ln.lstrip().startswith(("@", "#")) or ln[:1] in " \t)"
            for ln in re.split(r"\r\n|\r|\n", prefix[starts[i - 1]:starts[i]])):
        i -= 1
    return starts[i] if starts else 0


@dataclass
class Run:
    steps: int = 0  # tokens appended
    checks: int = 0  # exact checks asked
    refusals: int = 0  # tokens refused by the exact check
    fail_open: list[str] = field(default_factory=list)  # text before each fail-open step
    dead_ends: list[str] = field(default_factory=list)  # viable texts no token continues
    unsound: list[str] = field(default_factory=list)  # accepted texts that are not viable
    # Accepted texts that are viable as the cursor anchors them but not re-anchored by
    # python_oracle.anchor: explained (viable re-anchored by reference_anchor) or not.
    anchor_bug: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)


TABLE = TokenTable(TEXTS, always_allowed=[EOS])
FULL_TABLE = TokenTable(FULL_TEXTS, always_allowed=[EOS])


def simulate(prefix: str, seed: int, steps: int = STEPS, full: bool = False) -> Run:
    texts, table = (FULL_TEXTS, FULL_TABLE) if full else (TEXTS, TABLE)
    detok = full_detokenize if full else detokenize
    rng = np.random.default_rng(seed)
    constraint = SyntaxConstraint(table, prefix, detok)
    cursor = constraint.cursor
    assert constraint.active, "the start prefixes are viable"
    run = Run()
    generated: list[int] = []
    for _ in range(steps):
        logits = constraint(generated, rng.standard_normal(len(texts)).astype(np.float32))
        assert np.isfinite(logits[EOS]), "the lexical mask masked EOS"
        assert np.isfinite(logits[1:]).any(), f"every token masked after {cursor.text!r}"
        # The lexical mask is exact for the cursor's state.
        state = cursor.state
        masked = ~np.isfinite(logits)
        fails = np.array([i != EOS and feed(state, t) is None for i, t in enumerate(texts)])
        assert (masked == fails).all(), (cursor.text, [texts[i] for i in np.flatnonzero(masked != fails)])
        logits[EOS] = -np.inf  # keep generating: EOS is always allowed, so never informative
        chosen = pick(constraint, generated, logits, run)
        if chosen is None:
            # The decoder fails open here (keeps its first pick). The text so far must still
            # be viable; carry on with the best token the oracle allows, so the run goes on.
            run.fail_open.append(cursor.text)
            if not viable(cursor.base + cursor.text):
                run.unsound.append(cursor.text)
                break
            order = [int(t) for t in np.argsort(-logits) if np.isfinite(logits[t])]
            chosen = next((t for t in order if constraint.check(generated, t)), None)
            if chosen is None:
                run.dead_ends.append(cursor.text)
                break
        generated.append(chosen)
        run.steps += 1
        cursor.sync(generated)
        assert cursor.text == detok(generated)
        assert cursor.state == feed(LexState(), cursor.base + cursor.text), cursor.text
        if not viable(cursor.base + cursor.text):
            run.unsound.append(cursor.text)
            break
        if not ok(prefix + cursor.text):
            text = prefix + cursor.text
            if viable(text[reference_anchor(text):]):
                run.anchor_bug.append(cursor.text)
            else:
                run.unexplained.append(cursor.text)
    assert constraint.active, "the constraint hit an error of its own and switched off"
    return run


RUNS: dict[tuple[str, int], Run] = {}


@pytest.mark.parametrize("prefix", PREFIXES)
def test_random_logits_decoding_stays_viable(prefix: str) -> None:
    runs = []
    for k in range(SEEDS_PER_PREFIX):
        seed = 1000 * PREFIXES.index(prefix) + k
        run = simulate(prefix, seed)
        RUNS[(prefix, seed)] = run
        runs.append(run)
    unsound = [t for r in runs for t in r.unsound]
    dead = [t for r in runs for t in r.dead_ends]
    steps = sum(r.steps for r in runs)
    fail_open = sum(len(r.fail_open) for r in runs)
    print(f"\n{prefix!r}: {steps} steps, {sum(r.checks for r in runs)} checks, "
          f"{sum(r.refusals for r in runs)} refused, fail-open {fail_open} "
          f"({fail_open / max(1, steps):.2%})")
    assert not unsound, f"accepted texts that are not viable: {unsound[:5]}"
    assert not dead, f"viable texts that no token continues: {dead[:5]}"
    unexplained = [t for r in runs for t in r.unexplained]
    assert not unexplained, f"accepted texts not viable once re-anchored: {unexplained[:5]}"
    assert steps == STEPS * SEEDS_PER_PREFIX


def test_full_printable_vocabulary() -> None:
    """The same simulation with every printable ASCII character as a token (lone ``\\r``,
    ``\\x0b``, ``\\x0c`` included)."""
    runs = [simulate(p, 1000 * PREFIXES.index(p) + k, full=True) for p in PREFIXES for k in range(4)]
    bad = [t for r in runs for t in r.unsound + r.dead_ends + r.unexplained + r.anchor_bug]
    steps = sum(r.steps for r in runs)
    fail_open = sum(len(r.fail_open) for r in runs)
    print(f"\nfull vocabulary: {steps} steps, fail-open {fail_open}, failures {len(bad)}")
    assert not bad, f"{len(bad)} failures, e.g. {bad[:5]}"


def test_a_lone_carriage_return_is_a_line_break_for_the_oracle() -> None:
    assert not viable("x = 1\n+  = 2\nab")  # passes: with '\n' the error is seen
    assert not viable("x = 1\r+  = 2\nab")  # CPython: 'invalid syntax' at line 2, col 4
    assert not viable("if x:\r  pass\r else:\n")  # an unindent that matches no block


def _runs() -> list[Run]:
    return list(RUNS.values()) or [simulate(p, 1000 * i) for i, p in enumerate(PREFIXES)]


def test_accepted_texts_stay_viable_when_re_anchored() -> None:
    """The property as the next request's cursor sees it (its prefix holds this completion)."""
    bad = [t for r in _runs() for t in r.anchor_bug + r.unexplained]
    steps = sum(r.steps for r in _runs())
    assert not bad, f"{len(bad)}/{steps} accepted texts refused once re-anchored: {bad[:3]}"


def test_fail_open_is_rare() -> None:
    """Reported figure; a loose bound so a regression (the oracle refusing far more) shows."""
    runs = _runs()
    steps = sum(r.steps for r in runs)
    fail_open = sum(len(r.fail_open) for r in runs)
    print(f"\nfail-open: {fail_open}/{steps} steps ({fail_open / max(1, steps):.2%})")
    assert fail_open / steps < 0.25


def test_eos_and_the_vocabulary_are_never_all_masked() -> None:
    """States that leave few lexical options: after a backslash in code (only a line break),
    in a one-line string (no line break), with brackets open (only their closers)."""
    for prefix in ["x = 1 \\", "x = 'abc", "x = ([{", "# comment", 'x = """a\\']:
        constraint = SyntaxConstraint(TABLE, prefix, detokenize)
        logits = constraint([], np.zeros(VOCAB, dtype=np.float32))
        assert np.isfinite(logits[EOS])
        assert np.isfinite(logits[1:]).any(), prefix
    constraint = SyntaxConstraint(TABLE, "x = 1 \\", detokenize)
    logits = constraint([], np.zeros(VOCAB, dtype=np.float32))
    allowed = {TEXTS[i] for i in np.flatnonzero(np.isfinite(logits))}
    assert "\n" in allowed and "\r\n" in allowed
    assert all(t.startswith(("\n", "\r")) for t in allowed - {""}), allowed


# --- the library bugs the simulation ran into, one minimal case each ---------------------------


def test_anchor_treats_a_form_feed_as_whitespace() -> None:
    text = "x = a\x0c.b"
    compile(text, "<test>", "exec")
    assert anchor(text) == 0
    assert ok(text)
    assert SyntaxConstraint(TABLE, "x = a\x0c.strip(", detokenize).active


def test_anchor_knows_backslash_continuations() -> None:
    text = "x = y \\\n.strip()"
    compile(text, "<test>", "exec")
    assert anchor(text) == 0
    assert SyntaxConstraint(TABLE, "x = y \\\n.strip(", detokenize).active
    prefix = "def f(a, b):\n    return a + \\\nb"
    compile(prefix + "\n    return 1\n", "<test>", "exec")
    constraint = SyntaxConstraint(TABLE, prefix, detokenize)
    ids = [TEXTS.index("\n    "), TEXTS.index("return ")]
    assert constraint.check([], ids[0]) and constraint.check(ids[:1], ids[1])


def test_a_vertical_tab_in_code_is_refused() -> None:
    assert not viable("x = 1\x0b")  # passes: the plain case is refused
    assert not viable("   \x0b")
    assert not viable("x = 1\n \x0b")


@pytest.mark.xfail(strict=True, reason=(
    "a permissive oracle, not unsound: when CPython blames an invalid assignment target "
    "('cannot assign to expression'), the parso fallback's grammar has no such check and "
    "accepts: viable('x + 1 = 2'), viable('f() = 3'), viable('for a + b in x:') are True"))
def test_invalid_assignment_targets_are_refused() -> None:
    assert not viable("x + 1 = 2")
    assert not viable("f() = 3")
    assert not viable("for a + b in x:")
