"""Decode speed of pingti's llama.cpp path against llama.cpp's own programs (issue 22).

    .venv/bin/python benchmarks/decode_speed.py --rounds 3 --out benchmarks/out/decode_speed.json

One command, side by side: llama.cpp's ``llama-bench`` (text generation at a depth: ``-p 0 -n
TOKENS -d DEPTH``) and ``llama-batched-bench`` (``-pps``: one shared prompt of DEPTH tokens, B
sequences generating TOKENS each), built from the llama-cpp-python sdist pingti runs on (the same
llama.cpp source and CPU flags; built once into the cache, about 10 minutes on 2 cores), and
pingti's own decoder on the same GGUF file, threads and depths: 1 sequence greedy (an inline
suggestion) and 4 sequences sampled at temperature 0.8 with the configured top-p (reranking
candidates), each with the syntax constraint off and on. Rounds alternate native and pingti,
so machine noise hits both; medians over rounds are reported, and ``ratio`` = pingti / native
at the same depth and width.

pingti's decode speed = tokens generated after each sequence's first / time from the end of the
prefill to the last token (the prefill is not counted: llama-bench's ``tg`` has none either).
Stop tokens do not end a run (every sequence decodes TOKENS), and the KV cache is cleared
before each run. The time inside ``llama_decode`` is recorded too, so the rest (reading logits,
sampling, log-probabilities, the constraint, stop checks) is pingti's own per-step overhead.
``--profile FILE`` writes a cProfile of one extra 1-sequence run at the middle depth.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402

# Real code to fill the prompts: standard-library modules (always present, PSF licence).
SOURCES = ("json/decoder.py", "textwrap.py", "argparse.py")


def source_text() -> str:
    import sysconfig

    lib = Path(sysconfig.get_paths()["stdlib"])
    return "\n".join((lib / name).read_text(encoding="utf-8") for name in SOURCES)


def prompt_at(text: str, encode: Any, depth: int) -> str:
    """The longest head of ``text`` that ends after a block-opening line (``...:``, a body to
    write next) and has at most ``depth`` tokens."""
    lines = text.split("\n")
    best, used = "", 0
    for i, line in enumerate(lines):
        used += len(encode(line + "\n"))
        if used > depth:
            break
        if line.rstrip().endswith(":") and not line.lstrip().startswith("#"):
            best = "\n".join(lines[: i + 1]) + "\n"
    if not best:
        raise SystemExit(f"no prompt of at most {depth} tokens")
    return best


# --- native --------------------------------------------------------------------------------


def native_tool(name: str) -> Path:
    from lspbench.peer import build_llama_tool, built_llama_tool

    env = os.environ.get(f"PINGTI_{name.upper().replace('-', '_')}")
    if env:
        return Path(env)
    return built_llama_tool(name) or build_llama_tool(name)


def llama_bench(binary: Path, gguf: Path, threads: int, depths: list[int],
                tokens: int) -> dict[int, float]:
    """tokens/s of ``tg`` at each depth (one repetition), the faster of flash attention off
    and on (pingti leaves it to llama.cpp's default, ``auto``; llama-bench has no auto)."""
    cmd = [str(binary), "-m", str(gguf), "-t", str(threads), "-p", "0", "-n", str(tokens),
           "-d", ",".join(map(str, depths)), "-fa", "0,1", "-r", "1", "-o", "json"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    best: dict[int, float] = {}
    for row in json.loads(out):
        d = int(row["n_depth"])
        best[d] = max(best.get(d, 0.0), float(row["avg_ts"]))
    return best


def batched_bench(binary: Path, gguf: Path, threads: int, depths: list[int], tokens: int,
                  widths: list[int]) -> dict[tuple[int, int], float]:
    """S_TG (generated tokens/s over all sequences) per (depth, width), the prompt shared; the
    faster of flash attention off and on, as for llama-bench."""
    ctx = max(widths) * (max(depths) + tokens) + 64  # it reserves B * (PP + TG) cells
    got: dict[tuple[int, int], float] = {}
    for fa in ("off", "on"):
        cmd = [str(binary), "-m", str(gguf), "-t", str(threads), "-tb", str(threads),
               "-c", str(ctx), "-b", "2048", "-ub", "512", "-fa", fa,
               "-npp", ",".join(map(str, depths)), "-ntg", str(tokens),
               "-npl", ",".join(map(str, widths)), "-pps"]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        header: list[str] = []
        rows = 0
        for line in out.splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if "S_TG t/s" in cells:
                header = cells
            elif header and len(cells) == len(header) and cells[0].isdigit():
                row = dict(zip(header, cells, strict=True))
                key = (int(row["PP"]), int(row["B"]))
                got[key] = max(got.get(key, 0.0), float(row["S_TG t/s"]))
                rows += 1
        if not rows:
            raise SystemExit(f"no table in llama-batched-bench's output:\n{out[-2000:]}")
    return got


# --- pingti --------------------------------------------------------------------------------


class Timing:
    """Time spent inside llama_decode (wraps the runner's one call site)."""

    def __init__(self, runner: Any) -> None:
        self.seconds = 0.0
        self._inner = runner._decode

        def timed(items: Any, protect: Any) -> None:
            t0 = time.perf_counter()
            try:
                self._inner(items, protect)
            finally:
                self.seconds += time.perf_counter() - t0

        runner._decode = timed


class Toucher:
    """A logits processor that only reads ``mb`` megabytes of its own memory each step: does
    Python-side work between two llama_decode calls slow the next one down (its weights and
    buffers pushed out of the CPU caches)?"""

    def __init__(self, mb: float, fresh: bool = False) -> None:
        import numpy as np

        self.n = max(1, int(mb * (1 << 20)) // 8)
        self.fresh = fresh  # a new array each step (mapped, then unmapped by the allocator)
        self.buf = np.ones(self.n, dtype=np.float64)

    def __call__(self, generated: Any, logits: Any) -> Any:
        import numpy as np

        (np.ones(self.n, dtype=np.float64) if self.fresh else self.buf).sum()
        return logits


def pingti_run(backend: Any, factory: Any, prefix: str, tokens: int, width: int,
               syntax: bool, timing: Timing, top_p: float, touch_mb: float = 0.0,
               fresh: bool = False) -> dict[str, float]:
    from grammar_constraints.languages import syntax_for
    from grammar_constraints.processor import SyntaxConstraint
    from server.backends.base import CancelToken, GenerationRequest

    ids = backend.encode(prefix)
    jobs = []
    for i in range(width):
        procs: tuple[Any, ...] = ()
        if syntax:
            procs = (SyntaxConstraint(factory.table, prefix, backend.decode,
                                      syntax_for("python")),)
        if touch_mb:
            procs = (*procs, Toucher(touch_mb, fresh))
        # As the pipeline asks: log-probabilities only for candidates to rank.
        jobs.append((GenerationRequest(ids, tokens, temperature=0.0 if width == 1 else 0.8,
                                       top_p=top_p, seed=i, logits_processors=procs,
                                       logprobs=width > 1),
                     CancelToken()))
    decoder = backend.decoder
    backend.runner.reset()
    seqs = decoder.admit(jobs)
    t0, in_decode = time.perf_counter(), timing.seconds
    while decoder.active:
        decoder.step()
    elapsed = time.perf_counter() - t0
    in_decode = timing.seconds - in_decode
    made = sum(len(s.out) - 1 for s in seqs)
    return {"tokens_per_s": made / elapsed, "ms_per_step": 1e3 * elapsed / max(1, tokens - 1),
            "decode_ms_per_step": 1e3 * in_decode / max(1, tokens - 1),
            # The constraint still on at the end (it turns itself off on an error).
            "active": float(all(getattr(p, "active", True)
                                for s in seqs for p in s.request.logits_processors))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depths", default="256,768,1536")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--widths", help="sequences decoded together (default 1,4; 1 with --interleave)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--flash-attention", default="auto", choices=("auto", "on", "off"),
                    help="pingti's flashAttention setting")
    ap.add_argument("--no-native", action="store_true", help="pingti only")
    ap.add_argument("--touch-mb", help="comma-separated sizes: instead of the comparison, 1 "
                    "sequence with a processor reading that many MB a step, of its own array and of a "
                    "fresh one (cache and allocator effects probe)")
    ap.add_argument("--interleave", action="store_true",
                    help="the native program and pingti back to back at each depth and width "
                         "(llama-bench for 1 sequence, llama-batched-bench for more), alternating "
                         "order (the finest side-by-side pairing)")
    ap.add_argument("--profile", type=Path, help="write a cProfile of one 1-sequence run here")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/decode_speed.json"))
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    widths = [int(w) for w in (args.widths or ("1" if args.interleave else "1,4")).split(",")]

    from grammar_constraints.factory import ConstraintFactory
    from server.backends.llamacpp_backend import LlamaCppBackend
    from server.backends.loader import load_backend
    from server.config import Config, FlashAttention, force_offline
    from server.model_assets import cache_root, resolve_model

    force_offline()
    need = max(depths) + args.tokens + 8
    config = Config(context_window=max(2048, need), max_batch_size=max(widths),
                    kv_cache_tokens=max(widths) * need + 256,
                    flash_attention=FlashAttention(args.flash_attention))
    threads = config.threads or max(1, os.cpu_count() or 1)
    gguf = resolve_model("default", cache_root()).path
    backend = load_backend(config)
    assert isinstance(backend, LlamaCppBackend)  # (its runner's llama_decode is timed)
    backend.decoder._stop_ids = frozenset()  # every run decodes --tokens
    backend.decoder.draft_tokens = 0  # plain decoding: no speculation in this comparison
    factory = ConstraintFactory(backend.decode, backend.vocab_size, frozenset())
    factory.warm()  # the table and every lexical mode, as the server does at load
    timing = Timing(backend.runner)
    text = source_text()
    prompts = {d: prompt_at(text, backend.encode, d) for d in depths}
    names: tuple[str, ...] = ("llama-bench", "llama-batched-bench")
    if args.touch_mb or args.interleave:
        names = () if args.touch_mb else ("llama-bench",) + (
            ("llama-batched-bench",) if max(widths) > 1 else ())
    tools = {} if args.no_native else {n: native_tool(n) for n in names}

    runs: dict[str, list[float]] = {}
    details: dict[str, list[dict[str, float]]] = {}

    def run_pingti(d: int, w: int, syntax: bool) -> None:
        key = f"pingti d={d} w={w} {'syntax' if syntax else 'off'}"
        got = pingti_run(backend, factory, prompts[d], args.tokens, w, syntax, timing,
                         config.top_p)
        runs.setdefault(key, []).append(got["tokens_per_s"])
        details.setdefault(key, []).append(got)

    if args.touch_mb:
        # The cache-effect probe: 1 sequence, constraint off, a processor reading N MB a step;
        # the sizes in rotating order each round.
        sizes = [float(x) for x in args.touch_mb.split(",")]
        for r in range(args.rounds):
            for d in depths:
                for mb in sizes[r % len(sizes):] + sizes[:r % len(sizes)]:
                    for fresh in (False, True) if mb else (False,):
                        key = f"touch {mb:g} MB{' fresh' if fresh else ''} d={d}"
                        got = pingti_run(backend, factory, prompts[d], args.tokens, 1, False,
                                         timing, config.top_p, mb, fresh)
                        details.setdefault(key, []).append(got)
            print(f"round {r + 1} done", file=sys.stderr)
        rows = [{"probe": k, "ms_per_step": round(statistics.median(x["ms_per_step"] for x in v), 2),
                 "llama_decode_ms_per_step": round(statistics.median(
                     x["decode_ms_per_step"] for x in v), 2),
                 "llama_decode_runs": [round(x["decode_ms_per_step"], 2) for x in v]}
                for k, v in details.items()]
        for row in rows:
            print(json.dumps(row), file=sys.stderr)
        from lspbench.run import machine

        write_report({"machine": machine(), "threads": threads, "tokens": args.tokens,
                      "rounds": args.rounds, "depths": depths, "touch": rows}, str(args.out))
        return 0

    for r in range(args.rounds):
        if args.interleave:
            # Finest pairing: per depth, llama-bench and pingti (off, syntax) back to back,
            # the order reversed every other round, so a slow minute hits both sides.
            for d in depths:
                for w in widths:
                    order: list[Any] = ["native", False, True]
                    for item in (order if r % 2 == 0 else order[::-1]):
                        if item != "native":
                            run_pingti(d, w, item)
                        elif tools and w == 1:
                            v = llama_bench(tools["llama-bench"], gguf, threads, [d],
                                            args.tokens)[d]
                            runs.setdefault(f"native tg d={d} w=1 llama-bench", []).append(v)
                        elif tools:
                            v = batched_bench(tools["llama-batched-bench"], gguf, threads, [d],
                                              args.tokens, [w])[(d, w)]
                            runs.setdefault(f"native tg d={d} w={w} batched-bench", []).append(v)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()),
                  file=sys.stderr)
            continue
        if tools:
            for d, v in llama_bench(tools["llama-bench"], gguf, threads, depths,
                                    args.tokens).items():
                runs.setdefault(f"native tg d={d} w=1 llama-bench", []).append(v)
            for (d, w), v in batched_bench(tools["llama-batched-bench"], gguf, threads, depths,
                                           args.tokens, widths).items():
                runs.setdefault(f"native tg d={d} w={w} batched-bench", []).append(v)
        for d in depths:
            for w in widths:
                for syntax in (False, True):
                    run_pingti(d, w, syntax)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in runs.items()),
              file=sys.stderr)

    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    table = []
    for d in depths:
        for w in widths:
            native = med.get(f"native tg d={d} w={w} batched-bench")
            bench = med.get(f"native tg d={d} w=1 llama-bench") if w == 1 else None
            for mode in ("off", "syntax"):
                key = f"pingti d={d} w={w} {mode}"
                det = details[key]
                row = {"depth": d, "width": w, "constraint": mode, "pingti": med[key],
                       "ms_per_step": round(statistics.median(x["ms_per_step"] for x in det), 2),
                       "llama_decode_ms_per_step": round(
                           statistics.median(x["decode_ms_per_step"] for x in det), 2),
                       "native_batched": native, "native_llama_bench": bench}
                ref = bench if w == 1 and bench else native
                row["ratio"] = round(med[key] / ref, 3) if ref else None
                nat = runs.get(f"native tg d={d} w=1 llama-bench" if w == 1
                               else f"native tg d={d} w={w} batched-bench")
                if nat and len(nat) == len(runs[key]):
                    # Each round's own ratio (pingti / the native run beside it), and their median.
                    per = [p / n for p, n in zip(runs[key], nat, strict=True)]
                    row["ratio_per_round"] = [round(x, 3) for x in per]
                    row["median_paired_ratio"] = round(statistics.median(per), 3)
                table.append(row)
                print(json.dumps(row), file=sys.stderr)
    if args.profile:
        import cProfile

        d = depths[len(depths) // 2]
        prof = cProfile.Profile()
        prof.enable()
        pingti_run(backend, factory, prompts[d], args.tokens, 1, True, timing, config.top_p)
        prof.disable()
        prof.dump_stats(str(args.profile))
    from lspbench.run import machine

    write_report({"machine": machine(), "threads": threads,
                  "flash_attention": config.flash_attention.value, "tokens": args.tokens,
                  "rounds": args.rounds, "depths": depths, "widths": widths, "medians": med, "runs": runs,
                  "table": table}, str(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
