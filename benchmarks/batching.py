"""Dynamic batching: throughput of concurrent editors' requests through the real LSP server.

    .venv/bin/python benchmarks/batching.py --repeats 3 --out benchmarks/out/batching.json

Load: ``--clients`` request streams (default 4), each writing its own Python file (the start of
a standard-library module) one line at a time and asking for an inline completion at the start
of each new line, after its indentation, as soon as the previous answer arrived (a closed loop:
each stream has one request in flight). Every request differs, and the request cache is off
(``cacheEntries: 0``), so every answer is a model call; the KV cache of each document is on, as
in real use, so each call evaluates the new line and then decodes.

The same load runs against a server with ``maxBatchSize: 1`` (one request at a time, in arrival
order) and one with ``maxBatchSize: N`` (N sequences decode together), each a fresh server
process, alternating, ``--repeats`` times. Before measuring, every document gets one request
(cold prefill, not counted). Reported per mode: completed requests per minute (median over
runs), latency p50/p95 over all requests, the batch width the server saw (``pingti/status``),
and the throughput ratio batched / one-at-a-time (median of per-repeat ratios).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import parse_settings, pct, write_report  # noqa: E402
from server.lspclient import PingtiClient, position_of  # noqa: E402

MODULES = ["textwrap", "shlex", "fnmatch", "glob", "string", "bisect", "calendar", "gettext"]


def stream_documents(module: str, start_lines: int, requests: int) -> list[tuple[str, int]]:
    """(document text, cursor offset) for each request of one stream: the file up to line k,
    then the next line's indentation, for k = start_lines, start_lines + 1, ..."""
    source = Path(importlib.import_module(module).__file__ or "").read_text(encoding="utf-8")
    lines = source.splitlines(keepends=True)
    out: list[tuple[str, int]] = []
    k = start_lines
    while len(out) < requests and k < len(lines):
        nxt = lines[k]
        if nxt.strip():  # complete at non-empty lines only
            indent = nxt[: len(nxt) - len(nxt.lstrip())]
            text = "".join(lines[:k]) + indent
            out.append((text, len(text)))
        k += 1
    return out


async def run_load(options: dict[str, object], clients: int, requests: int, start_lines: int,
                   env: dict[str, str]) -> dict[str, object]:
    client = PingtiClient()
    await client.start({**options, "cacheEntries": 0}, env=env)
    await client.wait_ready()
    streams = [stream_documents(MODULES[i % len(MODULES)], start_lines, requests + 1)
               for i in range(clients)]
    uris = [f"file:///bench/stream{i}.py" for i in range(clients)]

    async def ask(i: int, text: str, offset: int) -> float:
        client.replace(uris[i], text)
        line, col = position_of(text, offset)
        t0 = time.perf_counter()
        await client.inline(uris[i], line, col)
        return time.perf_counter() - t0

    for i in range(clients):  # warm-up: the cold prefill of every document, not measured
        text, offset = streams[i][0]
        client.open(uris[i], text)
    await asyncio.gather(*[ask(i, *streams[i][0]) for i in range(clients)])
    before = await client.status()
    latencies: list[float] = []

    async def stream(i: int) -> None:
        for text, offset in streams[i][1:]:
            latencies.append(await ask(i, text, offset))

    t0 = time.perf_counter()
    await asyncio.gather(*[stream(i) for i in range(clients)])
    wall = time.perf_counter() - t0
    after = await client.status()
    rss = client.peak_rss_bytes()
    await client.stop()
    b0, b1 = before.get("batching", {}), after.get("batching", {})
    steps = b1.get("steps", 0) - b0.get("steps", 0)
    return {
        "completed": len(latencies),
        "wall_s": wall,
        "per_minute": 60 * len(latencies) / wall,
        "latencies": latencies,
        "max_width": b1.get("maxWidth"),
        "steps": steps,
        "peak_rss": rss,
    }


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    options = parse_settings(args.set)
    env = {"PINGTI_CACHE_DIR": args.cache_dir} if args.cache_dir else {}
    modes = {"one_at_a_time": 1, "batched": args.clients}
    runs: dict[str, list[dict[str, object]]] = {m: [] for m in modes}
    for r in range(args.repeats):
        order = list(modes) if r % 2 == 0 else list(reversed(modes))
        for mode in order:
            res = await run_load({**options, "maxBatchSize": modes[mode]}, args.clients,
                                 args.requests, args.start_lines, env)
            runs[mode].append(res)
            print(f"repeat {r} {mode}: {res['completed']} requests in {res['wall_s']:.1f} s "
                  f"= {res['per_minute']:.1f}/min, max width {res['max_width']}", flush=True)
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "options": options,
        "clients": args.clients,
        "requests_per_client": args.requests,
        "repeats": args.repeats,
    }
    for mode in modes:
        lat = [x for run in runs[mode] for x in run["latencies"]]  # type: ignore[attr-defined]
        report[f"{mode}_requests_per_min_median"] = round(statistics.median(
            float(run["per_minute"]) for run in runs[mode]), 1)  # type: ignore[arg-type]
        report[f"{mode}_latency_p50_s"] = round(pct(lat, 0.5), 3)
        report[f"{mode}_latency_p95_s"] = round(pct(lat, 0.95), 3)
        report[f"{mode}_max_batch_width"] = max(int(run["max_width"] or 0)  # type: ignore[call-overload]
                                                for run in runs[mode])
        rss = [int(run["peak_rss"]) for run in runs[mode] if run["peak_rss"]]  # type: ignore[call-overload]
        report[f"{mode}_peak_rss_mb_max"] = round(max(rss) / 2**20) if rss else None
    ratios = [float(b["per_minute"]) / float(a["per_minute"])  # type: ignore[arg-type]
              for a, b in zip(runs["one_at_a_time"], runs["batched"], strict=True)]
    report["throughput_ratio_median"] = round(statistics.median(ratios), 2)
    report["throughput_ratios"] = [round(x, 2) for x in ratios]
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--requests", type=int, default=12, help="measured requests per client")
    ap.add_argument("--start-lines", type=int, default=60,
                    help="lines of each file present before the first request")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", action="append", metavar="KEY=VALUE")
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default="benchmarks/out/batching.json")
    args = ap.parse_args()
    report = asyncio.run(main_async(args))
    write_report(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
