"""lsp-bench's outputs and plumbing without a server: the Markdown table, script lines, paired
comparisons and charts (lspbench/report.py), summaries, result files and cursors (run.py),
suggestion texts from LSP answers (client.py) and command-line validation (cli.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lspbench import cli, report
from lspbench.client import completion_texts, inline_texts
from lspbench.run import BenchError, RunOptions, cursor, read_results, summarize
from lspbench.tasks import Kind, Task

# --- report.markdown / machine_lines -----------------------------------------------------------

SUMMARY: dict[str, Any] = {
    "tasks": 3, "samples": 6, "pass@1": 0.5, "pass@2": 2 / 3, "pass@5": None,
    "syntax_error_rate": 1 / 6, "empty_rate": 0.0, "errors": 1,
    "latency_p50_s": 2.0, "latency_p95_s": 2.9, "tokens_per_s": 30.0,
}
METRICS = ["tasks", "samples", "pass@1", "pass@2", "pass@5", "syntax-error rate",
           "empty suggestions", "request errors", "latency p50 (s)", "latency p95 (s)",
           "tokens/s (decode)"]


def table_rows(table: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]


def test_markdown_without_kinds() -> None:
    table = report.markdown(SUMMARY, (1, 2, 5))
    rows = table_rows(table)
    assert rows[0] == ["metric", "all"]
    assert re.fullmatch(r"\|(---\|){2}", table.splitlines()[1])
    assert [r[0] for r in rows[2:]] == METRICS  # one row per metric
    cells = {r[0]: r[1] for r in rows[2:]}
    assert cells["pass@1"] == "0.500" and cells["pass@2"] == "0.667"
    assert cells["pass@5"] == "n/a"
    assert cells["syntax-error rate"] == "0.167"
    assert cells["tasks"] == "3" and cells["request errors"] == "1"
    assert cells["latency p50 (s)"] == "2.00" and cells["latency p95 (s)"] == "2.90"
    assert cells["tokens/s (decode)"] == "30.0"


def test_markdown_with_kinds_has_a_column_per_kind() -> None:
    summary = {**SUMMARY, "wall_s": 12.34, "by_kind": {
        "multi-line": {**SUMMARY, "pass@1": 1.0, "pass@2": 1.0, "pass@5": None},
        "single-line": {**SUMMARY, "pass@1": 0.25, "pass@2": None, "pass@5": None},
    }}
    table = report.markdown(summary, (1, 2, 5))
    rows = table_rows(table)
    assert rows[0] == ["metric", "all", "multi-line", "single-line"]
    assert re.fullmatch(r"\|(---\|){4}", table.splitlines()[1])
    assert [r[0] for r in rows[2:]] == [*METRICS, "wall time (s)"]
    assert all(len(r) == 4 for r in rows)
    cells = {r[0]: r[1:] for r in rows[2:]}
    assert cells["pass@1"] == ["0.500", "1.000", "0.250"]
    assert cells["pass@2"] == ["0.667", "1.000", "n/a"]
    assert cells["pass@5"] == ["n/a", "n/a", "n/a"]
    assert cells["wall time (s)"] == ["12.3", "", ""]  # per-kind figures have no wall time


def test_markdown_of_an_empty_summary_is_all_na() -> None:
    rows = table_rows(report.markdown({}, (1,)))
    assert all(r[1] == "n/a" for r in rows[2:])
    assert report.markdown({"pass@1": None, "by_kind": {}}, (1,)).splitlines()[0] == "| metric | all |"


def test_machine_lines() -> None:
    lines = report.machine_lines(SUMMARY, (1, 2)).splitlines()
    assert re.fullmatch(r"pass@1: \d\.\d{3}", lines[0]) and lines[0] == "pass@1: 0.500"
    assert lines[1] == "pass@2: 0.667"
    assert "syntax_error_rate: 0.167" in lines
    assert "latency_p50_s: 2.000" in lines and "latency_p95_s: 2.900" in lines
    assert re.search(r"^pass@1: \d\.\d{3}$", report.machine_lines(SUMMARY, (1,)), re.M)


@pytest.mark.parametrize("value", [0.0, 1.0, 0.43333333, 0.9995])
def test_machine_line_pass_at_1_format(value: float) -> None:
    first = report.machine_lines({"pass@1": value}, (1,)).splitlines()[0]
    assert re.fullmatch(r"pass@1: \d\.\d{3}", first)
    assert float(first.split(": ")[1]) == pytest.approx(value, abs=5e-4)


def test_machine_lines_without_a_value() -> None:
    assert report.machine_lines({}, (1,)).splitlines()[0] == "pass@1: n/a"


# --- report.compare / chart ---------------------------------------------------------------------


def row(tid: str, cand: int, passed: bool, kind: str = "complete", parses: bool = True,
        latency: float = 1.0, gen: int | None = 10, dec: float | None = 0.5,
        completion: str = "x", error: str | None = None) -> dict[str, Any]:
    return {"task_id": tid, "kind": kind, "candidate": cand, "completion": completion,
            "passed": passed, "parses": parses, "latency_s": latency, "generated_tokens": gen,
            "decode_s": dec, "error": error}


RUN_A = [row("t1", 0, True), row("t2", 0, False), row("t2", 1, True), row("t3", 0, False),
         row("t4", 0, False), row("only-a", 0, True)]
RUN_B = [row("t1", 0, True), row("t2", 0, False), row("t3", 0, True), row("t4", 0, False),
         row("only-b", 0, True), row("only-b2", 0, False)]


def test_solved_any_candidate() -> None:
    assert report.solved(RUN_A) == {"t1": True, "t2": True, "t3": False, "t4": False, "only-a": True}


def test_compare_paired_counts_on_common_tasks() -> None:
    text, paired = report.compare({"pass@1": 0.6}, {"pass@1": 0.4}, RUN_A, RUN_B, ("A", "B"), (1,))
    assert paired["common_tasks"] == 4
    assert paired["solved_by_both"] == 1  # t1
    assert paired["solved_by_A_only"] == 1 and paired["A_only"] == ["t2"]
    assert paired["solved_by_B_only"] == 1 and paired["B_only"] == ["t3"]
    lines = text.splitlines()
    assert lines[0] == "| metric | A | B |"
    assert "| pass@1 | 0.600 | 0.400 |" in lines
    assert "Paired on 4 tasks: both solved 1; A only 1; B only 1." in lines
    assert any("did not finish the same tasks" in line for line in lines)


def test_compare_notes_a_run_that_finished_fewer_tasks() -> None:
    b = [r for r in RUN_A if r["task_id"] != "t4"]
    text, paired = report.compare({}, {}, RUN_A, b, ("A", "B"), (1,))
    assert paired["common_tasks"] == 4 and paired["solved_by_both"] == 3
    assert "did not finish the same tasks" in text
    text, _ = report.compare({}, {}, b, RUN_A, ("A", "B"), (1,))
    assert "did not finish the same tasks" in text


def test_compare_same_tasks_has_no_note() -> None:
    b = [{**r, "passed": not r["passed"]} for r in RUN_A]
    text, paired = report.compare({}, {}, RUN_A, b, ("A", "B"), (1,))
    assert paired["common_tasks"] == 5
    # t2 has a passing and a failing candidate in both runs
    assert paired["solved_by_both"] == 1
    assert paired["A_only"] == ["only-a", "t1"] and paired["B_only"] == ["t3", "t4"]
    assert "did not finish" not in text


def test_compare_runs_with_the_same_name() -> None:
    _, paired = report.compare({}, {}, RUN_A, RUN_B, ("he", "he"), (1,))
    assert paired["solved_by_both"] + sum(v for k, v in paired.items()
                                          if k.startswith("solved_by_") and k.endswith("_only")) == 3


def test_chart_writes_a_png(tmp_path: Path) -> None:
    a = {"suite": "humaneval", "tasks": 3, "pass@1": 0.5, "pass@5": 0.8, "syntax_error_rate": 0.1}
    b = {"tasks": 3, "pass@1": None, "syntax_error_rate": 0.0}  # missing values draw as 0
    path = report.chart(a, b, ("A", "B"), (1, 5), tmp_path / "c.png")
    assert path == tmp_path / "c.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


# --- run.summarize --------------------------------------------------------------------------------


def test_summarize_figures_overall_and_per_kind() -> None:
    tasks = [Task("a", "", "", "f", "", Kind.SINGLE_LINE), Task("b", "", "", "f", "", Kind.SINGLE_LINE),
             Task("c", "", "", "f", "", Kind.MULTI_LINE)]
    rows = [
        row("a", 1, False, "single-line", parses=False),  # out of order on purpose
        row("a", 0, True, "single-line"),
        row("b", 0, False, "single-line", latency=3.0, gen=30, dec=1.0, completion="  ",
            error="timed out"),
        row("b", 1, False, "single-line", latency=3.0, gen=30, dec=1.0, completion="  ",
            error="timed out"),
        row("c", 0, True, "multi-line", latency=2.0, gen=20, dec=0.5),
        row("c", 1, True, "multi-line", latency=2.0, gen=20, dec=0.5),
    ]
    opts = RunOptions(server=[], settings={"temperature": 0.8}, n=2, ks=(1, 2), suite="s")
    s = summarize(rows, tasks, opts, wall_s=12.34, resumed=1)
    assert s["tasks"] == 3 and s["samples"] == 6 and s["complete"] is True
    assert s["pass@1"] == pytest.approx((0.5 + 0.0 + 1.0) / 3)
    assert s["pass@2"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    assert s["syntax_error_rate"] == pytest.approx(1 / 6)
    assert s["empty_rate"] == pytest.approx(2 / 6)
    assert s["errors"] == 1
    assert s["latency_p50_s"] == pytest.approx(2.0)  # one latency per task: 1, 3, 2
    assert s["latency_p95_s"] == pytest.approx(2.9)
    assert s["generated_tokens"] == 10 + 30 + 20  # first row of each task
    assert s["tokens_per_s"] == pytest.approx((10 + 30 + 20) / (0.5 + 1.0 + 0.5))
    assert s["wall_s"] == 12.3 and s["resumed_tasks"] == 1 and s["suite"] == "s" and s["n"] == 2
    assert s["settings"] == {"temperature": 0.8}
    assert set(s["by_kind"]) == {"single-line", "multi-line"}
    single, multi = s["by_kind"]["single-line"], s["by_kind"]["multi-line"]
    assert single["tasks"] == 2 and multi["tasks"] == 1
    assert single["pass@1"] == pytest.approx(0.25) and single["pass@2"] == pytest.approx(0.5)
    assert multi["pass@1"] == 1.0 and multi["pass@2"] == 1.0
    assert single["tokens_per_s"] == pytest.approx(40 / 1.5)
    assert multi["syntax_error_rate"] == 0.0
    json.dumps(s)  # written as summary.json


def test_summarize_one_kind_has_no_by_kind() -> None:
    tasks = [Task("a", "", "", "f", "", Kind.COMPLETE)]
    s = summarize([row("a", 0, True)], tasks, RunOptions(server=[], settings={}))
    assert "by_kind" not in s and s["pass@1"] == 1.0


def test_summarize_unfinished_run() -> None:
    tasks = [Task(t, "", "", "f", "", Kind.COMPLETE) for t in ("a", "b", "c")]
    rows = [row("a", 0, True), row("a", 1, True)]
    s = summarize(rows, tasks, RunOptions(server=[], settings={}, n=2, ks=(1, 2)))
    assert s["complete"] is False and s["tasks"] == 1 and s["pass@2"] == 1.0


def test_summarize_nothing_done() -> None:
    tasks = [Task("a", "", "", "f", "", Kind.COMPLETE)]
    s = summarize([], tasks, RunOptions(server=[], settings={}, n=2, ks=(1, 2)))
    assert s["tasks"] == 0 and s["pass@1"] is None and s["syntax_error_rate"] is None
    assert s["latency_p50_s"] is None and s["tokens_per_s"] is None and s["generated_tokens"] is None


def test_summarize_without_token_stats() -> None:
    tasks = [Task("a", "", "", "f", "", Kind.COMPLETE)]
    s = summarize([row("a", 0, True, gen=None, dec=None)], tasks, RunOptions(server=[], settings={}))
    assert s["tokens_per_s"] is None and s["generated_tokens"] is None


def test_summarize_pass_at_k_above_the_samples_is_none() -> None:
    tasks = [Task("a", "", "", "f", "", Kind.COMPLETE)]
    s = summarize([row("a", 0, True)], tasks, RunOptions(server=[], settings={}, n=1, ks=(1, 5)))
    assert s["pass@1"] == 1.0 and s["pass@5"] is None


# --- run.read_results -----------------------------------------------------------------------------


def test_read_results_keeps_only_tasks_with_all_candidates(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    lines = [row("done", 0, True), row("half", 0, True), row("done", 1, False), row("done", 2, True),
             row("half", 2, False)]
    path.write_text("".join(json.dumps(r) + "\n" for r in lines) + '{"task_id": "half", "candi',
                    encoding="utf-8")
    rows, done = read_results(path, n=3)
    assert done == {"done"}
    assert rows == [lines[0], lines[2], lines[3]]


def test_read_results_ignores_lines_that_are_not_rows(tmp_path: Path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join([json.dumps(row("a", 0, True)), "[1, 2]", "{}", "", "garbage",
                               json.dumps(row("b", 0, False))]) + "\n", encoding="utf-8")
    rows, done = read_results(path, n=1)
    assert done == {"a", "b"} and [r["task_id"] for r in rows] == ["a", "b"]


def test_read_results_of_no_file(tmp_path: Path) -> None:
    assert read_results(tmp_path / "missing.jsonl", 2) == ([], set())


# --- run.cursor -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text, position", [
    ("", (0, 0)),
    ("abc", (0, 3)),
    ("def f():\n    ", (1, 4)),
    ("a\n", (1, 0)),
    ("a\nbc\n", (2, 0)),
    ("a\r\n", (1, 0)),
    ("a\r\nbc", (1, 2)),
    ("a\r", (1, 0)),
    ("é", (0, 1)),  # one UTF-16 unit
    ("😀", (0, 2)),  # two UTF-16 units
    ("x = '😀'", (0, 8)),
    ("😀\n    s = '😀😀", (1, 13)),
    ("a\u2028b", (0, 3)),  # not an LSP line break
])
def test_cursor_is_the_end_in_utf16(text: str, position: tuple[int, int]) -> None:
    assert cursor(text) == position


# --- client: suggestion texts ---------------------------------------------------------------------


def pos(line: int, character: int) -> types.Position:
    return types.Position(line=line, character=character)


def edit_item(new_text: str, start: tuple[int, int], end: tuple[int, int]) -> types.CompletionItem:
    return types.CompletionItem(label=new_text, text_edit=types.TextEdit(
        range=types.Range(start=pos(*start), end=pos(*end)), new_text=new_text))


def test_edit_replacing_the_typed_word_yields_the_rest() -> None:
    # the line is "    ret|": the edit replaces "ret" (columns 4-7) with "return x"
    assert completion_texts([edit_item("return x", (2, 4), (2, 7))], 2, 7) == ["urn x"]


def test_edit_at_the_cursor_yields_the_whole_text() -> None:
    assert completion_texts([edit_item("return x", (2, 7), (2, 7))], 2, 7) == ["return x"]


def test_edit_on_another_line_yields_the_whole_text() -> None:
    assert completion_texts([edit_item("y", (1, 2), (1, 2))], 2, 7) == ["y"]


def test_insert_replace_edit_uses_the_insert_range() -> None:
    item = types.CompletionItem(label="l", text_edit=types.InsertReplaceEdit(
        new_text="return x", insert=types.Range(start=pos(0, 4), end=pos(0, 7)),
        replace=types.Range(start=pos(0, 4), end=pos(0, 9))))
    assert completion_texts([item], 0, 7) == ["urn x"]


def test_no_edit_uses_insert_text_then_label() -> None:
    items = [types.CompletionItem(label="lbl", insert_text="ins"), types.CompletionItem(label="lbl")]
    assert completion_texts(items, 0, 0) == ["ins", "lbl"]


def test_completion_list_and_plain_list_and_none() -> None:
    items = [edit_item("return x", (2, 4), (2, 7)), types.CompletionItem(label="a", insert_text="zz")]
    as_list = types.CompletionList(is_incomplete=False, items=items)
    assert completion_texts(as_list, 2, 7) == completion_texts(items, 2, 7) == ["urn x", "zz"]
    assert completion_texts(None, 0, 0) == []
    assert completion_texts(types.CompletionList(is_incomplete=False, items=[]), 0, 0) == []


def test_edit_replacing_a_word_with_a_non_bmp_character() -> None:
    # the line is "    '😀|" (cursor at UTF-16 column 4 + 1 + 2 = 7); the edit completes the string
    assert completion_texts([edit_item("'😀x'", (0, 4), (0, 7))], 0, 7) == ["x'"]


def test_inline_texts() -> None:
    items = [types.InlineCompletionItem(insert_text="a"),
             types.InlineCompletionItem(insert_text=types.StringValue(value="b${1:x}")),
             types.InlineCompletionItem(insert_text="c", range=types.Range(start=pos(0, 1),
                                                                          end=pos(0, 1)))]
    assert inline_texts(types.InlineCompletionList(items=items)) == ["a", "b${1:x}", "c"]
    assert inline_texts(items) == ["a", "b${1:x}", "c"]
    assert inline_texts(types.InlineCompletionList(items=[])) == []
    assert inline_texts(None) == [] and inline_texts([]) == []


# --- cli: values, settings, variants, k -----------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    ("1", 1), ("1.5", 1.5), ("-3", -3), ("off", "off"), ("true", True), ("false", False),
    ("null", None), ('"quoted"', "quoted"), ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}), ("", ""),
    ("hello world", "hello world"),
])
def test_parse_value(text: str, value: Any) -> None:
    assert cli.parse_value(text) == value
    assert type(cli.parse_value(text)) is type(value)


def test_parse_sets() -> None:
    assert cli.parse_sets(["a=1", "b=off", "c=true"]) == {"a": 1, "b": "off", "c": True}
    assert cli.parse_sets([" key =x=y"]) == {"key": "x=y"}  # the first = splits
    assert cli.parse_sets(["a=1", "a=2"]) == {"a": 2}  # the last one wins
    assert cli.parse_sets([]) == {}


@pytest.mark.parametrize("items", [["oops"], ["=1"], [" =1"], ["a=1", "b"]])
def test_parse_sets_rejects(items: list[str]) -> None:
    with pytest.raises(BenchError, match="KEY=VALUE"):
        cli.parse_sets(items)


def test_parse_variant() -> None:
    assert cli.parse_variant("fim:suffixTokens=0,alignLines=1") == (
        "fim", {"suffixTokens": 0, "alignLines": 1})
    assert cli.parse_variant("base:") == ("base", {})
    assert cli.parse_variant(" x :a=off,, b=true") == ("x", {"a": "off", "b": True})


@pytest.mark.parametrize("text", ["no-colon", ":a=1", "  :a=1", "a/b:x=1", "v:oops"])
def test_parse_variant_rejects(text: str) -> None:
    with pytest.raises(BenchError):
        cli.parse_variant(text)


@pytest.mark.parametrize("text, n, ks", [
    ("1,5,10", 3, (1,)), ("1,5,10", 10, (1, 5, 10)), ("10,1,5", 5, (1, 5)), (" 2 , 2 ,", 5, (2,)),
    ("5", 3, (1,)), ("1", 1, (1,)),
])
def test_ks(text: str, n: int, ks: tuple[int, ...]) -> None:
    assert cli._ks(text, n) == ks


@pytest.mark.parametrize("text", ["x", "1,x", "1.5", "0", "0,1", "-1", "", " , "])
def test_ks_rejects(text: str) -> None:
    with pytest.raises(BenchError):
        cli._ks(text, 1)


# --- cli.main: validation fails before any server starts -------------------------------------------


@pytest.fixture
def no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli._main validates everything before run_tasks (which starts the server); make sure."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a server run was started")

    monkeypatch.setattr(cli, "run_tasks", refuse)


@pytest.mark.usefixtures("no_server")
def test_main_n_zero_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["humaneval", "--n", "0"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("lsp-bench: ") and "at least 1" in captured.err
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.usefixtures("no_server")
def test_main_k_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["humaneval", "--k", "0"]) == 2
    assert "--k values must be at least 1" in capsys.readouterr().err


@pytest.mark.usefixtures("no_server")
def test_main_without_a_suite_names_the_suites(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    err = capsys.readouterr().err
    assert "humaneval" in err and "humaneval-infill" in err and "--tasks" in err


@pytest.mark.usefixtures("no_server")
@pytest.mark.parametrize("argv, message", [
    (["humaneval", "--n", "0"], "at least 1"),
    (["humaneval", "--concurrency", "0"], "at least 1"),
    (["humaneval", "--timeout", "0"], "timeouts positive"),
    (["humaneval-infill", "--infill-kinds", "sideways"], "--infill-kinds"),
    (["humaneval-infill", "--infill-kinds", "complete"], "--infill-kinds"),
    (["humaneval", "--variant", "a:x=1"], "exactly two"),
    (["humaneval", "--variant", "a:x=1", "--variant", "a:x=2"], "different names"),
    (["humaneval", "--set", "oops"], "KEY=VALUE"),
    (["--compare", "/nonexistent/a", "/nonexistent/b"], "no summary.json"),
    (["humaneval", "--"], "no server command"),
])
def test_main_validation_errors(argv: list[str], message: str,
                                capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.usefixtures("no_server")
def test_main_bad_task_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"task_id": "a"}\n', encoding="utf-8")
    assert cli.main(["--tasks", str(path)]) == 2
    assert f"{path}:1: neither schema" in capsys.readouterr().err


@pytest.mark.usefixtures("no_server")
def test_main_compare_two_finished_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_a = [row("t1", 0, True), row("t2", 0, True), row("t3", 0, False), row("t4", 0, False),
             row("only-a", 0, True)]  # n=1: one candidate per task
    for name, rows in (("runA", run_a), ("runB", RUN_B)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "summary.json").write_text(json.dumps({**SUMMARY, "n": 1}), encoding="utf-8")
        (folder / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows),
                                              encoding="utf-8")
    out = tmp_path / "cmp"
    argv = ["--compare", str(tmp_path / "runA"), str(tmp_path / "runB"), "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "| metric | runA | runB |" in text and "Paired on 4 tasks" in text
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    paired = json.loads((out / "compare.json").read_text(encoding="utf-8"))
    assert paired["solved_by_runA_only"] == 1 and paired["runB_only"] == ["t3"]
    assert cli.main(argv) == 0  # a second compare does not overwrite the first chart
    assert (out / "compare-1.png").exists()
