"""Generate tests for one target: prompt → split → run → keep the reliable ones → cover more.

No LSP here: the server passes a ``generate`` callable (prompt text → model answer), a sandbox,
a progress callback and a cancel event, and gets a :class:`TestGenResult` whose ``new_text``
is what to write (a new test module, or the text to append to an existing one).
"""

from __future__ import annotations

import ast
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from testgen.extract import Target, find_target, import_root, module_name
from testgen.hints import boundary_hints
from testgen.mutation import (
    Mutant,
    MutationReport,
    classify,
    example_probe,
    mutant_runs,
    mutants_of,
)
from testgen.regression import pinned, probe_tests, value_of
from testgen.runner import Coverage, TestRunner
from testgen.sandbox import Sandbox, Verdict
from testgen.split import (
    ParsedTests,
    TestCase,
    defined_names,
    missing_imports,
    rename_colliding,
    render_module,
    split_tests,
)

logger = logging.getLogger(__name__)

Generate = Callable[[str, int], str]  # (prompt, max_new_tokens) -> answer text
Progress = Callable[[str, int], None]  # (message, percent)

# Re-runs of the passing tests; a test must pass every time to be kept (flaky tests are worse
# than none).
FLAKE_RUNS = 3


class TestGenError(Exception):
    """Nothing can be generated; the message is for the user and nothing is written."""

    def __init__(self, message: str, partial: TestGenResult | None = None) -> None:
        super().__init__(message)
        self.partial = partial  # what was counted before giving up (for benchmarks)


class Cancelled(Exception):
    pass


@dataclass(frozen=True)
class TestGenSettings:
    max_new_tokens: int = 768
    time_budget_s: float = 300.0
    rounds: int = 2  # the first, and one more that shows failures and uncovered lines
    ghostwriter: bool = True
    # Mutation analysis of the target with the kept tests, then rounds that show the model the
    # changes no test catches (0: analysis and report only).
    mutation_analysis: bool = True
    mutation_rounds: int = 2
    # Offer failing tests whose expected value may be the only fault as regression tests
    # pinned to today's value (testgen/regression.py); written only when the user agrees.
    regression_tests: bool = True


@dataclass
class TestGenResult:
    target: Target
    module: str
    test_path: Path
    append: bool  # True: new_text goes at the end of an existing test file
    new_text: str
    kept: list[str] = field(default_factory=list)
    generated: int = 0  # test functions in the model's answers (parsing or not)
    parsed: int = 0
    passed: int = 0
    ghostwritten_kept: int = 0
    coverage_before: float = 0.0
    coverage_after: float = 0.0
    rounds: int = 0
    seconds: float = 0.0
    # Mutation analysis (testgen/mutation.py): with the test file's existing tests only (None
    # without any), after the first rounds, and at the end (None when it could not run).
    mutation_existing: MutationReport | None = None
    mutation_unguided: MutationReport | None = None
    mutation: MutationReport | None = None
    mutation_kept: int = 0  # kept tests written in the mutation-guided rounds
    # Regression tests on offer (not in new_text) and what to write if the user keeps them.
    regression: list[str] = field(default_factory=list)
    new_text_with_regression: str = ""
    regression_kept: int = 0

    def keep_regression(self) -> None:
        """The user agreed: write the regression tests too."""
        if self.regression:
            self.new_text = self.new_text_with_regression
            self.kept = self.kept + self.regression
            self.regression_kept = len(self.regression)
            self.regression = []

    @property
    def model_kept(self) -> int:
        """Kept tests the model wrote and its expectations confirmed (the others are
        Hypothesis ghostwriter tests and regression tests the user chose to keep)."""
        return len(self.kept) - self.ghostwritten_kept - self.regression_kept

    @property
    def summary(self) -> str:
        ghost = (f" + {self.ghostwritten_kept} Hypothesis property test"
                 f"{'s' if self.ghostwritten_kept > 1 else ''}" if self.ghostwritten_kept else "")
        if self.regression_kept:
            ghost += (f" + {self.regression_kept} regression test"
                      f"{'s' if self.regression_kept > 1 else ''} you chose to keep (expected "
                      "values from the code as it is)")
        elif self.regression:
            ghost += (f"; {len(self.regression)} more failed only on a guessed expected value: "
                      "not written (as regression tests they need your consent)")
        return (f"kept {self.model_kept} of {self.generated} generated tests for "
                f"{self.target.qualname} ({self.parsed} parsed, {self.passed} passed once, "
                f"{self.model_kept} passed {FLAKE_RUNS} more runs){ghost}; coverage of "
                f"{self.target.qualname}: {self.coverage_before:.0f}% → "
                f"{self.coverage_after:.0f}% (lines + branches) in {self.seconds:.0f} s; "
                f"{self.mutation_phrase()}"
                f"{'appended to' if self.append else 'new file'} {self.test_path}")

    def mutation_phrase(self, listed: int = 3) -> str:
        """``the tests kill 7 of 9 changes mutmut made to f (the existing tests: 2; before the
        mutation-guided rounds: 4); not caught: line 12: `a < b` → `a <= b`, ...; `` ('' without
        an analysis)."""
        if self.mutation is None:
            return ""
        m = self.mutation
        earlier = []
        if self.mutation_existing is not None:
            earlier.append(f"the existing tests: {self.mutation_existing.killed}")
        if self.mutation_unguided is not None and self.mutation_kept:
            earlier.append(f"before the mutation-guided rounds: {self.mutation_unguided.killed}")
        before = f" ({'; '.join(earlier)})" if earlier else ""
        text = (f"the tests {m.phrase(f'changes mutmut made to {self.target.qualname}')}"
                f"{before}")
        left = m.survivors
        if left:
            shown = ", ".join(x.label for x in left[:listed])
            more = f" and {len(left) - listed} more (in the log)" if len(left) > listed else ""
            text += f"; not caught: {shown}{more}"
        return text + "; "


# --- prompting -----------------------------------------------------------------------------


def format_chat(messages: list[tuple[str, str]], special_tokens: frozenset[str] | set[str]) -> str:
    """The model's chat format for (role, text) messages, ending where the assistant speaks.
    ChatML (Qwen, many others) when the model has its tokens; else a plain instruction format."""
    if "<|im_start|>" in special_tokens:
        body = "".join(f"<|im_start|>{role}\n{text}<|im_end|>\n" for role, text in messages)
        return body + "<|im_start|>assistant\n"
    parts = [f"### {role.capitalize()}\n{text}\n" for role, text in messages]
    return "\n".join(parts) + "\n### Assistant\n"


SYSTEM = ("You are an expert Python developer. You write correct, deterministic pytest unit "
          "tests with plain assert statements. You reply with one Python code block.")


def first_prompt(target: Target, module: str) -> list[tuple[str, str]]:
    importable = target.enclosing_class or target.name
    what = {"method": f"the method `{target.qualname}`", "class": f"the class `{target.name}`",
            "function": f"the function `{target.name}`"}[target.kind]
    context = target.imports + "\n\n" if target.imports else ""
    async_note = (" It is async: call it with asyncio.run(...) inside a normal test function."
                  if target.is_async else "")
    hints = boundary_hints(target.source)
    listed = ("\n\nCases worth a test (the boundaries in the code):\n"
              + "\n".join(f"- {h}" for h in hints)) if hints else ""
    user = (f"Here is {what} from the Python module `{module}`:\n\n```python\n{context}"
            f"{target.source}\n```\n\n"
            f"Write pytest tests for it. Import it with `from {module} import {importable}`."
            f"{async_note} Test typical inputs, edge cases and the errors it raises. Write each "
            "test as a separate top-level function named test_<something>, with concrete "
            f"expected values you are sure of. No explanations, only the code.{listed}")
    return [("system", SYSTEM), ("user", user)]


def mutant_prompt(target: Target, module: str, passing: list[TestCase],
                  mutants: list[Mutant]) -> list[tuple[str, str]]:
    """Mutation-guided: the changes no test catches, each as a small diff, and some of the
    tests that pass; asks for tests that pass on the code and fail on a change."""
    messages = first_prompt(target, module)
    shown = "\n\n".join(t.source.strip() for t in passing[:3])
    if shown:
        messages.append(("assistant", f"```python\n{shown}\n```"))
    diffs = "\n\n".join(f"Change {k + 1} (line {m.line}):\n```diff\n{m.diff}\n```"
                         for k, m in enumerate(mutants))
    messages.append(("user", (
        "Each of these one-line changes to the code would be a bug, but every test still "
        f"passes with it:\n\n{diffs}\n\nWrite new test functions (new names), one per "
        "change: call the code with an input for which the changed line gives a different "
        "result, and assert the exact result of the code as it is now, so the test passes on "
        "the code and fails with the change.")))
    return messages


def repair_prompt(target: Target, module: str, failures: dict[str, str],
                  uncovered: list[tuple[int, str]]) -> list[tuple[str, str]]:
    messages = first_prompt(target, module)
    notes = []
    if failures:
        listed = "\n".join(f"- {name}: {why.splitlines()[0][:200]}"
                           for name, why in list(failures.items())[:8])
        notes.append("These tests failed, so their expectations were wrong; do not repeat "
                     f"them:\n{listed}")
    if uncovered:
        listed = "\n".join(f"{n}: {text}" for n, text in uncovered[:20])
        notes.append("These lines are not run by any test yet; write tests that reach them:\n"
                     f"```\n{listed}\n```")
    messages.append(("user", "\n\n".join(notes) + "\n\nWrite new test functions (new names)."))
    return messages


# --- the pipeline --------------------------------------------------------------------------


def test_file_for(module: str, workspace: Path, module_file: Path) -> Path:
    """Where the tests go: the workspace's tests folder (``tests/`` or ``test/``), else a new
    ``tests/``; ``test_<module>.py`` after the module's last name."""
    short = module.rsplit(".", 1)[-1] or module_file.stem
    for folder in ("tests", "test"):
        if (workspace / folder).is_dir():
            return workspace / folder / f"test_{short}.py"
    return workspace / "tests" / f"test_{short}.py"


def generate_tests(path: Path, text: str, line: int, character: int | None,
                   workspace: Path | None, generate: Generate, special_tokens: frozenset[str],
                   sandbox: Sandbox, settings: TestGenSettings | None = None,
                   progress: Progress | None = None,
                   cancel: threading.Event | None = None) -> TestGenResult:
    cfg = settings or TestGenSettings()
    t0 = time.monotonic()
    cancel = cancel or threading.Event()

    def step(message: str, pct: int) -> None:
        if cancel.is_set():
            raise Cancelled()
        logger.info("testgen: %s", message)
        if progress is not None:
            progress(message, pct)

    if not sandbox.report.usable:
        raise TestGenError(sandbox.report.refusal())
    target = find_target(text, line, character)
    path = path.resolve()
    ws = (workspace or path.parent).resolve()
    root = import_root(path, ws)
    module = module_name(path, root)
    try:
        runner = TestRunner(sandbox, root, path, cancel=cancel, text=text)
    except OSError as exc:
        raise TestGenError(f"cannot prepare the sandbox: {exc}") from exc
    try:
        return _generate(runner, target, module, path, text, ws, generate, special_tokens,
                         sandbox, cfg, step, t0)
    finally:
        runner.close()


def _generate(runner: TestRunner, target: Target, module: str, path: Path, text: str, ws: Path,
              generate: Generate, special_tokens: frozenset[str], sandbox: Sandbox,
              cfg: TestGenSettings, step: Callable[[str, int], None], t0: float
              ) -> TestGenResult:
    """The stages in order: the module imports, the existing tests' coverage, the model's
    rounds, the ghostwriter's tests, the text to write."""
    _check_import(runner, module, step)
    test_path = test_file_for(module, ws, path)
    existing = test_path.read_text() if test_path.exists() else ""
    base = _Base()
    if existing.strip():
        step("measuring the coverage of the existing tests", 10)
        base = _Base.of(existing)
    run = _Run(runner, target, module, text, existing, base, step)
    before = Coverage()
    if base.tests:
        before = run.coverage() or before
    importable = target.enclosing_class or target.name
    kept = _Kept([f"from {module} import {importable}"], before)
    result = TestGenResult(target, module, test_path, bool(existing.strip()), "",
                           coverage_before=before.percent)
    _model_rounds(run, kept, result, generate, special_tokens, cfg, t0)
    if cfg.ghostwriter and target.kind == "function" and target.has_type_hints \
            and time.monotonic() - t0 < cfg.time_budget_s:
        _ghost_tests(run, kept, result, sandbox)
    if cfg.mutation_analysis and kept.tests:
        _mutation_stage(run, kept, result, generate, special_tokens, cfg, t0)
    regression = _Kept(list(kept.imports), kept.coverage, list(kept.helpers), dict(kept.tests))
    if cfg.regression_tests and run.failed:
        result.regression = _regression_tests(run, regression)
    if not kept.tests and result.regression:
        # Nothing the model's own expectations confirmed: only the regression tests are on
        # offer, and the text to write (if the user agrees) is theirs alone.
        result.kept = []
        result.new_text = ""
        result.new_text_with_regression = _new_text(run, regression, result.append)
        result.seconds = time.monotonic() - t0
        return result
    if not kept.tests:
        if result.generated == 0:
            raise TestGenError(f"the model wrote no tests for {target.qualname}; nothing written",
                               result)
        raise TestGenError(
            f"none of the {result.generated} generated tests for {target.qualname} passed "
            f"reliably in the sandbox; nothing written", result)
    result.kept = list(kept.tests)
    result.coverage_after = max(kept.coverage.percent, before.percent)
    result.new_text = _new_text(run, kept, result.append)
    if result.regression:
        result.new_text_with_regression = _new_text(run, regression, result.append)
    result.seconds = time.monotonic() - t0
    return result


@dataclass
class _Base:
    """The existing test file's tests: they count for coverage ("before", and what the new
    tests add to)."""

    imports: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    tests: list[TestCase] = field(default_factory=list)

    @classmethod
    def of(cls, existing: str) -> _Base:
        old = split_tests(existing)
        return cls(old.imports, [p for p in old.preamble if p not in old.imports], old.tests)


@dataclass
class _Kept:
    """The tests kept so far, with the imports and helpers they need, and the coverage of the
    target with them (and the existing tests)."""

    imports: list[str]
    coverage: Coverage
    helpers: list[str] = field(default_factory=list)
    tests: dict[str, TestCase] = field(default_factory=dict)


@dataclass
class _Run:
    """What one generation works on: the runner, the target and its module's text, the test
    file's text and tests, the progress step (which raises :class:`Cancelled`)."""

    runner: TestRunner
    target: Target
    module: str
    source: str  # the module's text
    existing: str  # the test file's text ('' when there is none)
    base: _Base
    step: Callable[[str, int], None]
    # Every test module the model wrote (passing or not) and the docstring's examples: more
    # inputs for the mutation analysis' equivalent-looking verdict.
    probes: list[str] = field(default_factory=list)
    # The tests that failed on the code, with the imports and helpers they came with.
    failed: list[tuple[_Candidate, TestCase]] = field(default_factory=list)

    def coverage(self, kept: _Kept | None = None) -> Coverage | None:
        """The target's coverage with the existing tests and ``kept``'s."""
        imports, helpers, tests = (kept.imports, kept.helpers, kept.tests) if kept else ([], [], {})
        return _coverage_with(self.runner, self.base, imports, helpers, tests,
                              (self.target.start_line, self.target.end_line))

    def taken(self, kept: _Kept) -> set[str]:
        """The names a new test may not have: the kept tests' and the test file's."""
        return set(kept.tests) | defined_names(self.existing)


def _check_import(runner: TestRunner, module: str, step: Callable[[str, int], None]) -> None:
    """No test can pass if the module does not import in the sandbox: say so before asking the
    model."""
    step(f"checking that {module} imports", 5)
    imported = runner.check_import(module)
    if imported.verdict is Verdict.REFUSED:
        raise TestGenError(imported.detail)
    if not imported.ok:
        err = (imported.stderr.strip().splitlines() or [imported.detail])[-1]
        raise TestGenError(f"module {module} does not import in the sandbox: {err}")


def _model_rounds(run: _Run, kept: _Kept, result: TestGenResult, generate: Generate,
                  special_tokens: frozenset[str], cfg: TestGenSettings, t0: float) -> None:
    """The model writes tests: a first round, then repair rounds that show it the failures and
    the lines still uncovered, while half the time budget is left and there is something to
    repair."""
    failures: dict[str, str] = {}
    for rnd in range(cfg.rounds):
        if rnd > 0:
            spent = time.monotonic() - t0
            if spent > cfg.time_budget_s * 0.5 or (not failures and kept.coverage.percent >= 100):
                break
        result.rounds = rnd + 1
        if rnd == 0:
            messages = first_prompt(run.target, run.module)
        else:
            lines = run.source.split("\n")
            uncovered = [(n, lines[n - 1].strip()) for n in kept.coverage.missing_lines]
            messages = repair_prompt(run.target, run.module, failures, uncovered)
        run.step(f"round {rnd + 1}: the model is writing tests", 15 + 35 * rnd)
        answer = generate(format_chat(messages, special_tokens), cfg.max_new_tokens)
        parsed = split_tests(answer, frozenset(defined_names(run.source)), one_per_check=True)
        result.generated += len(parsed.tests) + parsed.dropped
        result.parsed += len(parsed.tests)
        new_tests = rename_colliding(parsed.tests, run.taken(kept))
        if new_tests:
            failures = _run_round(run, kept, result, parsed, new_tests, rnd)


def _run_round(run: _Run, kept: _Kept, result: TestGenResult, parsed: ParsedTests,
               new_tests: list[TestCase], rnd: int) -> dict[str, str]:
    """Run one round's new tests and keep those that pass every time, with the helpers they
    came with. Returns the failures by name (the flaky tests left out)."""
    candidate = _candidate(run, kept, parsed, new_tests)
    run.step(f"round {rnd + 1}: running {len(candidate.tests)} tests in the sandbox",
             25 + 35 * rnd)
    kept_now, failed = _filter(run.runner, candidate.imports, kept.helpers + candidate.helpers,
                               candidate.tests, run.step, 30 + 35 * rnd)
    result.passed += len(kept_now) + sum(1 for n in failed if n.startswith("flaky:"))
    if kept_now:
        _keep(run, kept, candidate, kept_now)
    run.failed += [(candidate, t) for t in candidate.tests if t.name in failed]
    return {k: v for k, v in failed.items() if not k.startswith("flaky:")}


@dataclass
class _Candidate:
    """A round's new tests, with all the imports and the new helpers they need."""

    imports: list[str]
    helpers: list[str]
    tests: list[TestCase]


def _candidate(run: _Run, kept: _Kept, parsed: ParsedTests, new_tests: list[TestCase]
               ) -> _Candidate:
    imports = kept.imports + [i for i in parsed.imports if i not in kept.imports]
    new_helpers = [h for h in parsed.preamble
                   if h not in parsed.imports and h not in kept.helpers]
    imports += [i for i in missing_imports(imports, kept.helpers + new_helpers, new_tests)
                if i not in imports]
    # A helper or fixture named like one of the file's (or an earlier round's) would
    # redefine it for the tests already there: rename it, with its uses in the new tests.
    new_helpers, new_tests = _rename_helpers(
        new_helpers, new_tests,
        defined_names(run.existing) | defined_names("\n\n".join(kept.helpers)))
    run.probes.append(render_module(imports, kept.helpers + new_helpers, new_tests))
    return _Candidate(imports, new_helpers, new_tests)


def _keep(run: _Run, kept: _Kept, candidate: _Candidate, tests: list[TestCase]) -> None:
    """Add ``tests`` (of ``candidate``) to the kept ones and measure the coverage again."""
    kept.imports = candidate.imports
    kept.helpers += candidate.helpers
    kept.tests.update((t.name, t) for t in tests)
    run.step("measuring coverage", 60)
    kept.coverage = run.coverage(kept) or kept.coverage


# --- mutation analysis and mutation-guided rounds ------------------------------------------


def _mutation_stage(run: _Run, kept: _Kept, result: TestGenResult, generate: Generate,
                    special_tokens: frozenset[str], cfg: TestGenSettings, t0: float) -> None:
    """mutmut's changes to the target, run against the kept tests; then rounds that show the
    model the changes no test catches and keep a new test only when it passes on the code
    (every run) and catches one of them. Stops at the time budget or when none is left."""
    target = run.target
    mutants = mutants_of(run.source, (target.start_line, target.end_line))
    if not mutants:
        return
    if run.base.tests:
        run.step(f"mutation analysis: {len(mutants)} changes with the existing tests", 70)
        result.mutation_existing = _analyse(run, _Kept([], Coverage()), mutants,
                                            run.coverage())
    importable = target.enclosing_class or target.name
    examples = example_probe(target.docstring, f"from {run.module} import {importable}")
    if examples:
        run.probes.append(examples)
    run.step(f"mutation analysis: {len(mutants)} changes to {target.qualname}", 72)
    report = _analyse(run, kept, mutants, kept.coverage)
    if report is None:
        return
    result.mutation_unguided = result.mutation = report
    shown: set[int] = set()
    for k in range(cfg.mutation_rounds):
        # Greedy decoding would answer the same prompt the same way: new changes each round.
        left = [m for m in report.survivors if m.index not in shown]
        if not left or time.monotonic() - t0 > cfg.time_budget_s * 0.7:
            break
        batch = left[:MUTANTS_PER_ROUND]
        shown.update(m.index for m in batch)
        report = _guided_round(run, kept, result, generate, special_tokens, cfg, report, batch,
                               k)
        result.mutation = report
    logger.info("testgen: mutation analysis of %s: %s\n%s", target.qualname, report.phrase(),
                "\n".join(f"  {r.fate.value}: {r.mutant.label}" for r in report.results))


# Surviving changes shown to the model per mutation-guided round.
MUTANTS_PER_ROUND = 3


def _guided_round(run: _Run, kept: _Kept, result: TestGenResult, generate: Generate,
                  special_tokens: frozenset[str], cfg: TestGenSettings,
                  report: MutationReport, batch: list[Mutant], k: int) -> MutationReport:
    pct = 75 + 5 * k
    run.step(f"mutation-guided round {k + 1}: the model is writing tests for "
             f"{len(batch)} changes no test catches", pct)
    messages = mutant_prompt(run.target, run.module, list(kept.tests.values()), batch)
    answer = generate(format_chat(messages, special_tokens), cfg.max_new_tokens)
    parsed = split_tests(answer, frozenset(defined_names(run.source)), one_per_check=True)
    result.generated += len(parsed.tests) + parsed.dropped
    result.parsed += len(parsed.tests)
    new_tests = rename_colliding(parsed.tests, run.taken(kept))
    if not new_tests:
        return report
    candidate = _candidate(run, kept, parsed, new_tests)
    run.step(f"mutation-guided round {k + 1}: running {len(new_tests)} tests", pct + 1)
    passing, failed = _filter(run.runner, candidate.imports, kept.helpers + candidate.helpers,
                              candidate.tests, run.step, pct + 2)
    result.passed += len(passing) + sum(1 for n in failed if n.startswith("flaky:"))
    if not passing:
        return report
    survivors = report.survivors
    run.step(f"mutation-guided round {k + 1}: {len(passing)} tests against "
             f"{len(survivors)} changes", pct + 3)
    answer_runs = run.runner.run_mutants(candidate.imports, kept.helpers + candidate.helpers,
                                         passing, run.module, run.target.qualname,
                                         run.target.kind, [m.source for m in survivors])
    killed = _killed_by(answer_runs, survivors, {t.name for t in passing})
    if not killed:
        return report
    killers = {name for names in killed.values() for name in names}
    new = [t for t in passing if t.name in killers]
    _keep(run, kept, candidate, new)
    result.mutation_kept += len(new)
    return report.with_killed(killed)


def _regression_tests(run: _Run, kept: _Kept) -> list[str]:
    """Failing tests of the form ``assert f(...) == <literal>`` pinned to the value the code
    returns, that then pass every run, added to ``kept`` (a copy of the kept tests). Returns
    their names. If the whole does not pass together, none is offered."""
    run.step(f"checking {len(run.failed)} failed tests for regression tests", 92)
    names: list[str] = []
    before = dict(kept.tests)
    seen = {_body(t) for t in kept.tests.values()}
    groups: dict[int, tuple[_Candidate, list[TestCase]]] = {}
    for candidate, test in run.failed:
        groups.setdefault(id(candidate), (candidate, []))[1].append(test)
    for candidate, tests in groups.values():
        probes = probe_tests(tests)
        if not probes:
            continue
        helpers = kept.helpers + [h for h in candidate.helpers if h not in kept.helpers]
        outcome = run.runner.run(candidate.imports, helpers, probes)
        pinned_tests = []
        for test in tests:
            value = value_of(outcome.failed.get(test.name, ""))
            fixed = pinned(test, value) if value is not None else None
            if fixed is not None:
                pinned_tests.append(fixed)
        # The same check written twice (a repair round repeating a failed test) once, and
        # none that repeats a kept test.
        fresh = []
        for t in pinned_tests:
            if _body(t) not in seen:
                seen.add(_body(t))
                fresh.append(t)
        pinned_tests = fresh
        pinned_tests = rename_colliding(pinned_tests, run.taken(kept))[:MAX_REGRESSION]
        if not pinned_tests:
            continue
        passing, _ = _filter(run.runner, candidate.imports, helpers, pinned_tests, run.step, 94)
        if passing:
            kept.imports = kept.imports + [i for i in candidate.imports if i not in kept.imports]
            kept.helpers = helpers
            kept.tests.update((t.name, t) for t in passing)
            names += [t.name for t in passing]
        if len(names) >= MAX_REGRESSION:
            break
    if names:
        together = run.runner.run(kept.imports, kept.helpers, list(kept.tests.values()))
        if set(kept.tests) - together.passed:
            kept.tests = before
            return []
    return names


def _body(test: TestCase) -> str:
    """A test's code without its name and comments (to find the same test twice)."""
    try:
        tree = ast.parse(test.source)
    except SyntaxError:
        return test.source
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = "_"
    return ast.unparse(tree)


# Regression tests offered per generation at most.
MAX_REGRESSION = 10


def _killed_by(answer: dict[str, object] | None, mutants: list[Mutant], names: set[str]
               ) -> dict[int, tuple[str, ...]]:
    """Mutant index → the new tests that failed on it (a run that timed out or crashed names
    no test, so it keeps no test and the mutant stays uncaught)."""
    runs = mutant_runs(answer, len(mutants))
    if runs is None:
        return {}
    out = {}
    for mutant, one in zip(mutants, runs, strict=True):
        if isinstance(one, dict) and one.get("status") == "failed":
            by = tuple(n for n in one.get("failed", ()) if n in names)
            if by:
                out[mutant.index] = by
    return out


def _analyse(run: _Run, kept: _Kept, mutants: list[Mutant], coverage: Coverage | None
             ) -> MutationReport | None:
    """Run the existing tests and ``kept``'s against every mutant."""
    base = run.base
    imports = base.imports + [i for i in kept.imports if i not in base.imports]
    tests = base.tests + list(kept.tests.values())
    answer = run.runner.run_mutants(imports, base.helpers + kept.helpers, tests, run.module,
                                    run.target.qualname, run.target.kind,
                                    [m.source for m in mutants], probes=run.probes)
    if answer is None:
        return None
    unrun = frozenset(coverage.missing_lines) if coverage is not None else frozenset()
    return classify(mutants, answer, unrun)


def _ghost_tests(run: _Run, kept: _Kept, result: TestGenResult, sandbox: Sandbox) -> None:
    """Add the Hypothesis ghostwriter's property tests that pass every time."""
    run.step("Hypothesis ghostwriter: property tests", 85)
    ghost = _ghostwrite(run.runner, sandbox, run.module, run.target)
    if ghost is None or not ghost.tests:
        return
    # Derandomized and without deadline: the same examples on every run (so the flake filter
    # sees a deterministic test, as the user's CI will).
    ghost_tests = [TestCase(t.name, "@settings(derandomize=True, deadline=None, "
                            "database=None)\n" + t.source)
                   for t in rename_colliding(ghost.tests, run.taken(kept))]
    g_imports = kept.imports + [i for i in [*ghost.imports, "from hypothesis import settings"]
                                if i not in kept.imports]
    g_helpers = [h for h in ghost.preamble if h not in ghost.imports]
    kept_g, _ = _filter(run.runner, g_imports, kept.helpers + g_helpers, ghost_tests, run.step,
                        90)
    if kept_g:
        kept.imports = g_imports
        kept.helpers += g_helpers
        kept.tests.update((t.name, t) for t in kept_g)
        result.ghostwritten_kept = len(kept_g)
        kept.coverage = run.coverage(kept) or kept.coverage


def _new_text(run: _Run, kept: _Kept, append: bool) -> str:
    """What to write: a new test module, or the kept tests (with the imports the file lacks)
    to go after the existing file's text."""
    tests = list(kept.tests.values())
    if not append:
        return render_module(sorted(kept.imports, key=_import_order), kept.helpers, tests)
    have = _import_statements(run.existing)
    missing_imports = [i for i in kept.imports if _normal_import(i) not in have]
    header = f"# Tests for {run.target.qualname}, generated by pingti (kept: passed " \
             f"{FLAKE_RUNS} more runs in the sandbox)."
    body = render_module(missing_imports, kept.helpers, tests)
    sep = "" if run.existing.endswith("\n") else "\n"
    return f"{sep}\n\n{header}\n{body}"


def _normal_import(statement: str) -> str:
    try:
        return ast.unparse(ast.parse(statement).body[0])
    except (SyntaxError, IndexError):
        return statement.strip()


def _import_statements(code: str) -> set[str]:
    """The import statements of a module, normalised (so a prefix is not a match)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return {_normal_import(line) for line in code.splitlines()
                if line.startswith(("import ", "from "))}
    return {ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))}


def _rename_helpers(helpers: list[str], tests: list[TestCase], taken: set[str]
                    ) -> tuple[list[str], list[TestCase]]:
    clashes = sorted(defined_names("\n\n".join(helpers)) & taken)
    for name in clashes:
        new = name + "_generated"
        k = 2
        while new in taken:
            new = f"{name}_generated{k}"
            k += 1
        pattern = re.compile(rf"\b{re.escape(name)}\b")
        helpers = [pattern.sub(new, h) for h in helpers]
        tests = [TestCase(t.name, pattern.sub(new, t.source)) for t in tests]
    return helpers, tests


def _coverage_with(runner: TestRunner, base: _Base, imports: list[str], helpers: list[str],
                   kept: dict[str, TestCase], lines: tuple[int, int]) -> Coverage | None:
    all_imports = base.imports + [i for i in imports if i not in base.imports]
    return runner.run(all_imports, base.helpers + helpers, base.tests + list(kept.values()),
                      lines).coverage


def _import_order(line: str) -> tuple[int, str]:
    return (0 if line.startswith("import ") else 1, line)


def _filter(runner: TestRunner, imports: list[str], helpers: list[str], tests: list[TestCase],
            step: Callable[[str, int], None], pct: int) -> tuple[list[TestCase], dict[str, str]]:
    """The tests that pass, then pass FLAKE_RUNS more runs; failures by name ('flaky:' for
    those that passed once and then failed)."""
    first = runner.run(imports, helpers, tests)
    failed = dict(first.failed)
    for t in tests:
        if t.name not in first.passed and t.name not in failed:
            failed[t.name] = "did not run"
    passing = [t for t in tests if t.name in first.passed]
    for k in range(FLAKE_RUNS):
        if not passing:
            break
        step(f"re-running {len(passing)} passing tests ({k + 1}/{FLAKE_RUNS})", pct)
        again = runner.run(imports, helpers, passing)
        for t in passing:
            if t.name not in again.passed:
                failed["flaky:" + t.name] = again.failed.get(t.name, "failed on a re-run")
        passing = [t for t in passing if t.name in again.passed]
    return passing, failed


_GHOST = (
    "import importlib, sys\n"
    "from hypothesis.extra import ghostwriter\n"
    "mod = importlib.import_module(sys.argv[1])\n"
    "obj = mod\n"
    "for part in sys.argv[2].split('.'):\n"
    "    obj = getattr(obj, part)\n"
    # A fuzz test: any input its type hints allow, and only the errors a function may
    # legitimately raise for bad input (ValueError, TypeError) are tolerated.
    "print(ghostwriter.fuzz(obj, except_=(ValueError, TypeError)))\n"
)


def _ghostwrite(runner: TestRunner, sandbox: Sandbox, module: str, target: Target
                ) -> ParsedTests | None:
    """Hypothesis' ghostwriter's property tests for the target (it imports the module, so it
    runs in the sandbox too)."""
    workdir = sandbox.make_workdir()
    try:
        (workdir / "ghost.py").write_text(_GHOST)
        res = sandbox.run(["python", "ghost.py", module, target.qualname], workdir,
                          env={"PYTHONPATH": str(runner.import_root)}, cancel=runner.cancel,
                          readonly=[runner.import_root])
    finally:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    if not res.ok:
        logger.info("ghostwriter failed: %s", res.stderr[-500:])
        return None
    parsed = split_tests(res.stdout)
    return parsed
