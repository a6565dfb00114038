"""The first suggestion in a newly opened file, with and without prefetch (issue 16).

    .venv/bin/python benchmarks/first_suggestion.py --files 8 --out benchmarks/out/first_suggestion.json

What a user does: with the server warm (model loaded, other files already served), open an
ordinary ~2,000-token Python file, read it for ``--pause`` seconds (3), then ask for a suggestion
near its bottom (an automatic request, as an editor sends on the first keystroke: one candidate).
The files are the first ~2,000 tokens of standard-library modules; the cursor is in the middle of
an indented code line in the last quarter of the file, with the rest of that line removed.

Each file is opened under three client behaviours, in a rotating order so no mode always comes
first, and closed after each trial (which frees its KV cache and cached answers, so no trial
inherits another's work):

- ``off``: setting ``prefetch: off`` (before this issue: the request evaluates its prompt);
- ``open``: ``prefetch: on``, a plain LSP client: only didOpen, so the server guesses the end of
  the file as the cursor;
- ``focus``: ``prefetch: on`` and ``pingti/focus`` with the cursor after didOpen, as pingti's
  VS Code and Neovim clients send it.

Then a burst: 20 files opened (with focus) 250 ms apart, and how many prefetches ran, were
replaced, finished, and how much model time they took.

Reported: the client-side latency of each first request (p50/p95 per mode, their ratio), the
server's own figures of that request (prompt tokens, reused, prefill, decode), and per file how
many tokens prefetch evaluated and in how much model time (its CPU cost).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402

from benchmarks._common import parse_settings, pct, write_report  # noqa: E402
from server.lspclient import PingtiClient, position_of  # noqa: E402

MODULES = ["textwrap", "shutil", "tempfile", "difflib", "calendar", "fractions", "statistics",
           "argparse", "configparser", "csv", "gettext", "heapq", "ftplib", "smtplib", "pprint",
           "dataclasses", "inspect", "tokenize", "zipfile", "tarfile"]
MODES = ("off", "open", "focus")
CHARS = 7200  # ~2,000 tokens of Python with this tokenizer (3.6 characters a token)


def document(module: str) -> tuple[str, int] | None:
    """The first ~2,000 tokens of ``module``, with the cursor mid-way into a code line near
    the bottom (the rest of that line removed); None if no such line."""
    path = importlib.import_module(module).__file__
    if path is None:
        return None
    source = Path(path).read_text(encoding="utf-8")
    cut = source.rfind("\n\n", 0, CHARS)
    text = source[:cut] + "\n" if cut > 0 else source[:CHARS]
    lines = text.split("\n")
    start = int(len(lines) * 0.75)
    for i in range(len(lines) - 2, start, -1):
        line = lines[i]
        body = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent < 8 or len(body) < 24 or body.startswith(("#", '"', "'", "@")):
            continue
        before = "\n".join(lines[:i])
        if (before.count('"""') + before.count("\'\'\'")) % 2:
            continue  # inside a docstring
        # A word boundary at least 40% into the code.
        cut_at = line.find(" ", indent + int(len(body) * 0.4))
        if cut_at < 0:
            continue
        head = "\n".join(lines[:i]) + "\n" + line[:cut_at + 1]
        tail = "\n" + "\n".join(lines[i + 1:])
        return head + tail, len(head)
    return None


async def status(client: PingtiClient, uri: str | None = None) -> dict[str, Any]:
    return await client.status(uri)


async def first_request(client: PingtiClient, uri: str, text: str, offset: int) -> float:
    line, col = position_of(text, offset)
    t0 = time.perf_counter()
    await client.client.text_document_inline_completion_async(types.InlineCompletionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        position=types.Position(line=line, character=col),
        context=types.InlineCompletionContext(
            trigger_kind=types.InlineCompletionTriggerKind.Automatic)))
    return time.perf_counter() - t0


async def trial(client: PingtiClient, options: dict[str, Any], mode: str, uri: str,
                text: str, offset: int, pause: float) -> dict[str, Any]:
    client.configure({**options, "prefetch": "off" if mode == "off" else "on"})
    before = (await status(client))["batching"]["prefetch"]
    client.open(uri, text)
    if mode == "focus":
        client.focus(uri, *position_of(text, offset))
    await asyncio.sleep(pause)
    at_request = (await status(client))["batching"]["prefetch"]
    latency = await first_request(client, uri, text, offset)
    last = (await status(client, uri))["lastCompletion"] or {}
    # Let a prefetch the request dropped or left behind show its full cost, then close.
    await asyncio.sleep(0.3)
    after = (await status(client))["batching"]["prefetch"]
    client.close(uri)
    return {
        "mode": mode, "uri": uri, "latency_s": round(latency, 4),
        "prompt_tokens": last.get("promptTokens"), "reused_tokens": last.get("reusedTokens"),
        "prefill_s": last.get("prefillS"), "decode_s": last.get("decodeS"),
        "server_total_s": last.get("totalS"), "generated_tokens": last.get("generatedTokens"),
        "prefetch_done_before_request": at_request["completed"] > before["completed"],
        "prefetch_tokens": after["tokens"] - before["tokens"],
        "prefetch_model_s": round(after["seconds"] - before["seconds"], 3),
    }


async def burst(client: PingtiClient, options: dict[str, Any], docs: list[tuple[str, int]],
                n: int, every: float) -> dict[str, Any]:
    client.configure({**options, "prefetch": "on"})
    await asyncio.sleep(0.5)
    before = (await status(client))["batching"]["prefetch"]
    running_max = 0
    t0 = time.perf_counter()
    uris = []
    for i in range(n):
        text, offset = docs[i % len(docs)]
        uri = f"file:///bench/burst/f{i}.py"
        uris.append(uri)
        client.open(uri, f"# burst file {i}\n" + text)
        line, col = position_of(text, offset)
        client.focus(uri, line + 1, col)  # one line added at the top
        deadline = time.perf_counter() + every
        while time.perf_counter() < deadline:
            p = (await status(client))["batching"]["prefetch"]
            running_max = max(running_max, int(p["running"]))
            await asyncio.sleep(0.02)
    burst_s = time.perf_counter() - t0
    at_end = (await status(client))["batching"]["prefetch"]
    # The last file's prefetch finishes; nothing else runs after it.
    while True:
        p = (await status(client))["batching"]["prefetch"]
        if not p["running"] and p["completed"] + p["superseded"] + p["failed"] >= p["requested"]:
            break
        await asyncio.sleep(0.05)
    settled = time.perf_counter() - t0
    for uri in uris:
        client.close(uri)
    d = {k: p[k] - before[k] for k in ("requested", "completed", "superseded", "failed",
                                        "chunks", "tokens")}
    return {
        "switches": n, "burst_s": round(burst_s, 2), **d,
        "model_s_during_burst": round(at_end["seconds"] - before["seconds"], 2),
        "model_s_total": round(p["seconds"] - before["seconds"], 2),
        "settled_after_s": round(settled, 2),
        "prefetches_running_at_once_max": running_max,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lat = [r["latency_s"] for r in rows]
    return {
        "n": len(rows),
        "latency_p50_s": round(pct(lat, 0.5), 3), "latency_p95_s": round(pct(lat, 0.95), 3),
        "prefill_p50_s": round(pct([r["prefill_s"] or 0.0 for r in rows], 0.5), 3),
        "decode_p50_s": round(pct([r["decode_s"] or 0.0 for r in rows], 0.5), 3),
        "prompt_tokens_median": statistics.median(r["prompt_tokens"] or 0 for r in rows),
        "reused_tokens_median": statistics.median(r["reused_tokens"] or 0 for r in rows),
        "prefetch_done_before_request": sum(r["prefetch_done_before_request"] for r in rows),
        "prefetch_tokens_per_file_median": statistics.median(r["prefetch_tokens"] for r in rows),
        "prefetch_model_s_per_file_median": statistics.median(r["prefetch_model_s"]
                                                              for r in rows),
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    options = parse_settings(args.set)
    docs = [d for m in MODULES if (d := document(m)) is not None][: args.files]
    client = PingtiClient()
    env = {"PINGTI_CACHE_DIR": args.cache_dir} if args.cache_dir else {}
    await client.start(options, server_cmd=[sys.executable, "-m", "server", "--log-level",
                                            "info", "--log-file", args.log], env=env)
    await client.wait_ready()
    # Warm: the server has served another file already (the syntax constraint's tables, the
    # tokenizer's caches), as it would have when the user opens the next one.
    warm_text, warm_offset = docs[-1]
    await trial(client, options, "off", "file:///bench/warm.py", warm_text, warm_offset, 0.0)
    rows = []
    for i, (text, offset) in enumerate(docs):
        order = MODES[i % 3:] + MODES[:i % 3]
        for mode in order:
            rows.append(await trial(client, options, mode, f"file:///bench/{mode}/f{i}.py",
                                    text, offset, args.pause))
            print(rows[-1], flush=True)
    burst_row = await burst(client, options, docs, args.burst, args.burst_every)
    rss = client.peak_rss_bytes()
    await client.stop()
    by_mode = {m: summary([r for r in rows if r["mode"] == m]) for m in MODES}
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}",
        "options": options, "pause_s": args.pause, "files": len(docs),
        "doc_chars_median": statistics.median(len(t) for t, _ in docs),
        **{f"{m}": by_mode[m] for m in MODES},
        "p50_ratio_off_over_focus": round(by_mode["off"]["latency_p50_s"]
                                          / by_mode["focus"]["latency_p50_s"], 2),
        "burst": burst_row,
        "peak_rss_mb": round(rss / 2**20) if rss else None,
        "trials": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--pause", type=float, default=3.0)
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--burst-every", type=float, default=0.25)
    ap.add_argument("--set", action="append", metavar="KEY=VALUE")
    ap.add_argument("--cache-dir")
    ap.add_argument("--log", default="/tmp/pingti-first-suggestion.log")
    ap.add_argument("--out", default="benchmarks/out/first_suggestion.json")
    args = ap.parse_args()
    report = asyncio.run(main_async(args))
    write_report(report, args.out, hide=("trials",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
