"""Prompt prefill speed of pingti's llama.cpp runner against llama.cpp's own ``llama-bench``.

    .venv/bin/python benchmarks/prefill_speed.py --llama-bench /path/to/llama-bench \\
        --out benchmarks/out/prefill_speed.json

Both on the same GGUF file (the default model), 2 threads, interleaved round by round (the
machine is shared: a side-by-side ratio is what counts):

- **pingti**: the runner the server uses (``LlamaCppRunner``, the KV cache emptied first), a
  real Python prompt of ``--tokens`` tokens evaluated the way a cold request does (batches of up
  to 512), and the way prefetch does (``warm`` in chunks of 48 tokens);
- **llama-bench** ``-p TOKENS -n 0 -r 1`` of the same llama.cpp source (build it from the
  ``llama-cpp-python`` sdist: ../shared/FACTS.md; build it with the same GGML options as the
  wheel), if ``--llama-bench`` is given.

Also reports which CPU variant / features the loaded llama.cpp uses (``llama_print_system_info``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.decoding import SeqState  # noqa: E402
from server.batching import PREFETCH_CHUNK_TOKENS  # noqa: E402


def prompt_ids(backend: Any, n: int) -> list[int]:
    root = Path(__file__).resolve().parent.parent
    text = "".join(p.read_text() for p in sorted((root / "server").glob("*.py")))
    return backend.encode(text)[:n]


def pingti_prefill(backend: Any, ids: list[int]) -> float:
    runner = backend.runner
    runner.reset()
    seq = SeqState(GenerationRequest(ids, 1), CancelToken())
    t0 = time.perf_counter()
    runner.prefill([seq])
    dt = time.perf_counter() - t0
    runner.release([seq])
    return len(ids) / dt


def pingti_warm(backend: Any, ids: list[int]) -> float:
    runner = backend.runner
    runner.reset()
    t0 = time.perf_counter()
    while runner.warm(ids, "bench", PREFETCH_CHUNK_TOKENS) > 0:
        pass
    return len(ids) / (time.perf_counter() - t0)


def llama_bench(path: str, model: str, n: int, threads: int) -> float:
    out = subprocess.run([path, "-m", model, "-t", str(threads), "-p", str(n), "-n", "0",
                          "-r", "1", "-o", "json"], capture_output=True, text=True, check=True)
    rows = json.loads(out.stdout)
    return float(rows[0]["avg_ts"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--llama-bench", help="path of a llama-bench binary (optional)")
    ap.add_argument("--out", default="benchmarks/out/prefill_speed.json")
    args = ap.parse_args()

    import llama_cpp

    from server.backends.llamacpp_backend import LlamaCppBackend
    from server.backends.loader import load_backend
    from server.config import Backend, Config, force_offline

    force_offline()
    backend = load_backend(Config(backend=Backend.LLAMA_CPP))
    assert isinstance(backend, LlamaCppBackend)
    threads = os.cpu_count() or 1
    ids = prompt_ids(backend, args.tokens)
    pingti_prefill(backend, ids)  # warm-up (first-call allocations, weight repacking)
    rows: dict[str, list[float]] = {"pingti_prefill": [], "pingti_prefetch_chunks": []}
    if args.llama_bench:
        rows["llama_bench"] = []
    for _ in range(args.rounds):
        rows["pingti_prefill"].append(pingti_prefill(backend, ids))
        rows["pingti_prefetch_chunks"].append(pingti_warm(backend, ids))
        if args.llama_bench:
            rows["llama_bench"].append(llama_bench(args.llama_bench, backend.info.path,
                                                   args.tokens, threads))
    system = llama_cpp.llama_print_system_info().decode(errors="replace").strip()
    backend.close()
    med = {k: round(statistics.median(v), 1) for k, v in rows.items()}
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {_cpu_name()}",
        "llama_cpp_system_info": system,
        "tokens": len(ids), "rounds": args.rounds, "threads": threads,
        **{f"{k}_tok_s_median": v for k, v in med.items()},
    }
    if args.llama_bench:
        report["ratio_pingti_over_llama_bench"] = round(med["pingti_prefill"]
                                                        / med["llama_bench"], 3)
        report["ratio_prefetch_chunks_over_llama_bench"] = round(
            med["pingti_prefetch_chunks"] / med["llama_bench"], 3)
    report["samples"] = {k: [round(x, 1) for x in v] for k, v in rows.items()}
    write_report(report, args.out, hide=("samples",))
    return 0


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    raise SystemExit(main())
