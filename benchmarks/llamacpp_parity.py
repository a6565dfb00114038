"""Decode speed of pingti's llama.cpp backend against llama.cpp's own ``create_completion``.

    .venv/bin/python benchmarks/llamacpp_parity.py --rounds 5 --out benchmarks/out/llamacpp_parity.json

The same GGUF file loaded twice in one process (pingti's backend, which drives llama.cpp's batch
API itself, and a plain ``llama_cpp.Llama`` with the same context size and threads), the same
FIM prompt, greedy, the same number of new tokens (end-of-text does not cut pingti's run short),
KV cache cleared before every run so each pays the same prefill. Decode speed = (tokens - 1) /
(time from the first to the last token).
The two are interleaved round by round so that machine noise hits both alike; medians reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.llamacpp_backend import LlamaCppBackend  # noqa: E402
from server.config import Backend, Config, force_offline  # noqa: E402
from server.generation import fim_ids_of  # noqa: E402
from server.model_assets import cache_root, resolve_model  # noqa: E402

PREFIX = '''import json
from pathlib import Path


def load_records(path: Path) -> list[dict]:
    """Read a JSON-lines file and return its records, skipping blank lines."""
'''
SUFFIX = "\n\n\ndef save_records(path: Path, records: list[dict]) -> None:\n    pass\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=96)
    ap.add_argument("--out", default="benchmarks/out/llamacpp_parity.json")
    args = ap.parse_args()
    force_offline()
    config = Config(backend=Backend.LLAMA_CPP)
    source = resolve_model("default", cache_root())
    backend = LlamaCppBackend.load(source, config, cache_root())
    import os

    import llama_cpp

    threads = config.threads or max(1, os.cpu_count() or 1)
    llm = llama_cpp.Llama(model_path=str(source.path), n_ctx=config.context_window, n_batch=512,
                          n_threads=threads, n_threads_batch=threads, verbose=False)
    fim = fim_ids_of(backend)
    assert fim is not None, "the model has no fill-in-the-middle tokens"
    ids = [fim[0], *backend.encode(PREFIX), fim[1], *backend.encode(SUFFIX), fim[2]]
    # Keep both runs going for exactly --tokens: no stop token counts as a stop.
    backend.decoder._stop_ids = frozenset()
    ours, theirs = [], []
    texts = {}
    for _ in range(args.rounds):
        backend.runner.reset()
        r = backend.generate(GenerationRequest(ids, args.tokens), CancelToken())
        ours.append((len(r.token_ids) - 1) / r.decode_s)
        texts["ours"] = r.token_ids
        llm.reset()
        llm._ctx.kv_cache_clear()
        t_first = None
        n = 0
        got = []

        chunk: Any
        for chunk in llm.create_completion(ids, max_tokens=args.tokens, temperature=0.0,
                                           top_k=0, top_p=1.0, min_p=0.0, repeat_penalty=1.0,
                                           stream=True):
            now = time.perf_counter()
            if t_first is None:
                t_first = now
            n += 1
            got.append(chunk["choices"][0]["text"])
        t_end = time.perf_counter()
        assert t_first is not None
        theirs.append((n - 1) / (t_end - t_first) if n > 1 else 0.0)
    report = {
        "rounds": args.rounds, "tokens": args.tokens, "prompt_tokens": len(ids),
        "pingti_tokens_per_s": [round(x, 2) for x in ours],
        "create_completion_tokens_per_s": [round(x, 2) for x in theirs],
        "pingti_median": round(statistics.median(ours), 2),
        "create_completion_median": round(statistics.median(theirs), 2),
    }
    report["ratio"] = round(report["pingti_median"] / report["create_completion_median"], 3)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
