"""Weight memory, quantization error and decode speed of the default model per quantization mode.

    .venv/bin/python benchmarks/quantization.py --modes none,nf4,int8 \
        --out benchmarks/out/quantization.json

Every mode runs in its own fresh child process (this same file with ``--child``), so the process
RSS it reports is not polluted by an earlier model; the parent only orchestrates and collects one
JSON result per child. The fp32 model (mode ``none``) always runs first: it is the reference the
quantized modes are compared against, and it is added to the run when ``--modes`` omits it.

Per mode, on the CPU, with ``torch.set_num_threads(--threads)`` (2 by default):

- weight memory: ``model.get_memory_footprint()``, and the child's RSS growth over a baseline taken
  after torch/transformers/bitsandbytes are imported (so it includes the tokenizer, the same for
  every mode). RSS is read right after loading and again after a first warm-up forward pass (the
  fp32 safetensors are memory-mapped and only become resident once touched); the table shows the
  latter. Because a memory-mapped file's resident pages count in RSS even where no live tensor
  uses them any more, the table also shows a "working set": RSS after ``malloc_trim`` (glibc
  returns freed load-time buffers) and ``madvise(MADV_PAGEOUT)`` on the safetensors mapping,
  followed by one forward pass (which faults back in exactly the pages still used). Also
  recorded: peak (VmHWM) growth, RssAnon/RssFile, whether embedding / lm_head / a layer weight
  still point into the file mapping. The parent re-reads the weight file before each child so
  every load starts from a warm page cache;
- quantization error against fp32 on a fixed set of code prompts (below), at every position of
  every prompt (next-token distribution): KL(p_fp32 || p_quant) over the full vocabulary in nats
  (mean over all positions), relative MSE of the logits ``sum ||l_q - l_fp32||^2 / sum
  ||l_fp32||^2`` in percent (pooled over all positions), and top-1 agreement in percent. The fp32
  child writes its logits (float32, one file per prompt) to a temporary folder the other children
  read one prompt at a time;
- decode speed: greedy ``model.generate`` of ``--gen-tokens`` new tokens (EOS suppressed, so every
  run has the same length) from 3 of the prompts; prefill = time to the first new token, decode
  tokens/s = (n - 1) / (time from first to last token); the medians over the prompts are reported,
  as is how many tokens each quantized mode matches the fp32 greedy output before diverging;
- load time of ``load_model`` (tokenizer + weights, page cache warm), and the first forward pass.

A mode that fails to load or run on this machine is recorded with its error instead of stopping
the run. The converted model folder comes from the normal cache (``convert_gguf``), which converts
the GGUF once if it is not there yet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODES = ("none", "nf4", "int8")
MB = 1024 * 1024  # sizes in the report are MiB (keys say _MB for brevity)

# Fixed prompts: short snippets in several languages, plus fill-in-the-middle prompts in the
# Qwen2.5-Coder format (each <|fim_...|> marker is one special token).
PROMPTS: list[tuple[str, str]] = [
    ("py_fib", 'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n'
               "    if n < 2:\n        return n\n    a, b = 0, 1\n    for _ in range(n - 1):\n"),
    ("py_class", "import dataclasses\n\n\n@dataclasses.dataclass\nclass Point:\n    x: float\n"
                 "    y: float\n\n    def distance_to(self, other: \"Point\") -> float:\n"
                 "        return ((self.x - other.x) ** 2 + "),
    ("py_io", "import json\nfrom pathlib import Path\n\n\ndef load_config(path: Path) -> dict:\n"
              "    with path.open(encoding=\"utf-8\") as fh:\n        data = json.load(fh)\n"
              "    if not isinstance(data, dict):\n        raise ValueError("),
    ("js_debounce", "function debounce(fn, wait) {\n  let timer = null;\n  return function (...args) {\n"
                    "    clearTimeout(timer);\n    timer = setTimeout(() => "),
    ("ts_fetch", "interface User {\n  id: number;\n  name: string;\n}\n\n"
                 "export async function getUser(id: number): Promise<User> {\n"
                 "  const res = await fetch(`/api/users/${id}`);\n  if (!res.ok) {\n"),
    ("rust_sum", "fn sum_even(values: &[i64]) -> i64 {\n    values\n        .iter()\n"
                 "        .filter(|v| *v % 2 == 0)\n"),
    ("go_http", "package main\n\nimport (\n\t\"fmt\"\n\t\"net/http\"\n)\n\n"
                "func hello(w http.ResponseWriter, r *http.Request) {\n"
                "\tname := r.URL.Query().Get(\"name\")\n"),
    ("c_strlen", "#include <stddef.h>\n\nsize_t my_strlen(const char *s) {\n    const char *p = s;\n"
                 "    while (*p) {\n"),
    ("sql_join", "-- total order value per customer in 2023\nSELECT c.name, SUM(o.amount) AS total\n"
                 "FROM customers c\nJOIN orders o ON "),
    ("sh_backup", "#!/usr/bin/env bash\nset -euo pipefail\n\nsrc=\"$1\"\ndest=\"$2\"\n"
                  "stamp=$(date +%Y%m%d)\nfor f in \"$src\"/*.log; do\n"),
    ("fim_py", "<|fim_prefix|>def is_prime(n: int) -> bool:\n    if n < 2:\n        return False\n"
               "    <|fim_suffix|>\n    return True\n<|fim_middle|>"),
    ("fim_js", "<|fim_prefix|>const items = [3, 1, 2];\nconst sorted = <|fim_suffix|>;\n"
               "console.log(sorted);\n<|fim_middle|>"),
]
GEN_PROMPTS = ("py_fib", "js_debounce", "fim_py")


# ----------------------------------------------------------------------------------- child side

def _proc_status() -> dict[str, int]:
    """VmRSS / VmHWM / RssAnon / RssFile of this process, in bytes (Linux)."""
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _malloc_trim() -> bool:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
        return True
    except (OSError, AttributeError):
        return False


def _file_mappings(suffix: str = ".safetensors") -> list[tuple[int, int, int]]:
    """(start, end, resident bytes) of this process's mappings of files ending in ``suffix``."""
    maps: list[tuple[int, int, int]] = []
    current: list[int] | None = None
    try:
        lines = Path("/proc/self/smaps").read_text().splitlines()
    except OSError:
        return maps
    for line in lines:
        head = line.split(None, 5)
        if head and "-" in head[0] and len(head) >= 5 and not head[0].endswith(":"):
            if current is not None:
                maps.append((current[0], current[1], current[2]))
            current = None
            if len(head) == 6 and head[5].strip().endswith(suffix):
                lo, hi = head[0].split("-")
                current = [int(lo, 16), int(hi, 16), 0]
        elif current is not None and line.startswith("Rss:"):
            current[2] = int(line.split()[1]) * 1024
    if current is not None:
        maps.append((current[0], current[1], current[2]))
    return maps


def _pageout(ranges: list[tuple[int, int, int]]) -> bool:
    """madvise(MADV_PAGEOUT): drop resident pages of the model file's mappings; what is still
    used faults back in on the next forward pass, so RSS after that is the real working set."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        ok = True
        for start, end, _ in ranges:
            ok = libc.madvise(start, end - start, 21) == 0 and ok  # 21 = MADV_PAGEOUT
        return ok
    except (OSError, AttributeError):
        return False


def _in_mappings(tensor: Any, ranges: list[tuple[int, int, int]]) -> bool:
    ptr = tensor.data_ptr()
    return any(start <= ptr < end for start, end, _ in ranges)


def _mb(n: float) -> float:
    return round(n / MB, 1)


def _weight_breakdown(model: Any) -> dict[str, float]:
    """Bytes of the parts bitsandbytes leaves unquantized (embedding, lm_head) vs the rest."""
    def nbytes(module: Any) -> int:
        return sum(p.numel() * p.element_size() for p in module.parameters())

    embed = nbytes(model.get_input_embeddings())
    head = model.get_output_embeddings()
    head_b = nbytes(head) if head is not None and head is not model.get_input_embeddings() else 0
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"embed_MB": _mb(embed), "lm_head_MB": _mb(head_b),
            "other_params_MB": _mb(total - embed - head_b), "all_params_MB": _mb(total)}


def _prompt_ids(tokenizer: Any, text: str) -> Any:
    import torch

    ids = tokenizer.encode(text, add_special_tokens=False)
    return torch.tensor([ids], dtype=torch.long)


def _error_metrics(model: Any, tokenizer: Any, ref_dir: Path, is_ref: bool) -> dict[str, Any]:
    """Run every prompt through the model; save (reference) or compare against fp32 logits."""
    import torch

    per_prompt: dict[str, Any] = {}
    kl_all: list[Any] = []
    sq_err = sq_ref = 0.0
    agree = positions = 0
    t0 = time.perf_counter()
    for name, text in PROMPTS:
        ids = _prompt_ids(tokenizer, text)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].float()
        path = ref_dir / f"{name}.pt"
        if is_ref:
            torch.save({"ids": ids, "logits": logits.contiguous()}, path)
            ref = logits
        else:
            saved = torch.load(path, weights_only=True)
            if not torch.equal(saved["ids"], ids):
                raise RuntimeError(f"prompt {name}: token ids differ from the fp32 run")
            ref = saved["logits"]
            del saved
        ref64, q64 = ref.double(), logits.double()
        logp = torch.log_softmax(ref64, dim=-1)
        logq = torch.log_softmax(q64, dim=-1)
        kl = (logp.exp() * (logp - logq)).sum(-1)  # [T], nats
        del logp, logq
        err = float(((q64 - ref64) ** 2).sum())
        nrm = float((ref64 ** 2).sum())
        top1 = int((ref.argmax(-1) == logits.argmax(-1)).sum())
        del ref64, q64
        n = int(ids.shape[1])
        per_prompt[name] = {"tokens": n, "kl_mean": float(kl.mean()), "kl_max": float(kl.max()),
                            "rel_mse_pct": 100.0 * err / nrm, "top1_pct": 100.0 * top1 / n}
        kl_all.append(kl)
        sq_err += err
        sq_ref += nrm
        agree += top1
        positions += n
        del logits, ref
    kl_cat = torch.cat(kl_all)
    return {
        "positions": positions,
        "kl_mean": float(kl_cat.mean()),
        "kl_median": float(kl_cat.median()),
        "kl_p95": float(torch.quantile(kl_cat, 0.95)),
        "kl_max": float(kl_cat.max()),
        "rel_mse_pct": 100.0 * sq_err / sq_ref,
        "top1_pct": 100.0 * agree / positions,
        "seconds": round(time.perf_counter() - t0, 2),
        "per_prompt": per_prompt,
    }


def _greedy(model: Any, tokenizer: Any, text: str, n_new: int) -> dict[str, Any]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    stamps: list[float] = []

    class _Clock(StoppingCriteria):
        # Called once after each new token (the first call follows the prefill).
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            stamps.append(time.perf_counter())
            return torch.zeros((input_ids.shape[0],), dtype=torch.bool)

    ids = _prompt_ids(tokenizer, text)
    eos = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
            max_new_tokens=n_new, min_new_tokens=n_new,
            stopping_criteria=StoppingCriteriaList([_Clock()]),
            pad_token_id=tokenizer.pad_token_id or eos, eos_token_id=tokenizer.eos_token_id,
        )
    t_end = time.perf_counter()
    new = out[0, ids.shape[1]:].tolist()
    prefill = stamps[0] - t0 if stamps else t_end - t0
    decode = t_end - stamps[0] if stamps else 0.0
    return {"prompt_tokens": int(ids.shape[1]), "new_tokens": len(new), "prefill_s": prefill,
            "decode_s": decode,
            "decode_tok_s": (len(new) - 1) / decode if decode > 0 and len(new) > 1 else None,
            "total_s": t_end - t0, "ids": new}


def run_child(mode: str, folder: Path, ref_dir: Path, gen_tokens: int, threads: int,
              skip_error: bool) -> dict[str, Any]:
    import logging
    import warnings

    # bitsandbytes logs "MatMul8bitLt: inputs will be cast from torch.float32 to float16" on
    # every int8 matmul (tens of thousands of lines per run); the fact is recorded once instead.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*MatMul8bitLt.*")
    import torch
    import transformers
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    torch.set_num_threads(threads)
    try:
        import bitsandbytes

        bnb_version = bitsandbytes.__version__
    except Exception as exc:  # bitsandbytes can fail in many ways on import
        bnb_version = f"unavailable: {exc}"
    from server.backends.transformers_backend import load_model
    from server.config import Quantization

    res: dict[str, Any] = {"mode": mode, "pid": os.getpid(), "threads": torch.get_num_threads(),
                           "torch": torch.__version__, "transformers": transformers.__version__,
                           "bitsandbytes": bnb_version}
    stage = "load"
    try:
        st0, rss0 = _proc_status(), _rss()
        res["baseline_rss_MB"] = _mb(rss0)
        t0 = time.perf_counter()
        tokenizer, model, dtype = load_model(folder, Quantization(mode), "cpu")
        res["load_s"] = round(time.perf_counter() - t0, 2)
        res["dtype"] = dtype
        res["footprint_MB"] = _mb(model.get_memory_footprint())
        res["weights"] = _weight_breakdown(model)
        res["linear_types"] = sorted({type(m).__name__ for m in model.modules()
                                      if "Linear" in type(m).__name__})
        res["rss_after_load_MB"] = _mb(_rss() - rss0)

        stage = "first forward"
        warm = _prompt_ids(tokenizer, PROMPTS[0][1])
        t0 = time.perf_counter()
        with torch.inference_mode():
            model(input_ids=warm, attention_mask=torch.ones_like(warm))
        res["first_forward_s"] = round(time.perf_counter() - t0, 2)
        st1 = _proc_status()
        res["rss_MB"] = _mb(_rss() - rss0)
        res["rss_anon_MB"] = _mb(st1.get("RssAnon", 0) - st0.get("RssAnon", 0))
        res["rss_file_MB"] = _mb(st1.get("RssFile", 0) - st0.get("RssFile", 0))
        res["peak_rss_MB"] = _mb(st1.get("VmHWM", 0) - st0.get("VmRSS", 0))
        if _malloc_trim():
            res["rss_trimmed_MB"] = _mb(_rss() - rss0)
        # How much of the RSS is the memory-mapped safetensors file, and do live weights still
        # point into it (zero-copy fp32 tensors keep the whole mapping alive)?
        maps = _file_mappings()
        res["rss_model_file_mapping_MB"] = _mb(sum(r for _, _, r in maps))
        res["weights_in_file_mapping"] = {
            "embed": _in_mappings(model.get_input_embeddings().weight, maps),
            "lm_head": _in_mappings(model.get_output_embeddings().weight, maps),
            "layer0_q_proj": _in_mappings(model.model.layers[0].self_attn.q_proj.weight, maps),
        }
        if mode == "int8":
            res["note"] = ("bitsandbytes casts int8 matmul inputs float32 -> float16 on CPU "
                           "(MatMul8bitLt)")
        if maps and _pageout(maps):
            with torch.inference_mode():
                model(input_ids=warm, attention_mask=torch.ones_like(warm))
            res["rss_working_set_MB"] = _mb(_rss() - rss0)
            res["rss_model_file_mapping_after_pageout_MB"] = _mb(
                sum(r for _, _, r in _file_mappings()))

        stage = "decode speed"
        prompts = dict(PROMPTS)
        _greedy(model, tokenizer, prompts[GEN_PROMPTS[0]], 4)  # warm-up of generate itself
        runs = {name: _greedy(model, tokenizer, prompts[name], gen_tokens) for name in GEN_PROMPTS}
        speeds = [r["decode_tok_s"] for r in runs.values() if r["decode_tok_s"]]
        res["gen"] = {
            "new_tokens": gen_tokens,
            "decode_tok_s_median": statistics.median(speeds) if speeds else None,
            "prefill_s_median": statistics.median(r["prefill_s"] for r in runs.values()),
            "runs": runs,
        }
        if mode == "none":
            (ref_dir / "greedy.json").write_text(json.dumps({k: v["ids"] for k, v in runs.items()}))
        elif (ref_dir / "greedy.json").is_file():
            ref_ids = json.loads((ref_dir / "greedy.json").read_text())
            match = {}
            for name, r in runs.items():
                a, b = ref_ids.get(name, []), r["ids"]
                match[name] = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
                                   min(len(a), len(b)))
            res["gen"]["greedy_prefix_match_vs_fp32"] = match
        for r in runs.values():
            r["text"] = tokenizer.decode(r.pop("ids"))

        if not skip_error:
            stage = "quantization error"
            if mode != "none" and not any(ref_dir.glob("*.pt")):
                raise RuntimeError("no fp32 reference logits (the fp32 child did not finish)")
            res["error"] = _error_metrics(model, tokenizer, ref_dir, is_ref=(mode == "none"))
        res["peak_rss_end_MB"] = _mb(_proc_status().get("VmHWM", 0) - st0.get("VmRSS", 0))
        res["ok"] = True
    except Exception as exc:  # record the failure of this mode instead of crashing the run
        res["ok"] = False
        res["failed_stage"] = stage
        res["failure"] = f"{type(exc).__name__}: {exc}"
        res["traceback"] = traceback.format_exc(limit=8)
    return res


# ---------------------------------------------------------------------------------- parent side

def _folder(cache_dir: str | None) -> Path:
    from server.backends.transformers_backend import convert_gguf
    from server.model_assets import ModelFormat, cache_root, resolve_model

    root = cache_root(cache_dir)
    source = resolve_model("default", root, lambda msg: print(msg, file=sys.stderr))
    return convert_gguf(source, root) if source.format is ModelFormat.GGUF else source.path


def _warm_page_cache(folder: Path) -> float:
    """Read the weight files once so every child loads from a warm page cache (a child's
    MADV_PAGEOUT may have evicted them); returns seconds taken."""
    t0 = time.perf_counter()
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as fh:
            while fh.read(16 << 20):
                pass
    return round(time.perf_counter() - t0, 2)


def _run_mode(mode: str, args: argparse.Namespace, folder: Path, ref_dir: Path,
              gen_tokens: int, log_dir: Path) -> dict[str, Any]:
    result_path = ref_dir / f"result-{mode}.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--folder", str(folder),
           "--ref-dir", str(ref_dir), "--gen-tokens", str(gen_tokens), "--threads",
           str(args.threads), "--child-out", str(result_path)]
    if args.skip_error:
        cmd.append("--skip-error")
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", TRANSFORMERS_VERBOSITY="error",
               OMP_NUM_THREADS=str(args.threads))
    log_path = log_dir / f"quantization.{mode}.log"
    warm_s = _warm_page_cache(folder)
    print(f"[{time.strftime('%H:%M:%S')}] {mode}: child started (log {log_path})", flush=True)
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    try:
        with log_path.open("w") as log:
            proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                  timeout=args.child_timeout, check=False)
        rc: int | str = proc.returncode
    except subprocess.TimeoutExpired:
        rc = f"timeout after {args.child_timeout}s"
    wall = round(time.perf_counter() - t0, 1)
    if result_path.is_file():
        res = json.loads(result_path.read_text())
    else:
        tail = log_path.read_text(errors="replace")[-2000:] if log_path.is_file() else ""
        res = {"mode": mode, "ok": False, "failed_stage": "child process",
               "failure": f"child exited with {rc} and wrote no result", "log_tail": tail}
    res["child_wall_s"] = wall
    res["page_cache_warm_s"] = warm_s
    res["child_rc"] = rc
    # Other processes on the machine skew the timings; the 1-minute load average shows them.
    res["loadavg_1m_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    status = "ok" if res.get("ok") else f"FAILED ({res.get('failed_stage')}: {res.get('failure')})"
    print(f"[{time.strftime('%H:%M:%S')}] {mode}: {status} in {wall}s", flush=True)
    return res


def _fmt(v: Any, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    ref = results.get("none", {})
    ref_fp = ref.get("footprint_MB") if ref.get("ok") else None
    rows = ["| mode | weight MiB | vs fp32 | RSS MiB | working set MiB | load s | tok/s median "
            "| prefill s median | KL mean (nats) | rel-MSE % | top-1 % |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, r in results.items():
        if not r.get("ok") and "footprint_MB" not in r:
            rows.append(f"| {mode} | failed: {r.get('failed_stage')}: "
                        f"{str(r.get('failure'))[:120]} | | | | | | | | | |")
            continue
        fp = r.get("footprint_MB")
        red = "ref" if mode == "none" else (
            f"{-100 * (1 - fp / ref_fp):+.1f}%" if fp and ref_fp else "n/a")
        gen = r.get("gen", {})
        err = r.get("error", {})
        name = mode if r.get("ok") else f"{mode} (failed at {r.get('failed_stage')})"
        if gen and gen.get("new_tokens"):
            name += f" [{gen['new_tokens']} tok]"
        rows.append(
            f"| {name} | {_fmt(fp, '.0f')} | {red} | {_fmt(r.get('rss_MB'), '.0f')} "
            f"| {_fmt(r.get('rss_working_set_MB'), '.0f')} | {_fmt(r.get('load_s'), '.1f')} "
            f"| {_fmt(gen.get('decode_tok_s_median'), '.2f')} "
            f"| {_fmt(gen.get('prefill_s_median'), '.2f')} | {_fmt(err.get('kl_mean'), '.4f')} "
            f"| {_fmt(err.get('rel_mse_pct'), '.3f')} | {_fmt(err.get('top1_pct'), '.1f')} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modes", default="none,nf4,int8",
                    help="comma-separated quantization modes (none = fp32 on CPU, nf4, int8)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/out/quantization.json"))
    ap.add_argument("--gen-tokens", type=int, default=64, help="new tokens per greedy run")
    ap.add_argument("--gen-tokens-quant", type=int, default=None,
                    help="new tokens per greedy run for nf4/int8 (default: --gen-tokens)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads in each child")
    ap.add_argument("--child-timeout", type=int, default=600, help="seconds per mode")
    ap.add_argument("--cache-dir", default=None, help="pingti cache dir (default: the usual)")
    ap.add_argument("--skip-error", action="store_true", help="skip the logit comparison")
    # internal: one mode in this (fresh) process
    ap.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    ap.add_argument("--folder", help=argparse.SUPPRESS)
    ap.add_argument("--ref-dir", help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.child:
        res = run_child(args.child, Path(args.folder), Path(args.ref_dir), args.gen_tokens,
                        args.threads, args.skip_error)
        Path(args.child_out).write_text(json.dumps(res, indent=1))
        return 0

    modes = [m.strip().lower() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad:
        ap.error(f"unknown mode(s) {bad}; choose from {', '.join(MODES)}")
    if "none" not in modes and not args.skip_error:
        print("note: adding mode 'none' (fp32), the reference for the error metrics", flush=True)
        modes.insert(0, "none")
    elif "none" in modes:
        modes.remove("none")
        modes.insert(0, "none")

    t_start = time.perf_counter()
    folder = _folder(args.cache_dir)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="pingti-quant-") as tmp:
        for mode in modes:
            n = args.gen_tokens if mode == "none" or args.gen_tokens_quant is None \
                else args.gen_tokens_quant
            results[mode] = _run_mode(mode, args, folder, Path(tmp), n, out.parent)

    ref_fp = results["none"].get("footprint_MB") if "none" in results else None
    ref_rss = results["none"].get("rss_MB") if "none" in results else None
    ref_ws = results["none"].get("rss_working_set_MB") if "none" in results else None
    for r in results.values():
        if ref_fp and r.get("footprint_MB"):
            r["weight_reduction_vs_fp32_pct"] = round(100 * (1 - r["footprint_MB"] / ref_fp), 1)
        if ref_rss and r.get("rss_MB"):
            r["rss_reduction_vs_fp32_pct"] = round(100 * (1 - r["rss_MB"] / ref_rss), 1)
        if ref_ws and r.get("rss_working_set_MB"):
            r["working_set_reduction_vs_fp32_pct"] = round(
                100 * (1 - r["rss_working_set_MB"] / ref_ws), 1)
    table = markdown_table(results)
    wall = round(time.perf_counter() - t_start, 1)
    report = {
        "benchmark": "quantization",
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpu_count": os.cpu_count(), "processor": platform.processor()},
        "model_folder": str(folder),
        "threads": args.threads,
        "prompts": {name: text for name, text in PROMPTS},
        "gen_prompts": list(GEN_PROMPTS),
        "wall_s": wall,
        "results": results,
        "table_markdown": table,
    }
    out.write_text(json.dumps(report, indent=1))
    print()
    print(table)
    print()
    for mode, r in results.items():
        if mode != "none" and "weight_reduction_vs_fp32_pct" in r:
            w = r.get("weights", {})
            rss_red = r.get("rss_reduction_vs_fp32_pct")
            rss_txt = "n/a" if rss_red is None else (
                f"{rss_red}% below fp32" if rss_red >= 0 else f"{-rss_red}% ABOVE fp32")
            print(f"{mode}: weight memory {r['weight_reduction_vs_fp32_pct']}% below fp32 "
                  f"(embedding {w.get('embed_MB')} MiB + lm_head {w.get('lm_head_MB')} MiB stay "
                  f"fp32); RSS {rss_txt} (anon {r.get('rss_anon_MB')} MiB, file-backed "
                  f"{r.get('rss_file_MB')} MiB); working set "
                  f"{r.get('working_set_reduction_vs_fp32_pct', 'n/a')}% below fp32")
    print(f"wrote {out} (wall {wall}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
