"""Generate tests: prompts, where tests go, reading pytest/coverage reports, staging, and the
pipeline with a scripted model (testgen/pipeline.py, testgen/runner.py).

The pipeline runs twice: with a fake runner (fast, deterministic: flakes, repair rounds, the
known bugs) and, where bubblewrap works, with the real sandbox (a few runs, ~1-3 s each).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import stat
import tempfile
import textwrap
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from testgen import pipeline, runner
from testgen.extract import find_target
from testgen.mutation import example_probe
from testgen.pipeline import (
    Cancelled,
    first_prompt,
    format_chat,
    generate_tests,
    repair_prompt,
)
from testgen.pipeline import TestGenError as GenError  # aliases: not collected by pytest
from testgen.pipeline import TestGenSettings as Settings
from testgen.pipeline import test_file_for as file_for
from testgen.runner import Coverage, RunOutcome, _read_junit, coverage_of, stage_sources
from testgen.runner import TestRunner as Runner
from testgen.sandbox import Sandbox, SandboxResult, Verdict, detect
from testgen.split import TestCase as Case
from testgen.split import defined_names, split_tests

CALC = textwrap.dedent('''\
    """Small arithmetic."""

    import math


    def clamp(x: int, lo: int, hi: int) -> int:
        """x limited to [lo, hi]."""
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x


    def clamp_all(xs, lo, hi):
        return [clamp(x, lo, hi) for x in xs]


    class Box:
        def __init__(self, size):
            self.size = size

        def grow(self, by: int) -> int:
            self.size += by
            return self.size


    async def later(x):
        return x


    ROOT2 = math.sqrt(2)
    ''')
CALC_LINES = CALC.split("\n")


def line_of(fragment: str) -> int:
    return next(i for i, text in enumerate(CALC_LINES) if fragment in text)


def answer(code: str) -> str:
    return "Here are the tests:\n\n```python\n" + textwrap.dedent(code).strip() + "\n```\n"


# --- format_chat ----------------------------------------------------------------------------

MESSAGES = [("system", "Be brief."), ("user", "Write tests.")]


def test_chatml_when_the_model_has_its_tokens() -> None:
    text = format_chat(MESSAGES, frozenset({"<|im_start|>", "<|im_end|>", "<|endoftext|>"}))
    assert text == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                    "<|im_start|>user\nWrite tests.<|im_end|>\n"
                    "<|im_start|>assistant\n")


@pytest.mark.parametrize("tokens", [frozenset(), frozenset({"<|endoftext|>"}), {"</s>", "<s>"}])
def test_plain_format_otherwise(tokens: frozenset[str] | set[str]) -> None:
    text = format_chat(MESSAGES, tokens)
    assert text.endswith("### Assistant\n")
    assert "<|im_start|>" not in text
    assert text.index("### System\nBe brief.") < text.index("### User\nWrite tests.")


# --- prompts --------------------------------------------------------------------------------


def test_first_prompt_for_a_function() -> None:
    t = find_target(CALC, line_of("if x < lo"))
    messages = first_prompt(t, "pkg.calc")
    assert [role for role, _ in messages] == ["system", "user"]
    user = messages[1][1]
    assert "the function `clamp`" in user
    assert "`pkg.calc`" in user
    assert "`from pkg.calc import clamp`" in user
    assert "import math" in user  # the module's imports as context
    assert '"""x limited to [lo, hi]."""' in user  # the definition itself
    assert "asyncio.run" not in user
    assert "pytest" in messages[0][1]


def test_first_prompt_for_a_method_imports_the_class() -> None:
    t = find_target(CALC, line_of("self.size += by"))
    user = first_prompt(t, "pkg.calc")[1][1]
    assert "the method `Box.grow`" in user
    assert "`from pkg.calc import Box`" in user
    assert "import grow" not in user


def test_first_prompt_for_a_class() -> None:
    t = find_target(CALC, line_of("class Box"))
    user = first_prompt(t, "calc")[1][1]
    assert "the class `Box`" in user
    assert "`from calc import Box`" in user


def test_first_prompt_for_an_async_function() -> None:
    t = find_target(CALC, line_of("async def later") + 1)
    assert t.is_async
    user = first_prompt(t, "calc")[1][1]
    assert "asyncio.run(" in user


def test_first_prompt_without_module_imports() -> None:
    t = find_target("def f():\n    return 1\n", 1)
    user = first_prompt(t, "m")[1][1]
    assert "```python\ndef f():" in user


def test_repair_prompt_lists_failures_and_uncovered_lines() -> None:
    t = find_target(CALC, line_of("if x < lo"))
    failures = {f"test_{i}": f"assert {i} == 0\nsecond line {i}" for i in range(12)}
    uncovered = [(n, f"line_{n}") for n in range(100, 130)]
    messages = repair_prompt(t, "calc", failures, uncovered)
    assert messages[:2] == first_prompt(t, "calc")
    role, text = messages[2]
    assert role == "user"
    assert "- test_0: assert 0 == 0" in text
    assert "- test_7: assert 7 == 0" in text
    assert "test_8" not in text  # at most 8 failures
    assert "second line" not in text  # first line of each reason only
    assert "100: line_100" in text and "119: line_119" in text
    assert "120: line_120" not in text  # at most 20 lines
    assert text.endswith("Write new test functions (new names).")


def test_repair_prompt_long_failure_is_cut() -> None:
    t = find_target(CALC, line_of("if x < lo"))
    text = repair_prompt(t, "calc", {"test_a": "x" * 1000}, [])[2][1]
    assert "- test_a: " + "x" * 200 + "\n" in text + "\n"
    assert "x" * 201 not in text
    assert "not run by any test" not in text


def test_repair_prompt_only_uncovered() -> None:
    t = find_target(CALC, line_of("if x < lo"))
    text = repair_prompt(t, "calc", {}, [(9, "return hi")])[2][1]
    assert "failed" not in text
    assert "9: return hi" in text


# --- where the tests go ---------------------------------------------------------------------


def test_tests_folder_when_present(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "test").mkdir()
    assert file_for("pkg.sub.calc", tmp_path, tmp_path / "pkg/sub/calc.py") == \
        tmp_path / "tests" / "test_calc.py"


def test_test_folder_when_present(tmp_path: Path) -> None:
    (tmp_path / "test").mkdir()
    assert file_for("calc", tmp_path, tmp_path / "calc.py") == tmp_path / "test" / "test_calc.py"


def test_new_tests_folder_is_not_created(tmp_path: Path) -> None:
    (tmp_path / "tests").write_text("a file, not a folder")
    (tmp_path / "sub").mkdir()
    assert file_for("calc", tmp_path / "sub", tmp_path / "sub/calc.py") == \
        tmp_path / "sub" / "tests" / "test_calc.py"
    assert not (tmp_path / "sub" / "tests").exists()


# --- coverage_of ----------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data))
    return path


def cov_entry(executed: list[int], missing: list[int], hit_br: list[list[int]],
              miss_br: list[list[int]]) -> dict[str, Any]:
    return {"executed_lines": executed, "missing_lines": missing, "excluded_lines": [],
            "executed_branches": hit_br, "missing_branches": miss_br,
            "summary": {"covered_lines": len(executed)}}


def test_coverage_restricted_to_the_target_lines(tmp_path: Path) -> None:
    mod = tmp_path / "calc.py"
    report = write_json(tmp_path / "cov.json", {"meta": {}, "files": {str(mod): cov_entry(
        executed=[1, 3, 5, 6, 7, 20],
        missing=[8, 9, 21],
        hit_br=[[6, 7], [8, -5], [20, 21]],
        miss_br=[[6, 8], [2, 3]])}})
    cov = coverage_of(report, mod, (5, 10))
    assert cov == Coverage(lines=5, lines_hit=3, branches=3, branches_hit=2, missing_lines=(8, 9))
    assert cov.percent == pytest.approx(100 * 5 / 8)


def test_coverage_all_hit(tmp_path: Path) -> None:
    mod = tmp_path / "calc.py"
    report = write_json(tmp_path / "cov.json", {"files": {str(mod): cov_entry([2, 3], [], [[2, 3]], [])}})
    cov = coverage_of(report, mod, (1, 3))
    assert cov.percent == 100.0
    assert cov.missing_lines == ()


def test_coverage_file_matched_by_name(tmp_path: Path) -> None:
    report = write_json(tmp_path / "cov.json", {"files": {
        "other.py": cov_entry([1, 2], [], [], []),
        "/elsewhere/stage/calc.py": cov_entry([5], [6], [], [])}})
    cov = coverage_of(report, tmp_path / "calc.py", (1, 10))
    assert (cov.lines, cov.lines_hit, cov.missing_lines) == (2, 1, (6,))


def test_coverage_exact_path_wins_over_the_name(tmp_path: Path) -> None:
    mod = tmp_path / "a" / "calc.py"
    report = write_json(tmp_path / "cov.json", {"files": {
        "/other/calc.py": cov_entry([1], [2, 3], [], []),
        str(mod): cov_entry([1, 2, 3], [], [], [])}})
    assert coverage_of(report, mod, (1, 3)).percent == 100.0


def test_coverage_missing_file_or_report(tmp_path: Path) -> None:
    report = write_json(tmp_path / "cov.json", {"files": {"x.py": cov_entry([1], [], [], [])}})
    for cov in (coverage_of(report, tmp_path / "calc.py", (1, 5)),
                coverage_of(tmp_path / "absent.json", tmp_path / "calc.py", (1, 5)),
                coverage_of(_text(tmp_path / "bad.json", "{not json"), tmp_path / "calc.py", (1, 5))):
        assert cov == Coverage()
        assert cov.percent == 0.0


def _text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_coverage_of_no_lines_is_zero_percent() -> None:
    assert Coverage(lines=0, branches=0).percent == 0.0


# --- _read_junit ----------------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites name="pytest tests"><testsuite name="pytest" errors="1" failures="2" skipped="1" tests="9">
<testcase classname="test_pingti_candidates" name="test_ok" time="0.001" />
<testcase classname="test_pingti_candidates" name="test_fails" time="0.001">
  <failure message="assert 2 == 3">def test_fails(): ...</failure></testcase>
<testcase classname="test_pingti_candidates" name="test_errors" time="0.001">
  <error message="failed on setup with &quot;fixture 'nope' not found&quot;">E fixture</error></testcase>
<testcase classname="test_pingti_candidates" name="test_skipped" time="0.001">
  <skipped type="pytest.skip" message="no reason">skipped</skipped></testcase>
<testcase classname="test_pingti_candidates" name="test_param[1]" time="0.001" />
<testcase classname="test_pingti_candidates" name="test_param[2-a]" time="0.001" />
<testcase classname="test_pingti_candidates" name="test_mixed[1]" time="0.001" />
<testcase classname="test_pingti_candidates" name="test_mixed[2]" time="0.001">
  <failure message="assert 4 == 5" /></testcase>
<testcase classname="test_pingti_candidates" name="test_mixed[3]" time="0.001" />
<testcase classname="test_pingti_candidates" name="test_textonly" time="0.001">
  <failure>  AssertionError from the text  </failure></testcase>
<testcase classname="test_pingti_candidates.TestGood" name="test_a" time="0.001" />
<testcase classname="test_pingti_candidates.TestGood" name="test_b[x]" time="0.001" />
<testcase classname="test_pingti_candidates.TestBad" name="test_a" time="0.001">
  <failure message="boom" /></testcase>
<testcase classname="test_pingti_candidates.TestBad" name="test_b" time="0.001" />
</testsuite></testsuites>
"""


def read_junit(tmp_path: Path, text: str) -> RunOutcome:
    (tmp_path / "report.xml").write_text(text)
    out = RunOutcome()
    _read_junit(tmp_path / "report.xml", out)
    return out


def test_junit_outcomes(tmp_path: Path) -> None:
    out = read_junit(tmp_path, JUNIT)
    assert out.passed == {"test_ok", "test_param", "TestGood"}
    assert out.failed == {
        "test_fails": "assert 2 == 3",
        "test_errors": "failed on setup with \"fixture 'nope' not found\"",
        "test_skipped": "skipped",
        "test_mixed": "assert 4 == 5",  # one failing case sinks the parametrized test
        "test_textonly": "AssertionError from the text",
        "TestBad": "boom",  # one failing method sinks the class
    }


def test_junit_long_message_is_cut(tmp_path: Path) -> None:
    xml = ('<testsuite><testcase classname="m" name="test_a"><failure message="'
           + "y" * 2000 + '"/></testcase></testsuite>')
    assert read_junit(tmp_path, xml).failed["test_a"] == "y" * 500


@pytest.mark.parametrize("text", ["", "<testsuite><testcase", "not xml at all"])
def test_junit_missing_or_broken(tmp_path: Path, text: str) -> None:
    out = read_junit(tmp_path, text)
    assert out.passed == set() and out.failed == {}
    out = RunOutcome()
    _read_junit(tmp_path / "absent.xml", out)
    assert out.passed == set() and out.failed == {}


def test_junit_skipped_case_does_not_depend_on_order(tmp_path: Path) -> None:
    cases = ['<testcase classname="m" name="test_p[1]" />',
             '<testcase classname="m" name="test_p[2]"><skipped message="no" /></testcase>']
    outcomes = []
    for order in (cases, cases[::-1]):
        out = read_junit(tmp_path, "<testsuite>" + "".join(order) + "</testsuite>")
        assert not (out.passed & set(out.failed))
        outcomes.append((out.passed, set(out.failed)))
    assert outcomes[0] == outcomes[1]


# --- stage_sources --------------------------------------------------------------------------


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tempfile's folder (where stages and work dirs are made), to see what is left behind."""
    d = tmp_path / "tmpdir"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def make_project(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def staged_files(stage: Path) -> set[str]:
    return {str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file()}


def test_stage_copies_python_sources_only(tmp_path: Path, private_tmp: Path) -> None:
    proj = tmp_path / "proj"
    make_project(proj, {
        "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n", "pkg/util.py": "Y = 2\n",
        "pkg/data.txt": "data", "pkg/settings.json": "{}", ".env": "TOKEN=secret", "key.pem": "k",
        ".venv/lib/site.py": "", "venv/x.py": "", ".git/hooks/hook.py": "", "node_modules/n.py": "",
        "pkg/__pycache__/mod.py": "", ".hidden/h.py": "", "build/b.py": "", ".tox/t.py": "",
    })
    os.chmod(proj / "pkg/util.py", 0o600)
    stage = stage_sources(proj, proj / "pkg/mod.py", "X = 2  # unsaved\n")
    try:
        assert stage.parent == private_tmp
        assert staged_files(stage) == {"pkg/__init__.py", "pkg/mod.py", "pkg/util.py"}
        assert (stage / "pkg/mod.py").read_text() == "X = 2  # unsaved\n"
        assert (stage / "pkg/util.py").read_text() == "Y = 2\n"
        assert (proj / "pkg/mod.py").read_text() == "X = 1\n"  # the original is not touched
        # World-readable (the sandbox's uid reads it), nothing writable by others.
        for p in [stage, *stage.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
    finally:
        shutil.rmtree(stage)


def test_stage_without_text_copies_the_module(tmp_path: Path, private_tmp: Path) -> None:
    proj = tmp_path / "proj"
    make_project(proj, {"calc.py": "A = 1\n", "notes.md": "x"})
    stage = stage_sources(proj, proj / "calc.py")
    try:
        assert staged_files(stage) == {"calc.py"}
        assert (stage / "calc.py").read_text() == "A = 1\n"
    finally:
        shutil.rmtree(stage)


def test_stage_module_in_a_skipped_folder_is_still_staged(tmp_path: Path, private_tmp: Path) -> None:
    proj = tmp_path / "proj"
    make_project(proj, {"top.py": "", "build/gen.py": "G = 1\n"})
    stage = stage_sources(proj, proj / "build/gen.py", "G = 2\n")
    try:
        assert staged_files(stage) == {"top.py", "build/gen.py"}
        assert (stage / "build/gen.py").read_text() == "G = 2\n"
    finally:
        shutil.rmtree(stage)


def test_stage_beyond_the_file_limit(tmp_path: Path, private_tmp: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    make_project(proj, {"a.py": "", "b.py": "", "c.py": "", "big.txt": "x" * 1000})
    monkeypatch.setattr(runner, "STAGE_MAX_FILES", 3)
    shutil.rmtree(stage_sources(proj, proj / "a.py"))  # exactly at the limit: fine (.txt does not count)
    monkeypatch.setattr(runner, "STAGE_MAX_FILES", 2)
    before = set(private_tmp.iterdir())
    with pytest.raises(OSError, match="too many Python files"):
        stage_sources(proj, proj / "a.py")
    assert set(private_tmp.iterdir()) == before  # the partial stage is removed


def test_stage_beyond_the_byte_limit(tmp_path: Path, private_tmp: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    proj = tmp_path / "proj"
    make_project(proj, {"a.py": "x" * 600, "b.py": "y" * 600, "data.bin": "z" * 10_000})
    monkeypatch.setattr(runner, "STAGE_MAX_BYTES", 1000)
    with pytest.raises(OSError):
        stage_sources(proj, proj / "a.py")
    assert list(private_tmp.iterdir()) == []


def test_runner_setup_failure_is_a_test_gen_error(tmp_path: Path, private_tmp: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ws = tmp_path / "ws"
    make_project(ws, {"calc.py": CALC, "other.py": "", "more.py": ""})
    monkeypatch.setattr(runner, "STAGE_MAX_FILES", 1)
    with pytest.raises(GenError, match="cannot prepare the sandbox: .*too many Python files"):
        generate_tests(ws / "calc.py", CALC, line_of("if x < lo"), None, ws,
                       lambda p, n: pytest.fail("the model must not be asked"),
                       frozenset(), fake_sandbox(), Settings(rounds=1, ghostwriter=False))


# --- the pipeline with a fake runner (no sandbox) --------------------------------------------


def fake_sandbox(usable: bool = True) -> Any:
    report = SimpleNamespace(usable=usable, refusal=lambda: "pingti: no sandbox for generated code")
    return SimpleNamespace(report=report)


class FakeRunner:
    """Stands in for TestRunner: ``rule(name, nth run of that test)`` says whether a test passes.
    Runs with target lines return ``coverage``."""

    def __init__(self, rule: Callable[[str, int], bool],
                 coverage: Coverage | Callable[[list[str]], Coverage] | None = None,
                 imports_ok: bool = True,
                 mutation: Callable[[list[str], str], str | None] | None = None,
                 fail_message: Callable[[Case], str] | None = None) -> None:
        self.rule = rule
        self.fail_message = fail_message
        # mutation(test names, mutant source) → the test that fails on it (None: all pass);
        # without it the mutation analysis cannot run (as when the sandbox run fails).
        self.mutation = mutation
        self.mutation_runs: list[tuple[list[str], int]] = []
        self.coverage = coverage or Coverage(lines=4, lines_hit=2, missing_lines=(9, 10))
        self.imports_ok = imports_ok
        self.counts: Counter[str] = Counter()
        self.runs: list[tuple[list[str], list[str], list[str], bool]] = []
        self.closed = False

    def __call__(self, sandbox: Any, root: Path, path: Path, cancel: Any = None,
                 text: str | None = None) -> FakeRunner:
        self.import_root, self.cancel, self.text = root, cancel, text
        return self

    def check_import(self, module: str) -> SandboxResult:
        if self.imports_ok:
            return SandboxResult(Verdict.OK, 0, "", "", 0.0)
        return SandboxResult(Verdict.FAILED, 1, "", "Traceback...\nImportError: nope\n", 0.0)

    def run(self, imports: list[str], helpers: list[str], tests: list[Case],
            target_lines: tuple[int, int] | None = None) -> RunOutcome:
        names = [t.name for t in tests]
        self.runs.append((list(imports), list(helpers), names, target_lines is not None))
        cov = self.coverage(names) if callable(self.coverage) else self.coverage
        out = RunOutcome(coverage=cov if target_lines else None)
        for t in tests:
            self.counts[t.name] += 1
            if self.rule(t.name, self.counts[t.name]):
                out.passed.add(t.name)
            else:
                out.failed[t.name] = (self.fail_message(t) if self.fail_message else
                                      f"AssertionError: {t.name} is wrong\nmore")
        return out

    def run_mutants(self, imports: list[str], helpers: list[str], tests: list[Case],
                    module: str, qualname: str, kind: str, mutants: list[str],
                    timeout_s: float = 2.0, probes: Any = ()) -> dict[str, Any] | None:
        names = [t.name for t in tests]
        self.mutation_runs.append((names, len(mutants)))
        if self.mutation is None:
            return None
        runs = []
        for k, source in enumerate(mutants):
            killer = self.mutation(names, source)
            runs.append({"status": "failed" if killer else "passed", "digest": f"changed{k}",
                         "calls": 1, "failed": [killer] if killer else []})
        return {"original": {"status": "passed", "digest": "d", "calls": 1, "failed": []},
                "mutants": runs}

    def close(self) -> None:
        self.closed = True


class Model:
    """A scripted ``generate``: one answer per call, prompts recorded."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.prompts: list[str] = []

    def __call__(self, prompt: str, max_new_tokens: int) -> str:
        self.prompts.append(prompt)
        return self.answers.pop(0) if self.answers else ""


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    w = tmp_path / "ws"
    w.mkdir()
    (w / "calc.py").write_text(CALC)
    return w


def run_fake(ws: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeRunner, model: Model,
             rounds: int = 1, line: str = "if x < lo", special: frozenset[str] = frozenset(),
             progress: Any = None, mutation_rounds: int = 2,
             regression: bool = True) -> pipeline.TestGenResult:
    monkeypatch.setattr(pipeline, "TestRunner", fake)
    return generate_tests(ws / "calc.py", CALC, line_of(line), None, ws, model, special,
                          fake_sandbox(), Settings(rounds=rounds, ghostwriter=False,
                                                   mutation_rounds=mutation_rounds,
                                                   regression_tests=regression),
                          progress=progress)


TWO_GOOD_ONE_FLAKY = answer('''
    import pytest
    from calc import clamp

    def test_low():
        assert clamp(-5, 0, 10) == 0

    def test_flaky():
        assert clamp(5, 0, 10) == 5

    def test_mid():
        assert clamp(5, 0, 10) == 5
''')


def test_flaky_test_is_dropped(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # test_flaky passes its first run and fails the second.
    fake = FakeRunner(lambda name, n: name != "test_flaky" or n == 1)
    progress: list[tuple[str, int]] = []
    result = run_fake(ws, monkeypatch, fake, Model(TWO_GOOD_ONE_FLAKY),
                      progress=lambda m, p: progress.append((m, p)))
    assert result.kept == ["test_low", "test_mid"]
    assert (result.generated, result.parsed, result.passed) == (3, 3, 3)
    assert "kept 2 of 3 generated tests for clamp" in result.summary
    assert "test_flaky" not in result.new_text
    assert fake.closed
    # One run of all, FLAKE_RUNS re-runs of the passing ones, one coverage run of the kept ones.
    assert [r[2] for r in fake.runs] == [
        ["test_low", "test_flaky", "test_mid"],
        ["test_low", "test_flaky", "test_mid"],
        *[["test_low", "test_mid"]] * (pipeline.FLAKE_RUNS - 1),
        ["test_low", "test_mid"],
    ]
    assert [r[3] for r in fake.runs] == [False] * (pipeline.FLAKE_RUNS + 1) + [True]
    # The imports: the target's, then the answer's.
    assert fake.runs[0][0] == ["from calc import clamp", "import pytest"]
    assert result.coverage_after == pytest.approx(50.0)
    pcts = [p for _, p in progress]
    assert pcts == sorted(pcts) and all(0 <= p <= 100 for p in pcts)


def test_new_file_layout(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    result = run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True), Model(answer('''
        from calc import clamp
        import pytest

        LIMIT = 10

        @pytest.fixture
        def lo():
            return 0

        def test_low(lo):
            assert clamp(-5, lo, LIMIT) == lo

        test_low(0)
    ''')))
    assert not result.append
    assert result.test_path == ws / "tests" / "test_calc.py"
    assert not result.test_path.exists()  # the caller writes it
    assert result.new_text == textwrap.dedent('''\
        import pytest
        from calc import clamp


        LIMIT = 10


        @pytest.fixture
        def lo():
            return 0


        def test_low(lo):
            assert clamp(-5, lo, LIMIT) == lo
        ''')


def test_test_that_fails_on_its_first_run_is_not_kept(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name == "test_low" or n > 1)
    result = run_fake(ws, monkeypatch, fake, Model(TWO_GOOD_ONE_FLAKY))
    assert result.kept == ["test_low"]
    assert result.passed == 1


def test_none_passing_is_an_error(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GenError, match="none of the 3 generated tests for clamp passed reliably"):
        run_fake(ws, monkeypatch, FakeRunner(lambda name, n: n == 1), Model(TWO_GOOD_ONE_FLAKY))


def test_only_broken_tests_is_an_error(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True)
    with pytest.raises(GenError, match="none of the 1 generated tests"):
        run_fake(ws, monkeypatch, fake, Model("```python\ndef test_a(:\n    pass\n```"))
    assert fake.runs == []


def test_repair_round_sees_failures_and_uncovered_lines(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name != "test_wrong",
                      coverage=Coverage(lines=5, lines_hit=3, missing_lines=(line_of("return hi") + 1,)))
    model = Model(answer('''
        from calc import clamp

        def test_low():
            assert clamp(-5, 0, 10) == 0

        def test_wrong():
            assert clamp(50, 0, 10) == 50
    '''), answer('''
        from calc import clamp

        def test_low():
            assert clamp(-1, 0, 10) == 0

        def test_high():
            assert clamp(50, 0, 10) == 10
    '''))
    result = run_fake(ws, monkeypatch, fake, model, rounds=2,
                      special=frozenset({"<|im_start|>", "<|im_end|>"}))
    assert result.rounds == 2
    assert len(model.prompts) == 2
    assert all(p.endswith("<|im_start|>assistant\n") for p in model.prompts)
    second = model.prompts[1]
    assert "- test_wrong: AssertionError: test_wrong is wrong" in second
    assert f"{line_of('return hi') + 1}: return hi" in second
    # Round 2's test_low is renamed: it does not replace round 1's.
    assert result.kept == ["test_low", "test_low_2", "test_high"]
    assert (result.generated, result.parsed, result.passed) == (4, 4, 3)
    assert defined_names(result.new_text) == {"test_low", "test_low_2", "test_high"}
    assert result.new_text.count("from calc import clamp") == 1


def test_no_repair_round_at_full_coverage(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True, coverage=Coverage(lines=4, lines_hit=4))
    model = Model(TWO_GOOD_ONE_FLAKY, TWO_GOOD_ONE_FLAKY)
    result = run_fake(ws, monkeypatch, fake, model, rounds=2)
    assert result.rounds == 1 and len(model.prompts) == 1
    assert result.coverage_after == 100.0


def test_plain_chat_format_for_a_model_without_chatml(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = Model(TWO_GOOD_ONE_FLAKY)
    run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True), model)
    assert model.prompts[0].endswith("### Assistant\n")


def test_method_target_imports_its_class(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True)
    result = run_fake(ws, monkeypatch, fake, Model(answer('''
        def test_grow():
            from calc import Box
            assert Box(1).grow(2) == 3
    ''')), line="self.size += by")
    assert fake.runs[0][0] == ["from calc import Box"]
    assert result.new_text.startswith("from calc import Box\n")
    assert "Box.grow" in result.summary


def test_unusable_sandbox_is_refused(ws: Path) -> None:
    with pytest.raises(GenError, match="no sandbox"):
        generate_tests(ws / "calc.py", CALC, line_of("if x < lo"), None, ws, Model(), frozenset(),
                       fake_sandbox(usable=False))


def test_import_failure_with_the_fake_runner(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(GenError, match="module calc does not import in the sandbox: ImportError: nope"):
        run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True, imports_ok=False), Model())


def test_append_renames_and_skips_present_imports(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "tests").mkdir()
    existing = "from calc import clamp\n\n\ndef test_low():\n    assert clamp(-5, 0, 10) == 0\n"
    (ws / "tests" / "test_calc.py").write_text(existing)
    fake = FakeRunner(lambda name, n: True, coverage=Coverage(lines=4, lines_hit=3))
    result = run_fake(ws, monkeypatch, fake, Model(TWO_GOOD_ONE_FLAKY))
    assert result.append
    # The existing tests ran first, for the coverage before.
    assert fake.runs[0] == (["from calc import clamp"], [], ["test_low"], True)
    assert result.coverage_before == pytest.approx(75.0)
    assert result.kept == ["test_low_2", "test_flaky", "test_mid"]
    assert not defined_names(result.new_text) & defined_names(existing)
    assert result.new_text.startswith("\n\n# Tests for clamp, generated by pingti")
    assert "from calc import clamp" not in result.new_text
    assert "import pytest" in result.new_text
    combined = existing + result.new_text
    ast.parse(combined)
    assert defined_names(combined) == {"test_low", "test_low_2", "test_flaky", "test_mid"}


def test_append_to_a_file_without_final_newline(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "tests").mkdir()
    existing = "from calc import clamp\n\ndef test_low():\n    assert clamp(-5, 0, 10) == 0"
    (ws / "tests" / "test_calc.py").write_text(existing)
    result = run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True), Model(TWO_GOOD_ONE_FLAKY))
    combined = existing + result.new_text
    ast.parse(combined)
    assert "\n\n\n# Tests for clamp" in combined


def test_append_import_that_is_only_a_prefix_of_an_existing_one(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "tests").mkdir()
    existing = "from calc import clamp_all\n\n\ndef test_all():\n    assert clamp_all([5], 0, 1) == [1]\n"
    (ws / "tests" / "test_calc.py").write_text(existing)
    result = run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True), Model(TWO_GOOD_ONE_FLAKY))
    tree = ast.parse(existing + result.new_text)
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert "clamp" in imported


def test_append_does_not_redefine_an_existing_helper(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "tests").mkdir()
    existing = ("from calc import clamp\n\n\ndef bounds():\n    return (0, 10)\n\n\n"
                "def test_low():\n    assert clamp(-5, *bounds()) == 0\n")
    (ws / "tests" / "test_calc.py").write_text(existing)
    result = run_fake(ws, monkeypatch, FakeRunner(lambda name, n: True), Model(answer('''
        from calc import clamp

        def bounds():
            return (100, 200)

        def test_new():
            assert clamp(5, *bounds()) == 100
    ''')))
    assert not defined_names(result.new_text) & defined_names(existing)


def test_append_coverage_after_counts_the_existing_tests(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ws / "tests").mkdir()
    existing = "from calc import clamp\n\n\ndef test_old():\n    assert clamp(-5, 0, 10) == 0\n"
    (ws / "tests" / "test_calc.py").write_text(existing)

    def coverage(names: list[str]) -> Coverage:  # each test covers one of the two lines
        hit = ("test_old" in names) + ("test_mid" in names)
        return Coverage(lines=2, lines_hit=hit, missing_lines=() if hit == 2 else (99,))

    fake = FakeRunner(lambda name, n: name != "test_flaky", coverage=coverage)
    result = run_fake(ws, monkeypatch, fake, Model(answer('''
        from calc import clamp

        def test_mid():
            assert clamp(5, 0, 10) == 5
    ''')))
    assert result.coverage_before == 50.0
    assert result.coverage_after == 100.0


def test_prose_in_the_repair_round_keeps_round_one(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name != "test_flaky")
    result = run_fake(ws, monkeypatch, fake,
                      Model(TWO_GOOD_ONE_FLAKY, "All lines are covered already."), rounds=2)
    assert result.kept == ["test_low", "test_mid"]


GHOST = textwrap.dedent('''\
    import calc
    from hypothesis import given, strategies as st


    @given(x=st.integers(), lo=st.integers(), hi=st.integers())
    def test_fuzz_clamp(x: int, lo: int, hi: int) -> None:
        calc.clamp(x=x, lo=lo, hi=hi)
    ''')


def run_with_ghost(ws: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeRunner,
                   model: Model) -> pipeline.TestGenResult:
    monkeypatch.setattr(pipeline, "TestRunner", fake)
    monkeypatch.setattr(pipeline, "_ghostwrite", lambda *a: split_tests(GHOST))
    return generate_tests(ws / "calc.py", CALC, line_of("if x < lo"), None, ws, model, frozenset(),
                          fake_sandbox(), Settings(rounds=1, ghostwriter=True))


ONE_GOOD = answer('''
    from calc import clamp

    def test_low():
        assert clamp(-5, 0, 10) == 0
''')


def test_ghostwritten_tests_are_filtered_and_merged(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True)
    result = run_with_ghost(ws, monkeypatch, fake, Model(ONE_GOOD))
    assert result.kept == ["test_low", "test_fuzz_clamp"]
    assert result.ghostwritten_kept == 1
    assert fake.runs[-1][2] == ["test_low", "test_fuzz_clamp"] and fake.runs[-1][3]  # coverage
    tree = ast.parse(result.new_text)
    assert [ast.unparse(n) for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))] == [
        "import calc", "from calc import clamp", "from hypothesis import given, strategies as st",
        "from hypothesis import settings"]
    # Derandomized: the same examples on every run (the flake filter and the user's CI agree).
    fuzz = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "test_fuzz_clamp")
    assert ast.unparse(fuzz.decorator_list[0]) == "settings(derandomize=True, deadline=None, database=None)"
    # The fake runner saw the same text the file gets.
    assert "from hypothesis import settings" in fake.runs[-1][0]


def test_failing_ghostwritten_tests_are_dropped(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name != "test_fuzz_clamp")
    result = run_with_ghost(ws, monkeypatch, fake, Model(ONE_GOOD))
    assert result.kept == ["test_low"] and result.ghostwritten_kept == 0
    assert "test_fuzz_clamp" not in result.new_text
    ast.parse(result.new_text)


def test_dropped_ghostwritten_tests_leave_no_imports(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name != "test_fuzz_clamp")
    result = run_with_ghost(ws, monkeypatch, fake, Model(ONE_GOOD))
    assert "hypothesis" not in result.new_text


def test_no_ghostwriter_for_untyped_functions_or_methods(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "TestRunner", FakeRunner(lambda name, n: True))
    monkeypatch.setattr(pipeline, "_ghostwrite", lambda *a: pytest.fail("not for this target"))
    for line in ("return [clamp(x, lo, hi)", "self.size += by"):
        result = generate_tests(ws / "calc.py", CALC, line_of(line), None, ws, Model(ONE_GOOD),
                                frozenset(), fake_sandbox(), Settings(rounds=1, ghostwriter=True))
        assert result.ghostwritten_kept == 0


def test_summary_counts_with_ghostwritten_tests(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The model's tests and the property tests are counted apart.
    result = run_with_ghost(ws, monkeypatch, FakeRunner(lambda name, n: True), Model(ONE_GOOD))
    assert result.model_kept == 1
    assert result.summary.startswith(
        f"kept 1 of 1 generated tests for clamp (1 parsed, 1 passed once, 1 passed {pipeline.FLAKE_RUNS} "
        "more runs) + 1 Hypothesis property test; coverage of clamp:")


def test_summary_text(ws: Path) -> None:
    t = find_target(CALC, line_of("if x < lo"))
    r = pipeline.TestGenResult(t, "calc", ws / "tests/test_calc.py", False, "", kept=["a", "b"],
                               generated=5, parsed=4, passed=3, coverage_before=0,
                               coverage_after=87.5, seconds=3.2)
    s = r.summary
    assert s.startswith("kept 2 of 5 generated tests for clamp (4 parsed, 3 passed once, 2 passed 3 more "
                        "runs); coverage of clamp: ")
    assert "0% → 88%" in s
    assert "Hypothesis" not in s
    assert s.endswith(f"new file {ws / 'tests/test_calc.py'}")
    r.append, r.ghostwritten_kept = True, 1
    assert r.model_kept == 1
    assert r.summary.startswith("kept 1 of 5 generated tests for clamp (4 parsed, 3 passed once, 1 passed "
                                "3 more runs) + 1 Hypothesis property test; ")
    assert "appended to" in r.summary
    r.kept, r.ghostwritten_kept = ["a", "b", "c"], 2
    assert ") + 2 Hypothesis property tests; " in r.summary


# --- the pipeline with the real sandbox -------------------------------------------------------

needs_sandbox = pytest.mark.skipif(not detect().usable, reason="no sandbox here (bubblewrap missing)")

GOOD_AND_WRONG = answer('''
    import pytest
    from calc import clamp

    def test_low():
        assert clamp(-5, 0, 10) == 0

    @pytest.mark.parametrize("x", [0, 5, 10])
    def test_inside(x):
        assert clamp(x, 0, 10) == x

    def test_wrong():
        assert clamp(50, 0, 10) == 50

    if __name__ == "__main__":
        pytest.main()
''')


def sandboxed(ws: Path, model: Callable[[str, int], str], line: str = "if x < lo",
              text: str = CALC, cancel: threading.Event | None = None,
              ghostwriter: bool = False, regression: bool = False) -> pipeline.TestGenResult:
    return generate_tests(ws / "calc.py", text, line_of(line), None, ws, model,
                          frozenset({"<|im_start|>"}), Sandbox(),
                          Settings(rounds=1, ghostwriter=ghostwriter, regression_tests=regression),
                          cancel=cancel)


@needs_sandbox
def test_sandbox_keeps_the_passing_tests(ws: Path, private_tmp: Path) -> None:
    result = sandboxed(ws, Model(GOOD_AND_WRONG))
    assert result.kept == ["test_low", "test_inside"]
    assert (result.generated, result.parsed, result.passed) == (3, 3, 2)
    assert "kept 2 of 3" in result.summary
    tree = ast.parse(result.new_text)
    assert defined_names(result.new_text) == {"test_low", "test_inside"}
    assert [ast.unparse(n) for n in tree.body[:2]] == ["import pytest", "from calc import clamp"]
    assert "test_wrong" not in result.new_text and "__main__" not in result.new_text
    assert 0 < result.coverage_after < 100  # `return hi` is never reached
    assert result.coverage_before == 0.0
    assert not result.append and not result.test_path.exists()
    assert list(private_tmp.iterdir()) == []  # stage and work dirs removed


@needs_sandbox
def test_sandbox_answer_without_tests(ws: Path) -> None:
    with pytest.raises(GenError, match="wrote no tests for clamp"):
        sandboxed(ws, Model(answer("from calc import clamp\n\nprint(clamp(1, 2, 3))")))


@needs_sandbox
def test_sandbox_module_that_does_not_import(ws: Path) -> None:
    broken = "import not_a_module_pingti_xyz\n\n\n" + CALC
    (ws / "calc.py").write_text(broken)
    model = Model(GOOD_AND_WRONG)
    with pytest.raises(GenError, match="does not import.*ModuleNotFoundError.*not_a_module_pingti_xyz"):
        generate_tests(ws / "calc.py", broken, 4 + line_of("if x < lo"), None, ws, model, frozenset(),
                       Sandbox(), Settings(rounds=1, ghostwriter=False))
    assert model.prompts == []  # the model is not asked


@needs_sandbox
def test_sandbox_unsaved_text_is_what_is_tested(ws: Path) -> None:
    # The file on disk is broken, the editor's text is fine: the editor's text counts.
    (ws / "calc.py").write_text("import not_a_module_pingti_xyz\n")
    with pytest.raises(GenError, match="wrote no tests"):
        sandboxed(ws, Model(answer("x = 1")))


@needs_sandbox
def test_sandbox_cancel_before_the_call(ws: Path, private_tmp: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    model = Model(GOOD_AND_WRONG)
    with pytest.raises(Cancelled):
        sandboxed(ws, model, cancel=cancel)
    assert model.prompts == []
    assert list(private_tmp.iterdir()) == []


@needs_sandbox
def test_sandbox_append_to_existing_tests(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "FLAKE_RUNS", 0)  # no re-runs: test_sandbox_keeps_... has them
    (ws / "tests").mkdir()
    existing = textwrap.dedent('''\
        from calc import clamp


        def test_low():
            assert clamp(-5, 0, 10) == 0


        def test_inside():
            assert clamp(3, 0, 10) == 3
        ''')
    (ws / "tests" / "test_calc.py").write_text(existing)
    result = sandboxed(ws, Model(answer('''
        from calc import clamp

        def test_low():
            assert clamp(-1, 0, 10) == 0

        def test_high():
            assert clamp(11, 0, 10) == 10
    ''')))
    assert result.append
    assert result.test_path == ws / "tests" / "test_calc.py"
    assert 0 < result.coverage_before < 100
    assert result.coverage_after >= result.coverage_before
    assert result.kept == ["test_low_2", "test_high"]
    assert not defined_names(result.new_text) & defined_names(existing)
    combined = existing + result.new_text
    ast.parse(combined)
    assert defined_names(combined) == {"test_low", "test_inside", "test_low_2", "test_high"}
    assert "appended to" in result.summary
    assert (ws / "tests" / "test_calc.py").read_text() == existing  # not written here


@needs_sandbox
def test_sandbox_with_the_ghostwriter(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "FLAKE_RUNS", 0)  # fewer sandbox runs
    result = sandboxed(ws, Model(answer('''
        from calc import clamp

        def test_low():
            assert clamp(-5, 0, 10) == 0
    ''')), ghostwriter=True)
    assert result.ghostwritten_kept >= 0
    assert "test_low" in result.kept
    assert len(result.kept) == 1 + result.ghostwritten_kept
    ast.parse(result.new_text)
    if result.ghostwritten_kept:
        assert "hypothesis" in result.new_text
        assert "Hypothesis property test" in result.summary
    assert result.model_kept == 1


@needs_sandbox
def test_runner_directly(ws: Path) -> None:
    """TestRunner against real pytest: functions, a Test* class, parametrized cases, coverage."""
    r = Runner(Sandbox(), ws, ws / "calc.py", text=CALC)
    try:
        tests = [
            Case("test_ok", "def test_ok():\n    assert clamp(1, 0, 2) == 1"),
            Case("test_bad", "def test_bad():\n    assert clamp(5, 0, 2) == 5"),
            Case("test_p", "@pytest.mark.parametrize('x', [0, 1])\ndef test_p(x):\n"
                           "    assert clamp(x, 0, 1) == x"),
            Case("TestK", "class TestK:\n    def test_a(self):\n        assert True\n\n"
                          "    def test_b(self):\n        assert clamp(-1, 0, 1) == -1"),
        ]
        lines = (line_of("def clamp") + 1, line_of("    return x") + 1)
        out = r.run(["import pytest", "from calc import clamp"], [], tests, lines)
        assert out.passed == {"test_ok", "test_p"}
        assert set(out.failed) == {"test_bad", "TestK"}
        assert "assert 2 == 5" in out.failed["test_bad"]
        # Coverage of every test that ran (the failing ones too), of the target's lines only.
        assert out.coverage is not None and out.coverage.lines == 6 and out.coverage.percent > 0
        assert out.sandbox is not None and out.sandbox.verdict is Verdict.FAILED
    finally:
        r.close()
    assert not r.stage.exists()


# --- mutation analysis and mutation-guided rounds (fake runner) -------------------------------

LOW_ONLY = answer('''
    from calc import clamp

    def test_low():
        assert clamp(-5, 0, 10) == 0
''')
EDGE_AND_USELESS = answer('''
    def test_edge():
        assert clamp(0, 0, 10) == 0

    def test_useless():
        assert clamp(5, 0, 10) == 5
''')


def _catches(names: list[str], source: str) -> str | None:
    """test_low catches the changed returns of `lo`; test_edge catches `x <= lo`."""
    if "test_edge" in names and "if x <= lo" in source:
        return "test_edge"
    if "test_low" in names and "return lo\n" not in source:
        return "test_low"
    return None


def test_mutation_guided_round_keeps_only_tests_that_catch_a_change(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True, mutation=_catches)
    model = Model(LOW_ONLY, EDGE_AND_USELESS)
    result = run_fake(ws, monkeypatch, fake, model, mutation_rounds=1)
    assert result.kept == ["test_low", "test_edge"]
    assert "test_useless" not in result.new_text and "def test_edge" in result.new_text
    before, after = result.mutation_unguided, result.mutation
    assert before is not None and after is not None
    assert after.killed == before.killed + 1
    assert result.mutation_kept == 1
    assert (result.generated, result.parsed, result.passed) == (3, 3, 3)
    # The guided prompt shows the surviving changes as diffs, and a passing test.
    prompt = model.prompts[1]
    assert "-    if x < lo:\n+    if x <= lo:" in prompt
    assert "def test_low():" in prompt
    assert "every test still passes with it" in prompt
    # Analysis with the kept test, then the new passing tests against the survivors only.
    assert fake.mutation_runs[0][0] == ["test_low"]
    assert fake.mutation_runs[1] == (["test_edge", "test_useless"],
                                     len(before.survivors))
    assert "before the mutation-guided rounds: " in result.summary
    assert f"the tests kill {after.killed} of {after.counted} changes mutmut made to clamp" \
        in result.summary


def test_guided_rounds_stop_when_nothing_new_is_left_to_show(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True, mutation=_catches)
    model = Model(LOW_ONLY, "no code", "no code", "no code", "no code", "no code", "no code")
    result = run_fake(ws, monkeypatch, fake, model, mutation_rounds=6)
    survivors = result.mutation_unguided.survivors if result.mutation_unguided else []
    rounds = -(-len(survivors) // pipeline.MUTANTS_PER_ROUND)
    assert len(model.prompts) == 1 + rounds < 7  # each change shown once
    assert result.kept == ["test_low"] and result.mutation_kept == 0


def test_guided_test_failing_on_the_original_is_not_kept(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: name != "test_edge", mutation=_catches)
    result = run_fake(ws, monkeypatch, fake, Model(LOW_ONLY, EDGE_AND_USELESS),
                      mutation_rounds=1)
    assert result.kept == ["test_low"]
    assert fake.mutation_runs[1][0] == ["test_useless"]


def test_no_mutation_report_when_the_analysis_cannot_run(
        ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True)
    model = Model(LOW_ONLY, EDGE_AND_USELESS)
    result = run_fake(ws, monkeypatch, fake, model)
    assert result.mutation is None and len(model.prompts) == 1
    assert "mutmut" not in result.summary
    assert result.kept == ["test_low"]


def test_missing_pytest_import_is_added(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True)
    raises = answer('''
        from calc import clamp

        def test_raises():
            with pytest.raises(TypeError):
                clamp(None, 0, 1)
    ''')
    result = run_fake(ws, monkeypatch, fake, Model(raises))
    assert "import pytest" in result.new_text.split("\n")
    assert fake.runs[0][0] == ["from calc import clamp", "import pytest"]


def test_first_prompt_lists_boundary_hints() -> None:
    user = first_prompt(find_target(CALC, line_of("if x < lo")), "calc")[1][1]
    assert "Cases worth a test (the boundaries in the code):\n- `x < lo`: `x` equal to `lo`" \
        in user


def test_summary_lists_the_changes_no_test_catches(ws: Path) -> None:
    from testgen.mutation import Fate, Mutant, MutantResult, MutationReport

    t = find_target(CALC, line_of("if x < lo"))
    r = pipeline.TestGenResult(t, "calc", ws / "tests/test_calc.py", False, "", kept=["a"],
                               generated=1, parsed=1, passed=1)
    ms = [Mutant(i, 7 + i, "    if x < lo:", f"    if x <= lo{i}:", "") for i in range(5)]
    r.mutation = MutationReport(tuple(MutantResult(m, Fate.KILLED if m.index == 0 else
                                                   Fate.SURVIVED) for m in ms))
    r.mutation_existing = MutationReport(())
    s = r.summary
    assert "the tests kill 1 of 5 changes mutmut made to clamp (the existing tests: 0); " \
           "not caught: line 8: `if x < lo:` → `if x <= lo1:`, line 9: " in s
    assert "and 1 more (in the log); " in s
    assert s.endswith(f"new file {ws / 'tests/test_calc.py'}")


def test_docstring_examples_become_a_probe() -> None:
    probe = example_probe("Clamp.\n\n>>> clamp(5, 0, 1)\n1\n>>> clamp(\n...   -1, 0, 1)\n",
                                   "from calc import clamp")
    tree = ast.parse(probe)
    assert defined_names(probe) == {"test_example_0", "test_example_1"}
    assert ast.unparse(tree.body[0]) == "from calc import clamp"
    assert "        clamp(5, 0, 1)\n    except Exception:\n        pass" in probe
    assert example_probe("no examples", "import x") == ""


def test_every_answer_is_a_probe_for_the_analysis(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRunner(lambda name, n: True, mutation=_catches)
    probes: list[list[str]] = []
    real = fake.run_mutants

    def spy(*args: Any, **kwargs: Any) -> dict[str, Any] | None:
        probes.append(list(kwargs.get("probes", ())))
        return real(*args, **{k: v for k, v in kwargs.items() if k != "probes"})

    fake.run_mutants = spy  # type: ignore[method-assign]
    run_fake(ws, monkeypatch, fake, Model(LOW_ONLY, EDGE_AND_USELESS), mutation_rounds=1)
    # The first round's answer (clamp's docstring has no examples); the guided round's new
    # tests are run against the survivors only.
    assert len(probes[0]) == 1 and "def test_low" in probes[0][0]
    assert probes[1] == []


# --- regression tests on offer ------------------------------------------------------------------

WRONG_GUESS = answer('''
    from calc import clamp

    def test_low():
        assert clamp(-5, 0, 10) == 0

    def test_high():
        assert clamp(50, 0, 10) == 50

    def test_broken():
        assert clamp(1, 2) == 2
''')


def _probe_says_ten(test: Case) -> str:
    """Probes of test_high report the value clamp returned (10); other tests just fail."""
    if "PINGTI_VALUE" in test.source and test.name == "test_high":
        return "AssertionError: PINGTI_VALUE:10\nassert False"
    return f"AssertionError: {test.name} is wrong"


class SourceRunner(FakeRunner):
    """A fake whose rule sees each test's source."""

    def __init__(self, rule: Callable[[Case], bool], **kw: Any) -> None:
        super().__init__(lambda name, n: True, **kw)
        self.source_rule = rule

    def run(self, imports: list[str], helpers: list[str], tests: list[Case],
            target_lines: tuple[int, int] | None = None) -> RunOutcome:
        out = super().run(imports, helpers, tests, target_lines)
        for t in tests:
            if not self.source_rule(t):
                out.passed.discard(t.name)
                out.failed[t.name] = (self.fail_message(t) if self.fail_message
                                      else "AssertionError")
        return out


def _clamp_rule(t: Case) -> bool:
    return "PINGTI_VALUE" not in t.source and (t.name == "test_low" or "== 10" in t.source)


def test_failing_guess_is_offered_as_a_regression_test(ws: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SourceRunner(_clamp_rule, fail_message=_probe_says_ten)
    result = run_fake(ws, monkeypatch, fake, Model(WRONG_GUESS))
    assert result.kept == ["test_low"]
    assert result.regression == ["test_high"]
    assert ["test_high", "test_broken"] in [r[2] for r in fake.runs]  # the probe run
    assert "clamp(50, 0, 10) == 50" not in result.new_text
    assert "test_high" not in result.new_text  # not written unless the user agrees
    assert "1 more failed only on a guessed expected value: not written" in result.summary
    offered = result.new_text_with_regression
    assert "# Regression test: the expected value is what the code returned" in offered
    assert "assert clamp(50, 0, 10) == 10" in offered and "def test_low" in offered
    assert "test_broken" not in offered
    result.keep_regression()
    assert result.new_text == offered and result.kept == ["test_low", "test_high"]
    assert result.model_kept == 1 and result.regression == []
    assert "+ 1 regression test you chose to keep" in result.summary


def test_only_regression_tests_on_offer(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SourceRunner(lambda t: "PINGTI_VALUE" not in t.source and "== 10" in t.source,
                        fail_message=_probe_says_ten)
    result = run_fake(ws, monkeypatch, fake, Model(WRONG_GUESS))
    assert result.kept == [] and result.new_text == ""
    assert result.regression == ["test_high"]
    assert "def test_high" in result.new_text_with_regression
    assert "test_low" not in result.new_text_with_regression


def test_no_regression_tests_when_switched_off(ws: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SourceRunner(_clamp_rule, fail_message=_probe_says_ten)
    result = run_fake(ws, monkeypatch, fake, Model(WRONG_GUESS), regression=False)
    assert result.regression == [] and result.new_text_with_regression == ""
    assert ["test_high", "test_broken"] not in [r[2] for r in fake.runs]  # no probe run
    with pytest.raises(GenError):
        run_fake(ws, monkeypatch, SourceRunner(lambda t: False), Model(WRONG_GUESS),
                 regression=False)


def test_pinned_test_that_still_fails_is_not_offered(ws: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake = SourceRunner(lambda t: t.name == "test_low", fail_message=_probe_says_ten)
    result = run_fake(ws, monkeypatch, fake, Model(WRONG_GUESS))
    assert result.kept == ["test_low"] and result.regression == []


@needs_sandbox
def test_sandbox_regression_value_is_the_real_one(ws: Path) -> None:
    result = sandboxed(ws, Model(GOOD_AND_WRONG), regression=True)
    assert result.kept == ["test_low", "test_inside"]
    assert result.regression == ["test_wrong"]
    result.keep_regression()
    assert "assert clamp(50, 0, 10) == 10" in result.new_text
    assert defined_names(result.new_text) == {"test_low", "test_inside", "test_wrong"}
