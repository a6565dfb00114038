"""Quality of "Generate tests" on the small target modules in benchmarks/testgen_targets/.

    .venv/bin/python benchmarks/testgen_bench.py --out benchmarks/out/testgen.json

For each target (a function or method of a stdlib-only module), the real pipeline runs with the
real default model (the server's backend choice: llama.cpp on a CPU), greedy, in the real
sandbox, in a fresh temporary workspace holding a copy of the module. Reported per target and
overall: tests generated, share that parse, that pass once, that are kept (passed 3 more runs),
line+branch coverage of the target by the kept tests (model-written and Hypothesis
ghostwriter ones; the percentages count model-written tests only), and a mutation score: each planted
single-line bug (MUTANTS below, written before any test was generated) is applied to the module
and the kept suite is run against it in the sandbox; a mutant is killed when the suite fails.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402
from testgen.pipeline import TestGenError, TestGenSettings, generate_tests  # noqa: E402
from testgen.sandbox import Sandbox  # noqa: E402

TARGETS_DIR = Path(__file__).resolve().parent / "testgen_targets"

# (module, target qualname, the target's definition line text) and its mutants (old, new): one
# single-line change each, inside the target.
TARGETS: list[tuple[str, str, str, list[tuple[str, str]]]] = [
    ("intervals", "merge_intervals", "def merge_intervals(", [
        ("start <= merged[-1][1] + 1", "start < merged[-1][1]"),
        ("max(last_end, end)", "end"),
        ("if start > end:", "if start >= end:"),
        ("for start, end in sorted(intervals):", "for start, end in intervals:"),
    ]),
    ("roman", "to_roman", "def to_roman(", [
        ("not 0 < number < 4000", "not 0 <= number < 4000"),
        ("out.append(letters * count)", "out.append(letters)"),
        ("or isinstance(number, bool)", "and isinstance(number, bool)"),
    ]),
    ("roman", "from_roman", "def from_roman(", [
        ("text = text.strip().upper()", "text = text.strip()"),
        ("if i != len(text) or to_roman(total) != text:", "if to_roman(total) != text:"),
        ("total += value", "total += 1"),
    ]),
    ("text_stats", "word_frequencies", "def word_frequencies(", [
        ("key=lambda kv: (-kv[1], kv[0])", "key=lambda kv: (kv[1], kv[0])"),
        ("return ranked[:top]", "return ranked[:top + 1]"),
        ("if top < 0:", "if top <= 0:"),
        ("_WORD.findall(text.lower())", "_WORD.findall(text)"),
    ]),
    ("matrix", "matmul", "def matmul(", [
        ("if len(a[0]) != len(b):", "if len(a) != len(b):"),
        ("sum(x * y for x, y", "sum(x + y for x, y"),
        ("if not a or not b:", "if not a:"),
    ]),
    ("slug", "slugify", "def slugify(", [
        ('slug = slug[:max_length].rstrip("-")', "slug = slug[:max_length]"),
        ('r"[a-z0-9]+"', 'r"[a-z]+"'),
        ("if max_length < 1:", "if max_length < 0:"),
        ('"-".join(words)', '"_".join(words)'),
    ]),
    ("bank", "Account.withdraw", "    def withdraw(", [
        ("if amount > self.balance:", "if amount >= self.balance:"),
        ("self.balance -= amount", "self.balance += amount"),
        ('raise ValueError("withdrawal must be positive")', "pass"),
        ("self.history.append(-amount)", "self.history.append(amount)"),
    ]),
]


def run_target(module: str, qualname: str, marker: str, mutants: list[tuple[str, str]],
               backend, sandbox: Sandbox, settings: TestGenSettings) -> dict[str, object]:
    source = (TARGETS_DIR / f"{module}.py").read_text()
    ws = Path(tempfile.mkdtemp(prefix="pingti-tgbench-"))
    try:
        path = ws / f"{module}.py"
        path.write_text(source)
        line = next(i for i, text in enumerate(source.splitlines()) if text.startswith(marker))

        def model(prompt: str, max_new: int) -> str:
            ids = backend.encode(prompt, special=True)
            return backend.generate(GenerationRequest(ids, max_new), CancelToken()).text

        t0 = time.monotonic()
        row: dict[str, object] = {"target": f"{module}.{qualname}"}
        try:
            res = generate_tests(path, source, line + 1, None, ws, model,
                                 backend.info.special_tokens, sandbox, settings)
        except TestGenError as exc:
            part = exc.partial
            row.update({"generated": part.generated if part else 0,
                        "parsed": part.parsed if part else 0,
                        "passed": part.passed if part else 0, "kept": 0, "coverage": 0.0,
                        "mutants": len(mutants), "killed": 0, "error": str(exc)[:200],
                        "seconds": round(time.monotonic() - t0, 1)})
            return row
        res.test_path.parent.mkdir(parents=True, exist_ok=True)
        res.test_path.write_text(res.new_text)
        killed = 0
        at = source.index(marker)
        for old, new in mutants:
            pos = source.index(old, at)  # the first occurrence inside the target
            mutated = source[:pos] + new + source[pos + len(old):]
            killed += int(not _suite_passes(sandbox, mutated, module, res.new_text))
        sane = _suite_passes(sandbox, source, module, res.new_text)
        row.update({"generated": res.generated, "parsed": res.parsed, "passed": res.passed,
                    "kept": res.model_kept, "ghostwritten_kept": res.ghostwritten_kept,
                    "coverage": round(res.coverage_after, 1), "rounds": res.rounds,
                    "mutants": len(mutants), "killed": killed,
                    "kept_suite_passes_on_original": sane,
                    "seconds": round(time.monotonic() - t0, 1)})
        return row
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def _suite_passes(sandbox: Sandbox, module_source: str, module: str, tests: str) -> bool:
    workdir = sandbox.make_workdir()
    try:
        (workdir / f"{module}.py").write_text(module_source)
        (workdir / f"test_{module}_kept.py").write_text(tests)
        res = sandbox.run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"test_{module}_kept.py"], workdir, env={"PYTHONPATH": str(workdir)})
        return res.ok
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="benchmarks/out/testgen.json")
    ap.add_argument("--only", help="run only targets whose name contains this")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    force_offline()
    backend = load_backend(Config())
    sandbox = Sandbox()
    settings = TestGenSettings(rounds=args.rounds)
    rows = []
    for module, qualname, marker, mutants in TARGETS:
        if args.only and args.only not in f"{module}.{qualname}":
            continue
        row = run_target(module, qualname, marker, mutants, backend, sandbox, settings)
        print(row, flush=True)
        rows.append(row)
    gen = sum(int(r["generated"]) for r in rows)  # type: ignore[call-overload]

    def share(key: str) -> float:
        return round(100 * sum(int(r[key]) for r in rows) / gen, 1) if gen else 0.0  # type: ignore[call-overload]

    mutants = sum(int(r["mutants"]) for r in rows)  # type: ignore[call-overload]
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "backend": backend.info.backend,
        "model": backend.info.name,
        "targets": len(rows),
        "tests_generated": gen,
        "parse_pct": share("parsed"),
        "pass_pct": share("passed"),
        "kept_pct": share("kept"),
        "coverage_median_pct": statistics.median(float(r["coverage"]) for r in rows)  # type: ignore[arg-type]
        if rows else 0.0,
        "mutation_score_pct": round(100 * sum(int(r["killed"]) for r in rows) / mutants, 1)  # type: ignore[call-overload]
        if mutants else 0.0,
        "seconds_median": statistics.median(float(r["seconds"]) for r in rows) if rows else 0.0,  # type: ignore[arg-type]
        "per_target": rows,
    }
    write_report(report, args.out, hide=["per_target"])
    print("\n| target | generated | parsed | passed | kept | coverage % | mutants killed | s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['target']} | {r['generated']} | {r['parsed']} | {r['passed']} | {r['kept']} "
              f"| {r['coverage']} | {r['killed']}/{r['mutants']} | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
