"""What one llama.cpp evaluation of n tokens of one sequence costs against one token (issue 20:
why prompt-lookup speculation does not pay on this CPU).

    .venv/bin/python benchmarks/verify_cost.py --out benchmarks/out/verify-cost.json

The packaged model, one sequence with a 100-token prompt cached; for n = 1 the plain decoding
step, for n > 1 the speculative ``verify`` of n tokens (logits after each), rolled back after
each timing; medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.decoding import SeqState  # noqa: E402
from server.backends.llamacpp_backend import LlamaCppBackend  # noqa: E402
from server.config import Config  # noqa: E402
from server.model_assets import cache_root, resolve_model  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    source = resolve_model(args.model, cache_root())
    backend = LlamaCppBackend.load(source, Config(max_batch_size=1, kv_cache_documents=1),
                                   cache_root())
    runner = backend.runner
    ids = backend.encode("def add(a, b):\n    return a + b\n" * 10)
    seq = SeqState(GenerationRequest(ids, 500), CancelToken())
    runner.prefill([seq])
    report: dict[str, object] = {"model": source.display_name}
    base = 0.0
    for n in (1, 2, 3, 5, 8):
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            if n == 1:
                runner.step([seq], [ids[5]])
            else:
                runner.verify([seq], [ids[5:5 + n]])
            times.append(time.perf_counter() - t0)
            runner.rollback(seq, n)
        ms = statistics.median(times) * 1000
        base = base or ms
        report[f"tokens_{n}_ms"] = round(ms, 2)
        report[f"tokens_{n}_over_one"] = round(ms / base, 2)
    backend.close()
    report["command"] = " ".join(["python", *sys.argv])
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
