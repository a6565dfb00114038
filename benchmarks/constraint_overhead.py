"""What the syntax constraint costs per decoded token, and in decode speed.

    .venv/bin/python benchmarks/constraint_overhead.py --tasks 30 \
        --out benchmarks/out/constraint_overhead.json
    .venv/bin/python benchmarks/constraint_overhead.py --language go --tasks 30 \
        --out benchmarks/out/constraint_overhead-go.json

The default model (llama.cpp, 151,936-token vocabulary) writes the bodies of the first HumanEval
problems greedily, once without and once with the constraint, interleaved task by task so that
machine noise hits both alike, each up to ``--tokens`` tokens or end-of-text (the constrained
text may differ, so speeds are compared per decoded token). Per step, the constraint's own
time is split into the lexical mask over the whole vocabulary and the exact check of the
picked token(s). Medians and p95 over all steps; the slowdown is the median of the per-task
ratios of decode time per token.

With ``--language`` (a C-family language) the prompts are the files of
``tests/data/grammar_corpus/LANGUAGE``, each cut after a line that opens a block (a function
body to write); there is no lexical mask for these languages, so the cost is the exact check.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import pct, write_report  # noqa: E402
from grammar_constraints.factory import ConstraintFactory  # noqa: E402
from grammar_constraints.languages import syntax_for  # noqa: E402
from grammar_constraints.processor import SyntaxConstraint  # noqa: E402
from lspbench.tasks import load_humaneval  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.loader import load_backend  # noqa: E402
from server.config import Config, force_offline  # noqa: E402


class Timed(SyntaxConstraint):
    """Records the time of every call, not only the totals."""

    def __init__(self, *a, **k) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*a, **k)
        self.mask_times: list[float] = []
        self.check_times: list[float] = []

    def __call__(self, generated, logits):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = super().__call__(generated, logits)
        self.mask_times.append(time.perf_counter() - t0)
        return out

    def check(self, generated, token):  # type: ignore[no-untyped-def]
        t0 = time.perf_counter()
        out = super().check(generated, token)
        self.check_times.append(time.perf_counter() - t0)
        return out


CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "grammar_corpus"


def block_prompts(language: str, limit: int) -> list[str]:
    """Prefixes of the corpus files that end inside a block just opened, round-robin over the
    files (at most every 20th line of a file)."""
    per_file = []
    for path in sorted((CORPUS / language).iterdir()):
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        cuts, last = [], -20
        for i, line in enumerate(lines[:-1]):
            if line.rstrip().endswith("{") and i - last >= 20 and lines[i + 1].strip():
                nxt = lines[i + 1]
                cuts.append("".join(lines[: i + 1]) + nxt[: len(nxt) - len(nxt.lstrip())])
                last = i
        per_file.append(cuts)
    out: list[str] = []
    while len(out) < limit and any(per_file):
        for cuts in per_file:
            if cuts and len(out) < limit:
                out.append(cuts.pop(0))
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--language", default="python")
    ap.add_argument("--tasks", type=int, default=30)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--out", default="benchmarks/out/constraint_overhead.json")
    args = ap.parse_args()
    force_offline()
    backend = load_backend(Config())
    factory = ConstraintFactory(backend.decode, backend.vocab_size, backend.decoder.stop_ids)
    t0 = time.perf_counter()
    table = factory.table
    table_s = time.perf_counter() - t0
    masks: list[float] = []
    checks_per_step: list[float] = []
    ratios: list[float] = []
    speeds = {"off": [], "syntax": []}  # type: dict[str, list[float]]
    refused = 0
    syntax = syntax_for(args.language)
    if args.language == "python":
        prompts = [(t.task_id, t.prefix) for t in load_humaneval()[: args.tasks]]
    else:
        prompts = [(f"{args.language}-{i}", p)
                   for i, p in enumerate(block_prompts(args.language, args.tasks))]
    for task_id, prefix in prompts:
        prompt = backend.encode(prefix)
        times = {}
        for mode in ("off", "syntax"):
            procs: tuple = ()
            if mode == "syntax":
                c = Timed(table, prefix, backend.decode, syntax)
                procs = (c,)
            req = GenerationRequest(prompt, args.tokens, cache_key=f"bench-{mode}",
                                    logits_processors=procs)
            res = backend.generate(req, CancelToken())
            n = len(res.token_ids)
            times[mode] = (res.decode_s, n)
            speeds[mode].append((n - 1) / res.decode_s if res.decode_s else float("nan"))
            if mode == "syntax":
                masks += c.mask_times
                steps = max(1, len(c.mask_times))
                checks_per_step.append(sum(c.check_times) / steps)
                refused += c.refused
        (d_off, n_off), (d_on, n_on) = times["off"], times["syntax"]
        if n_off > 1 and n_on > 1:
            ratios.append((d_on / (n_on - 1)) / (d_off / (n_off - 1)))
        print(f"{task_id}: off {n_off} tok, syntax {n_on} tok", file=sys.stderr)
    check_all = sorted(checks_per_step)
    report = {
        "machine": "2-core x86_64, no GPU (this project's CI machine)",
        "language": args.language,
        "vocabulary": backend.vocab_size,
        "table_build_s": round(table_s, 3),
        "tasks": len(prompts),
        "lexical_mask_us_p50": round(pct(masks, 0.5) * 1e6, 1),
        "lexical_mask_us_p95": round(pct(masks, 0.95) * 1e6, 1),
        "exact_check_us_per_step_p50": round(pct(check_all, 0.5) * 1e6, 1),
        "exact_check_us_per_step_p95": round(pct(check_all, 0.95) * 1e6, 1),
        "decode_tokens_per_s_off": round(statistics.median(speeds["off"]), 2),
        "decode_tokens_per_s_syntax": round(statistics.median(speeds["syntax"]), 2),
        "decode_time_per_token_ratio_median": round(statistics.median(ratios), 3),
        "refused_picks": refused,
    }
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
