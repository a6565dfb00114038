"""Run candidate tests in the sandbox: which pass, which pass reliably, what they cover.

Tests run with pytest (and coverage.py, branch mode) inside :class:`~testgen.sandbox.Sandbox`:
the module under test is importable from its import root (mounted read-only), the test file and
every report live in a fresh work directory. Per-test outcomes come from pytest's JUnit XML.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from testgen.sandbox import Limits, Sandbox, SandboxResult, Verdict
from testgen.split import TestCase, render_module

logger = logging.getLogger(__name__)

TEST_FILE = "test_pingti_candidates.py"
_DRIVER = Path(__file__).resolve().parent / "_mutdriver.py"
# A mutant's run may take this long, or five times the original's run if that is longer.
MUTANT_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Coverage:
    """Line and branch coverage of the target's lines (coverage.py's combined measure)."""

    lines: int = 0
    lines_hit: int = 0
    branches: int = 0
    branches_hit: int = 0
    missing_lines: tuple[int, ...] = ()

    @property
    def percent(self) -> float:
        total = self.lines + self.branches
        return 100.0 * (self.lines_hit + self.branches_hit) / total if total else 0.0


@dataclass
class RunOutcome:
    passed: set[str] = field(default_factory=set)
    failed: dict[str, str] = field(default_factory=dict)  # name -> short failure text
    coverage: Coverage | None = None
    sandbox: SandboxResult | None = None


# Staging copies the project's Python sources only, within these bounds.
STAGE_MAX_FILES = 5000
STAGE_MAX_BYTES = 64 * 2**20
_SKIP_ANYWHERE = {"node_modules", "__pycache__"}  # and every hidden (dot) folder
# Virtual environments and build output, skipped at the top of the import root only (a package
# may well have a sub-package called `build`).
_SKIP_AT_TOP = {"venv", "env", "build", "dist", "site-packages"}


def stage_sources(import_root: Path, module_file: Path, text: str | None = None) -> Path:
    """A world-readable copy of the ``.py`` files under ``import_root`` for the sandbox to
    import from: the sandbox's unprivileged uid can read it wherever the project lives, and
    nothing but Python sources (no ``.env``, no keys) is exposed. ``text`` replaces the module
    file's content (the editor's unsaved text)."""
    stage = Path(tempfile.mkdtemp(prefix="pingti-stage-"))
    os.chmod(stage, 0o755)
    files = total = 0
    root = import_root.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        dirnames[:] = [d for d in dirnames if d not in _SKIP_ANYWHERE and not d.startswith(".")
                       and not (rel == Path(".") and d in _SKIP_AT_TOP)]
        for name in filenames:
            if not name.endswith(".py"):
                continue
            src = Path(dirpath) / name
            # A link pointing out of the project would expose its target: skip it.
            if src.is_symlink() and not src.resolve().is_relative_to(root):
                continue
            try:
                size = src.stat().st_size
            except OSError:
                continue
            files += 1
            total += size
            if files > STAGE_MAX_FILES or total > STAGE_MAX_BYTES:
                shutil.rmtree(stage, ignore_errors=True)
                raise OSError(f"the project under {import_root} has too many Python files to "
                              "copy into the sandbox")
            dst = stage / rel / name
            dst.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
            shutil.copyfile(src, dst)
    target = stage / module_file.resolve().relative_to(import_root.resolve())
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if text is not None:
        target.write_text(text, encoding="utf-8")
    elif not target.exists():
        shutil.copyfile(module_file, target)
    for dirpath, dirnames, filenames in os.walk(stage):
        for d in dirnames:
            os.chmod(Path(dirpath) / d, 0o755)
        for f in filenames:
            os.chmod(Path(dirpath) / f, 0o644)
    return stage


class TestRunner:
    """Runs tests against a staged copy of the project (see :func:`stage_sources`)."""

    def __init__(self, sandbox: Sandbox, import_root: Path, module_file: Path,
                 limits: Limits | None = None, cancel: threading.Event | None = None,
                 text: str | None = None) -> None:
        self.sandbox = sandbox
        root = import_root.resolve()
        self.stage = stage_sources(root, module_file, text)
        self.import_root = self.stage
        self.module_file = self.stage / module_file.resolve().relative_to(root)
        self.limits = limits or sandbox.limits
        self.cancel = cancel

    def close(self) -> None:
        shutil.rmtree(self.stage, ignore_errors=True)

    def _run(self, workdir: Path, argv: list[str]) -> SandboxResult:
        return self.sandbox.run(argv, workdir, env={"PYTHONPATH": str(self.import_root)},
                                limits=self.limits, cancel=self.cancel,
                                readonly=[self.import_root])

    def check_import(self, module: str) -> SandboxResult:
        """Does ``import module`` work in the sandbox (the module's own imports included)?"""
        workdir = self.sandbox.make_workdir()
        try:
            return self._run(workdir, ["python", "-c", f"import {module}"])
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def run(self, imports: list[str], helpers: list[str], tests: list[TestCase],
            target_lines: tuple[int, int] | None = None) -> RunOutcome:
        """Run ``tests`` together once (with coverage of ``target_lines`` if given). When the
        run as a whole dies (a timeout, a test that kills the interpreter), each test is run
        alone, so one bad test does not sink the others."""
        out = self._run_once(imports, helpers, tests, target_lines)
        res = out.sandbox
        seen = out.passed | set(out.failed)
        if res is not None and res.verdict not in (Verdict.OK, Verdict.FAILED, Verdict.REFUSED,
                                                    Verdict.ERROR) \
                or (res is not None and res.verdict is Verdict.FAILED and len(tests) > 1
                    and not seen):
            merged = RunOutcome(sandbox=res)
            for t in tests:
                if self.cancel is not None and self.cancel.is_set():
                    break
                one = self._run_once(imports, helpers, [t], None)
                merged.passed |= one.passed
                merged.failed.update(one.failed)
                if t.name not in one.passed and t.name not in one.failed:
                    verdict = one.sandbox.verdict.value if one.sandbox else "error"
                    merged.failed[t.name] = f"the test run ended: {verdict}"
            if target_lines and merged.passed:
                keep = [t for t in tests if t.name in merged.passed]
                merged.coverage = self._run_once(imports, helpers, keep, target_lines).coverage
            return merged
        return out

    def run_mutants(self, imports: list[str], helpers: list[str], tests: list[TestCase],
                    module: str, qualname: str, kind: str, mutants: list[str],
                    timeout_s: float = MUTANT_TIMEOUT_S, probes: Sequence[str] = ()
                    ) -> dict[str, Any] | None:
        """Run ``tests`` on the original module and on each mutant source (see
        ``_mutdriver.py``); the driver's answer, or None when the run itself failed.
        ``probes`` are test modules' texts whose calls of the target are recorded too (for
        the equivalent-looking verdict), whatever their outcome."""
        if not tests:
            return None
        workdir = self.sandbox.make_workdir()
        try:
            (workdir / TEST_FILE).write_text(render_module(imports, helpers, tests))
            probe_files = []
            for k, text in enumerate(probes):
                name = f"test_pingti_probe_{k}.py"
                (workdir / name).write_text(text)
                probe_files.append(name)
            spec = {"module": module, "file": str(self.module_file), "qualname": qualname,
                    "kind": kind, "test_file": TEST_FILE, "mutants": mutants,
                    "timeout_s": timeout_s, "probes": probe_files}
            (workdir / "spec.json").write_text(json.dumps(spec))
            # Every mutant may run to its timeout (an endless loop), plus the original's run,
            # and the probes (twice that) for those that survive.
            wall = timeout_s * (8 + 5 * len(mutants) * (3 if probes else 1)) + 30
            limits = replace(self.limits, wall_s=max(self.limits.wall_s, wall),
                             cpu_s=max(self.limits.cpu_s, int(wall)))
            res = self.sandbox.run(["python", str(_DRIVER), "spec.json"], workdir,
                                   env={"PYTHONPATH": str(self.import_root)}, limits=limits,
                                   cancel=self.cancel, readonly=[self.import_root])
            if not res.ok:
                logger.info("mutation run failed (%s): %s", res.verdict.value, res.stderr[-500:])
                return None
            try:
                answer = json.loads(res.stdout)
            except ValueError:
                logger.info("mutation run answered no JSON: %s", res.stdout[-300:])
                return None
            return answer if isinstance(answer, dict) else None
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run_once(self, imports: list[str], helpers: list[str], tests: list[TestCase],
                  target_lines: tuple[int, int] | None) -> RunOutcome:
        workdir = self.sandbox.make_workdir()
        try:
            (workdir / TEST_FILE).write_text(render_module(imports, helpers, tests))
            pytest_args = ["-p", "no:cacheprovider", "-q", "-o", "addopts=", "--rootdir",
                           str(workdir), f"--junitxml={workdir / 'report.xml'}", TEST_FILE]
            if target_lines:
                argv = ["python", "-m", "coverage", "run", "--branch",
                        f"--data-file={workdir / '.coverage'}",
                        f"--include={self.module_file}", "-m", "pytest", *pytest_args]
            else:
                argv = ["python", "-m", "pytest", *pytest_args]
            res = self._run(workdir, argv)
            out = RunOutcome(sandbox=res)
            _read_junit(workdir / "report.xml", out)
            if target_lines:
                cov = self._run(workdir, ["python", "-m", "coverage", "json", "-q",
                                          f"--data-file={workdir / '.coverage'}",
                                          "-o", str(workdir / "cov.json")])
                if cov.ok:
                    out.coverage = coverage_of(workdir / "cov.json", self.module_file,
                                               target_lines)
            return out
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _read_junit(path: Path, out: RunOutcome) -> None:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return
    for case in root.iter("testcase"):
        name = case.get("name", "")
        classname = case.get("classname", "")
        # A method of a Test* class is reported as classname=...TestX, name=test_y: the unit
        # we keep or drop is the class.
        unit = classname.rsplit(".", 1)[-1] if classname.rsplit(".", 1)[-1].startswith("Test") \
            else name.split("[", 1)[0]
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            out.failed[unit] = (bad.get("message") or bad.text or "failed").strip()[:500]
            out.passed.discard(unit)
        elif case.find("skipped") is not None:
            # A skipped case means the test is not known to pass: not kept, whatever the order.
            out.failed.setdefault(unit, "skipped")
            out.passed.discard(unit)
        elif unit not in out.failed:
            out.passed.add(unit)


def coverage_of(report: Path, module_file: Path, lines: tuple[int, int]) -> Coverage:
    """Coverage of lines ``lines`` (inclusive, 1-based) of ``module_file`` in a coverage.py
    JSON report."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return Coverage()
    files = data.get("files", {})
    entry = files.get(str(module_file)) or next(
        (v for k, v in files.items() if Path(k).name == module_file.name), None)
    lo, hi = lines
    if entry is None:
        return Coverage()
    executed = {n for n in entry.get("executed_lines", []) if lo <= n <= hi}
    missing = {n for n in entry.get("missing_lines", []) if lo <= n <= hi}
    hit_br = [b for b in entry.get("executed_branches", []) if lo <= b[0] <= hi]
    miss_br = [b for b in entry.get("missing_branches", []) if lo <= b[0] <= hi]
    return Coverage(lines=len(executed | missing), lines_hit=len(executed),
                    branches=len(hit_br) + len(miss_br), branches_hit=len(hit_br),
                    missing_lines=tuple(sorted(missing)))
