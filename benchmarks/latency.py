"""Start-up and completion latency of pingti-ls, measured through LSP like an editor sees it.

    .venv/bin/python benchmarks/latency.py --runs 3 --cold --out benchmarks/out/latency.json

- cold start: a fresh cache dir, so the default model is assembled and converted (first ever);
- warm start: the server started again on the populated cache (each run is one warm start);
- single-line / multi-line latency: holes cut deterministically from standard-library files
  (rest of a line removed at a word boundary / a function body removed after its signature and
  docstring), one request each, every one a cache miss; p50 and p95 over all requests of all runs;
- tokens/s of decoding, from the server's own per-request log line;
- peak RSS of the server process (VmHWM).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import parse_settings, pct, write_report  # noqa: E402
from server.lspclient import PingtiClient, position_of  # noqa: E402

SOURCES = ["textwrap", "heapq", "bisect", "colorsys", "fnmatch", "shlex", "glob", "calendar"]
_LOG_LINE = re.compile(r"mode=(\w+) prompt_tokens=(\d+) gen_tokens=(\d+) prefill=([\d.]+)s "
                       r"decode=([\d.]+)s total=([\d.]+)s")


@dataclass(frozen=True)
class Hole:
    name: str
    mode: str  # expected: single_line | multi_line
    text: str  # document with the hole
    offset: int  # cursor


def _module_source(name: str) -> str:
    import importlib

    path = importlib.import_module(name).__file__
    assert path
    return Path(path).read_text(encoding="utf-8")


def single_line_holes(source: str, name: str, limit: int) -> list[Hole]:
    """Cut the second half of code lines inside functions, at a word boundary."""
    lines = source.splitlines(keepends=True)
    holes: list[Hole] = []
    tree = ast.parse(source)
    body_lines = sorted({n.lineno for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                         for n in ast.walk(f) if isinstance(n, ast.stmt) and n is not f})
    for lineno in body_lines[3::7]:
        line = lines[lineno - 1]
        code = line.rstrip("\n")
        if len(code.strip()) < 24 or code.strip().startswith(("#", '"', "'")):
            continue
        cut = max(i for i in range(len(code) // 2, len(code) - 4) if code[i] in " (=,[") + 1 \
            if any(code[i] in " (=,[" for i in range(len(code) // 2, len(code) - 4)) else None
        if cut is None:
            continue
        start = sum(len(x) for x in lines[: lineno - 1])
        text = "".join(lines[: lineno - 1]) + code[:cut] + "\n" + "".join(lines[lineno:])
        holes.append(Hole(f"{name}:{lineno}", "single_line", text, start + cut))
        if len(holes) >= limit:
            break
    return holes


def multi_line_holes(source: str, name: str, limit: int) -> list[Hole]:
    """Remove the body of small functions (keeping signature and docstring)."""
    lines = source.splitlines(keepends=True)
    holes: list[Hole] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef) or not node.body:
            continue
        body = node.body
        first = body[1] if (isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant) and len(body) > 1) else body[0]
        if first is body[0] and isinstance(first, ast.Expr):
            continue
        end = node.end_lineno or first.lineno
        if not 3 <= end - first.lineno + 1 <= 12:
            continue
        indent = " " * first.col_offset
        head = "".join(lines[: first.lineno - 1])
        text = head + indent + "\n" + "".join(lines[end:])
        holes.append(Hole(f"{name}:{node.name}", "multi_line", text, len(head) + len(indent)))
        if len(holes) >= limit:
            break
    return holes


def build_holes(n_single: int, n_multi: int) -> list[Hole]:
    singles: list[Hole] = []
    multis: list[Hole] = []
    for name in SOURCES:
        src = _module_source(name)
        singles += single_line_holes(src, name, 2)
        multis += multi_line_holes(src, name, 2)
    return singles[:n_single] + multis[:n_multi]


async def one_run(holes: list[Hole], cache_dir: str, log_file: str,
                  options: dict[str, object]) -> dict[str, object]:
    client = PingtiClient()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "server", "--log-level", "info", "--log-file", log_file]
    await client.start(options, server_cmd=cmd, env={"PINGTI_CACHE_DIR": cache_dir})
    await client.wait_ready()
    ready_s = (client.log.ready_at or time.perf_counter()) - t0
    latencies: dict[str, list[float]] = {"single_line": [], "multi_line": []}
    results = []
    try:
        for i, hole in enumerate(holes):
            uri = f"file:///bench/{i}_{hole.name.replace(':', '_')}.py"
            client.open(uri, hole.text)
            line, col = position_of(hole.text, hole.offset)
            t = time.perf_counter()
            text = await client.inline(uri, line, col)
            dt = time.perf_counter() - t
            latencies[hole.mode].append(dt)
            results.append({"hole": hole.name, "mode": hole.mode, "latency_s": round(dt, 3),
                            "chars": len(text)})
        rss = client.peak_rss_bytes()
    finally:
        await client.stop()
    return {"ready_s": ready_s, "latencies": latencies, "peak_rss": rss, "results": results}


def parse_log(path: str) -> list[dict[str, float | str]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        m = _LOG_LINE.search(line)
        if m:
            mode, pt, gt, pre, dec, tot = m.groups()
            rows.append({"mode": mode, "prompt_tokens": int(pt), "gen_tokens": int(gt),
                         "prefill_s": float(pre), "decode_s": float(dec), "total_s": float(tot)})
    return rows


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    holes = build_holes(args.single, args.multi)
    options = parse_settings(args.set)
    report: dict[str, object] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
        "options": options, "holes": {"single_line": sum(h.mode == "single_line" for h in holes),
                                      "multi_line": sum(h.mode == "multi_line" for h in holes)},
    }
    tmp = tempfile.mkdtemp(prefix="pingti-bench-")
    cache_dir = args.cache_dir or os.path.join(tmp, "cache")
    if args.cold:
        client = PingtiClient()
        t0 = time.perf_counter()
        await client.start(options, env={"PINGTI_CACHE_DIR": cache_dir})
        await client.wait_ready()
        report["cold_start_s"] = round((client.log.ready_at or time.perf_counter()) - t0, 2)
        await client.stop()
        print(f"cold start: {report['cold_start_s']} s", file=sys.stderr)
    elif not args.cache_dir:
        cache_dir = ""  # the user's normal cache
    env_cache = cache_dir or os.environ.get("PINGTI_CACHE_DIR", "")
    runs = []
    all_lat: dict[str, list[float]] = {"single_line": [], "multi_line": []}
    log_rows: list[dict[str, float | str]] = []
    for r in range(args.runs):
        log_file = os.path.join(tmp, f"server-{r}.log")
        run = await one_run(holes, env_cache or str(Path.home() / ".cache" / "pingti"),
                            log_file, options)
        runs.append(run)
        latencies = cast(dict[str, list[float]], run["latencies"])
        for mode, vals in latencies.items():
            all_lat[mode].extend(vals)
        log_rows += parse_log(log_file)
        print(f"run {r + 1}/{args.runs}: ready in {run['ready_s']:.1f} s", file=sys.stderr)
    warm = [float(r["ready_s"]) for r in runs]  # type: ignore[arg-type]
    report["warm_start_s_median"] = round(statistics.median(warm), 2)
    report["warm_start_s"] = [round(w, 2) for w in warm]
    for mode, vals in all_lat.items():
        report[f"{mode}_p50_s"] = round(pct(vals, 0.5), 3)
        report[f"{mode}_p95_s"] = round(pct(vals, 0.95), 3)
        report[f"{mode}_n"] = len(vals)
        rows = [x for x in log_rows if x["mode"] == mode]
        tps = [(float(x["gen_tokens"]) - 1) / float(x["decode_s"]) for x in rows
               if float(x["decode_s"]) > 0 and int(x["gen_tokens"]) > 1]
        report[f"{mode}_tokens_per_s_median"] = round(statistics.median(tps), 2) if tps else None
        report[f"{mode}_prompt_tokens_median"] = (
            statistics.median(int(x["prompt_tokens"]) for x in rows) if rows else None)
        report[f"{mode}_prefill_s_median"] = (
            round(statistics.median(float(x["prefill_s"]) for x in rows), 3) if rows else None)
    rss = [int(r["peak_rss"]) for r in runs if r["peak_rss"]]  # type: ignore[call-overload]
    report["peak_rss_mb_max"] = round(max(rss) / 2**20) if rss else None
    report["per_request"] = [r["results"] for r in runs]
    return report


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--single", type=int, default=12, help="single-line holes per run")
    ap.add_argument("--multi", type=int, default=8, help="multi-line holes per run")
    ap.add_argument("--cold", action="store_true", help="measure a cold start in a fresh cache")
    ap.add_argument("--cache-dir", help="cache dir to use (default: temp dir with --cold)")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE", help="server setting")
    ap.add_argument("--out", default="benchmarks/out/latency.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = asyncio.run(main_async(args))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    write_report(report, args.out, hide=("per_request",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
