"""Quality of "Generate tests" on small target modules: the hand-written ones of issue 4 in
benchmarks/testgen_targets/ (set ``issue4``) and copies of CPython 3.11 standard-library modules
under new names in benchmarks/testgen_targets/real/ (set ``real``, PSF License 2.0, see its
README.md).

    .venv/bin/python benchmarks/testgen_bench.py --out benchmarks/out/testgen.json
    .venv/bin/python benchmarks/testgen_bench.py --targets real --only htmlesc cal.monthrange

For each target (a function or method), the real pipeline runs with the real default model (the
server's backend choice: llama.cpp on a CPU), greedy, with the pipeline's own settings
(``TestGenSettings()``), in the real sandbox, in a fresh temporary workspace holding a copy of
the module. Reported per target and overall (for each set and for all): tests generated, share
that parse, that pass once, that are kept (passed 3 more runs; the percentages count
model-written tests only), line+branch coverage of the target by the kept tests (model-written
and Hypothesis ghostwriter ones), and two mutation scores of the kept suite (the test file the
pipeline would write, ``result.new_text``):

* planted (``killed``/``mutants``): each hand-planted single-line bug (the lists below, written
  before any test was generated) is applied to the module and the kept suite is run against it
  in the sandbox; a mutant is killed when the suite fails.
* library (``lib_*``): testgen.mutation's mutants of the target's lines (mutmut's operators, at
  most 40), run on the kept suite by the sandbox's mutation driver and sorted into killed,
  survived, not run and equivalent-looking; ``lib_score_pct`` = killed / (all but
  equivalent-looking), ``lib_strict_pct`` = killed / all. No kept test: nothing killed, score 0.

Times per target: ``seconds`` (generate_tests), ``lib_seconds`` (the library analysis: the kept
suite's coverage run and the mutant runs), ``planted_seconds``.

The script also runs inside an older checkout (commit c7508f1 with testgen/mutation.py,
testgen/_mutdriver.py and TestRunner.run_mutants copied in): of generate_tests' result it reads
only kept, generated, parsed, passed, coverage_after, new_text and rounds; newer fields (e.g.
``mutation_before``, ``mutation_after``) are recorded under ``pipeline`` when present.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest, ModelBackend  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402
from testgen.extract import Target, find_target  # noqa: E402
from testgen.mutation import Fate, classify, example_probe, mutants_of  # noqa: E402
from testgen.pipeline import TestGenError, TestGenSettings, generate_tests  # noqa: E402
from testgen.runner import TestRunner  # noqa: E402
from testgen.sandbox import Sandbox  # noqa: E402
from testgen.split import split_tests  # noqa: E402

TARGETS_DIR = Path(__file__).resolve().parent / "testgen_targets"
REAL_DIR = TARGETS_DIR / "real"

# (module, target qualname, the start of the target's definition line) and its mutants (old,
# new): one single-line change each, inside the target. The bench replaces the first occurrence
# of ``old`` after the definition line; in the real set each ``old`` occurs once in the module
# (a few take the next lines along to be unique).
Spec = tuple[str, str, str, list[tuple[str, str]]]

ISSUE4_TARGETS: list[Spec] = [
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
TARGETS = ISSUE4_TARGETS  # the name earlier notes use

# Copies of CPython 3.11.7 modules (see testgen_targets/real/README.md): module copy ← stdlib.
REAL_TARGETS: list[Spec] = [
    ("wraptext", "dedent", "def dedent(", [  # textwrap
        ("if margin is None:", "if not margin:"),
        ("margin = margin[:i]", "margin = margin[:i + 1]"),
        ("text = re.sub(r'(?m)^' + margin, '', text)", "text = re.sub(r'^' + margin, '', text)"),
        ("text = _whitespace_only_re.sub('', text)", "text = text"),
    ]),
    ("strutil", "capwords", "def capwords(", [  # string
        ("map(str.capitalize, s.split(sep))", "map(str.title, s.split(sep))"),
        ("s.split(sep)", "s.split(' ')"),
        ("(sep or ' ').join", "' '.join"),
    ]),
    ("cmdopts", "getopt", "def getopt(", [  # getopt
        ("while args and args[0].startswith('-') and args[0] != '-':",
         "while args and args[0].startswith('-'):"),
        ('if type(longopts) == type(""):', "if type(longopts) == type([]):"),
        ("if args[0].startswith('--'):", "if args[0].startswith('-'):"),
        ("if args[0] == '--':\n            args = args[1:]",
         "if args[0] == '--':\n            args = args[0:]"),
    ]),
    ("stats", "median", "def median(", [  # statistics
        ('    4.0\n\n    """\n    data = sorted(data)', '    4.0\n\n    """\n    data = list(data)'),
        ("if n % 2 == 1:\n        return data[n // 2]\n    else:\n        i = n // 2",
         "if n % 2 == 0:\n        return data[n // 2]\n    else:\n        i = n // 2"),
        ("i = n // 2", "i = n // 2 + 1"),
        ("(data[i - 1] + data[i]) / 2", "(data[i - 1] + data[i]) // 2"),
    ]),
    ("cal", "monthrange", "def monthrange(", [  # calendar
        ("if not 1 <= month <= 12:", "if not 1 <= month < 12:"),
        ("ndays = mdays[month] + (month == February and isleap(year))",
         "ndays = mdays[month] + isleap(year)"),
        ("day1 = weekday(year, month, 1)", "day1 = weekday(year, month, 1) + 1"),
        ("ndays = mdays[month] +", "ndays = mdays[month - 1] +"),
    ]),
    ("htmlesc", "escape", "def escape(", [  # html
        ("if quote:", "if not quote:"),
        ("s = s.replace('\\'', \"&#x27;\")", "pass"),
        ('s = s.replace(">", "&gt;")', 's = s.replace(">", "&lt;")'),
        ("def escape(s, quote=True):", "def escape(s, quote=False):"),
    ]),
    ("paths", "commonpath", "def commonpath(", [  # posixpath
        ("common = s1[:i]", "common = s1[:i + 1]"),
        ("prefix = sep if isabs else sep[:0]", "prefix = sep"),
        ("if c and c != curdir]", "if c]"),
        ("s1 = min(split_paths)", "s1 = split_paths[0]"),
    ]),
    ("wsgiutil", "shift_path_info", "def shift_path_info(", [  # wsgiref.util
        ("if not name and not script_name.endswith('/'):", "if not script_name.endswith('/'):"),
        ("if p and p != '.']", "if p]"),
        ("environ['PATH_INFO']   = '/'.join(path_parts)",
         "environ['PATH_INFO']   = '/'.join(path_parts[1:])"),
        ("if not path_info:", "if path_info is None:"),
    ]),
    ("topo", "TopologicalSorter.static_order", "    def static_order(", [  # graphlib
        ("yield from node_group", "yield node_group"),
        ("self.done(*node_group)", "self.done(node_group)"),
        ("while self.is_active():", "if self.is_active():"),
        ("self.prepare()", "pass"),
    ]),
    ("closematch", "get_close_matches", "def get_close_matches(", [  # difflib
        ("if not n >  0:", "if not n >= 0:"),
        ("s.ratio() >= cutoff:", "s.ratio() > cutoff:"),
        ("def get_close_matches(word, possibilities, n=3, cutoff=0.6):",
         "def get_close_matches(word, possibilities, n=3, cutoff=0.5):"),
        ("result = _nlargest(n, result)", "result = result[:n]"),
    ]),
]

SETS: dict[str, tuple[Path, list[Spec]]] = {"issue4": (TARGETS_DIR, ISSUE4_TARGETS),
                                            "real": (REAL_DIR, REAL_TARGETS)}

# Fields of generate_tests' result read directly (c7508f1 has them all); the other dataclass
# fields, when present, are recorded under "pipeline" (these ones are not: they are the target,
# the text, or reported already).
_BASIC = {"target", "module", "test_path", "append", "new_text", "kept", "generated", "parsed",
          "passed", "ghostwritten_kept", "coverage_after", "rounds"}
_OPTIONAL = ("mutation_before", "mutation_after")  # newer fields that may be properties


def selected(which: str, only: list[str] | None) -> list[tuple[str, Path, Spec]]:
    """The targets of set ``which`` ('all' for both), those named in ``only`` (a module, a
    qualname, or module.qualname) if given."""
    names = list(SETS) if which == "all" else [which]
    picked = [(name, SETS[name][0], spec) for name in names for spec in SETS[name][1]]
    if only:
        wanted = set(only)
        known = {n for _, _, (m, q, _, _) in picked for n in (m, q, f"{m}.{q}")}
        if wanted - known:
            raise SystemExit(f"unknown target(s) in set {which}: {sorted(wanted - known)}")
        picked = [p for p in picked
                  if wanted & {p[2][0], p[2][1], f"{p[2][0]}.{p[2][1]}"}]
    return picked


def locate(directory: Path, module: str, qualname: str, marker: str) -> tuple[str, int, Target]:
    """The module's text, the 0-based line of the target's definition, the target."""
    path = directory / f"{module}.py"
    if not path.exists():
        raise SystemExit(f"{path} is missing (copy benchmarks/testgen_targets along with this "
                         "script)")
    source = path.read_text()
    line = next(i for i, text in enumerate(source.splitlines()) if text.startswith(marker))
    target = find_target(source, line, None)
    if target.qualname != qualname:
        raise SystemExit(f"{module}: the definition at line {line + 1} is {target.qualname}, "
                         f"not {qualname}")
    return source, line, target


def run_target(set_name: str, directory: Path, spec: Spec, backend: ModelBackend,
               sandbox: Sandbox, settings: TestGenSettings,
               save_dir: Path | None = None) -> dict[str, Any]:
    module, qualname, marker, mutants = spec
    source, line, target = locate(directory, module, qualname, marker)
    ws = Path(tempfile.mkdtemp(prefix="pingti-tgbench-"))
    try:
        path = ws / f"{module}.py"
        path.write_text(source)

        def model(prompt: str, max_new: int) -> str:
            ids = backend.encode(prompt, special=True)
            return str(backend.generate(GenerationRequest(ids, max_new), CancelToken()).text)

        row: dict[str, Any] = {"target": f"{module}.{qualname}", "set": set_name}
        t0 = time.monotonic()
        tests = ""
        try:
            res = generate_tests(path, source, line, None, ws, model,
                                 backend.info.special_tokens, sandbox, settings)
        except TestGenError as exc:
            part = exc.partial
            row.update({"generated": getattr(part, "generated", 0),
                        "parsed": getattr(part, "parsed", 0),
                        "passed": getattr(part, "passed", 0), "kept": 0, "kept_total": 0,
                        "ghostwritten_kept": 0, "coverage": 0.0,
                        "rounds": getattr(part, "rounds", 0), "error": str(exc)[:200]})
            pipeline = pipeline_fields(part)
        else:
            tests = res.new_text
            row.update({"generated": res.generated, "parsed": res.parsed, "passed": res.passed,
                        "kept": int(getattr(res, "model_kept", len(res.kept))),
                        "kept_total": len(res.kept),
                        "ghostwritten_kept": int(getattr(res, "ghostwritten_kept", 0)),
                        "coverage": round(res.coverage_after, 1), "rounds": res.rounds})
            pipeline = pipeline_fields(res)
        row["seconds"] = round(time.monotonic() - t0, 1)
        if save_dir is not None and tests:
            save_dir.mkdir(parents=True, exist_ok=True)
            (save_dir / f"test_{module}_{qualname.replace('.', '_')}.py").write_text(tests)
        row.update(planted_score(sandbox, source, module, marker, mutants, tests))
        row.update(library_score(sandbox, ws, path, module, source, target, tests))
        if pipeline:
            row["pipeline"] = pipeline
        return row
    finally:
        shutil.rmtree(ws, ignore_errors=True)


def planted_score(sandbox: Sandbox, source: str, module: str, marker: str,
                  mutants: list[tuple[str, str]], tests: str) -> dict[str, Any]:
    """The planted mutants killed by the kept suite ``tests`` (none when there is no suite)."""
    t0 = time.monotonic()
    killed = 0
    sane = False
    if tests:
        at = source.index(marker)
        for old, new in mutants:
            pos = source.index(old, at)  # the first occurrence inside the target
            mutated = source[:pos] + new + source[pos + len(old):]
            killed += int(not _suite_passes(sandbox, mutated, module, tests))
        sane = _suite_passes(sandbox, source, module, tests)
    return {"mutants": len(mutants), "killed": killed,
            "planted_score_pct": round(100 * killed / len(mutants), 1) if mutants else 0.0,
            "kept_suite_passes_on_original": sane,
            "planted_seconds": round(time.monotonic() - t0, 1)}


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


def library_score(sandbox: Sandbox, import_root: Path, path: Path, module: str, source: str,
                  target: Target, tests: str) -> dict[str, Any]:
    """testgen.mutation's analysis of the kept suite ``tests`` (a test module's text) on the
    target: mutmut's mutants of its lines, run in the sandbox, sorted by fate."""
    t0 = time.monotonic()
    lines = (target.start_line, target.end_line)
    mutants = mutants_of(source, lines)
    out: dict[str, Any] = {"lib_mutants": len(mutants), "lib_killed": 0, "lib_equivalent": 0,
                           "lib_not_run": 0, "lib_survived": 0, "lib_score_pct": 0.0,
                           "lib_strict_pct": 0.0, "lib_coverage": 0.0}
    parsed = split_tests(tests) if tests else None
    if parsed is not None and parsed.tests and mutants:
        helpers = [p for p in parsed.preamble if p not in parsed.imports]
        runner = TestRunner(sandbox, import_root, path)
        try:
            coverage = runner.run(parsed.imports, helpers, parsed.tests, lines).coverage
            # The docstring's examples are the only probes: the same for every checkout (the
            # pipeline's own analysis also probes with every answer the model wrote).
            importable = target.enclosing_class or target.name
            examples = example_probe(target.docstring, f"from {module} import {importable}")
            answer = runner.run_mutants(parsed.imports, helpers, parsed.tests, module,
                                        target.qualname, target.kind, [m.source for m in mutants],
                                        probes=[examples] if examples else [])
        finally:
            runner.close()
        if coverage is None:
            out["lib_error"] = "no coverage of the kept suite"
        else:
            out["lib_coverage"] = round(coverage.percent, 1)
            report = classify(mutants, answer, frozenset(coverage.missing_lines)) \
                if answer is not None else None
            if report is None:
                out["lib_error"] = ("the mutation run failed" if answer is None else
                                    "the kept suite did not pass on the original module")
            else:
                out.update({
                    "lib_killed": report.killed,
                    "lib_equivalent": report.count(Fate.EQUIVALENT),
                    "lib_not_run": report.count(Fate.NOT_RUN),
                    "lib_survived": report.count(Fate.SURVIVED),
                    "lib_score_pct": round(report.score, 1),
                    "lib_strict_pct": round(100 * report.killed / len(mutants), 1),
                    "lib_missed": [r.mutant.label for r in report.results
                                   if r.fate in (Fate.SURVIVED, Fate.NOT_RUN)],
                })
    out["lib_seconds"] = round(time.monotonic() - t0, 1)
    return out


def pipeline_fields(result: object) -> dict[str, Any]:
    """The result's fields this script does not read directly (newer pipelines' ones, e.g. the
    mutation reports), made JSON-friendly."""
    if result is None:
        return {}
    names = [f.name for f in dataclasses.fields(result)] \
        if dataclasses.is_dataclass(result) else []
    names += [n for n in _OPTIONAL if n not in names]
    out = {}
    for name in names:
        if name in _BASIC:
            continue
        value = getattr(result, name, None)
        if value is not None:
            out[name] = plain(value)
    return out


def plain(value: object) -> Any:
    """A JSON-friendly form: numbers and short strings as they are, a mutation report as its
    counts, lists and dicts element by element, anything else as a short repr."""
    if isinstance(value, (bool, int)) or value is None:
        return value
    if isinstance(value, float):
        return round(value, 2)
    if isinstance(value, str):
        return value[:200]
    if all(hasattr(value, a) for a in ("killed", "counted", "score", "count")):
        report: Any = value  # a MutationReport
        return {"killed": report.killed, "counted": report.counted,
                "score": round(report.score, 1), "equivalent": report.count(Fate.EQUIVALENT),
                "not_run": report.count(Fate.NOT_RUN), "survived": report.count(Fate.SURVIVED)}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value[:50]]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in list(value.items())[:50]}
    return repr(value)[:200]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals and medians over ``rows``."""
    gen = sum(int(r["generated"]) for r in rows)

    def total(key: str) -> int:
        return sum(int(r[key]) for r in rows)

    def share(key: str) -> float:
        return round(100 * total(key) / gen, 1) if gen else 0.0

    def median(key: str) -> float:
        return round(statistics.median(float(r[key]) for r in rows), 1) if rows else 0.0

    planted, killed = total("mutants"), total("killed")
    lib, lib_killed, lib_eq = total("lib_mutants"), total("lib_killed"), total("lib_equivalent")
    return {
        "targets": len(rows),
        "tests_generated": gen,
        "parse_pct": share("parsed"),
        "pass_pct": share("passed"),
        "kept_pct": share("kept"),
        "targets_with_3_kept": sum(1 for r in rows if int(r["kept_total"]) >= 3),
        "coverage_median_pct": median("coverage"),
        "planted_mutants": planted,
        "planted_killed": killed,
        "mutation_score_pct": round(100 * killed / planted, 1) if planted else 0.0,
        "planted_score_median_pct": median("planted_score_pct"),
        "lib_mutants": lib,
        "lib_killed": lib_killed,
        "lib_equivalent": lib_eq,
        "lib_not_run": total("lib_not_run"),
        "lib_survived": total("lib_survived"),
        "lib_score_pct": round(100 * lib_killed / (lib - lib_eq), 1) if lib - lib_eq else 0.0,
        "lib_strict_pct": round(100 * lib_killed / lib, 1) if lib else 0.0,
        "lib_score_median_pct": median("lib_score_pct"),
        "lib_strict_median_pct": median("lib_strict_pct"),
        "seconds_median": median("seconds"),
        "lib_seconds_median": median("lib_seconds"),
        "planted_seconds_median": median("planted_seconds"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--out", default="benchmarks/out/testgen.json")
    ap.add_argument("--targets", choices=["issue4", "real", "all"], default="all",
                    help="which set of targets (default: all)")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help="run only these targets (a module, a qualname, or module.qualname)")
    ap.add_argument("--rounds", type=int, default=None,
                    help="the pipeline's model rounds (default: TestGenSettings' own)")
    ap.add_argument("--save-tests", metavar="DIR", help="write each kept suite to DIR")
    args = ap.parse_args()
    targets = selected(args.targets, args.only)
    for _, directory, (module, qualname, marker, _) in targets:
        locate(directory, module, qualname, marker)  # fail before loading the model
    force_offline()
    backend = load_backend(Config())
    sandbox = Sandbox()
    settings = TestGenSettings() if args.rounds is None else TestGenSettings(rounds=args.rounds)
    save_dir = Path(args.save_tests) if args.save_tests else None
    rows = []
    for set_name, directory, spec in targets:
        row = run_target(set_name, directory, spec, backend, sandbox, settings, save_dir)
        print({k: v for k, v in row.items() if k not in ("lib_missed", "pipeline")}, flush=True)
        rows.append(row)
    sets = {name: summary([r for r in rows if r["set"] == name])
            for name in SETS if any(r["set"] == name for r in rows)}
    overall = summary(rows)
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "backend": backend.info.backend,
        "model": backend.info.name,
        "settings": dataclasses.asdict(settings),
        "target_set": args.targets,
        **overall,
        "by_set": sets,
        "per_target": rows,
    }
    write_report(report, args.out, hide=["per_target", "by_set", "settings", *overall])
    columns = {**sets, "all": overall}
    print("\n| metric | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key in overall:
        print(f"| {key} | " + " | ".join(str(c[key]) for c in columns.values()) + " |")
    print("\n| target | generated | parsed | passed | kept (all) | coverage % | planted killed "
          "| lib killed / counted (eq., not run, survived) | lib score % | lib strict % | s "
          "| lib s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        counted = r["lib_mutants"] - r["lib_equivalent"]
        print(f"| {r['target']} | {r['generated']} | {r['parsed']} | {r['passed']} "
              f"| {r['kept']} ({r['kept_total']}) | {r['coverage']} "
              f"| {r['killed']}/{r['mutants']} | {r['lib_killed']}/{counted} "
              f"({r['lib_equivalent']}, {r['lib_not_run']}, {r['lib_survived']}) "
              f"| {r['lib_score_pct']} | {r['lib_strict_pct']} | {r['seconds']} "
              f"| {r['lib_seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
