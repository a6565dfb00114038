"""One benchmark run: drive the server over LSP, execute candidates, write results.

Output folder:

* ``run.json``: the options that define the run (resuming with different ones is refused);
* ``results.jsonl``: one line per task and candidate, appended as tasks finish; a task with all
  its lines is done, so re-running with the same folder skips it;
* ``summary.json``: the figures (:func:`summarize`), rewritten at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from lsprotocol import types

from lspbench.client import Answer, BenchClient, Method
from lspbench.execute import Executor, parses
from lspbench.metrics import identifiers, mean, mean_pass_at_k, percentile, score_line
from lspbench.repo import (
    PROJECTS,
    OpenDocs,
    ProjectTests,
    RepoOptions,
    RepoTask,
    RunOutcome,
    module_files,
    repos_dir,
    write_tasks,
)
from lspbench.tasks import Task
from server.lspclient import position_of, wait_indexed
from testgen.sandbox import Isolation


class BenchError(Exception):
    """A run that cannot start or go on; the message says why and what to do."""


@dataclass
class RunOptions:
    server: list[str]
    settings: dict[str, Any]
    n: int = 1
    ks: tuple[int, ...] = (1,)
    method: str = Method.INLINE
    concurrency: int = 1
    timeout_s: float = 120.0  # per suggestion request
    exec_timeout_s: float = 15.0  # per test program
    load_timeout_s: float = 900.0
    isolation: Isolation = Isolation.AUTO
    strict_settings: bool = True  # a warning from the server about the settings stops the run
    suite: str = ""
    peer: bool = False  # ``server`` is llama.cpp's server, asked over /infill (lspbench.peer)
    repo: RepoOptions | None = None  # the ``repo`` suite's own options

    def fingerprint(self, tasks: Sequence[Task] | Sequence[RepoTask]) -> dict[str, Any]:
        """What must match for results in a folder to be comparable (and resumable)."""
        digest = hashlib.sha256()
        for t in tasks:
            digest.update(json.dumps(t.to_json(), sort_keys=True).encode())
        return {"suite": self.suite, "tasks": len(tasks), "tasksSha256": digest.hexdigest(),
                "server": self.server, "settings": self.settings, "n": self.n,
                "method": self.method, **({"peer": "llama-server"} if self.peer else {}),
                **({"repo": self.repo.to_json()} if self.repo else {})}


@dataclass
class RunResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path
    server_messages: list[str] = field(default_factory=list)


def doc_uri(root: Path, task_id: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in task_id)
    return (root / f"{safe}.py").as_uri()


def cursor(text: str) -> tuple[int, int]:
    """(line, UTF-16 column) of the end of ``text``: where the hole starts."""
    return position_of(text, len(text))


def read_results(path: Path, n: int) -> tuple[list[dict[str, Any]], set[str]]:
    """The rows of finished tasks (all ``n`` candidates present); a task cut off by a stop is
    dropped so it runs again."""
    if not path.exists():
        return [], set()
    rows: dict[str, list[dict[str, Any]]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut off by a crash
        if isinstance(row, dict) and "task_id" in row:
            rows.setdefault(row["task_id"], []).append(row)
    done = {tid for tid, rs in rows.items()
            if sorted(int(r.get("candidate", -1)) for r in rs) == list(range(n))}
    kept = [r for tid in rows if tid in done for r in rows[tid]]
    return kept, done


class Progress:
    """A one-line progress bar on stderr (a line every ~10% when stderr is not a terminal)."""

    def __init__(self, total: int, done: int, label: str, stream: TextIO = sys.stderr) -> None:
        self.total, self.done, self.passed, self.label = total, done, 0, label
        self.stream, self.t0, self._last = stream, time.monotonic(), -1
        self.tty = stream.isatty()

    def update(self, passed_any: bool) -> None:
        self.done += 1
        self.passed += passed_any
        decile = self.done * 10 // max(1, self.total)
        if not self.tty and decile == self._last and self.done != self.total:
            return
        self._last = decile
        width = 30
        fill = width * self.done // max(1, self.total)
        elapsed = time.monotonic() - self.t0
        text = (f"{self.label} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                f"solved {self.passed} {elapsed:.0f}s")
        self.stream.write(("\r" + text) if self.tty else text + "\n")
        if self.tty and self.done == self.total:
            self.stream.write("\n")
        self.stream.flush()


def _prepare(out: Path, fingerprint: dict[str, Any], n: int
             ) -> tuple[Path, list[dict[str, Any]], set[str]]:
    """The results file of a run folder, with the rows of the tasks already done (a folder
    holding a run with other options is refused)."""
    out.mkdir(parents=True, exist_ok=True)
    run_file, results_file = out / "run.json", out / "results.jsonl"
    if run_file.exists():
        old = json.loads(run_file.read_text(encoding="utf-8"))
        if old != fingerprint:
            diff = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise BenchError(f"{out} holds a run with other options (differ: {', '.join(diff)});"
                             " choose another --out, or remove that folder to start over")
    else:
        run_file.write_text(json.dumps(fingerprint, indent=1) + "\n", encoding="utf-8")
    rows, done = read_results(results_file, n)
    results_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return results_file, rows, done


async def run_tasks(tasks: Sequence[Task], opts: RunOptions, out: Path,
                    label: str = "lsp-bench") -> RunResult:
    results_file, rows, done = _prepare(out, opts.fingerprint(tasks), opts.n)
    todo = [t for t in tasks if t.task_id not in done]
    executor = Executor(opts.isolation, opts.exec_timeout_s)
    if todo and (why := executor.refusal()):
        raise BenchError(f"cannot run the tasks' tests safely here: {why} (or pass "
                         "--sandbox none to run them with rlimits only)")
    messages: list[str] = []
    wall = 0.0
    if todo:
        wall, messages = await _drive(todo, opts, results_file, executor, rows, len(tasks),
                                      label)
    summary = summarize(rows, tasks, opts, wall_s=wall, resumed=len(done))
    summary["serverMessages"] = messages
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return RunResult(rows, summary, out, messages)


@contextlib.asynccontextmanager
async def _session(opts: RunOptions, log: Path, root: Path | None = None
                   ) -> AsyncIterator[Any]:
    """A started server whose model is loaded and which did not reject the settings (unless
    told to go on); stopped on leaving. ``root``: the workspace folder to initialize with."""
    client: Any = BenchClient()
    if opts.peer:
        from lspbench.peer import InfillPeerClient

        client = InfillPeerClient()
    try:
        if root is None:
            await client.start(opts.server, opts.settings, log)
        else:
            await client.start(opts.server, opts.settings, log, root=root)
    except Exception as exc:
        raise BenchError(f"could not start the server {' '.join(opts.server)!r}: {exc}") from exc
    try:
        try:
            await client.wait_ready(opts.load_timeout_s)
        except RuntimeError as exc:
            raise BenchError(f"{exc}; the server's log: {log}") from exc
        warnings = [m for kind, m in client.log.messages
                    if kind in (types.MessageType.Error, types.MessageType.Warning)]
        if warnings and opts.strict_settings:
            raise BenchError("the server rejected settings: " + " | ".join(warnings) +
                             " (pass --ignore-server-warnings to run anyway)")
        yield client
    finally:
        await client.stop()


async def _drive(todo: Sequence[Task], opts: RunOptions, results_file: Path, executor: Executor,
                 rows: list[dict[str, Any]], total: int, label: str) -> tuple[float, list[str]]:
    pool = ThreadPoolExecutor(max_workers=max(1, opts.concurrency), thread_name_prefix="exec")
    docs = Path(tempfile.mkdtemp(prefix="lsp-bench-docs-"))
    progress = Progress(total, total - len(todo), label)
    try:
        async with _session(opts, results_file.parent / "server.log") as client:
            t0 = time.perf_counter()
            sem = asyncio.Semaphore(max(1, opts.concurrency))
            lock = asyncio.Lock()
            loop = asyncio.get_running_loop()

            async def one(task: Task) -> None:
                async with sem:
                    uri = doc_uri(docs, task.task_id)
                    client.open(uri, task.prefix + task.suffix)
                    try:
                        answer = await client.suggest(uri, *cursor(task.prefix), opts.method,
                                                      opts.timeout_s)
                        status = await client.status(uri)
                        if status is not None:  # pingti says how it made the suggestion
                            answer.stats = status.get("lastCompletion")
                    finally:
                        client.close(uri)
                    new = await loop.run_in_executor(pool, _execute_all, executor, task,
                                                     answer, opts.n)
                async with lock:
                    with results_file.open("a", encoding="utf-8") as fh:
                        fh.write("".join(json.dumps(r) + "\n" for r in new))
                    rows.extend(new)
                    progress.update(any(r["passed"] for r in new))

            await asyncio.gather(*(one(t) for t in todo))
            wall = time.perf_counter() - t0
            messages = [m for _, m in client.log.messages]
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(docs, ignore_errors=True)
    return wall, messages


def placements(answer: Answer, n: int) -> list[tuple[str, int | None, dict[str, Any]]]:
    """Per decoded candidate (0 = the first, greedy at temperature 0; i = the i-th sample):
    its text, the rank of the suggestion it became (None: dropped as empty) and that
    suggestion's ranking row. pingti's ``pingti/status`` says which candidates each suggestion
    came from (duplicates collapse into one); without it, suggestion i is candidate i. (How
    much a suggestion replaces before the cursor: ``answer.cut(rank)``.)"""
    ranking = (answer.stats or {}).get("ranking")
    texts = answer.candidates
    if n == 1:  # the first suggestion, however many candidates the server ranked
        row = ranking[0] if isinstance(ranking, list) and ranking and texts else {}
        return [(texts[0], 0, row if isinstance(row, dict) else {})] if texts else \
            [("", None, {})]
    if isinstance(ranking, list) and len(ranking) == len(texts) and all(
            isinstance(r, dict) and isinstance(r.get("origins"), list) for r in ranking):
        out: list[tuple[str, int | None, dict[str, Any]]] = [("", None, {})] * n
        for rank, (text, row) in enumerate(zip(texts, ranking, strict=True)):
            for origin in row["origins"]:
                if isinstance(origin, int) and 0 <= origin < n:
                    out[origin] = (text, rank, row)
        return out
    padded = (texts + [""] * n)[:n]
    return [(t, i if i < len(texts) else None, {}) for i, t in enumerate(padded)]


def _execute_all(executor: Executor, task: Task, answer: Answer, n: int) -> list[dict[str, Any]]:
    """One row per decoded candidate (``candidate`` = its index, ``rank`` = where the server
    ranked the suggestion it became); candidates the server dropped (empty) count as empty
    fillings, so they fail unless the hole may stay empty."""
    stats = answer.stats or {}
    rows = []
    cache: dict[tuple[str, int], Any] = {}
    for i, (text, rank, ranked) in enumerate(placements(answer, n)):
        cut = task.cuttable(answer.cut(rank)) if rank is not None else 0
        if (text, cut) not in cache:
            cache[text, cut] = executor.run(task, text, cut)
        ex = cache[text, cut]
        rows.append({
            "task_id": task.task_id, "kind": task.kind.value, "candidate": i,
            "completion": text, "cut": cut, "offered": rank is not None, "rank": rank,
            "mean_logprob": ranked.get("meanLogprob"), "signals": ranked.get("signals"),
            "score": ranked.get("score"),
            "passed": ex.passed, "parses": parses(task.program(text, cut)),
            "verdict": ex.verdict, "detail": ex.detail, "exec_s": ex.duration_s,
            "latency_s": round(answer.latency_s, 4), "error": answer.error,
            "prompt_tokens": stats.get("promptTokens"),
            "generated_tokens": stats.get("generatedTokens"),
            "decode_s": stats.get("decodeS"), "source": stats.get("source"),
            "rerank_s": stats.get("rerankS"),
        })
    return rows


def ranked_figures(task_rows: Sequence[Sequence[dict[str, Any]]]) -> dict[str, Any]:
    """With several candidates: pass@1 of the server's first suggestion (``rank@1``), of the
    first decoded candidate (``first@1``: greedy at temperature 0), of a random sampled one
    (``sample@1``, the expected value), and of the best of all (``pass@n``, the ceiling)."""
    if not task_rows or max(len(rs) for rs in task_rows) < 2:
        return {}
    rank1 = [any(r["passed"] for r in rs if r.get("rank") == 0) for rs in task_rows]
    first = [bool(rs[0]["passed"]) for rs in task_rows]
    sampled = [sum(bool(r["passed"]) for r in rs[1:]) / (len(rs) - 1) for rs in task_rows
               if len(rs) > 1]
    best = [any(r["passed"] for r in rs) for rs in task_rows]
    rerank = [r["rerank_s"] for rs in task_rows for r in rs[:1] if r.get("rerank_s") is not None]
    return {"rank@1": sum(rank1) / len(rank1), "first@1": sum(first) / len(first),
            "sample@1": sum(sampled) / len(sampled) if sampled else None,
            "pass@n": sum(best) / len(best),
            "rerank_p50_s": percentile(rerank, 50), "rerank_p95_s": percentile(rerank, 95)}


def summarize(rows: Sequence[dict[str, Any]], tasks: Sequence[Task], opts: RunOptions,
              wall_s: float = 0.0, resumed: int = 0) -> dict[str, Any]:
    """pass@k (unbiased), syntax-error rate, latency and throughput of the finished tasks,
    overall and per task kind."""
    by_task: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_task.setdefault(r["task_id"], []).append(r)
    kinds = sorted({t.kind.value for t in tasks})

    def figures(task_rows: list[list[dict[str, Any]]]) -> dict[str, Any]:
        counts = [(len(rs), sum(bool(r["passed"]) for r in rs)) for rs in task_rows]
        flat = [r for rs in task_rows for r in rs]
        latencies = [rs[0]["latency_s"] for rs in task_rows]
        gen = [rs[0]["generated_tokens"] for rs in task_rows
               if rs[0].get("generated_tokens") is not None]
        dec = [rs[0]["decode_s"] for rs in task_rows if rs[0].get("decode_s")]
        out: dict[str, Any] = {"tasks": len(task_rows), "samples": len(flat)}
        for k in opts.ks:
            out[f"pass@{k}"] = mean_pass_at_k(counts, k)
        out["syntax_error_rate"] = (sum(not r["parses"] for r in flat) / len(flat)) if flat \
            else None
        out["empty_rate"] = (sum(not r["completion"].strip() for r in flat) / len(flat)) if flat \
            else None
        out["errors"] = sum(1 for rs in task_rows if rs[0].get("error"))
        out["latency_p50_s"] = percentile(latencies, 50)
        out["latency_p95_s"] = percentile(latencies, 95)
        out["generated_tokens"] = sum(gen) if gen else None
        out["tokens_per_s"] = (sum(gen) / sum(dec)) if gen and dec and sum(dec) > 0 else None
        out.update(ranked_figures(task_rows))
        return out

    task_rows = [sorted(by_task[t.task_id], key=lambda r: r["candidate"])
                 for t in tasks if t.task_id in by_task]
    summary = {"suite": opts.suite, "n": opts.n, "method": opts.method,
               "settings": opts.settings, "server": opts.server,
               "concurrency": opts.concurrency, "complete": len(task_rows) == len(tasks),
               "wall_s": round(wall_s, 1), "resumed_tasks": resumed,
               "machine": machine(), **figures(task_rows)}
    if len(kinds) > 1:
        summary["by_kind"] = {k: figures([rs for rs in task_rows if rs[0]["kind"] == k])
                              for k in kinds}
    return summary


def machine() -> str:
    import platform
    return f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def load_summary(path: Path) -> dict[str, Any]:
    """A summary.json, or the one in a run folder."""
    if path.is_dir():
        path = path / "summary.json"
    return dict(json.loads(path.read_text(encoding="utf-8")))



# --- the repo suite -----------------------------------------------------------------------------
# A project at a time: the server is started with the project's copy as its workspace (rootUri,
# one workspace folder), every module opened as an editor tab (OpenDocs.ALL) or none, and each
# hole asked in turn. One request at a time: a hole is written into the workspace's file on
# disk while it is asked, and the latency figures stay those of a lone user.


async def run_repo_tasks(tasks: Sequence[RepoTask], opts: RunOptions, out: Path,
                         label: str = "lsp-bench") -> RunResult:
    repo = opts.repo or RepoOptions()
    results_file, rows, done = _prepare(out, opts.fingerprint(tasks), 1)
    write_tasks(tasks, out / "tasks.jsonl")  # the holes as run, for reading results
    todo = [t for t in tasks if t.task_id not in done]
    tests = ProjectTests(repos_dir(), opts.isolation, repo.test_timeout_s) if repo.tests \
        else None
    if todo and tests is not None and (why := tests.refusal()):
        raise BenchError(f"cannot run the projects' tests safely here: {why} (or pass "
                         "--sandbox none to run them with rlimits only, or --no-tests)")
    progress = Progress(len(tasks), len(tasks) - len(todo), label)
    wall, messages = 0.0, list[str]()
    for project in dict.fromkeys(t.project for t in todo):
        group = [t for t in todo if t.project == project]
        w, m = await _drive_project(group, opts, repo, results_file, tests, rows, progress)
        wall, messages = wall + w, messages + m
    summary = summarize_repo(rows, tasks, opts, wall_s=wall, resumed=len(done))
    summary["serverMessages"] = messages
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return RunResult(rows, summary, out, messages)


async def _drive_project(tasks: Sequence[RepoTask], opts: RunOptions, repo: RepoOptions,
                         results_file: Path, tests: ProjectTests | None,
                         rows: list[dict[str, Any]], progress: Progress
                         ) -> tuple[float, list[str]]:
    """One server session on a copy of one project (the cached tree is never written)."""
    project = PROJECTS[tasks[0].project]
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="repo-tests")
    parent = Path(tempfile.mkdtemp(prefix="lsp-bench-ws-"))
    try:
        workspace = parent / Path(tasks[0].root).name
        shutil.copytree(tasks[0].root, workspace)
        log = results_file.parent / f"server-{project.key}.log"
        async with _session(opts, log, root=workspace) as client:
            tabs = set()
            if repo.open_docs is OpenDocs.ALL:
                for rel in module_files(project, workspace):
                    client.open((workspace / rel).as_uri(),
                                (workspace / rel).read_text(encoding="utf-8"))
                    tabs.add(rel.as_posix())
            await wait_indexed(client)
            t0 = time.perf_counter()
            for task in tasks:
                if repo.edit_definition and task.symbols:
                    edit_definition(client, workspace, task.symbols[0], tabs)
                answer = await ask_hole(client, workspace, task, opts, task.file in tabs)
                row = await loop.run_in_executor(pool, score_repo_task, task, answer, tests)
                with results_file.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")
                rows.append(row)
                progress.update(bool(row["identifier_em"]))
            wall = time.perf_counter() - t0
            messages = [m for _, m in client.log.messages]
    finally:
        pool.shutdown(wait=True)
        shutil.rmtree(parent, ignore_errors=True)
    return wall, messages


def edit_definition(client: Any, workspace: Path, symbol: Any, tabs: set[str]) -> None:
    """RepoOptions.edit_definition: the symbol's defining line edited in its tab (opened as a
    tab first if it was not one; it stays open, as in an editor)."""
    uri = (workspace / symbol.file).as_uri()
    if symbol.file not in tabs:
        client.open(uri, (workspace / symbol.file).read_text(encoding="utf-8"))
        tabs.add(symbol.file)
    client.touch(uri, symbol.line - 1)


async def ask_hole(client: Any, workspace: Path, task: RepoTask, opts: RunOptions,
                   tab_open: bool) -> Answer:
    """Ask at the hole as an editor would while the line is being typed: the file lacks the
    rest of the line in the editor and on disk (the change reported by
    workspace/didChangeWatchedFiles when the server registered file watchers), so a server
    that reads the workspace does not find the answer there. NOTE: a server that indexed the
    workspace at start and neither re-reads changed files nor lets an open document supersede
    its index would still hold the original line. The file and its tab are restored
    afterwards."""
    path = workspace / task.file
    uri = path.as_uri()
    original = path.read_text(encoding="utf-8")
    hole = task.hole_text(original)
    if tab_open:
        client.close(uri)
    path.write_text(hole, encoding="utf-8")
    client.files_changed([uri])
    client.open(uri, hole)
    try:
        answer: Answer = await client.suggest(uri, task.line, task.character, opts.method,
                                              opts.timeout_s)
        status = await client.status(uri)
        if status is not None:
            # (and which chunks the prompt's repository context held, where the server says)
            answer.stats = {**(status.get("lastCompletion") or {}), "contextChunks":
                            (status.get("repoContext") or {}).get("lastChunks")}
    finally:
        client.close(uri)
        path.write_text(original, encoding="utf-8")
        client.files_changed([uri])
        if tab_open:
            client.open(uri, original)
    return answer


def predicted_line(task: RepoTask, answer: Answer, original: str) -> tuple[str, int]:
    """The first line of the first suggestion as typed at the cursor, and how many characters
    before the cursor it replaces (only the line's whitespace can be: an item whose range
    starts at the line's start brings its own indentation, which is then dropped)."""
    text = answer.candidates[0] if answer.candidates else ""
    first = text.split("\n", 1)[0].rstrip("\r")
    prefix = task.line_prefix(original)
    cut = min(answer.cut(0), len(prefix)) if answer.candidates and not prefix.strip() else 0
    return (first.lstrip() if cut else first), cut


def score_repo_task(task: RepoTask, answer: Answer, tests: ProjectTests | None
                    ) -> dict[str, Any]:
    """One result row: CrossCodeEval's figures of the first line, whether it starts with the
    hole's symbol, and (``tests``) whether the project's tests pass with it."""
    original = (Path(task.root) / task.file).read_text(encoding="utf-8")
    predicted, cut = predicted_line(task, answer, original)
    scores = score_line(predicted, task.reference)
    ids = identifiers(predicted)
    stats = answer.stats or {}
    row: dict[str, Any] = {
        "task_id": task.task_id, "kind": "repo", "project": task.project, "candidate": 0,
        "completion": answer.candidates[0] if answer.candidates else "",
        "prediction": predicted, "reference": task.reference, "cut": cut,
        "symbol": task.symbols[0].qualname, "symbol_kind": task.symbols[0].kind.value,
        "exact_match": scores.exact_match, "identifier_em": scores.identifier_em,
        "identifier_f1": round(scores.identifier_f1, 4),
        "edit_similarity": round(scores.edit_similarity, 4),
        "symbol_match": ids[:1] == [task.symbols[0].name],
        "passed": None, "verdict": None, "detail": "", "exec_s": None,
        "latency_s": round(answer.latency_s, 4), "error": answer.error,
        "prompt_tokens": stats.get("promptTokens"),
        "generated_tokens": stats.get("generatedTokens"),
        "decode_s": stats.get("decodeS"), "source": stats.get("source"),
        "context_chunks": stats.get("contextChunks"),
        # Retrieval's recall, roughly: the defining file of the hole's symbol is in the context.
        "definition_file_in_context": None if stats.get("contextChunks") is None else any(
            c.rsplit(":", 1)[0] == task.symbols[0].file for c in stats["contextChunks"]),
    }
    if tests is not None and task.test_files:
        row.update(_tested(task, tests, original, predicted, cut))
    return row


def _tested(task: RepoTask, tests: ProjectTests, original: str, predicted: str, cut: int
            ) -> dict[str, Any]:
    """passed: None where the hole's tests cannot judge it (they fail with the original line,
    or pass with a broken one)."""
    base = tests.baseline(task)
    out: dict[str, Any] = {"baseline": base.original.verdict,
                           "baseline_broken": base.broken.verdict}
    if not base.usable:
        return out
    same = predicted.rstrip() == task.reference.rstrip()
    run: RunOutcome = base.original if same else tests.run(task, task.filled(original, predicted,
                                                                            cut))
    return out | {"passed": run.passed, "verdict": run.verdict, "detail": run.detail,
                  "exec_s": run.duration_s}


REPO_METRICS = ("exact_match", "identifier_em", "identifier_f1", "edit_similarity",
                "symbol_match")


def repo_figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Means of the line figures, pass rate over the holes the tests can judge, latency."""
    out: dict[str, Any] = {"tasks": len(rows)}
    for key in REPO_METRICS:
        out[key] = mean([r[key] for r in rows])
    tested = [r for r in rows if r.get("passed") is not None]
    out["tested"] = len(tested)
    out["pass_rate"] = mean([bool(r["passed"]) for r in tested])
    out["empty_rate"] = mean([not r["prediction"].strip() for r in rows])
    known = [r["definition_file_in_context"] for r in rows
             if r.get("definition_file_in_context") is not None]
    out["definition_in_context"] = mean(known) if known else None
    out["errors"] = sum(1 for r in rows if r.get("error"))
    latencies = [r["latency_s"] for r in rows]
    out["latency_p50_s"] = percentile(latencies, 50)
    out["latency_p95_s"] = percentile(latencies, 95)
    gen = [r["generated_tokens"] for r in rows if r.get("generated_tokens") is not None]
    dec = [r["decode_s"] for r in rows if r.get("decode_s")]
    out["generated_tokens"] = sum(gen) if gen else None
    out["tokens_per_s"] = (sum(gen) / sum(dec)) if gen and dec and sum(dec) > 0 else None
    return out


def summarize_repo(rows: Sequence[dict[str, Any]], tasks: Sequence[RepoTask], opts: RunOptions,
                   wall_s: float = 0.0, resumed: int = 0) -> dict[str, Any]:
    ids = {t.task_id for t in tasks}
    kept = [r for r in rows if r["task_id"] in ids]
    projects = sorted({t.project for t in tasks})
    summary: dict[str, Any] = {
        "suite": opts.suite, "n": 1, "method": opts.method, "settings": opts.settings,
        "server": opts.server, "repo": (opts.repo or RepoOptions()).to_json(),
        "complete": len({r["task_id"] for r in kept}) == len(tasks),
        "wall_s": round(wall_s, 1), "resumed_tasks": resumed, "machine": machine(),
        **repo_figures(kept)}
    if len(projects) > 1:
        summary["by_project"] = {p: repo_figures([r for r in kept if r["project"] == p])
                                 for p in projects}
    return summary
