"""lsp-bench end to end: the CLI starts the real pingti-ls process, speaks LSP to it, runs the
tests of each candidate in the sandbox and writes its results (fake backend: its suggestions are
predictable, so the scores are known in advance)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

# The fake backend copies what followed the longest earlier match of the text before the
# cursor: after `def f(x):\n    ` it writes g's body, `return x + 1`.
HELPER = "def g(x):\n    return x + 1\n\n\n"
TASKS = [
    {"task_id": "right", "prompt": HELPER + "def f(x):\n    ", "entry_point": "f",
     "test": "def check(candidate):\n    assert candidate(1) == 2\n"},
    {"task_id": "wrong", "prompt": HELPER + "def f(x):\n    ", "entry_point": "f",
     "test": "def check(candidate):\n    assert candidate(1) == 3\n"},
    # No example to copy: the fake backend answers `pass`, so f returns None.
    {"task_id": "none", "prompt": "def f(x):\n    ", "entry_point": "f",
     "test": "def check(candidate):\n    assert candidate(1) is None\n"},
    {"task_id": "loops", "prompt": HELPER + "def f(x):\n    ", "entry_point": "f",
     "test": "def check(candidate):\n    while True:\n        pass\n"},
]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lspbench.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


def test_scores_known_tasks(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS)
    out = tmp_path / "out"
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out),
                 "--exec-timeout", "3", "--concurrency", "2")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^pass@1: 0\.500$", proc.stdout, re.M), proc.stdout
    assert re.search(r"^syntax_error_rate: 0\.000$", proc.stdout, re.M)
    assert "| pass@1 | 0.500 |" in proc.stdout  # the Markdown table
    by_id = {r["task_id"]: r for r in rows(out)}
    assert by_id["right"]["completion"] == "return x + 1" and by_id["right"]["passed"]
    assert by_id["wrong"]["verdict"] == "failed" and "AssertionError" in by_id["wrong"]["detail"]
    assert by_id["none"]["completion"] == "pass" and by_id["none"]["passed"]
    assert by_id["loops"]["verdict"] in ("timeout", "cpu_limit")  # the sandbox's limits held
    s = summary(out)
    assert s["complete"] and s["tasks"] == 4 and s["pass@1"] == 0.5
    assert s["generated_tokens"] > 0 and s["latency_p50_s"] > 0
    assert by_id["right"]["prompt_tokens"] > 0  # read from pingti/status for that document


def test_infill_schema_and_completion_method(tmp_path: Path) -> None:
    infill = [{"task_id": "hole", "prefix": HELPER + "def f(x):\n    ", "suffix": "\n\n\nY = 1\n",
               "entry_point": "f", "test": "def check(candidate):\n    assert candidate(2) == 3\n",
               "middle": "return x + 1"}]
    tasks = write_jsonl(tmp_path / "infill.jsonl", infill)
    for method in ("inline", "completion"):
        out = tmp_path / method
        proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out),
                     "--method", method)
        assert proc.returncode == 0, proc.stderr
        (row,) = rows(out)
        assert row["kind"] == "infill" and row["passed"], row


def test_resumes_and_refuses_other_options(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:3])
    out = tmp_path / "out"
    assert bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out)).returncode == 0
    first = rows(out)
    # A run stopped half-way: the last task's line is missing, a cut-off line is left.
    lines = (out / "results.jsonl").read_text().splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:-1]) + '\n{"task_id": "no', encoding="utf-8")
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert s["resumed_tasks"] == 2 and s["tasks"] == 3 and s["complete"]
    again = rows(out)
    assert sorted(r["task_id"] for r in again) == sorted(r["task_id"] for r in first)
    assert [r["completion"] for r in again] == [r["completion"] for r in first]  # deterministic
    # Everything finished: a third run asks the server nothing and keeps the figures.
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out))
    assert proc.returncode == 0 and summary(out)["resumed_tasks"] == 3
    # Other options must not be mixed into the same folder.
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--set", "seed=3", "--out",
                 str(out))
    assert proc.returncode == 2 and "other options" in proc.stderr and "settings" in proc.stderr


def test_candidates_and_pass_at_k(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:2])
    out = tmp_path / "out"
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out), "--n", "3",
                 "--temperature", "0.8", "--k", "1,3,10")
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    assert len(got) == 6 and all(r["offered"] for r in got)  # the server offered 3 each
    s = summary(out)
    assert s["samples"] == 6 and "pass@3" in s and "pass@10" not in s  # k > n is skipped
    assert 0.0 <= s["pass@1"] <= s["pass@3"] <= 1.0


def test_two_variants_are_compared(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:3])
    out = tmp_path / "cmp"
    # One token is too short for any body: variant "short" solves nothing but `pass`.
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(out),
                 "--variant", "full:", "--variant", "short:maxTokensMultiLine=1")
    assert proc.returncode == 0, proc.stderr
    paired = json.loads((out / "compare.json").read_text())
    assert paired["common_tasks"] == 3
    assert paired["solved_by_full_only"] >= 1 and paired["solved_by_short_only"] == 0
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "maxTokensMultiLine" not in summary(out / "full")["settings"]
    assert summary(out / "short")["settings"]["maxTokensMultiLine"] == 1
    # The same comparison from the finished folders.
    proc = bench("--compare", str(out / "full"), str(out / "short"), "--out", str(tmp_path / "c2"))
    assert proc.returncode == 0, proc.stderr
    assert "Paired on 3 tasks" in proc.stdout and (tmp_path / "c2" / "compare.png").exists()


def test_humaneval_suite_runs_through_the_server(tmp_path: Path) -> None:
    out = tmp_path / "he"
    proc = bench("humaneval", "--limit", "2", "--set", "backend=fake", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    s = summary(out)
    assert s["suite"] == "humaneval" and s["tasks"] == 2 and s["complete"]
    assert {r["task_id"] for r in rows(out)} == {"HumanEval/0", "HumanEval/1"}


def test_infill_suite_selection(tmp_path: Path) -> None:
    out = tmp_path / "infill"
    proc = bench("humaneval-infill", "--infill-kinds", "single-line", "--per-problem", "1",
                 "--limit", "3", "--set", "backend=fake", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    got = rows(out)
    assert len(got) == 3 and {r["kind"] for r in got} == {"single-line"}
    assert summary(out)["suite"] == "humaneval-infill-single-line-per1"


@pytest.mark.parametrize("args, message", [
    (["--set", "noSuchSetting=1"], "rejected settings"),
    (["--set", "temperature=7"], "rejected settings"),
    # Extra candidates are sampled; a zero sampling temperature is out of the setting's range.
    (["--n", "2", "--sample-temperature", "0"], "rejected settings"),
    (["--variant", "a:"], "exactly two"),
    (["--set", "oops"], "KEY=VALUE"),
])
def test_bad_options_get_a_clear_error(tmp_path: Path, args: list[str], message: str) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:1])
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--out", str(tmp_path / "o"),
                 *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_unknown_setting_can_be_allowed(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:1])
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--set", "noSuchSetting=1",
                 "--ignore-server-warnings", "--out", str(tmp_path / "o"))
    assert proc.returncode == 0, proc.stderr
    assert any("noSuchSetting" in m for m in summary(tmp_path / "o")["serverMessages"])


def test_bad_task_file_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(TASKS[0]) + "\n" + json.dumps({"task_id": "x", "prompt": "p"}) + "\n")
    proc = bench("--tasks", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert f"{bad}:2" in proc.stderr and "entry_point" in proc.stderr


def test_a_server_that_cannot_start(tmp_path: Path) -> None:
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:1])
    proc = bench("--tasks", str(tasks), "--out", str(tmp_path / "o"), "--",
                 sys.executable, "-c", "import sys; sys.exit(3)", timeout=60)
    assert proc.returncode == 2 and "could not start the server" in proc.stderr


def test_timed_out_requests_are_cancelled_quietly(tmp_path: Path) -> None:
    """A suggestion that takes longer than --timeout is cancelled ($/cancelRequest); the
    server's late answer must not show up as a pygls traceback (InvalidStateError)."""
    tasks = write_jsonl(tmp_path / "tasks.jsonl", TASKS[:2])
    out = tmp_path / "out"
    # 0.05 s a token: the copied body takes ~0.6 s, the timeout is 0.2 s.
    proc = bench("--tasks", str(tasks), "--set", "backend=fake", "--set", "fakeTokenDelay=0.05",
                 "--out", str(out), "--timeout", "0.2", "--concurrency", "2")
    assert proc.returncode == 0, proc.stderr
    assert all(r["completion"] == "" for r in rows(out))  # both timed out
    assert "Unable to handle message" not in proc.stderr, proc.stderr
    assert "InvalidStateError" not in proc.stderr, proc.stderr
