"""Mutation analysis of the target: mutmut's mutants of the target's own lines, each run in the
sandbox against the tests, sorted into killed, survived, not run and equivalent-looking.

Why mutmut (3.8, pinned) and only its mutation operators: its operators work on libcst trees,
so a mutant is the module's exact text with one change (a readable one-line diff for the user
and the model) and it takes the lines to mutate; its own runner, like cosmic-ray's, copies the
project into a ``mutants/`` folder beside it and runs the tests outside any sandbox, and
cosmic-ray brings a database, an HTTP stack and git on top. The mutants here are run by
``_mutdriver.py`` inside our sandbox instead (one pytest import, one fork per mutant).

A mutant the tests do not catch is *equivalent-looking* when the tests run its line and the
target did exactly the same on every call they made (same arguments, same results or
exceptions, same object state after a method), and on every call of the probes: all the tests
the model wrote (those that failed too) and the docstring's examples. No input the tests or
examples use tells the two apart, so it is reported apart and left out of the score, as in the
mutation-testing literature. One
whose line no test runs is *not run*; the others *survived*.
"""

from __future__ import annotations

import ast
import difflib
import enum
import logging
import textwrap
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger(__name__)

# Mutants per target at most (evenly spread over the target's lines): about 0.2-0.5 s each in
# the sandbox, so the analysis stays a small part of the time budget.
MAX_MUTANTS = 40


@dataclass(frozen=True)
class Mutant:
    index: int
    line: int  # 1-based, in the module
    before: str  # the changed line(s) as in the module
    after: str  # as mutated
    source: str  # the whole mutated module

    @property
    def diff(self) -> str:
        """A minimal diff: ``-`` old line(s), ``+`` new line(s)."""
        minus = "\n".join(f"-{x}" for x in self.before.split("\n"))
        plus = "\n".join(f"+{x}" for x in self.after.split("\n"))
        return f"{minus}\n{plus}"

    @property
    def label(self) -> str:
        """``line 17: `a <= b` → `a < b``` (stripped; the first changed line only)."""
        old = self.before.split("\n")[0].strip()
        new = (self.after.split("\n")[0].strip() or "(removed)")
        return f"line {self.line}: `{old}` → `{new}`"


class Fate(enum.Enum):
    KILLED = "killed"  # a test failed, or the run crashed or timed out
    SURVIVED = "survived"  # every test passed, and the target behaved differently on them
    NOT_RUN = "not run"  # every test passed, and none runs the changed line
    EQUIVALENT = "equivalent-looking"  # ... runs it, and the target did the same on every call


@dataclass(frozen=True)
class MutantResult:
    mutant: Mutant
    fate: Fate
    killed_by: tuple[str, ...] = ()  # the tests that failed on it


@dataclass(frozen=True)
class MutationReport:
    results: tuple[MutantResult, ...]

    def count(self, *fates: Fate) -> int:
        return sum(1 for r in self.results if r.fate in fates)

    @property
    def killed(self) -> int:
        return self.count(Fate.KILLED)

    @property
    def counted(self) -> int:
        """The mutants the score counts: all but the equivalent-looking ones."""
        return len(self.results) - self.count(Fate.EQUIVALENT)

    @property
    def score(self) -> float:
        return 100.0 * self.killed / self.counted if self.counted else 0.0

    @property
    def survivors(self) -> list[Mutant]:
        """The mutants a new test could still catch (survived or not run)."""
        return [r.mutant for r in self.results if r.fate in (Fate.SURVIVED, Fate.NOT_RUN)]

    def with_killed(self, killed: dict[int, tuple[str, ...]]) -> MutationReport:
        """This report after new tests killed the mutants ``killed`` (index → test names)."""
        return MutationReport(tuple(
            MutantResult(r.mutant, Fate.KILLED, r.killed_by + killed[r.mutant.index])
            if r.mutant.index in killed else r for r in self.results))

    def phrase(self, what: str = "changes") -> str:
        """``kill 7 of 9 changes (2 equivalent-looking set apart)``."""
        eq = self.count(Fate.EQUIVALENT)
        extra = f" ({eq} equivalent-looking set apart)" if eq else ""
        return f"kill {self.killed} of {self.counted} {what}{extra}"


def mutants_of(source: str, lines: tuple[int, int], limit: int = MAX_MUTANTS) -> list[Mutant]:
    """mutmut's mutants of ``source`` whose change starts on ``lines`` (inclusive, 1-based),
    distinct, each still valid Python; at most ``limit``, spread evenly over the list."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper
    from mutmut.mutation.file_mutation import MutationVisitor
    from mutmut.mutation.mutators import mutation_operators
    from mutmut.mutation.pragma_handling import IgnoredCode, PragmaVisitor

    try:
        wrapper = MetadataWrapper(cst.parse_module(source))
    except cst.ParserSyntaxError:
        return []
    # mutmut's own pragmas count (``# pragma: no mutate``); its config file (patterns to skip)
    # is not read: this is not a mutmut project.
    pragmas = PragmaVisitor("<target>")
    wrapper.visit(pragmas)
    ignored = IgnoredCode(pragmas.no_mutate_lines, pragmas.ignore_node_lines, set())
    lo, hi = lines
    visitor = MutationVisitor(mutation_operators, ignored, set(range(lo, hi + 1)))
    wrapper.visit(visitor)
    old_lines = source.split("\n")
    found: list[Mutant] = []
    seen = {source}
    for m in visitor.mutations:
        try:
            replaced = wrapper.module.deep_replace(m.original_node, m.mutated_node)
            text = replaced.code if isinstance(replaced, cst.Module) else ""
        except Exception:  # noqa: BLE001 - libcst refuses some replacements; skip those
            continue
        if not text or text in seen or not _compiles(text):
            continue
        seen.add(text)
        change = _change(old_lines, text.split("\n"))
        if change is None:
            continue
        line, before, after = change
        found.append(Mutant(len(found), line, before, after, text))
    if len(found) > limit:
        step = len(found) / limit
        found = [found[int(i * step)] for i in range(limit)]
        found = [Mutant(i, m.line, m.before, m.after, m.source) for i, m in enumerate(found)]
    return found


def _compiles(text: str) -> bool:
    try:
        compile(text, "<mutant>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def _change(old: list[str], new: list[str]) -> tuple[int, str, str] | None:
    """The first changed block: (1-based line, old text, new text)."""
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, old, new,
                                                       autojunk=False).get_opcodes():
        if tag != "equal":
            return i1 + 1, "\n".join(old[i1:i2]), "\n".join(new[j1:j2])
    return None


def classify(mutants: list[Mutant], answer: dict[str, object],
             unrun_lines: frozenset[int]) -> MutationReport | None:
    """The driver's answer → a report; None when the tests did not pass on the original
    (nothing can be said about the mutants then)."""
    runs = mutant_runs(answer, len(mutants))
    if runs is None:
        return None
    original = answer["original"]
    assert isinstance(original, dict)
    digest = original.get("digest") or ""
    results = []
    for mutant, run in zip(mutants, runs, strict=True):
        status = run.get("status") if isinstance(run, dict) else "error"
        if status != "passed":
            failed = tuple(run.get("failed", ())) if isinstance(run, dict) else ()
            results.append(MutantResult(mutant, Fate.KILLED, failed))
        elif _lines_of(mutant) <= unrun_lines:
            results.append(MutantResult(mutant, Fate.NOT_RUN))
        elif digest and run.get("digest") == digest and int(run.get("calls", 0)) > 0 \
                and _same_probe(original, run):
            results.append(MutantResult(mutant, Fate.EQUIVALENT))
        else:
            results.append(MutantResult(mutant, Fate.SURVIVED))
    return MutationReport(tuple(results))


def mutant_runs(answer: dict[str, object] | None, n: int) -> list[Any] | None:
    """The driver's runs of the ``n`` mutants, or None when the answer says nothing about
    them: no answer, the tests did not pass on the original, or a count that does not match."""
    if answer is None:
        return None
    original = answer.get("original")
    runs = answer.get("mutants")
    if not isinstance(original, dict) or original.get("status") != "passed" \
            or not isinstance(runs, list) or len(runs) != n:
        return None
    return runs


def _same_probe(original: dict[str, object], run: dict[str, object]) -> bool:
    """No probe run, or the target did the same in it (a probe that said nothing, e.g. it ran
    out of time, does not vouch for the mutant)."""
    if "probe_digest" not in original:
        return True
    return bool(original.get("probe_digest")) and run.get("probe_digest") == \
        original.get("probe_digest")


def _lines_of(mutant: Mutant) -> frozenset[int]:
    return frozenset(range(mutant.line, mutant.line + max(1, mutant.before.count("\n") + 1)))


def example_probe(docstring: str, import_line: str) -> str:
    """The docstring's ``>>>`` examples as a test module whose outcome does not matter (each
    example in its own test, errors swallowed): calls of the target for the probes."""
    import doctest

    try:
        examples = doctest.DocTestParser().get_examples(docstring)
    except ValueError:
        return ""
    tests = []
    for k, ex in enumerate(examples):
        body = textwrap.indent(ex.source.rstrip("\n"), " " * 8)
        tests.append(f"def test_example_{k}():\n    try:\n{body}\n    except Exception:\n"
                     "        pass\n")
    return import_line + "\n\n\n" + "\n\n".join(tests) if tests else ""
