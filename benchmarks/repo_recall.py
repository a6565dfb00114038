"""Repository context's retrieval alone (issue 21), no model: for each hole of the lsp-bench
``repo`` suite, is the definition of the hole's symbol among the chunks the prompt would hold?

    .venv/bin/python benchmarks/repo_recall.py --tasks lsp-bench-out/repo/tasks.jsonl \
        --out benchmarks/out/repo_recall.json

(``lsp-bench repo --build-only --out DIR`` writes the tasks.) Each project is indexed as the
server does (its tree as the workspace, every module open as a tab, the hole's file open with
the line cut at the cursor), and :meth:`RepoContext.preamble` is asked at the hole with the
packaged model's tokenizer. The prompt window (the cursor file's lines already in the prompt)
is estimated: lines above the cursor up to ``contextTokens`` - ``suffixTokens`` tokens, below
it up to ``suffixTokens``. Figures per variant and per project:

- ``definition``: a chosen chunk holds the line that defines the hole's symbol;
- ``file``: a chosen chunk comes from the symbol's defining file.

It is a quick way to compare retrieval designs, and only that: whether the model then uses the
definition is what ``lsp-bench repo`` measures. Compare designs on some projects and check the
choice on the others (``--projects``), never on the figures it is reported with.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import write_report  # noqa: E402


@contextmanager
def variant(name: str) -> Iterator[dict[str, Any]]:
    """The retrieval design to measure, parts joined by ``+``: ``current``; ``no-own-bm25``
    (the cursor's file only through definitions and recent edits); ``cursor-line`` (the query
    also holds the cursor line's text before the cursor); ``defs-N`` (definitions cut to N
    lines); ``budget-N`` (repoContextTokens N); ``edit-definition`` (before each hole the
    line defining its symbol is edited, as ``lsp-bench repo --edit-definition``);
    ``no-recent`` (repoRecentEdits 0); ``embed-ENCODER`` (one more fused list: the chunks by
    embedding similarity to the query, ENCODER a ``rerankEncoder`` value)."""
    import server.repo_context as rc

    settings: dict[str, Any] = {"budget": 512, "edit": False, "recent": 16}
    own_file = getattr(rc, "OwnFile", None)  # (absent before the cursor file had its own)
    saved_snapshot: Any = own_file.snapshot if own_file is not None else None
    saved_query, saved_def_lines = rc.query_of, rc.MAX_DEF_LINES
    saved_rankings = rc.ChunkIndex._rankings
    try:
        for part in name.split("+"):
            if part == "no-own-bm25" and own_file is not None:
                def snapshot(self: Any, query: Any, text: str, offset: int) -> Any:
                    return dataclasses.replace(saved_snapshot(self, query, text, offset),
                                               bm25=None)
                own_file.snapshot = snapshot
            elif part == "cursor-line":
                def query_of(path: str, language: Any, text: str, offset: int,
                             window: tuple[int, int]) -> Any:
                    q = saved_query(path, language, text, offset, window)
                    line = text[text.rfind("\n", 0, offset) + 1:offset]
                    return dataclasses.replace(q, near=q.near + "\n" + line)
                setattr(rc, "query_of", query_of)  # noqa: B010 - a variant of the module's
            elif part == "edit-definition":  # as lsp-bench repo --edit-definition
                settings["edit"] = True
            elif part == "no-recent":
                settings["recent"] = 0
            elif part.startswith("defs-"):  # definitions cut to this many lines
                rc.MAX_DEF_LINES = int(part.split("-", 1)[1])
            elif part.startswith("embed-"):  # + a dense ranking (rerank encoder), RRF-fused
                _dense_ranking(part.split("-", 1)[1])
            elif part.startswith("budget-"):
                settings["budget"] = int(part.split("-", 1)[1])
            elif part != "current":
                raise SystemExit(f"unknown variant {part!r}")
        yield settings
    finally:
        if own_file is not None:
            own_file.snapshot = saved_snapshot
        rc.query_of, rc.MAX_DEF_LINES = saved_query, saved_def_lines
        rc.ChunkIndex._rankings = saved_rankings  # type: ignore[method-assign]


def _dense_ranking(spec: str) -> None:
    """Adds to the fused lists one more: every usable chunk by the cosine similarity of its
    embedding to the query's (``spec``: a ``rerankEncoder`` value: minilm, generator, a
    folder), as Tabby fuses embeddings with BM25."""
    import numpy as np

    import server.repo_context as rc
    import server.rerank.encoder as encoder_module
    from server.model_assets import cache_root, resolve_model
    from server.rerank.encoder import make_encoder

    # Every chunk of a project is embedded once: a cache sized for rerank candidates would
    # encode the whole pool again for every hole.
    encoder_module._CACHE_TEXTS = 1 << 20
    encoder = make_encoder(spec, str(resolve_model("default", cache_root()).path))
    assert encoder is not None
    saved = rc.ChunkIndex._rankings

    def rankings(self: Any, query: Any, modes: Any, limit: int, own: Any,
                 recent: Any) -> list[list[Any]]:
        lists = saved(self, query, modes, limit, own, recent)
        with self._lock:
            current = dict(self._files.source)
            pool = [c for source in modes for c in self._snap[source].chunks
                    if current.get(c.path) is source and c.path != query.path]
        pool += list(own.chunks)
        if pool and query.near.strip():
            vecs = encoder.embed([c.text for c in pool])
            q = encoder.embed([query.near])[0]
            order = np.argsort(-(vecs @ q))[: limit * 2]
            lists.append([pool[int(i)] for i in order])
        return lists

    rc.ChunkIndex._rankings = rankings  # type: ignore[method-assign]
    print(f"dense ranking with {encoder.name}", file=sys.stderr)


def constant(text: str) -> Callable[[], str]:
    """A document's text reader that always reads ``text``."""
    return lambda: text


def window(text: str, offset: int, encode: Callable[[str], list[int]], before: int,
           after: int) -> tuple[int, int]:
    lines = text.split("\n")
    line = text.count("\n", 0, offset)
    first, used = line, len(encode(text[text.rfind("\n", 0, offset) + 1:offset]))
    while first > 0 and used + len(encode(lines[first - 1])) + 1 <= before:
        first -= 1
        used += len(encode(lines[first])) + 1
    end, used = line + 1, 0
    while end < len(lines) and used + len(encode(lines[end])) + 1 <= after:
        used += len(encode(lines[end])) + 1
        end += 1
    return first, end


def measure(tasks: list[Any], variants: list[str]) -> dict[str, Any]:
    from lspbench.repo import PROJECTS, module_files
    from server.backends.llamacpp_backend import GgufVocab
    from server.config import Config, RepoContextMode
    from server.model_assets import cache_root, resolve_model
    from server.workspace import RepoContext, WorkspaceLimits

    vocab, _handle = GgufVocab.load(resolve_model("default", cache_root()).path, cache_root())
    c = Config()
    out: dict[str, Any] = {}
    for name in variants:
        rows = []
        with variant(name) as settings:
            for key in dict.fromkeys(t.project for t in tasks):
                mine = [t for t in tasks if t.project == key]
                root = Path(mine[0].root)
                repo = RepoContext()
                repo.set_roots([root])
                ws = repo.ensure_workspace(WorkspaceLimits(c.repo_max_files,
                                                           c.repo_max_file_bytes))
                assert ws is not None and ws.done.wait(600)
                texts = {rel.as_posix(): (root / rel).read_text(encoding="utf-8")
                         for rel in module_files(PROJECTS[key], root)}
                for rel, text in texts.items():
                    repo.opened((root / rel).as_uri(), constant(text), "python")
                for task in mine:
                    uri = (root / task.file).as_uri()
                    hole = task.hole_text(texts[task.file])
                    repo.closed(uri)
                    repo.opened(uri, constant(hole), "python")
                    sym = task.symbols[0]
                    if settings["edit"]:
                        repo.changed((root / sym.file).as_uri(), [sym.line - 1])
                    win = window(hole, task.offset, vocab.encode,
                                 c.context_tokens - c.suffix_tokens, c.suffix_tokens)
                    repo.preamble(uri, hole, task.offset, "python", win,
                                  RepoContextMode.WORKSPACE, settings["budget"], vocab.encode,
                                  None, settings["recent"])
                    chosen = repo.last_chunks.get(uri, [])
                    spans = [c for c in repo._order.get(uri, [])]  # (path, start, text)
                    hit = any(p == sym.file and s < sym.line <= s + t.count("\n") + 1
                              for p, s, t in spans)
                    rows.append({"task_id": task.task_id, "project": key, "definition": hit,
                                 "file": any(x.rsplit(":", 1)[0] == sym.file for x in chosen)})
                    repo.closed(uri)
                    repo.opened(uri, constant(texts[task.file]), "python")
                repo.close()
        figures: dict[str, Any] = {}
        for group in ["all", *dict.fromkeys(r["project"] for r in rows)]:
            g = [r for r in rows if group in ("all", r["project"])]
            figures[group] = {"holes": len(g),
                              "definition": round(sum(r["definition"] for r in g) / len(g), 3),
                              "file": round(sum(r["file"] for r in g) / len(g), 3)}
        out[name] = figures
        print(name, json.dumps(figures["all"]), file=sys.stderr)
    return out


def main() -> int:
    from lspbench.repo import read_tasks

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=Path, required=True)
    ap.add_argument("--variants", default="current,no-own-bm25,cursor-line,budget-1024")
    ap.add_argument("--projects", default="", help="only these (comma-separated)")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/out/repo_recall.json"))
    args = ap.parse_args()
    tasks = read_tasks(args.tasks)
    if args.projects:
        keep = set(args.projects.split(","))
        tasks = [t for t in tasks if t.project in keep]
    result = measure(tasks, args.variants.split(","))
    write_report({"tasks": len(tasks), "variants": result}, str(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
