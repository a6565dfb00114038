"""Latency while typing: a replayed keystroke sequence through the real LSP server.

    .venv/bin/python benchmarks/keystrokes.py --repeats 3 --out benchmarks/out/keystrokes.json

An editor-like client opens a ~2,000-token Python file (the start of the standard library's
``textwrap.py``) and types new code into it character by character, with seeded, realistic
pauses (60–220 ms between keys, longer after words and at line ends). After every keystroke it
sends the incremental ``didChange`` and an automatic ``textDocument/inlineCompletion``; when the
next key comes before the answer, it cancels the outstanding request (``$/cancelRequest``), as
VS Code does. Reported: latency of every request that was answered (p50/p95), the first (cold)
request separately, how many were answered vs cancelled, and the server's peak RSS.

With ``--project DIR`` the typed file is ``DIR/bench_typing.py`` (the client's document; nothing
is written) in a workspace opened as rootUri, with ``--open-files`` of its modules open as tabs:
what typing costs with repository context (``--set repoContext=...``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lsprotocol import types  # noqa: E402

from benchmarks._common import parse_settings, pct, write_report  # noqa: E402
from server.lspclient import PingtiClient, position_of, wait_indexed  # noqa: E402

# What the user types, at the end of a function body in the file (lines of a new helper).
TYPED = (
    "\n\ndef count_words(text):\n"
    "    words = text.split()\n"
    "    return len(words)\n"
)


def base_document(target_tokens: int = 2000) -> str:
    import textwrap as tw

    source = Path(tw.__file__).read_text(encoding="utf-8")
    # ~3.6 characters per token for this file with the Qwen tokenizer.
    cut = source.rfind("\n\n", 0, int(target_tokens * 3.6))
    return source[:cut] + "\n"


def keystroke_delays(text: str, seed: int) -> list[float]:
    rng = random.Random(seed)
    delays = []
    for ch in text:
        d = rng.uniform(0.06, 0.22)
        if ch in " (":
            d += rng.uniform(0.1, 0.4)  # between words
        if ch == "\n":
            d += rng.uniform(0.4, 1.0)  # reading the line, thinking
        delays.append(d)
    return delays


async def replay(options: dict[str, object], seed: int, env: dict[str, str],
                 log_file: str, project: Path | None = None, open_files: int = 0
                 ) -> dict[str, object]:
    client = PingtiClient()
    cmd = [sys.executable, "-m", "server", "--log-level", "info", "--log-file", log_file]
    await client.start(options, server_cmd=cmd, env=env, root=project)
    await client.wait_ready()
    uri = "file:///bench/typing.py"
    if project is not None:
        # In a project: the typed file is one of its files, and some of its modules are open
        # as tabs; the first request waits until the server has indexed the workspace.
        uri = (project / "bench_typing.py").as_uri()
        for path in sorted(project.rglob("*.py"))[:open_files]:
            client.open(path.as_uri(), path.read_text("utf-8", "replace"))
        await wait_indexed(client)
    doc = base_document()
    client.open(uri, doc)
    lc = client.client
    version = 1
    answered: list[float] = []
    after_line: list[float] = []  # answered requests right after a line break (the pause)
    cancelled = 0
    pending: tuple[str, asyncio.Future[object], float] | None = None
    done_at: dict[str, float] = {}

    async def request(i: int) -> tuple[str, asyncio.Future[object], float]:
        line, col = position_of(doc, len(doc))
        msg_id = f"k{seed}-{i}"
        fut = asyncio.wrap_future(lc.protocol.send_request(
            types.TEXT_DOCUMENT_INLINE_COMPLETION,
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=line, character=col),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic)),
            msg_id=msg_id))
        def _done(f: asyncio.Future[object]) -> None:
            done_at[msg_id] = time.perf_counter()
            if not f.cancelled():
                f.exception()  # a cancelled request's error is expected: mark it retrieved

        fut.add_done_callback(_done)
        return msg_id, fut, time.perf_counter()

    # Cold: the first request on the freshly opened file.
    first_id, fut, t = await request(-1)
    await fut
    cold = done_at.get(first_id, time.perf_counter()) - t
    delays = keystroke_delays(TYPED, seed)
    for i, ch in enumerate(TYPED):
        line, col = position_of(doc, len(doc))
        doc += ch
        version += 1
        lc.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangePartial(
                range=types.Range(start=types.Position(line=line, character=col),
                                  end=types.Position(line=line, character=col)),
                text=ch)]))
        if pending is not None and not pending[1].done():
            lc.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=pending[0]))
            cancelled += 1
        pending = await request(i)
        sent_at = pending[2]
        try:
            await asyncio.wait_for(asyncio.shield(pending[1]), delays[i])
        except (asyncio.TimeoutError, Exception):
            pass
        fut = pending[1]
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            # Answered before the next key: its latency is what the user waited. (The done
            # callback may not have run yet: then it is now.)
            waited = done_at.get(pending[0], time.perf_counter()) - sent_at
            answered.append(waited)
            if ch == "\n":
                after_line.append(waited)
        else:
            await asyncio.sleep(max(0.0, delays[i] - (time.perf_counter() - sent_at)))
    if pending is not None:
        try:
            await asyncio.wait_for(pending[1], 60)
            answered.append(done_at.get(pending[0], time.perf_counter()) - pending[2])
        except Exception:
            pass
    rss = client.peak_rss_bytes()
    await client.stop()
    return {"cold_s": cold, "answered": answered, "cancelled": cancelled, "peak_rss": rss,
            "keys": len(TYPED), "after_line": after_line}


_CALL = re.compile(r"prompt_tokens=(\d+) .*total=([\d.]+)s finish=(\w+) .*reused_tokens=(\d+)")


def _model_calls(log: str) -> list[tuple[float, int]]:
    """(total seconds, prompt tokens evaluated) of each finished model call in a server log."""
    calls = []
    for line in Path(log).read_text().splitlines():
        m = _CALL.search(line)
        if m and m.group(3) != "cancelled":
            calls.append((float(m.group(2)), int(m.group(1)) - int(m.group(4))))
    return calls


def _cache_answers(log: str) -> int:
    text = Path(log).read_text()
    return text.count("source=typed_through") + text.count("source=cache")


async def main_async(args: argparse.Namespace) -> dict[str, object]:
    options = parse_settings(args.set)
    env = {"PINGTI_CACHE_DIR": args.cache_dir} if args.cache_dir else {}
    tmp = tempfile.mkdtemp(prefix="pingti-keys-")
    logs = [os.path.join(tmp, f"server-{seed}.log") for seed in range(args.repeats)]
    project = Path(args.project).resolve() if args.project else None
    runs = [await replay(options, seed, env, log, project, args.open_files)
            for seed, log in zip(range(args.repeats), logs, strict=True)]
    model_calls = [m for log in logs for m in _model_calls(log)]
    lat = [x for r in runs for x in r["answered"]]  # type: ignore[attr-defined]
    after = [x for r in runs for x in r["after_line"]]  # type: ignore[attr-defined]
    rss = [int(r["peak_rss"]) for r in runs if r["peak_rss"]]  # type: ignore[call-overload]
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "options": options,
        "keystrokes_per_run": runs[0]["keys"],
        "runs": len(runs),
        "cold_first_request_s_median": round(statistics.median(
            float(r["cold_s"]) for r in runs), 3),  # type: ignore[arg-type]
        "answered": len(lat),
        "cancelled_by_next_key": sum(int(r["cancelled"]) for r in runs),  # type: ignore[call-overload]
        "p50_s": round(pct(lat, 0.5), 3) if lat else None,
        "p95_s": round(pct(lat, 0.95), 3) if lat else None,
        "after_line_break_answered": len(after),
        "after_line_break_p50_s": round(pct(after, 0.5), 3) if after else None,
        "after_line_break_p95_s": round(pct(after, 0.95), 3) if after else None,
        "served_from_cache": sum(_cache_answers(log) for log in logs),
        "model_calls": len(model_calls),
        "model_call_total_s_p50": round(pct([m[0] for m in model_calls], 0.5), 3)
        if model_calls else None,
        "model_call_total_s_p95": round(pct([m[0] for m in model_calls], 0.95), 3)
        if model_calls else None,
        "prompt_tokens_evaluated_median": statistics.median(m[1] for m in model_calls)
        if model_calls else None,
        "peak_rss_mb_max": round(max(rss) / 2**20) if rss else None,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--project", help="type in a file of this folder, opened as the workspace "
                    "(repository context; the file is the client's, never written)")
    ap.add_argument("--open-files", type=int, default=8,
                    help="with --project: how many of its modules are open as tabs")
    ap.add_argument("--set", action="append", metavar="KEY=VALUE")
    ap.add_argument("--cache-dir")
    ap.add_argument("--out", default="benchmarks/out/keystrokes.json")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = asyncio.run(main_async(args))
    report["wall_s"] = round(time.perf_counter() - t0, 1)
    write_report(report, args.out, hide=())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
