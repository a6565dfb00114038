"""Fit and measure reranking on candidates lsp-bench collected through the server.

1. Collect candidates (the server ranks by log-probability only, so every signal is recomputed
   here the way the server computes it):

       .venv/bin/lsp-bench humaneval --n 8 --set rerank=logprob --out benchmarks/out/rr-he

2. Compute every signal for the first 2, 4 and 8 candidates of each task (the file's examples in
   the sandbox, embeddings with each encoder), fit the weights on the even-numbered HumanEval
   problems and report on the odd ones (and on any other suite, never fitted on):

       .venv/bin/python benchmarks/rerank_fit.py benchmarks/out/rr-he --suite humaneval \
           --encoders minilm,generator --out benchmarks/out/rerank_fit.json

Figures per split and n: first@1 (the greedy candidate), sample@1 (a random sampled one),
pass@n (the ceiling), and rank@1 for each signal alone, the log-probability mode, and the
fitted combination. ``--weights FILE`` evaluates given weights instead of fitting (for the
held-out suites). Signals are cached in ``<run>/signals-<encoder>.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lspbench.cli import select_tasks  # noqa: E402
from lspbench.tasks import Task  # noqa: E402
from server.config import RerankMode  # noqa: E402
from server.rerank import DEFAULT_WEIGHTS, Pick, Reranker, Signal, Weights  # noqa: E402
from server.rerank.encoder import make_encoder  # noqa: E402
from server.rerank.examples import ExampleRunner  # noqa: E402
from testgen.sandbox import Isolation, detect  # noqa: E402

Group = dict[str, Any]  # {"origins": [...], "passed": bool, "signals": {name: value}}


def problem_number(task_id: str) -> int:
    return int(task_id.split("/")[1])


def load_rows(run: Path) -> dict[str, list[dict[str, Any]]]:
    by_task: dict[str, list[dict[str, Any]]] = {}
    for line in (run / "results.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_task.setdefault(row["task_id"], []).append(row)
    return {t: sorted(rs, key=lambda r: r["candidate"]) for t, rs in by_task.items()}


def signals_for(tasks: dict[str, Task], rows: dict[str, list[dict[str, Any]]], ns: Sequence[int],
                encoder: str, timeout_s: float) -> dict[str, dict[int, list[Group]]]:
    """Per task and n: the distinct candidates among the first n, with every signal."""
    iso = Isolation.AUTO if detect(Isolation.AUTO).usable else Isolation.NONE
    runner = ExampleRunner(iso, timeout_s)
    enc = make_encoder(encoder) if encoder != "none" and encoder != "generator" else None
    if encoder == "generator":
        from server.model_assets import assemble_default_gguf, cache_root

        enc = make_encoder("generator", str(assemble_default_gguf(cache_root())))
    full = Reranker(RerankMode.FULL, DEFAULT_WEIGHTS, encoder=(lambda: enc) if enc else None,
                    examples=runner, compute_all=True)
    out: dict[str, dict[int, list[Group]]] = {}
    t0 = time.monotonic()
    for k, (tid, rs) in enumerate(rows.items()):
        task = tasks.get(tid)
        if task is None:
            continue
        out[tid] = {}
        for n in ns:
            picks = [Pick(r["completion"], r["candidate"],
                          [r["mean_logprob"]] if r.get("mean_logprob") is not None else [],
                          r["candidate"] == 0) for r in rs[:n]]
            ranking = full.rank(picks, task.prefix, task.suffix, "python")
            passed = {r["candidate"]: bool(r["passed"]) for r in rs}
            # Decoding order (the order the server's stable sort breaks ties in).
            groups = sorted(ranking.ranked, key=lambda g: min(g.origins))
            out[tid][n] = [{"origins": list(g.origins), "passed": passed[g.origins[0]],
                            "signals": {s.value: v for s, v in g.signals.items()},
                            "seconds": ranking.seconds} for g in groups]
        if k % 20 == 0:
            print(f"  signals ({encoder}): {k + 1}/{len(rows)} tasks, "
                  f"{time.monotonic() - t0:.0f}s", file=sys.stderr)
    return out


def add_reviewer(data: dict[str, dict[int, list[Group]]], runs: Sequence[Path]) -> None:
    """The reviewer signal (mean log-probability of the docstring after the code) from the
    runs' ``reviewer.json`` (per task, per candidate index)."""
    scores: dict[str, dict[str, Any]] = {}
    for run in runs:
        path = run / "reviewer.json"
        if path.exists():
            scores.update(json.loads(path.read_text()))
    for tid, per_n in data.items():
        got = scores.get(tid, {})
        for groups in per_n.values():
            for g in groups:
                s = got.get(str(g["origins"][0]))
                if s is not None:
                    g["signals"]["reviewer"] = s["mean"]


def top1(groups: list[Group], w: Weights) -> bool:
    """Whether the server's ranking with ``w`` puts a passing candidate first."""
    if not groups:
        return False
    has_ex = any("examples" in g["signals"] for g in groups)

    def key(g: Group) -> tuple[float, float]:
        sig = {Signal(k): v for k, v in g["signals"].items()}
        ex = g["signals"].get("examples", 0.0) if (w.examples_first and has_ex) else 0.0
        return (-ex, -w.score(sig))

    return bool(sorted(groups, key=key)[0]["passed"])


def rate(data: dict[str, dict[int, list[Group]]], ids: Iterable[str], n: int, w: Weights) -> float:
    ids = list(ids)
    return sum(top1(data[t][n], w) for t in ids) / max(1, len(ids))


def baselines(rows: dict[str, list[dict[str, Any]]], ids: Iterable[str], n: int) -> dict[str, float]:
    ids = list(ids)
    first = [bool(rows[t][0]["passed"]) for t in ids]
    sample = [sum(bool(r["passed"]) for r in rows[t][1:n]) / max(1, n - 1) for t in ids]
    best = [any(r["passed"] for r in rows[t][:n]) for t in ids]
    m = max(1, len(ids))
    return {"first@1 (greedy)": sum(first) / m, "sample@1": sum(sample) / m,
            "pass@n": sum(best) / m}


ALONE = {s: Weights({s: 1.0}, examples_first=False) for s in Signal}
LOGPROB_ONLY = Weights({s: v for s, v in DEFAULT_WEIGHTS.weights.items()
                        if s in (Signal.LOGPROB, Signal.GREEDY, Signal.VOTES)},
                       examples_first=False)

GRID = {Signal.LOGPROB: (0.0, 0.5, 1.0, 2.0), Signal.GREEDY: (0.0, 0.1, 0.3, 1.0),
        Signal.VOTES: (0.0, 0.5, 1.0, 2.0), Signal.EXAMPLES: (0.0, 1.0, 3.0),
        Signal.BEHAVIOUR: (0.0, 0.5, 1.0, 2.0), Signal.CONSENSUS: (0.0, 0.5, 1.0, 2.0),
        Signal.CONTEXT: (0.0, 0.5, 1.0), Signal.REVIEWER: (0.0, 0.5, 1.0, 2.0, 4.0)}


def fit(data: dict[str, dict[int, list[Group]]], ids: list[str], ns: Sequence[int],
        signals: Sequence[Signal]) -> tuple[Weights, float]:
    """Grid search over the weights of ``signals`` (and examples-first on/off): the best mean
    rank@1 over ``ns`` on ``ids``; ties go to fewer non-zero weights, then smaller ones."""
    best: tuple[float, int, float] | None = None
    best_w = DEFAULT_WEIGHTS
    axes = [GRID[s] for s in signals]
    for first in (True, False):
        for values in itertools.product(*axes):
            w = Weights(dict(zip(signals, values, strict=True)), examples_first=first)
            acc = sum(rate(data, ids, n, w) for n in ns) / len(ns)
            key = (acc, -sum(v > 0 for v in values), -sum(values))
            if best is None or key > best:
                best, best_w = key, w
    assert best is not None
    return best_w, best[0]


def weights_json(w: Weights) -> dict[str, Any]:
    return {"weights": {s.value: v for s, v in w.weights.items() if v},
            "examples_first": w.examples_first}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="lsp-bench result folders (same suite)")
    ap.add_argument("--suite", default="humaneval")
    ap.add_argument("--infill-kinds", default="single-line,multi-line,random-span")
    ap.add_argument("--per-problem", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--ns", default="2,4,8")
    ap.add_argument("--encoders", default="minilm", help="comma-separated: minilm, generator, "
                    "none, or a folder")
    ap.add_argument("--timeout", type=float, default=2.0, help="examples time per task (s)")
    ap.add_argument("--weights", help="evaluate these weights, do not fit: `default` (the "
                    "server's DEFAULT_WEIGHTS) or a JSON file like the report's `fitted`")
    ap.add_argument("--reviewer", action="store_true",
                    help="add the reviewer signal from each run's reviewer.json")
    ap.add_argument("--all-held-out", action="store_true",
                    help="report every task as held out (a suite never fitted on)")
    ap.add_argument("--out", default="benchmarks/out/rerank_fit.json")
    args = ap.parse_args()
    ns = [int(x) for x in args.ns.split(",")]
    sel = argparse.Namespace(tasks=None, suite=args.suite, infill_kinds=args.infill_kinds,
                             per_problem=args.per_problem, limit=args.limit)
    _, task_list = select_tasks(sel)
    tasks = {t.task_id: t for t in task_list}
    rows: dict[str, list[dict[str, Any]]] = {}
    for run in args.runs:
        rows.update(load_rows(run))
    rows = {t: rs for t, rs in rows.items() if t in tasks and len(rs) >= max(ns)}
    ids = sorted(rows)
    if args.all_held_out:
        even, odd = [], ids
    else:
        even = [t for t in ids if problem_number(t) % 2 == 0]
        odd = [t for t in ids if problem_number(t) % 2 == 1]
    report: dict[str, Any] = {"suite": args.suite, "tasks": len(ids), "fit_tasks": len(even),
                              "held_out_tasks": len(odd), "ns": ns, "encoders": {}}
    for encoder in args.encoders.split(","):
        cache = args.runs[0] / f"signals-{Path(encoder).name}.json"
        if cache.exists():
            data = {t: {int(n): g for n, g in v.items()}
                    for t, v in json.loads(cache.read_text()).items()}
        else:
            data = signals_for(tasks, rows, ns, encoder, args.timeout)
            cache.write_text(json.dumps(data))
        data = {t: v for t, v in data.items() if t in rows}
        if args.reviewer:
            add_reviewer(data, args.runs)
        present = {Signal(k) for v in data.values() for gs in v.values() for g in gs
                   for k in g["signals"]}
        if args.weights == "default":
            fitted, fit_acc = DEFAULT_WEIGHTS, None
        elif args.weights:
            spec = json.loads(Path(args.weights).read_text())
            fitted = Weights({Signal(k): v for k, v in spec["weights"].items()},
                             spec.get("examples_first", True))
            fit_acc = None
        else:
            order = [s for s in Signal if s in present]
            fitted, fit_acc = fit(data, even, ns, order)
        per: dict[str, Any] = {"fitted": weights_json(fitted), "fit_rank@1": fit_acc}
        for split, split_ids in (("fit (even)", even), ("held out (odd)", odd)):
            if not split_ids:
                continue
            table: dict[str, Any] = {}
            for n in ns:
                col: dict[str, float] = baselines(rows, split_ids, n)
                for s in Signal:
                    if s in present:
                        col[f"{s.value} alone"] = rate(data, split_ids, n, ALONE[s])
                col["logprob mode"] = rate(data, split_ids, n, LOGPROB_ONLY)
                col["fitted combination"] = rate(data, split_ids, n, fitted)
                secs = [g[0]["seconds"].get("embeddings", 0.0) + g[0]["seconds"].get(
                    "examples", 0.0) for t in split_ids for g in [data[t][n]] if g]
                col["signal seconds (mean)"] = sum(secs) / max(1, len(secs))
                table[str(n)] = col
            per[split] = table
        report["encoders"][encoder] = per
        _print(encoder, per, ns)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    return 0


def _print(encoder: str, per: dict[str, Any], ns: Sequence[int]) -> None:
    print(f"\n### encoder: {encoder}; fitted: {per['fitted']}\n")
    for split in ("fit (even)", "held out (odd)"):
        if split not in per:
            continue
        table = per[split]
        names = list(table[str(ns[0])])
        print(f"{split} | " + " | ".join(f"n={n}" for n in ns))
        print("|---" * (len(ns) + 1) + "|")
        for name in names:
            print(f"| {name} | " + " | ".join(f"{table[str(n)].get(name, 0):.3f}" for n in ns)
                  + " |")
        print()


if __name__ == "__main__":
    raise SystemExit(main())
