"""Mutation analysis (testgen/mutation.py, testgen/_mutdriver.py) and boundary hints
(testgen/hints.py): mutmut's mutants of the target's lines, the driver's verdicts sorted into
fates, and, where bubblewrap works, the driver itself in the sandbox."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from testgen.hints import boundary_hints
from testgen.mutation import Fate, Mutant, MutantResult, MutationReport, classify, mutants_of
from testgen.runner import TestRunner as Runner
from testgen.sandbox import Sandbox, detect
from testgen.split import TestCase as Case
from testgen.split import missing_imports

MODULE = textwrap.dedent('''\
    """Two functions."""


    def clamp(x, lo, hi):
        if x < lo:
            return lo
        if x > hi:
            return hi
        return x


    def double(x):
        return x * 2
    ''')
CLAMP = (4, 9)  # clamp's lines


# --- mutants ----------------------------------------------------------------------------------


def test_mutants_only_on_the_target_lines() -> None:
    mutants = mutants_of(MODULE, CLAMP)
    assert mutants
    assert all(CLAMP[0] <= m.line <= CLAMP[1] for m in mutants)
    assert not any("x * 2" in m.before for m in mutants)
    assert len({m.source for m in mutants}) == len(mutants)  # distinct
    assert [m.index for m in mutants] == list(range(len(mutants)))
    for m in mutants:  # each is the module with one change, and compiles
        compile(m.source, "m", "exec")
        assert m.source != MODULE
        assert m.source.split("\n")[m.line - 1] == m.after.split("\n")[0]
        assert MODULE.split("\n")[m.line - 1] == m.before.split("\n")[0]
    assert any(m.before.strip() == "if x < lo:" and m.after.strip() == "if x <= lo:"
               for m in mutants)


def test_mutant_diff_and_label() -> None:
    m = Mutant(0, 5, "    if x < lo:", "    if x <= lo:", "")
    assert m.diff == "-    if x < lo:\n+    if x <= lo:"
    assert m.label == "line 5: `if x < lo:` → `if x <= lo:`"


def test_mutants_limit_spreads_over_the_lines() -> None:
    src = "def f(a):\n    b = a[-1] + 1\n    c = a[0] - 2\n    return [b, c, a[1] * 3]\n"
    every = mutants_of(src, (1, 4))
    assert len(every) > 6
    some = mutants_of(src, (1, 4), limit=3)
    assert len(some) == 3 and [m.index for m in some] == [0, 1, 2]
    assert some[0].source == every[0].source
    assert some[-1].line > some[0].line


def test_no_mutants_of_broken_code_or_empty_lines() -> None:
    assert mutants_of("def f(:\n", (1, 1)) == []
    assert mutants_of(MODULE, (1, 3)) == []  # the docstring and blank lines


def test_pragma_no_mutate_is_honoured() -> None:
    src = MODULE.replace("if x < lo:", "if x < lo:  # pragma: no mutate")
    assert not any(m.line == 5 for m in mutants_of(src, CLAMP))


# --- classifying the driver's answer ------------------------------------------------------------


def _mutants(n: int) -> list[Mutant]:
    return [Mutant(i, 5 + i, "a", "b", f"src{i}") for i in range(n)]


def _run(status: str, digest: str = "d0", calls: int = 3, failed: tuple[str, ...] = ()
         ) -> dict[str, object]:
    return {"status": status, "digest": digest, "calls": calls, "failed": list(failed)}


def test_classify_fates() -> None:
    ms = _mutants(5)
    answer = {"original": _run("passed"),
              "mutants": [_run("failed", failed=("test_a",)), _run("timeout", ""),
                          _run("passed", "other"), _run("passed"), _run("passed")]}
    report = classify(ms, answer, frozenset({9}))  # mutant 4's line is not run
    assert report is not None
    fates = [r.fate for r in report.results]
    assert fates == [Fate.KILLED, Fate.KILLED, Fate.SURVIVED, Fate.EQUIVALENT, Fate.NOT_RUN]
    assert report.results[0].killed_by == ("test_a",)
    assert (report.killed, report.counted) == (2, 4)
    assert report.score == 50.0
    assert [m.index for m in report.survivors] == [2, 4]
    assert report.phrase() == "kill 2 of 4 changes (1 equivalent-looking set apart)"


def test_same_digest_without_calls_is_not_equivalent() -> None:
    # The tests never called the target: nothing shows the mutant behaves the same.
    ms = _mutants(1)
    answer = {"original": _run("passed", calls=0), "mutants": [_run("passed", calls=0)]}
    report = classify(ms, answer, frozenset())
    assert report is not None and report.results[0].fate is Fate.SURVIVED


@pytest.mark.parametrize("answer", [
    {}, {"original": _run("failed"), "mutants": [_run("failed")]},
    {"original": _run("passed"), "mutants": []}, {"original": "x", "mutants": [1]}])
def test_unusable_answers(answer: dict[str, object]) -> None:
    assert classify(_mutants(1), answer, frozenset()) is None


def test_with_killed_and_empty_report() -> None:
    ms = _mutants(2)
    report = MutationReport((MutantResult(ms[0], Fate.SURVIVED), MutantResult(ms[1], Fate.KILLED,
                                                                               ("t1",))))
    after = report.with_killed({0: ("t2",)})
    assert after.killed == 2 and after.results[0].killed_by == ("t2",)
    assert report.killed == 1  # unchanged
    assert MutationReport(()).score == 0.0
    assert MutationReport(()).phrase() == "kill 0 of 0 changes"


# --- boundary hints -------------------------------------------------------------------------------


def test_hints_for_comparisons_raises_defaults_and_slices() -> None:
    hints = boundary_hints(textwrap.dedent('''\
        def cut(text, n=3, fill=None):
            if n < 1:
                raise ValueError("n must be positive")
            if not text:
                return ""
            if fill is None:
                fill = "-"
            if len(text) > n:
                return text[:n]
            return text
        '''), limit=20)
    assert "ValueError is raised when `n < 1`: test that it is raised (pytest.raises), and the " \
           "nearest value for which it is not" in hints
    assert "`n < 1`: `n` equal to 0, 1 and 2" in hints
    assert "`fill` is None and is not None" in hints
    assert "`text` empty (\"\", [], 0 or None as its type allows)" in hints
    assert "`len(text) > n`: `len(text)` equal to `n`, and one more and one less" in hints
    assert any(h.startswith("the slice `text[:n]`") for h in hints)
    assert "`n` left out (default 3) and given another value" in hints
    assert len(hints) == len(set(hints))


def test_hints_negative_constant_else_branch_and_limit() -> None:
    src = textwrap.dedent('''\
        class A:
            def f(self, x):
                if x >= -2:
                    return 1
                else:
                    raise KeyError(x)
        ''')
    hints = boundary_hints(src)
    assert "`x >= -2`: `x` equal to -3, -2 and -1" in hints
    assert any(h.startswith("KeyError is raised when `not (x >= -2)`") for h in hints)
    assert len(boundary_hints(src, limit=1)) == 1
    assert boundary_hints("def f(:") == []
    assert boundary_hints("def f():\n    return 1\n") == []


# --- missing imports ------------------------------------------------------------------------------


def test_missing_imports_of_pytest_and_stdlib_modules() -> None:
    tests = [Case("test_a", "def test_a():\n    with pytest.raises(ValueError):\n"
                            "        f(math.inf)\n"),
             Case("test_b", "def test_b(tmp_path):\n    os = 1\n    assert os.x\n"
                            "    assert mystery.y\n    assert tmp_path.name\n")]
    assert missing_imports(["from m import f"], [], tests) == ["import math", "import pytest"]
    assert missing_imports(["import pytest", "import math as math"], [], tests) == []
    assert missing_imports([], ["def helper():\n    return re.compile('x')\n"], []) \
        == ["import re"]
    assert missing_imports([], [], [Case("t", "def t(:\n")]) == []
    klass = Case("TestA", "class TestA:\n    def test_x(self, re):\n        assert re.x and json.y\n")
    assert missing_imports([], [], [klass]) == ["import json"]


# --- the driver in the sandbox ----------------------------------------------------------------------

needs_sandbox = pytest.mark.skipif(not detect().usable, reason="no sandbox here (bubblewrap missing)")


@needs_sandbox
def test_driver_in_the_sandbox(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text(MODULE)
    # An endless loop, a mutant that breaks the module, one the test catches, one it does not
    # (same answers on the test's input), one on a line the test never runs.
    mutants = [MODULE.replace("return x\n", "while True:\n            pass\n"),
               MODULE.replace('"""Two functions."""', 'raise ImportError("broken")'),
               MODULE.replace("return x\n", "return x + 1\n"),
               MODULE.replace("if x > hi:", "if x >= hi:"),
               MODULE.replace("return lo", "return lo - 1")]
    tests = [Case("test_mid", "def test_mid():\n    assert clamp(5, 0, 10) == 5\n"),
             Case("test_high", "def test_high():\n    assert clamp(50, 0, 10) == 10\n")]
    runner = Runner(Sandbox(), ws, ws / "calc.py")
    try:
        answer = runner.run_mutants(["from calc import clamp"], [], tests, "calc", "clamp",
                                    "function", mutants, timeout_s=1.0)
    finally:
        runner.close()
    assert answer is not None
    assert answer["original"]["status"] == "passed" and answer["original"]["calls"] == 2
    runs = answer["mutants"]
    # pytest's own exit code for a module that does not import (2) is an "error": caught.
    assert [r["status"] for r in runs] == ["timeout", "error", "failed", "passed", "passed"]
    assert runs[2]["failed"] == ["test_mid"]
    assert runs[3]["digest"] == answer["original"]["digest"]  # x == hi never tried
    ms = [Mutant(i, 6, "", "", s) for i, s in enumerate(mutants)]
    report = classify(ms[:4], {"original": answer["original"], "mutants": runs[:4]},
                      frozenset())
    assert report is not None
    assert [r.fate for r in report.results] == [Fate.KILLED, Fate.KILLED, Fate.KILLED,
                                                Fate.EQUIVALENT]


@needs_sandbox
def test_driver_records_method_state(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    src = textwrap.dedent('''\
        class Box:
            def __init__(self):
                self.items = []

            def add(self, x):
                self.items.append(x)
                return len(self.items)
        ''')
    (ws / "box.py").write_text(src)
    # The test checks only the return value: the state differs, so the mutant is not
    # equivalent-looking.
    mutant = src.replace("self.items.append(x)", "self.items.append(None)")
    tests = [Case("test_add", "def test_add():\n    assert Box().add(3) == 1\n")]
    runner = Runner(Sandbox(), ws, ws / "box.py")
    try:
        answer = runner.run_mutants(["from box import Box"], [], tests, "box", "Box.add",
                                    "method", [mutant, src.replace("return len", "return 0 + len")])
    finally:
        runner.close()
    assert answer is not None
    original, (changed, same) = answer["original"], answer["mutants"]
    assert changed["status"] == same["status"] == "passed"
    assert changed["digest"] != original["digest"]
    assert same["digest"] == original["digest"]


@needs_sandbox
def test_driver_without_tests_or_with_a_failing_original(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text(MODULE)
    runner = Runner(Sandbox(), ws, ws / "calc.py")
    try:
        assert runner.run_mutants([], [], [], "calc", "clamp", "function", [MODULE]) is None
        bad = [Case("test_bad", "def test_bad():\n    assert clamp(5, 0, 10) == 6\n")]
        answer = runner.run_mutants(["from calc import clamp"], [], bad, "calc", "clamp",
                                    "function", [MODULE])
    finally:
        runner.close()
    assert answer is not None and answer["original"]["status"] == "failed"
    assert classify([Mutant(0, 5, "", "", MODULE)], answer, frozenset()) is None


@needs_sandbox
def test_probes_decide_what_looks_equivalent(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text(MODULE)
    # Both mutants pass the tests with the same answers on their inputs; a probe (a failing
    # test the model wrote) calls clamp(12, 0, 10), where only the first one differs.
    mutants = [MODULE.replace("if x > hi:", "if x > hi + 5:"),
               MODULE.replace("if x > hi:", "if x >= hi:")]
    tests = [Case("test_high", "def test_high():\n    assert clamp(50, 0, 10) == 10\n")]
    probe = ("from calc import clamp\n\n\ndef test_wrong():\n"
             "    assert clamp(12, 0, 10) == 12\n")
    runner = Runner(Sandbox(), ws, ws / "calc.py")
    try:
        answer = runner.run_mutants(["from calc import clamp"], [], tests, "calc", "clamp",
                                    "function", mutants, probes=[probe])
        plain = runner.run_mutants(["from calc import clamp"], [], tests, "calc", "clamp",
                                   "function", mutants)
    finally:
        runner.close()
    ms = [Mutant(i, 7, "", "", s) for i, s in enumerate(mutants)]
    assert answer is not None and plain is not None
    with_probe = classify(ms, answer, frozenset())
    without = classify(ms, plain, frozenset())
    assert with_probe is not None and without is not None
    assert [r.fate for r in with_probe.results] == [Fate.SURVIVED, Fate.EQUIVALENT]
    assert [r.fate for r in without.results] == [Fate.EQUIVALENT, Fate.EQUIVALENT]


def test_a_probe_that_said_nothing_vouches_for_nothing() -> None:
    ms = [Mutant(0, 5, "a", "b", "s")]
    run = {"status": "passed", "digest": "d", "calls": 1, "failed": []}
    answer = {"original": {**run, "probe_digest": ""}, "mutants": [{**run, "probe_digest": ""}]}
    report = classify(ms, answer, frozenset())
    assert report is not None and report.results[0].fate is Fate.SURVIVED
