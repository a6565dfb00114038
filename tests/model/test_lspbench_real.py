"""lsp-bench with the real default model through the real server, on a handful of tasks:
the whole path (LSP, the model, post-processing, the sandbox) on real HumanEval problems."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.model


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lspbench.cli", *args], capture_output=True,
                          text=True, timeout=900)


def test_humaneval_tasks_with_the_default_model(tmp_path: Path) -> None:
    out = tmp_path / "he"
    proc = bench("humaneval", "--limit", "5", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["tasks"] == 5 and summary["errors"] == 0
    # Greedy and deterministic; this model solves 4 of these 5 on the machines we tried.
    # The bound leaves room for another CPU's arithmetic, not for a broken path.
    assert summary["pass@1"] >= 0.4, proc.stdout
    assert summary["syntax_error_rate"] == 0.0
    assert summary["tokens_per_s"] > 1 and summary["generated_tokens"] > 50
    assert re.search(r"^pass@1: \d\.\d{3}$", proc.stdout, re.M)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert all(r["source"] == "model" and r["prompt_tokens"] > 50 for r in rows)


def test_single_line_infill_with_the_default_model(tmp_path: Path) -> None:
    out = tmp_path / "infill"
    proc = bench("humaneval-infill", "--infill-kinds", "single-line", "--per-problem", "1",
                 "--limit", "4", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["tasks"] == 4
    assert summary["syntax_error_rate"] <= 0.25  # a line hole rarely breaks the program
    assert summary["pass@1"] >= 0.25, proc.stdout
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    # A cursor on a line of its own lets the model end the middle (issue 17), so a line hole
    # may get more than one line (about 1 in 5 of 164 such holes); these four are mostly one.
    assert sum("\n" not in r["completion"].strip("\n") for r in rows) >= 3, rows
