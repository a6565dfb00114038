"""``lsp-bench``: pass@k, syntax-error rate and latency of a completion server, over real LSP.

    lsp-bench humaneval --limit 20 --out runs/he
    lsp-bench humaneval-infill --infill-kinds single-line --per-problem 1 --out runs/sl
    lsp-bench --tasks my_tasks.jsonl --n 10 --temperature 0.8 --k 1,5,10
    lsp-bench humaneval --variant fim:suffixTokens=64 --variant nofim:suffixTokens=0
    lsp-bench humaneval-infill --layout enter --peer llama-server --out runs/peer
    lsp-bench --compare runs/a runs/b
    lsp-bench repo --out runs/repo                      # holes using other modules' symbols
    lsp-bench repo --projects toolz,packaging --no-tests --variant off: --variant ws:repoContext=workspace
    lsp-bench repo --build-only                         # fetch the projects, write the holes
    lsp-bench humaneval -- my-other-server --stdio      # any server command after --
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

from lspbench import repo, report
from lspbench.client import Method
from lspbench.run import (
    BenchError,
    RunOptions,
    load_summary,
    read_results,
    run_repo_tasks,
    run_tasks,
)
from lspbench.tasks import (
    INFILL_KINDS,
    Kind,
    Layout,
    Task,
    TaskFileError,
    derive_infill,
    load_humaneval,
    load_tasks,
    sample_per_problem,
)
from testgen.sandbox import Isolation

SUITES = ("humaneval", "humaneval-infill", "repo")
DEFAULT_SERVER = [sys.executable, "-m", "server", "--log-level", "warning"]


def parse_value(text: str) -> Any:
    """A --set value: JSON when it parses (numbers, true, null, objects), else the string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_sets(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BenchError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME:key=value,key=value`` (``NAME:`` alone: the settings as they are)."""
    name, sep, rest = text.partition(":")
    if not sep or not name.strip() or "/" in name:
        raise BenchError(f"--variant expects NAME:KEY=VALUE[,KEY=VALUE...], got {text!r}")
    return name.strip(), parse_sets([p for p in rest.split(",") if p.strip()])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="lsp-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("suite", nargs="?", choices=SUITES, help="a built-in suite (or --tasks)")
    p.add_argument("--tasks", type=Path, help="a JSONL task file (HumanEval or infill schema)")
    p.add_argument("--infill-kinds", default=",".join(k.value for k in INFILL_KINDS),
                   help="humaneval-infill holes to use (default: all three kinds)")
    p.add_argument("--layout", choices=[lay.value for lay in Layout], default=Layout.LINE.value,
                   help="where the cursor of a line hole stands: line (after the hole's own "
                        "indentation, default), enter (after Enter and auto-indent), column0")
    p.add_argument("--per-problem", type=int, default=0, metavar="K",
                   help="at most K holes per problem and kind, picked by a fixed seed (0: all)")
    p.add_argument("--limit", type=int, default=0, help="only the first N tasks (0: all)")
    p.add_argument("--n", type=int, default=None,
                   help="candidates per task, all scored (pass@k, rank@1); default: the "
                        "server's first suggestion with the server's own candidate settings")
    p.add_argument("--k", default="1,5,10", help="pass@k values (those above --n are skipped)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="of the first candidate; 0 = greedy (default)")
    p.add_argument("--sample-temperature", type=float, default=0.6,
                   help="of the other candidates when --n > 1 (default 0.6, the server's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--concurrency", type=int, default=1,
                   help="tasks in flight at once (the server batches them)")
    p.add_argument("--timeout", type=float, default=120.0,
                   help="seconds per suggestion request; then it is cancelled (default 120)")
    p.add_argument("--exec-timeout", type=float, default=15.0,
                   help="seconds per test program in the sandbox (default 15)")
    p.add_argument("--method", choices=(Method.INLINE, Method.COMPLETION), default=Method.INLINE)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a server setting (initializationOptions), e.g. --set suffixTokens=0")
    p.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,...",
                   help="run twice with two settings variants and compare them")
    p.add_argument("--out", type=Path, help="results folder (default lsp-bench-out/<suite>); "
                   "re-running with the same folder resumes")
    p.add_argument("--sandbox", choices=[i.value for i in Isolation], default="auto",
                   help="isolation of the tests: auto/bwrap (bubblewrap) or none (rlimits only)")
    p.add_argument("--ignore-server-warnings", action="store_true",
                   help="run even if the server warns about the settings")
    p.add_argument("--peer", choices=["llama-server"],
                   help="also run llama.cpp's own server on the same tasks (its /infill endpoint "
                        "asked as llama.vim asks, on pingti's default GGUF) and compare; it is "
                        "found (--peer-binary, $PINGTI_LLAMA_SERVER, PATH, the cache) or built "
                        "from the llama-cpp-python sdist (about 10 minutes, once)")
    p.add_argument("--peer-blank-line", choices=["indent", "line-start"], default="indent",
                   help="how the peer is asked on a whitespace-only line: its whitespace as the "
                        "prompt and n_indent (default), or from the line's start as llama.vim")
    p.add_argument("--peer-binary", type=Path, help="the llama-server executable to use")
    p.add_argument("--peer-model", type=Path,
                   help="the GGUF the peer serves (default: pingti's default model)")
    g = p.add_argument_group("repo suite (lsp-bench repo)")
    g.add_argument("--projects", default=",".join(repo.PROJECTS),
                   help=f"projects to cut holes from (default: all: {', '.join(repo.PROJECTS)})")
    g.add_argument("--open", choices=[o.value for o in repo.OpenDocs],
                   default=repo.OpenDocs.ALL.value,
                   help="open every module of the project as an editor tab (all, default) or "
                        "only the hole's file (hole)")
    g.add_argument("--edit-definition", action="store_true",
                   help="before each hole, edit the line defining its symbol (the text stays "
                        "as it was), as a user who just worked on it: measures recently edited "
                        "places as repository context")
    g.add_argument("--no-tests", action="store_true",
                   help="skip the projects' tests (no pass rate; much faster)")
    g.add_argument("--test-timeout", type=float, default=120.0,
                   help="seconds per run of a hole's tests in the sandbox (default 120)")
    g.add_argument("--per-file", type=int, default=repo.PER_FILE,
                   help=f"at most this many holes per module (default {repo.PER_FILE}; 0: all)")
    g.add_argument("--per-project", type=int, default=repo.PER_PROJECT,
                   help=f"at most this many holes per project (default {repo.PER_PROJECT}; "
                        "0: all)")
    g.add_argument("--build-only", action="store_true",
                   help="fetch the projects, cut the holes, write tasks.jsonl to --out; no run")
    p.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                   help="compare two finished runs (folders or summary.json files)")
    p.add_argument("--chart", type=Path, help="where --compare/--variant draw the PNG chart")
    return p


def select_tasks(args: argparse.Namespace) -> tuple[str, list[Task]]:
    if args.tasks is not None:
        suite, tasks = args.tasks.name, load_tasks(args.tasks)
    elif args.suite == "humaneval":
        suite, tasks = "humaneval", load_humaneval()
    elif args.suite == "humaneval-infill":
        try:
            kinds = [Kind(k.strip()) for k in args.infill_kinds.split(",") if k.strip()]
        except ValueError:
            raise BenchError(f"--infill-kinds: choose from "
                             f"{', '.join(k.value for k in INFILL_KINDS)}") from None
        if not kinds or any(k not in INFILL_KINDS for k in kinds):
            raise BenchError("--infill-kinds: choose from "
                             f"{', '.join(k.value for k in INFILL_KINDS)}")
        suite = "humaneval-infill" + ("" if len(kinds) == 3 else
                                      "-" + "+".join(k.value for k in kinds))
        layout = Layout(args.layout)
        tasks = derive_infill(load_humaneval(), kinds, layout)
        if layout is not Layout.LINE:
            suite += f"-{layout.value}"
    else:
        raise BenchError("name a suite (humaneval, humaneval-infill, repo), --tasks FILE or "
                         "--compare")
    if args.per_problem:
        tasks = sample_per_problem(tasks, args.per_problem)
        suite += f"-per{args.per_problem}"
    if args.limit:
        tasks = tasks[:args.limit]
    return suite, tasks


def _ks(text: str, n: int) -> tuple[int, ...]:
    try:
        ks = sorted({int(k) for k in text.split(",") if k.strip()})
    except ValueError:
        raise BenchError(f"--k expects numbers like 1,5,10, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise BenchError("--k values must be at least 1")
    kept = tuple(k for k in ks if k <= n)
    return kept or (1,)


def _rows_of(path: Path) -> list[dict[str, Any]]:
    folder = path if path.is_dir() else path.parent
    rows, _ = read_results(folder / "results.jsonl", n=load_summary(path).get("n", 1))
    return rows


def _chart_path(args: argparse.Namespace, base: Path) -> Path:
    if args.chart is not None:
        return args.chart
    path, i = base / "compare.png", 1
    while path.exists():  # never overwrite a file the user did not name
        path, i = base / f"compare-{i}.png", i + 1
    return path


def do_compare(a: Path, b: Path, names: tuple[str, str], args: argparse.Namespace,
               chart_dir: Path) -> int:
    sa, sb = load_summary(a), load_summary(b)
    ks = tuple(sorted({int(k[5:]) for k in {*sa, *sb} if k.startswith("pass@")}))
    if report.is_repo(sa) != report.is_repo(sb):
        raise BenchError("--compare: one run is of the repo suite, the other is not")
    if report.is_repo(sa):
        text, paired = report.compare_repo(sa, sb, _rows_of(a), _rows_of(b), names)
    else:
        text, paired = report.compare(sa, sb, _rows_of(a), _rows_of(b), names, ks)
    print(text)
    chart = report.chart(sa, sb, names, ks, _chart_path(args, chart_dir))
    print(f"chart: {chart}")
    (chart_dir / "compare.json").write_text(json.dumps(
        {"a": str(a), "b": str(b), "names": names, **paired}, indent=1) + "\n", encoding="utf-8")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    server = DEFAULT_SERVER
    if "--" in argv:
        i = argv.index("--")
        argv, server = argv[:i], argv[i + 1:]
        if not server:
            print("lsp-bench: no server command after --", file=sys.stderr)
            return 2
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(_main(args, server))
    except (BenchError, TaskFileError) as exc:
        print(f"lsp-bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("lsp-bench: interrupted; finished tasks are kept, run again to resume",
              file=sys.stderr)
        return 130


async def _main(args: argparse.Namespace, server: list[str]) -> int:
    if args.compare:
        a, b = args.compare
        for p in (a, b):
            if not (p / "summary.json" if p.is_dir() else p).exists():
                raise BenchError(f"--compare: no summary.json at {p}")
        out = args.out or Path(".")
        out.mkdir(parents=True, exist_ok=True)
        return do_compare(a, b, (_name(a), _name(b)), args, out)
    asked_n = args.n is not None
    args.n = args.n if asked_n else 1
    if args.n < 1 or args.concurrency < 1 or args.timeout <= 0 or args.exec_timeout <= 0:
        raise BenchError("--n and --concurrency must be at least 1, the timeouts positive")
    if args.limit < 0 or args.per_problem < 0:
        raise BenchError("--limit and --per-problem cannot be negative (0 means all)")
    if args.suite == "repo":
        return await _main_repo(args, server, asked_n)
    suite, tasks = select_tasks(args)
    ks = _ks(args.k, args.n)
    base = _base_settings(args, asked_n)
    variants = _variants(args)
    out = args.out or Path("lsp-bench-out") / suite
    runs = _runs(base, variants, out)
    peer_cmd: list[str] | None = None
    if args.peer:
        if variants or args.n != 1 or args.method != Method.INLINE:
            raise BenchError("--peer compares pingti's first inline suggestion with the "
                             "peer's: no --variant, --n or --method with it")
        peer_cmd = peer_command(args)
        runs = [("pingti", base, out / "pingti"),
                (args.peer, {"blankLine": args.peer_blank_line}, out / args.peer)]
    summaries = []
    for name, settings, folder in runs:
        is_peer = peer_cmd is not None and name == args.peer
        opts = RunOptions(server=peer_cmd if is_peer and peer_cmd else server,
                          settings=settings, n=args.n, ks=ks, method=args.method,
                          concurrency=args.concurrency, timeout_s=args.timeout,
                          exec_timeout_s=args.exec_timeout, isolation=Isolation(args.sandbox),
                          strict_settings=not args.ignore_server_warnings, suite=suite,
                          peer=is_peer)
        label = f"{suite}{'/' + name if name else ''}"
        print(f"lsp-bench: {len(tasks)} tasks of {label}, n={args.n}, results in {folder}",
              file=sys.stderr)
        result = await run_tasks(tasks, opts, folder, label)
        summaries.append(result.summary)
        print(f"\n## {label}\n")
        print(report.markdown(result.summary, ks))
        print()
        print(report.machine_lines(result.summary, ks))
    if variants or peer_cmd:
        a, b = (variants[0][0], variants[1][0]) if variants else ("pingti", args.peer)
        print()
        do_compare(out / a, out / b, (a, b), args, out)
    return 0


def _base_settings(args: argparse.Namespace, asked_n: bool) -> dict[str, Any]:
    # Candidates are asked for explicitly (trigger kind Invoked), so --n of them are decoded.
    return {"temperature": args.temperature, "seed": args.seed,
            **({"candidates": args.n} if asked_n else {}),
            **({"sampleTemperature": args.sample_temperature} if args.n > 1 else {}),
            **parse_sets(args.set)}


def _variants(args: argparse.Namespace) -> list[tuple[str, dict[str, Any]]]:
    variants = [parse_variant(v) for v in args.variant]
    if len(variants) not in (0, 2) or len({v[0] for v in variants}) != len(variants):
        raise BenchError("--variant: give exactly two, with different names")
    return variants


def _runs(base: dict[str, Any], variants: list[tuple[str, dict[str, Any]]], out: Path
          ) -> list[tuple[str, dict[str, Any], Path]]:
    """(name, settings, folder) of each run: one, or one per variant in its own subfolder."""
    return [("", base, out)] if not variants else [
        (name, {**base, **extra}, out / name) for name, extra in variants]


async def _main_repo(args: argparse.Namespace, server: list[str], asked_n: bool) -> int:
    """The repo suite: build (fetch, cut holes), then run each variant and compare."""
    if args.n != 1 or args.peer or args.concurrency != 1 or args.per_problem:
        raise BenchError("repo: one suggestion per hole, asked one at a time: no --n, --peer, "
                         "--concurrency or --per-problem")
    if args.per_file < 0 or args.per_project < 0 or args.test_timeout <= 0:
        raise BenchError("--per-file and --per-project cannot be negative, --test-timeout "
                         "must be positive")
    keys = [k.strip() for k in args.projects.split(",") if k.strip()]
    try:
        tasks = repo.build(keys, per_file=args.per_file, per_project=args.per_project)
    except repo.RepoError as exc:
        raise BenchError(str(exc)) from None
    default_caps = (args.per_file, args.per_project) == (repo.PER_FILE, repo.PER_PROJECT)
    suite = "repo" + ("" if keys == list(repo.PROJECTS) else "-" + "+".join(keys)) + \
        ("" if default_caps else f"-f{args.per_file}p{args.per_project}")
    out = args.out or Path("lsp-bench-out") / suite
    if args.build_only:
        repo.write_tasks(tasks, out / "tasks.jsonl")
        for key in keys:
            mine = [t for t in tasks if t.project == key]
            print(f"{key}=={repo.PROJECTS[key].sdist.version}: {len(mine)} holes "
                  f"({sum(bool(t.test_files) for t in mine)} with tests)")
        print(f"{len(tasks)} holes in {out / 'tasks.jsonl'}")
        return 0
    if args.limit:
        tasks = tasks[:args.limit]
    variants = _variants(args)
    options = repo.RepoOptions(repo.OpenDocs(args.open), not args.no_tests, args.test_timeout,
                               args.edit_definition)
    for name, settings, folder in _runs(_base_settings(args, asked_n), variants, out):
        opts = RunOptions(server=server, settings=settings, n=1, ks=(), method=args.method,
                          timeout_s=args.timeout, exec_timeout_s=args.test_timeout,
                          isolation=Isolation(args.sandbox),
                          strict_settings=not args.ignore_server_warnings, suite=suite,
                          repo=options)
        label = f"{suite}{'/' + name if name else ''}"
        print(f"lsp-bench: {len(tasks)} holes of {label}, results in {folder}", file=sys.stderr)
        result = await run_repo_tasks(tasks, opts, folder, label)
        print(f"\n## {label}\n")
        print(report.markdown(result.summary, ()))
        print()
        print(report.machine_lines(result.summary, ()))
    if variants:
        print()
        do_compare(out / variants[0][0], out / variants[1][0],
                   (variants[0][0], variants[1][0]), args, out)
    return 0


def peer_command(args: argparse.Namespace) -> list[str]:
    """The peer's command line: its binary found or built, pingti's default GGUF."""
    from lspbench.peer import PeerError, build_llama_server, find_llama_server, server_command
    from server.model_assets import ModelError, assemble_default_gguf, cache_root

    try:
        binary = find_llama_server(args.peer_binary) or build_llama_server()
        model = args.peer_model or assemble_default_gguf(cache_root())
    except (PeerError, ModelError) as exc:
        raise BenchError(f"--peer {args.peer}: {exc}") from None
    if not Path(model).is_file():
        raise BenchError(f"--peer-model: no file at {model}")
    return server_command(binary, Path(model), os.cpu_count() or 2)


def _name(path: Path) -> str:
    folder = path if path.is_dir() else path.parent
    return folder.resolve().name or "run"


if __name__ == "__main__":
    raise SystemExit(main())
