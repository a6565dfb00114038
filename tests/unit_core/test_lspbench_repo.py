"""lsp-bench's repo suite: holes cut from a small synthetic multi-module project (cross-module
uses found, same-module uses not, deterministic), CrossCodeEval's line figures, task files, the
project's tests in the sandbox, and the LSP session an editor would open (a small echo server
reports what it was told: rootUri, workspace folders, open documents, the hole's text)."""

from __future__ import annotations

import asyncio
import json
import sys
import textwrap
from pathlib import Path

import pytest

from lspbench import repo, report
from lspbench.client import Answer, initialize_params
from lspbench.metrics import (
    edit_similarity,
    identifier_f1,
    identifiers,
    score_line,
    sign_test,
    strip_comment,
)
from lspbench.repo import (
    OpenDocs,
    Project,
    ProjectTests,
    RepoOptions,
    RepoTask,
    Sdist,
    SymbolKind,
)
from lspbench.run import RunOptions, repo_figures, run_repo_tasks, score_repo_task
from testgen.sandbox import Isolation

CORE = '''\
"""Definitions the other modules use."""

LIMIT = 10
N = 3


class ParseError(ValueError):
    pass


def helper(x, y):
    return x + y


class Thing:
    kind = "thing"

    def __init__(self, name):
        self.name = name

    def run(self, times):
        return [self.name] * times


def local_user(x):
    return helper(x, LIMIT)  # same module: not a hole
'''

UTIL = '''\
from . import core
from .core import LIMIT, N, ParseError, Thing
from .core import helper as add


def check(value):
    if value > LIMIT:
        raise ParseError("too big: %r" % value)
    return add(value, 1)  # the sum


def make(name):
    thing = Thing(name)
    return thing.run(2)


def via_module(x):
    return core.helper(x, x)


def typed(t: Thing):
    return t.run(3) + [t.kind]


def shadowed(LIMIT):
    return LIMIT + 100


def multi(x):
    return add(
        x, 2)


def short():
    return N


def discard(x):
    add(x, 0)
    return x


DEFAULT = LIMIT * 2


class Special(Thing):
    def twice(self):
        return self.run(2) + [self.name]
'''

INIT = "from .core import helper\n"

USER = '''\
from pkg import helper


def user(x):
    return helper(x, 1) * 2
'''

TEST = '''\
from pkg.util import check, make


def test_check():
    assert check(3) == 4


def test_make():
    assert make("a") == ["a", "a"]
'''

PROJECT = Project("synth", Sdist("synth", "0.0", "synth-0.0.tar.gz", "0" * 64), "pkg")


def write_project(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "tests").mkdir()
    for name, text in {"pkg/__init__.py": INIT, "pkg/core.py": CORE, "pkg/util.py": UTIL,
                       "pkg/user.py": USER, "pkg/test_inner.py": USER,
                       "tests/test_util.py": TEST}.items():
        (root / name).write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    return write_project(tmp_path / "synth-0.0")


def holes(tree: Path) -> list[RepoTask]:
    modules = repo.load_modules(PROJECT, tree)
    return repo.find_holes(PROJECT, tree, modules, repo.tests_reaching(PROJECT, tree, modules))


def by_line(tasks: list[RepoTask]) -> dict[tuple[str, str], RepoTask]:
    """(file, text of the line) → task."""
    out = {}
    for t in tasks:
        text = (Path(t.root) / t.file).read_text().split("\n")[t.line]
        out[t.file, text.strip()] = t
    return out


# --- holes ------------------------------------------------------------------------------------


def test_cross_module_uses_become_holes(tree: Path) -> None:
    found = by_line(holes(tree))
    util = "pkg/util.py"
    assert found[util, "if value > LIMIT:"].reference == "LIMIT:"
    raise_hole = found[util, 'raise ParseError("too big: %r" % value)']
    assert raise_hole.reference == 'ParseError("too big: %r" % value)'
    assert raise_hole.symbols[0].kind is SymbolKind.EXCEPTION
    assert raise_hole.symbols[0].file == "pkg/core.py"
    # Renamed on import: the hole names it as the module does; the comment is not expected.
    renamed = found[util, "return add(value, 1)  # the sum"]
    assert renamed.reference == "add(value, 1)"
    assert renamed.symbols[0].name == "add" and renamed.symbols[0].qualname == "pkg.core.helper"
    assert found[util, "thing = Thing(name)"].reference == "Thing(name)"
    # A method of an instance whose class is known (assigned from Class(...), annotated, self).
    run = found[util, "return thing.run(2)"]
    assert run.reference == "run(2)" and run.symbols[0].kind is SymbolKind.METHOD
    assert run.symbols[0].qualname == "pkg.core.Thing.run"
    assert found[util, "return core.helper(x, x)"].reference == "helper(x, x)"
    typed = found[util, "return t.run(3) + [t.kind]"]
    assert [s.qualname for s in typed.symbols] == ["pkg.core.Thing.run", "pkg.core.Thing.kind"]
    inherited = found[util, "return self.run(2) + [self.name]"]
    assert inherited.symbols[0].qualname == "pkg.core.Thing.run"
    assert inherited.symbols[1].kind is SymbolKind.ATTRIBUTE  # set on self in __init__
    # Through a re-export in __init__: defined in core.
    user = found["pkg/user.py", "return helper(x, 1) * 2"]
    assert user.symbols[0].qualname == "pkg.core.helper" and user.module == "pkg.user"


def test_what_is_not_a_hole(tree: Path) -> None:
    found = by_line(holes(tree))
    files = {f for f, _ in found}
    assert "pkg/core.py" not in files  # its uses of LIMIT and helper are its own
    assert "pkg/test_inner.py" not in files  # test files are never holes
    lines = {line for _, line in found}
    assert "return LIMIT + 100" not in lines  # a parameter shadows the import
    assert "return add(" not in lines  # the statement goes on: no whole line to compare
    assert "return N" not in lines  # the rest is shorter than MIN_REST
    assert not any(line.startswith(("DEFAULT", "from")) for line in lines)  # not in a function


def test_hole_text_cuts_the_line_and_fills_back(tree: Path) -> None:
    for t in holes(tree):
        original = (tree / t.file).read_text()
        hole = t.hole_text(original)
        line = original.split("\n")[t.line]
        assert hole.split("\n")[t.line] == line[:len(t.line_prefix(original))]
        assert hole.split("\n")[t.line + 1:] == original.split("\n")[t.line + 1:]
        assert original[t.offset:].startswith(t.reference)
        assert t.reference.startswith(t.symbols[0].name)
        # The reference typed at the cursor gives back the line (less a trailing comment).
        filled = t.filled(original, t.reference)
        assert filled.split("\n")[t.line] == line.split("  #")[0]


def test_holes_are_deterministic_and_sampled_by_seed(tree: Path) -> None:
    first, again = holes(tree), holes(tree)
    assert [t.to_json() for t in first] == [t.to_json() for t in again]
    a = repo.sample(first, per_file=3, per_project=4, seed=0)
    assert [t.task_id for t in a] == [t.task_id for t in repo.sample(again, 3, 4, seed=0)]
    assert len(a) == 4 and all(sum(t.file == f for t in a) <= 3 for f in {t.file for t in a})
    order = [t.task_id for t in first]
    assert [order.index(t.task_id) for t in a] == sorted(order.index(t.task_id) for t in a)
    seeds = {tuple(t.task_id for t in repo.sample(first, 3, 4, seed=s)) for s in range(8)}
    assert len(seeds) > 1


def test_interleave_puts_every_project_first() -> None:
    t = [RepoTask(f"{p}/{i}", p, "1", "/r", "f.py", "m", 0, 0, 0, "abcd", ())
         for p in ("b", "a") for i in range(3)]
    order = [x.task_id for x in repo.interleave(t)]
    assert order[:2] == ["a/0", "b/0"] and len(order) == 6


def test_tests_reaching_a_module_follow_imports(tree: Path) -> None:
    modules = repo.load_modules(PROJECT, tree)
    reach = repo.tests_reaching(PROJECT, tree, modules)
    # tests/test_util.py imports pkg.util, which imports pkg.core; pkg (its __init__) runs too.
    assert reach["pkg.util"] == reach["pkg.core"] == reach["pkg"] == ("tests/test_util.py",)
    assert "pkg.user" not in reach
    assert repo.runner_command(PROJECT, ["tests/test_util.py"])[:4] == \
        ["python", "-m", "pytest", "-x"]


def test_task_json_round_trip(tree: Path, tmp_path: Path) -> None:
    tasks = holes(tree)
    assert tasks and all(RepoTask.from_json(json.loads(json.dumps(t.to_json()))) == t
                         for t in tasks)
    path = tmp_path / "tasks.jsonl"
    repo.write_tasks(tasks, path)
    assert repo.read_tasks(path) == tasks


# --- metrics ----------------------------------------------------------------------------------


def test_identifiers_skip_keywords_strings_and_comments() -> None:
    assert identifiers('return foo(bar, "baz qux", None, True)  # note') == ["foo", "bar", "True"]
    assert identifiers("Version(spec.base") == ["Version", "spec", "base"]  # cut off
    assert identifiers('f("unterminated words') == ["f"]
    assert identifiers("") == []


def test_line_scores_on_hand_made_examples() -> None:
    right = score_line("  Version(spec) ", "Version(spec)")
    assert right.exact_match and right.identifier_em and right.identifier_f1 == 1.0
    assert right.edit_similarity == 1.0
    # A wrong identifier: no identifier match, however close the text.
    wrong = score_line("Verison(spec)", "Version(spec)")
    assert not wrong.exact_match and not wrong.identifier_em
    assert wrong.identifier_f1 == pytest.approx(0.5)
    assert wrong.edit_similarity == pytest.approx(1 - 2 / 13)  # a swap is two edits
    # Same identifiers, other punctuation: identifier match without exact match.
    spaced = score_line("helper(x,y)", "helper(x, y)")
    assert spaced.identifier_em and not spaced.exact_match
    # Order matters for identifier match, not for F1 (sets, as CrossCodeEval).
    swapped = score_line("helper(y, x)", "helper(x, y)")
    assert not swapped.identifier_em and swapped.identifier_f1 == 1.0
    assert score_line("", "LIMIT:").identifier_f1 == 0.0
    # A trailing comment is no part of the line's code (the reference has none either).
    assert score_line("run()  # pragma: no cover", "run()").exact_match
    assert strip_comment('x = "#kept"  # dropped') == 'x = "#kept"'
    assert strip_comment("f(a,  # cut off") == "f(a,"
    assert identifier_f1([], []) == 1.0
    assert edit_similarity("", "") == 1.0 and edit_similarity("abc", "") == 0.0


def test_sign_test() -> None:
    assert sign_test(0, 0) == 1.0
    assert sign_test(5, 5) == 1.0
    assert sign_test(10, 0) == pytest.approx(2 / 2**10)
    assert sign_test(10, 3) == pytest.approx(2 * sum(__import__("math").comb(13, i)
                                                     for i in range(4)) / 2**13)


def test_score_row_and_summary(tree: Path) -> None:
    task = next(t for t in holes(tree) if t.reference == "Thing(name)")
    right = score_repo_task(task, Answer(["Thing(name)\n    more"], 0.5), None)
    assert right["prediction"] == "Thing(name)" and right["exact_match"]
    assert right["symbol_match"] and right["passed"] is None
    wrong = score_repo_task(task, Answer(["Thingy(name)"], 0.7, stats={"contextChunks": [
        "pkg/other.py:3", f"{task.symbols[0].file}:1"]}), None)
    assert not wrong["identifier_em"] and not wrong["symbol_match"]
    assert wrong["definition_file_in_context"] and right["definition_file_in_context"] is None
    empty = score_repo_task(task, Answer([], 0.1, error="timed out"), None)
    assert empty["prediction"] == "" and empty["error"]

    figures = repo_figures([right, wrong, empty])
    assert figures["exact_match"] == pytest.approx(1 / 3)
    assert figures["empty_rate"] == pytest.approx(1 / 3) and figures["errors"] == 1
    assert figures["pass_rate"] is None and figures["tested"] == 0
    assert figures["definition_in_context"] == 1.0  # of the one hole whose context is known
    summary = {"suite": "repo", **figures}
    assert report.is_repo(summary) and "identifier match" in report.markdown(summary, ())
    # Paired: hole 1 right in both runs, hole 2 right only with "open".
    other = {**right, "task_id": "other"}
    text, paired = report.compare_repo(summary, summary, [right, {**wrong, "task_id": "other"}],
                                       [right, other], ("off", "open"))
    assert paired["common_tasks"] == 2
    assert paired["identifier_em"]["open_only"] == ["other"]
    assert paired["identifier_em"]["off_only"] == []
    assert paired["identifier_em"]["diff_points"] == pytest.approx(50.0)
    assert "+50.0 points" in text and "sign test p=1" in text


def test_a_line_replacing_the_indentation_is_scored_without_it(tree: Path) -> None:
    task = next(t for t in holes(tree) if t.reference == "add(x, 0)")
    original = (tree / task.file).read_text()
    indent = task.line_prefix(original)
    row = score_repo_task(task, Answer([indent + task.reference], 0.1, cuts=[len(indent)]),
                          None)
    assert row["exact_match"] and row["cut"] == len(indent)


# --- the project's tests ------------------------------------------------------------------------


def sandbox_or_skip(cache: Path) -> ProjectTests:
    tests = ProjectTests(cache, Isolation.AUTO, timeout_s=60)
    if tests.refusal():
        pytest.skip("no sandbox for generated code on this machine")
    return tests


def test_pass_rate_counts_a_right_line_and_fails_a_wrong_one(
        tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(repo.PROJECTS, PROJECT.key, PROJECT)
    tests = sandbox_or_skip(tmp_path / "cache")
    task = next(t for t in holes(tree) if t.reference == "Thing(name)")
    assert task.test_files == ("tests/test_util.py",)
    before = (tree / task.file).read_text()
    base = tests.baseline(task)
    assert base.original.passed and not base.broken.passed and base.usable
    assert (tmp_path / "cache" / "baselines.json").exists()
    right = score_repo_task(task, Answer(["Thing(name)"], 0.1), tests)
    assert right["passed"] is True
    # Same identifiers, so identifier match; but the tests see the wrong argument.
    wrong = score_repo_task(task, Answer(["Thing(name * 2)"], 0.1), tests)
    assert wrong["identifier_em"] is True
    assert wrong["passed"] is False and wrong["verdict"] == "failed"
    broken = score_repo_task(task, Answer(["Thing(name"], 0.1), tests)
    assert broken["passed"] is False and broken["verdict"] == "syntax_error"
    assert (tree / task.file).read_text() == before  # the cached tree is never written


# --- the LSP session ----------------------------------------------------------------------------

ECHO_SERVER = '''\
"""Answers every inline request with what it was told, as JSON."""
import json
from pathlib import Path
from urllib.parse import urlparse, unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer

server = LanguageServer("echo", "1")
changed = []


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls, params):
    changed.append([params.text_document.uri,
                    [c.range.start.line for c in params.content_changes]])


@server.feature(types.TEXT_DOCUMENT_INLINE_COMPLETION)
def inline(ls, params):
    ws = ls.workspace
    doc = ws.get_text_document(params.text_document.uri)
    disk = Path(unquote(urlparse(doc.uri).path)).read_text()
    state = {"root": ws.root_uri, "folders": sorted(ws.folders), "open": sorted(ws.text_documents),
             "line": doc.lines[params.position.line].rstrip("\\n"),
             "character": params.position.character, "disk_is_hole": disk == doc.source,
             "changed": changed[-1:], "others_as_on_disk": all(
                 d.source == Path(unquote(urlparse(u).path)).read_text()
                 for u, d in ws.text_documents.items() if u != doc.uri)}
    return types.InlineCompletionList(items=[types.InlineCompletionItem(
        insert_text=json.dumps(state))])


server.start_io()
'''


def test_initialize_params_name_the_workspace(tmp_path: Path) -> None:
    params = initialize_params({"x": 1}, tmp_path)
    assert params.root_uri == tmp_path.as_uri() and params.root_path == str(tmp_path)
    assert params.workspace_folders is not None
    assert [f.uri for f in params.workspace_folders] == [tmp_path.as_uri()]
    assert params.capabilities.workspace is not None
    assert initialize_params({}).root_uri is None


@pytest.mark.parametrize(("open_docs", "edit"), [(OpenDocs.ALL, False), (OpenDocs.HOLE, False),
                                                 (OpenDocs.HOLE, True)])
def test_session_opens_the_project_as_an_editor_does(
        tree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_docs: OpenDocs,
        edit: bool) -> None:
    monkeypatch.setitem(repo.PROJECTS, PROJECT.key, PROJECT)
    server = tmp_path / "echo_server.py"
    server.write_text(ECHO_SERVER, encoding="utf-8")
    tasks = [t for t in holes(tree) if t.file == "pkg/util.py"][:2]
    opts = RunOptions(server=[sys.executable, str(server)], settings={}, suite="repo-test",
                      timeout_s=30, repo=RepoOptions(open_docs, tests=False,
                                                     edit_definition=edit))
    before = {p: p.read_text() for p in tree.rglob("*.py")}
    result = asyncio.run(run_repo_tasks(tasks, opts, tmp_path / "out", "t"))
    assert len(result.rows) == 2 and result.summary["complete"]
    for task, row in zip(tasks, result.rows, strict=True):
        state = json.loads(row["completion"])
        root = state["root"]
        assert root != tree.as_uri() and root.endswith("/synth-0.0")  # a copy, not the cache
        assert state["folders"] == [root]
        hole_uri = f"{root}/{task.file}"
        modules = {f"{root}/pkg/{m}.py" for m in ("__init__", "core", "util", "user")}
        expected = modules if open_docs is OpenDocs.ALL else {hole_uri}
        defining = f"{root}/{task.symbols[0].file}"
        if edit:  # the definition's line was just edited (and its tab left as on disk)
            expected = {hole_uri, defining}
            assert state["changed"] == [[defining, [task.symbols[0].line - 1] * 2]]
        else:
            assert state["changed"] == []
        assert state["others_as_on_disk"]
        assert set(state["open"]) == expected
        original = (tree / task.file).read_text()
        assert state["line"] == task.line_prefix(original)  # the rest of the line is gone
        assert state["character"] == task.character
        assert state["disk_is_hole"]  # the workspace's file on disk is the hole too
    assert {p: p.read_text() for p in tree.rglob("*.py")} == before
    assert repo.read_tasks(tmp_path / "out" / "tasks.jsonl") == tasks
    # Resuming: nothing left to ask.
    again = asyncio.run(run_repo_tasks(tasks, opts, tmp_path / "out", "t"))
    assert again.summary["resumed_tasks"] == 2


def test_synthetic_project_text_is_valid() -> None:
    for text in (CORE, UTIL, INIT, USER, TEST, textwrap.dedent(ECHO_SERVER)):
        compile(text, "<synthetic>", "exec")
