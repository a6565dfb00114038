"""Repository context (issue 21): how long the workspace index takes cold, what it holds in
memory, and what one prompt's context costs, for projects of 1,000 and 20,000 files.

    .venv/bin/python benchmarks/repo_index.py --files 1000,20000 --out benchmarks/out/repo_index.json

A project is made of real code: the standard library's Python modules, copied round-robin
into packages of 50 files until there are ``--files`` of them (each a real file, so chunking and
BM25 see real code; 20,000 files are about 30 copies of the ~650 modules). For each size, in a
fresh process (so memory figures are its own):

- cold index: the :class:`~server.workspace.Workspace` walk over the folder with the default
  limits except ``repoMaxFiles`` raised to the size (the default, 5,000, would stop a 20,000-file
  walk there), then the BM25 build the first search starts (in the background: that search
  answers at once);
- memory: the process's RSS before and after;
- per prompt: the median time of ``RepoContext.preamble`` for 30 cursors taken from the
  project's files (the query, the ranking, the budget and the layout; the tokenizer is the
  packaged model's, with ``--tokenizer``, else a characters/4 estimate).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402


def make_project(root: Path, n: int) -> None:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = sorted(p for p in stdlib.glob("*.py") if p.stat().st_size < 200_000)
    for i in range(n):
        src = sources[i % len(sources)]
        pkg = root / f"pkg{i // 50:04d}"
        pkg.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, pkg / f"m{i % 50:02d}_{src.name}")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def measure(root: Path, n: int, use_tokenizer: bool) -> dict[str, Any]:
    from server.config import Config, RepoContextMode
    from server.workspace import RepoContext, WorkspaceLimits

    encode = lambda text: [0] * (len(text) // 4)  # noqa: E731
    if use_tokenizer:
        from server.backends.llamacpp_backend import GgufVocab
        from server.model_assets import cache_root, resolve_model

        vocab, _handle = GgufVocab.load(resolve_model("default", cache_root()).path, cache_root())
        encode = vocab.encode
    c = Config()
    rss0 = rss_mb()
    repo = RepoContext()
    repo.set_roots([root])
    t0 = time.perf_counter()
    ws = repo.ensure_workspace(WorkspaceLimits(max(n, c.repo_max_files), c.repo_max_file_bytes))
    assert ws is not None
    ws.done.wait()
    walk_s = time.perf_counter() - t0
    files = sorted(root.rglob("*.py"))
    cursors = files[:: max(1, len(files) // 30)][:30]

    def ask(path: Path) -> tuple[float, int]:
        text = path.read_text("utf-8", "replace")
        t = time.perf_counter()
        ids = repo.preamble(path.as_uri(), text, len(text) * 2 // 3, "python", (0, 0),
                            RepoContextMode.WORKSPACE, c.repo_context_tokens, encode, None)
        return time.perf_counter() - t, len(ids)

    # The first search starts the BM25 build (in the background for a large index) and
    # answers at once with what is searchable; the index is complete once it is built.
    first_s, _ = ask(cursors[0])
    repo.index.wait_idle(600)
    bm25_s = time.perf_counter() - t0 - walk_s
    asked = [ask(p) for p in cursors[1:]]
    times = [t for t, _ in asked]
    return {"files": n, "indexed": len(ws.indexed), "chunks": len(repo.index),
            "cold_walk_s": round(walk_s, 2), "first_search_s": round(first_s, 3),
            "bm25_build_s": round(bm25_s, 2), "cold_index_s": round(walk_s + bm25_s, 2),
            "preamble_tokens_median": statistics.median(n for _, n in asked),
            "preamble_p50_ms": round(statistics.median(times[1:]) * 1000, 1),
            "preamble_max_ms": round(max(times[1:]) * 1000, 1),
            "rss_before_mb": round(rss0), "rss_after_mb": round(rss_mb()),
            "rss_delta_mb": round(rss_mb() - rss0)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", default="1000,20000")
    ap.add_argument("--tokenizer", action="store_true", help="count with the model's tokenizer")
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: measure one size
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--out", default="benchmarks/out/repo_index.json")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure(Path(args.root), args.one, args.tokenizer)))
        return 0
    rows = []
    for n in (int(x) for x in args.files.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "proj"
            make_project(root, n)
            out = subprocess.run([sys.executable, __file__, "--one", str(n), "--root", str(root),
                                  *(["--tokenizer"] if args.tokenizer else [])],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    write_report({"rows": rows, "command": " ".join(["python", *sys.argv])}, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
