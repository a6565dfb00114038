"""Run an assembled program with its task's test in pingti's sandbox (testgen/sandbox.py)."""

from __future__ import annotations

import ast
import shutil
import warnings
from dataclasses import dataclass

from lspbench.tasks import Task
from testgen.sandbox import Isolation, Limits, Sandbox, Verdict


def parses(program: str) -> bool:
    """Is ``program`` syntactically valid Python?"""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. invalid escape sequences are still valid
            ast.parse(program)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return False
    return True


@dataclass(frozen=True)
class Execution:
    passed: bool
    verdict: str  # testgen.sandbox.Verdict value, or "syntax_error"
    detail: str  # the last lines of stderr, or the sandbox's reason
    duration_s: float


class Executor:
    """Runs one program at a time per call; safe to call from several threads."""

    def __init__(self, isolation: Isolation = Isolation.AUTO, timeout_s: float = 15.0) -> None:
        # HumanEval tests are small: a few seconds of CPU and well under a GiB.
        self.limits = Limits(wall_s=timeout_s, cpu_s=max(1, int(timeout_s)),
                             memory_bytes=1 * 2**30, processes=16)
        self.sandbox = Sandbox(isolation, self.limits)

    def refusal(self) -> str | None:
        """Why this machine cannot run generated code the way asked, or None."""
        return None if self.sandbox.report.usable else self.sandbox.report.refusal()

    def run(self, task: Task, middle: str, cut: int = 0) -> Execution:
        program = task.test_program(middle, cut)
        if not parses(program):
            return Execution(False, "syntax_error", "", 0.0)
        workdir = self.sandbox.make_workdir()
        try:
            (workdir / "program.py").write_text(program, encoding="utf-8")
            res = self.sandbox.run(["python", "-I", "program.py"], workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        tail = "\n".join(res.stderr.strip().splitlines()[-3:])
        detail = res.detail if res.verdict in (Verdict.REFUSED, Verdict.ERROR) else tail
        return Execution(res.verdict is Verdict.OK, res.verdict.value, detail[-500:],
                         round(res.duration_s, 3))
