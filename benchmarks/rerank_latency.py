"""What several reranked candidates cost an explicit request: latency per n, and memory.

    .venv/bin/python benchmarks/rerank_latency.py --tasks 16 --ns 1,2,4,8 \
        --out benchmarks/out/rerank_latency.json

The real server with its default model and settings (llama.cpp on a CPU) completes the bodies of
odd-numbered HumanEval problems (the held-out split of the reranking fit) on explicit requests
(trigger kind Invoked). For each problem every n is asked in turn (the order rotates from one
problem to the next, so drift on a shared machine falls on all n alike); each request is a file
the server has not seen (a distinct first line), so each pays its own prefill, as an explicit
request in a newly visited spot would. Reported per n: the request's wall time as the client sees
it (p50/p95), the time paired against n = 1 on the same problem ("added"), the server's own rank
stage time (``rerankS``), and how many distinct candidates came back.

``--encoder minilm`` runs the same with an embedding encoder named (``rerankEncoder``), to show
what embedding agreement costs; the peak RSS (VmHWM) of the server is reported either way.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import parse_settings, pct, write_report  # noqa: E402
from lspbench.cli import select_tasks  # noqa: E402
from server.lspclient import PingtiClient, position_of  # noqa: E402


def held_out_tasks(count: int) -> list[Any]:
    sel = argparse.Namespace(tasks=None, suite="humaneval", infill_kinds="", per_problem=0,
                             limit=0)
    _, tasks = select_tasks(sel)
    odd = [t for t in tasks if int(t.task_id.split("/")[1]) % 2 == 1]
    step = max(1, len(odd) // max(1, count))
    return odd[::step][:count]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    ns = [int(x) for x in args.ns.split(",")]
    options: dict[str, Any] = {**parse_settings(args.set), "maxBatchSize": max(ns + [4])}
    if args.encoder:
        options["rerankEncoder"] = args.encoder
    client = PingtiClient()
    await client.start(options)
    await client.wait_ready()
    wall: dict[int, list[float]] = {n: [] for n in ns}
    added: dict[int, list[float]] = {n: [] for n in ns}
    rerank: dict[int, list[float]] = {n: [] for n in ns}
    distinct: dict[int, list[int]] = {n: [] for n in ns}
    prompt: list[int] = []
    reused: list[int] = []
    tasks = held_out_tasks(args.tasks)
    try:
        for k, task in enumerate(tasks):
            order = ns[k % len(ns):] + ns[:k % len(ns)]
            got: dict[int, float] = {}
            for n in order:
                client.client.workspace_did_change_configuration(
                    _config_params({"candidates": n}))
                head = f"# {task.task_id} n={n} run={k}\n"  # a file the server has not seen
                text = head + task.prefix + task.suffix
                uri = f"file:///tmp/pingti-rerank-latency/{k}-{n}.py"
                client.open(uri, text)
                line, col = position_of(text, len(head) + len(task.prefix))
                t0 = time.perf_counter()
                await asyncio.wait_for(client.inline(uri, line, col), args.timeout)
                got[n] = time.perf_counter() - t0
                last = (await client.status(uri)).get("lastCompletion") or {}
                rerank[n].append(float(last.get("rerankS") or 0.0))
                distinct[n].append(int(last.get("candidates") or 0))
                prompt.append(int(last.get("promptTokens") or 0))
                reused.append(int(last.get("reusedTokens") or 0))
                wall[n].append(got[n])
                client.client.text_document_did_close(_close_params(uri))
            base = got.get(ns[0], 0.0)
            for n in ns:
                added[n].append(got[n] - base)
            print(f"  {k + 1}/{len(tasks)} {task.task_id}: "
                  + " ".join(f"n={n} {got[n]:.1f}s" for n in ns), file=sys.stderr)
    finally:
        rss = client.peak_rss_bytes()
        await client.stop()
    report: dict[str, Any] = {
        "machine": f"{platform.machine()}, {_cores()} cores", "tasks": len(tasks),
        "settings": options, "encoder": args.encoder or "none",
        "peak_rss_mb": round(rss / 2**20) if rss else None,
        "prompt tokens (median)": statistics.median(prompt) if prompt else None,
        "of them reused from the KV cache (median)": statistics.median(reused) if reused else None,
    }
    for n in ns:
        report[f"n={n} wall p50/p95 s"] = f"{pct(wall[n], 0.5):.2f} / {pct(wall[n], 0.95):.2f}"
        report[f"n={n} added vs n={ns[0]} p50/p95 s"] = \
            f"{pct(added[n], 0.5):.2f} / {pct(added[n], 0.95):.2f}"
        report[f"n={n} rank stage p50/p95 s"] = \
            f"{pct(rerank[n], 0.5):.3f} / {pct(rerank[n], 0.95):.3f}"
        report[f"n={n} distinct candidates (mean)"] = round(statistics.mean(distinct[n]), 2)
    return report


def _config_params(settings: dict[str, Any]) -> Any:
    from lsprotocol import types

    return types.DidChangeConfigurationParams(settings={"pingti": settings})


def _close_params(uri: str) -> Any:
    from lsprotocol import types

    return types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))


def _cores() -> int:
    import os

    return os.cpu_count() or 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=16, help="odd HumanEval problems to use")
    ap.add_argument("--ns", default="1,2,4,8", help="candidate counts; the first is the baseline")
    ap.add_argument("--encoder", default="", help="rerankEncoder to name (default: none)")
    ap.add_argument("--set", action="append", help="server setting KEY=VALUE (repeatable)")
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--out", default="benchmarks/out/rerank_latency.json")
    args = ap.parse_args()
    report = asyncio.run(run(args))
    write_report(report, args.out, hide=("settings",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
