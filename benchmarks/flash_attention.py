"""Prefill and decode speed of pingti's llama.cpp backend with flash attention off and on.

    .venv/bin/python benchmarks/flash_attention.py --rounds 3 --out benchmarks/out/flash_attention.json

The ``flashAttention`` setting's default (``auto`` = off) was chosen from this and from
``llama-bench -fa 0,1`` (benchmarks/decode_speed.py); run it on another CPU to see whether ``on``
pays there. Both backends are loaded side by side and used alternately, round by round, on the
same real-code prompts (standard-library modules): a cold prefill of DEPTH tokens (the KV cache
cleared first), then 64 greedy tokens after it. Medians over rounds; ``ratio`` = off / on.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from benchmarks.decode_speed import prompt_at, source_text  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--depths", default="512,1536")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/flash_attention.json"))
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]

    from server.backends.base import CancelToken, GenerationRequest
    from server.backends.llamacpp_backend import LlamaCppBackend
    from server.backends.loader import load_backend
    from server.config import Config, FlashAttention, force_offline

    force_offline()
    modes = (FlashAttention.OFF, FlashAttention.ON)
    backends: dict[FlashAttention, LlamaCppBackend] = {}
    for m in modes:
        loaded = load_backend(Config(flash_attention=m))
        assert isinstance(loaded, LlamaCppBackend)  # the setting is llama.cpp's
        backends[m] = loaded
    for b in backends.values():
        b.decoder._stop_ids = frozenset()  # every run decodes --tokens
        b.decoder.draft_tokens = 0
    text = source_text()
    some = backends[modes[0]]
    prompts = {d: some.encode(prompt_at(text, some.encode, d)) for d in depths}
    runs: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for m in (modes if r % 2 == 0 else modes[::-1]):
            b = backends[m]
            for d in depths:
                b.runner.reset()
                t0 = time.perf_counter()
                got = b.generate(GenerationRequest(prompts[d], args.tokens, temperature=0.0),
                                 CancelToken())
                total = time.perf_counter() - t0
                runs.setdefault(f"{m.value} d={d} prefill tokens/s", []).append(
                    len(prompts[d]) / got.prefill_s)
                runs.setdefault(f"{m.value} d={d} decode tokens/s", []).append(
                    (len(got.token_ids) - 1) / got.decode_s)
                runs.setdefault(f"{m.value} d={d} total s", []).append(total)
        print(f"round {r + 1} done", file=sys.stderr)
    med = {k: round(statistics.median(v), 2) for k, v in runs.items()}
    table = []
    for d in depths:
        for what in ("prefill tokens/s", "decode tokens/s", "total s"):
            off, on = med[f"off d={d} {what}"], med[f"on d={d} {what}"]
            table.append({"depth": d, "measure": what, "off": off, "on": on,
                          "ratio_off_on": round(off / on, 3)})
            print(table[-1], file=sys.stderr)
    from lspbench.run import machine

    write_report({"machine": machine(), "tokens": args.tokens, "rounds": args.rounds,
                  "prompt_tokens": {d: len(p) for d, p in prompts.items()}, "medians": med,
                  "runs": runs, "table": table}, str(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
