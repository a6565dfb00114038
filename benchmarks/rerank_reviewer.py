"""The reviewer signal of reranking (Coder-Reviewer): p(docstring | code) for candidates that
lsp-bench collected through the server, for ``rerank_fit.py --reviewer``.

    .venv/bin/python benchmarks/rerank_reviewer.py benchmarks/out/rr15-temperature/even-t06 \
        benchmarks/out/rr15-temperature/he-even.jsonl
    .venv/bin/python benchmarks/rerank_fit.py benchmarks/out/rr15-temperature/even-t06 \
        --encoders none --reviewer

For each task of the run whose candidates do not all pass or all fail (elsewhere no ordering
changes rank@1), each distinct candidate (whitespace aside) is put in its function without the
docstring, followed by the docstring (``server.rerank.reviewer``), and the default model scores
the docstring's tokens: their mean and summed log-probability go to ``<run>/reviewer.json``
(per task, per candidate index). llama-cpp-python evaluates the code without logits and the
docstring with them, on the CPU backend pingti uses. Resumes where a previous run stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.rerank.rank import normalized  # noqa: E402
from server.rerank.reviewer import reviewer_prompt  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", type=Path, help="an lsp-bench result folder (results.jsonl)")
    ap.add_argument("tasks", type=Path, help="its task file (JSON lines with task_id, prompt)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import llama_cpp

    from server.backends.ggml_cpu import ensure_cpu_backend
    from server.model_assets import assemble_default_gguf, cache_root

    tasks = {}
    for line in args.tasks.read_text(encoding="utf-8").splitlines():
        t = json.loads(line)
        tasks[t["task_id"]] = t
    rows: dict[str, list[dict[str, Any]]] = {}
    for line in (args.run / "results.jsonl").read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        rows.setdefault(r["task_id"], []).append(r)
    out_path = args.run / "reviewer.json"
    out: dict[str, dict[str, Any]] = json.loads(out_path.read_text()) if out_path.exists() else {}

    gguf = assemble_default_gguf(cache_root())
    ensure_cpu_backend(gguf, cache_root())
    llm = llama_cpp.Llama(str(gguf), n_ctx=2048, n_batch=512, logits_all=True,
                          n_threads=args.threads, verbose=False)
    t0, ntok = time.time(), 0
    for k, (tid, rs) in enumerate(sorted(rows.items())):
        if tid in out or tid not in tasks or len({bool(r["passed"]) for r in rs}) < 2:
            continue
        res: dict[str, Any] = {}
        seen: dict[str, str] = {}
        for r in sorted(rs, key=lambda r: r["candidate"]):
            key = normalized(r["completion"])
            if not key:
                continue
            if key in seen:
                res[str(r["candidate"])] = res.get(seen[key])
                continue
            seen[key] = str(r["candidate"])
            p = reviewer_prompt(tasks[tid]["prompt"], r["completion"], "")
            if p is None:
                continue
            head = llm.tokenize(p.head.encode(), add_bos=False, special=False)
            full = llm.tokenize((p.head + p.tail).encode(), add_bos=False, special=False)
            if full[:len(head)] != head:
                full = head + llm.tokenize(p.tail.encode(), add_bos=False, special=False)
            full = full[:2048]
            llm.reset()
            # Logits only where they are read: for every token they cost more than the code.
            llm._logits_all = False
            llm.eval(full[:len(head) - 1])
            llm._logits_all = True
            llm.eval(full[len(head) - 1:])
            ntok += len(full)
            logits = np.asarray(llm.scores[len(head) - 1:len(full) - 1], dtype=np.float64)
            target = np.asarray(full[len(head):])
            m = logits.max(axis=1, keepdims=True)
            lse = m[:, 0] + np.log(np.exp(logits - m).sum(axis=1))
            lp = logits[np.arange(len(target)), target] - lse
            res[str(r["candidate"])] = {"mean": float(lp.mean()), "sum": float(lp.sum()),
                                        "n": len(target)}
        out[tid] = res
        out_path.write_text(json.dumps(out))
        print(f"{k + 1}/{len(rows)} tasks, {time.time() - t0:.0f}s, "
              f"{ntok / max(1e-9, time.time() - t0):.0f} tokens/s", file=sys.stderr)
    out_path.write_text(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
