"""lsp-bench's peer mode end to end against a stand-in for llama.cpp's server over real HTTP:
the requests it sends, the answers applied as llama.vim applies them (an answer from the line's
start replaces the whitespace), scored in the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lspbench.run import RunOptions, run_tasks
from lspbench.tasks import Kind, Task
from testgen.sandbox import Isolation

FAKE = Path(__file__).resolve().parents[1] / "data" / "fake_llama_server.py"


def test_a_run_against_a_stand_in_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                         ) -> None:
    log = tmp_path / "requests.jsonl"
    monkeypatch.setenv("FAKE_LLAMA_LOG", str(log))
    test = "def check(candidate):\n    assert candidate(1) == 2\n"
    tasks = [
        Task("insert", "def f(x):\n    ", "\n", "f", test, Kind.INFILL),
        Task("nothing", "def h(x):\n    ", "\n", "h",
             "def check(candidate):\n    assert candidate(1) is None\n", Kind.INFILL),
        # After a block the cursor stands too deep: only llama.vim's line-start way can dedent.
        Task("dedent", "def f(x):\n    y = [v for v in x]\n        ", "\n", "f",
             "def check(candidate):\n    assert candidate([1, 2]) == 2\n", Kind.INFILL),
    ]
    opts = RunOptions(server=[sys.executable, str(FAKE)], settings={"blankLine": "indent"},
                      isolation=Isolation.AUTO, suite="t", peer=True, exec_timeout_s=5)
    result = asyncio.run(run_tasks(tasks, opts, tmp_path / "indent"))
    rows = {r["task_id"]: r for r in result.rows}
    assert rows["insert"]["completion"] == "return x + 1" and rows["insert"]["passed"]
    assert rows["nothing"]["completion"] == "" and not rows["nothing"]["offered"]
    assert rows["dedent"]["completion"] == "    return len(y)" and not rows["dedent"]["passed"]
    assert result.summary["generated_tokens"] == 15
    sent = [json.loads(line) for line in log.read_text().splitlines()]
    assert [s["n_indent"] for s in sent] == [4, 4, 8]

    opts.settings = {"blankLine": "line-start"}
    result = asyncio.run(run_tasks(tasks[:1], opts, tmp_path / "line-start"))
    (row,) = result.rows
    # From the line's start the answer brings its indentation and replaces the whitespace.
    assert row["completion"] == "    return x + 1" and row["cut"] == 4 and row["passed"]
    assert os.path.exists(tmp_path / "line-start" / "server.log")


def test_cli_prints_pingti_and_the_peer_side_by_side(tmp_path: Path) -> None:
    wrapper = tmp_path / "llama-server"
    wrapper.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE} \"$@\"\n")
    wrapper.chmod(0o755)
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "lspbench.cli", "humaneval-infill", "--infill-kinds",
         "single-line", "--limit", "3", "--layout", "enter", "--peer", "llama-server",
         "--peer-binary", str(wrapper), "--peer-model", str(model), "--set", "backend=fake",
         "--out", str(out), "--exec-timeout", "5"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "| metric | pingti | llama-server |" in proc.stdout
    for name in ("pingti", "llama-server"):
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["suite"] == "humaneval-infill-single-line-enter" and summary["tasks"] == 3
    run = json.loads((out / "llama-server" / "run.json").read_text())
    assert run["peer"] == "llama-server" and run["settings"] == {"blankLine": "indent"}
    assert run["server"][:3] == [str(wrapper), "-m", str(model)]
    bad = subprocess.run([sys.executable, "-m", "lspbench.cli", "humaneval-infill", "--peer",
                          "llama-server", "--n", "3", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--peer compares" in bad.stderr
