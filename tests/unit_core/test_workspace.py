"""The workspace on disk as repository context (server/workspace.py): what is read and what
never is (outside the folders, .gitignore, vendored folders, secrets, binaries, big files),
the limits, updates, and the context of one prompt over open documents and the disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from server.config import RepoContextMode
from server.repo_context import ChunkIndex, ChunkSource
from server.workspace import RepoContext, Workspace, WorkspaceLimits, uri_to_path

LIMITS = WorkspaceLimits(max_files=1000, max_file_bytes=10_000)


def write(root: Path, rel: str, text: str | bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    write(root, "pkg/models.py", "class Basket:\n    pass\n")
    write(root, "pkg/util.py", "def slugify(t):\n    return t\n")
    write(root, "pkg/gen/out.py", "def generated():\n    pass\n")
    write(root, "pkg/gen/.gitignore", "*.py\n!keep.py\n")
    write(root, "pkg/gen/keep.py", "def kept():\n    pass\n")
    write(root, ".gitignore", "build_out/\n*.tmp.py\n")
    write(root, "build_out/x.py", "def ignored_dir():\n    pass\n")
    write(root, "pkg/a.tmp.py", "def ignored_file():\n    pass\n")
    write(root, "node_modules/lib/index.js", "function vendored() {}\n")
    write(root, ".venv/lib/site.py", "def venv():\n    pass\n")
    write(root, ".env", "API_KEY=secret\n")
    write(root, "config/.env.local", "TOKEN=secret\n")
    write(root, "keys/server.pem", "-----BEGIN PRIVATE KEY-----\n")
    write(root, "pkg/aws_credentials.py", "KEY = 'secret'\n")
    write(root, "pkg/blob.py", b"def x():\n\0\0\0binary")
    write(root, "pkg/huge.py", "X = 1\n" * 3000)
    write(root, "README.md", "# not source\n")
    outside = write(tmp_path, "outside/secret_module.py", "def outside():\n    pass\n")
    os.symlink(outside.parent, root / "pkg" / "linked")
    return root


def walk(root: Path, limits: WorkspaceLimits = LIMITS) -> Workspace:
    ws = Workspace([root], ChunkIndex(), limits)
    ws.start()
    assert ws.done.wait(10)
    return ws


def test_reads_the_projects_source_and_nothing_else(project: Path) -> None:
    ws = walk(project)
    assert ws.indexed == {"pkg/models.py", "pkg/util.py", "pkg/gen/keep.py"}
    symbols = _symbols(ws.index)
    assert {"Basket", "slugify", "kept"} <= symbols
    assert not symbols & {"generated", "ignored_dir", "ignored_file", "vendored", "venv",
                          "outside", "KEY"}


def _symbols(index: ChunkIndex) -> set[str]:
    from server.languages import Language
    from server.repo_context import query_of

    q = query_of("q.py", Language.PYTHON, "", 0, (0, 0))
    return {s for c in index.search(q, frozenset(ChunkSource), limit=1000) for s in c.symbols} \
        | {s for chunks in index._files.chunks.values() for c in chunks for s in c.symbols}


def test_the_user_can_exclude_more(project: Path) -> None:
    ws = walk(project, WorkspaceLimits(1000, 10_000, ("pkg/util.py",)))
    assert "pkg/util.py" not in ws.indexed and "pkg/models.py" in ws.indexed


def test_limits_bound_the_walk(project: Path) -> None:
    ws = walk(project, WorkspaceLimits(max_files=2, max_file_bytes=10_000))
    assert len(ws.indexed) == 2 and ws.skipped == 1
    big = walk(project, WorkspaceLimits(max_files=1000, max_file_bytes=100_000))
    assert "pkg/huge.py" in big.indexed


def test_updates_and_paths(project: Path) -> None:
    ws = walk(project)
    new = write(project, "pkg/new.py", "def fresh():\n    pass\n")
    assert ws.refresh(new) and "pkg/new.py" in ws.indexed
    new.unlink()
    assert not ws.refresh(new) and "pkg/new.py" not in ws.indexed
    ws.removed(project / "pkg/util.py")
    assert "pkg/util.py" not in ws.indexed
    assert not ws.refresh(project.parent / "outside" / "secret_module.py")  # outside
    assert not ws.refresh(project / ".env")
    assert uri_to_path("file:///a%20b/c.py") == Path("/a b/c.py")
    assert uri_to_path("untitled:Untitled-1") is None


def test_cancel_stops_the_walk(tmp_path: Path) -> None:
    for i in range(300):
        write(tmp_path, f"m{i:03d}.py", f"def f{i}():\n    pass\n")
    ws = Workspace([tmp_path], ChunkIndex(), LIMITS)
    ws.cancel()
    ws.start()
    assert ws.done.wait(10)
    assert len(ws.indexed) < 300


def enc(text: str) -> list[int]:
    return [ord(c) for c in text]


def preamble(repo: RepoContext, uri: str, text: str, mode: RepoContextMode,
             budget: int = 2000) -> str:
    ids = repo.preamble(uri, text, len(text), "python", (0, text.count("\n") + 1), mode, budget,
                        enc, None)
    return "".join(map(chr, ids))


def test_the_context_of_a_prompt(project: Path) -> None:
    repo = RepoContext()
    repo.set_roots([project])
    ws = repo.ensure_workspace(LIMITS)
    assert ws is not None and ws.done.wait(10)
    cursor = (project / "pkg/cart.py").as_uri()
    text = "from .util import slugify\n\ndef label(b):\n    return slugify(b.name)\n\nx = "
    assert preamble(repo, cursor, text, RepoContextMode.OFF) == ""
    got = preamble(repo, cursor, text, RepoContextMode.WORKSPACE)
    assert got.startswith("# Path: pkg/util.py\ndef slugify(t):")
    assert got.endswith("# Path: pkg/cart.py\n")
    assert preamble(repo, cursor, text, RepoContextMode.OPEN) == ""  # nothing open
    # An open document: its text as edited, in both modes, and the disk's again once closed.
    other = (project / "pkg/util.py").as_uri()
    current = {"text": "def slugify(t, sep='-'):\n    return t\n"}
    repo.opened(other, lambda: current["text"], "python")
    assert "sep='-'" in preamble(repo, cursor, text, RepoContextMode.OPEN)
    current["text"] = "def slugify(t, sep='_'):\n    return t\n"
    repo.changed(other)
    assert "sep='_'" in preamble(repo, cursor, text, RepoContextMode.WORKSPACE)
    repo.closed(other)
    assert "sep=" not in preamble(repo, cursor, text, RepoContextMode.WORKSPACE)
    # The budget bounds it.
    assert preamble(repo, cursor, text, RepoContextMode.WORKSPACE, budget=10) == ""
    status = repo.status()
    assert status["workspaceFiles"] == 3 and not status["indexing"]
    assert repo.last_chunks[cursor] == []  # the last request had no room
    repo.close()


def test_version_changes_with_the_other_files_only(project: Path) -> None:
    """RepoContext.version keys cached answers: another document's edit, opening or closing
    one, and a changed file on disk change it; the cursor's own edits, asking for a prompt
    (which takes edited documents into the index) and a file saved unchanged do not."""
    repo = RepoContext()
    repo.set_roots([project])
    ws = repo.ensure_workspace(LIMITS)
    assert ws is not None and ws.done.wait(10)
    a, b = (project / "pkg/cart.py").as_uri(), (project / "pkg/util.py").as_uri()
    text = "from .util import slugify\n\nx = "
    repo.opened(a, lambda: text, "python")
    v = repo.version(a)
    repo.changed(a, [2])
    assert repo.version(a) == v
    b_text = {"text": "def slugify(t, sep='-'):\n    return t\n"}
    repo.opened(b, lambda: b_text["text"], "python")
    assert repo.version(a) != v
    v = repo.version(a)
    preamble(repo, a, text, RepoContextMode.WORKSPACE)  # takes b into the index
    assert repo.version(a) == v
    repo.changed(b, [0])
    assert repo.version(a) != v
    v = repo.version(a)
    repo.saved(b)  # (re-reads the disk's text, shadowed by the open document's)
    repo.closed(b)
    assert repo.version(a) != v
    v = repo.version(a)
    assert ws.refresh(project / "pkg/util.py") is not None
    assert repo.version(a) == v  # the same text again
    write(project, "pkg/util.py", "def slugify(t):\n    return t.lower()\n")
    ws.refresh(project / "pkg/util.py")
    assert repo.version(a) != v
    repo.close()


def test_a_prompt_depends_on_the_text_not_on_how_it_was_typed(project: Path) -> None:
    """The document being typed in gives its own far definitions from its current text: after
    edits, the context holds the chunks of the same text opened whole (the index's chunks of
    it are refreshed only when another document asks). Their order may differ: it follows the
    previous prompt on purpose (stable_order keeps the KV cache)."""
    base = "".join(f"def g{i}(a):\n    return a * {i}\n\n\n" for i in range(60))
    cut = base.index("def g30")
    cursor = (project / "pkg/big.py").as_uri()

    def ask(repo: RepoContext, text: str, off: int) -> str:
        line = text.count("\n", 0, off)
        ids = repo.preamble(cursor, text, off, "python", (max(0, line - 8), line + 8),
                            RepoContextMode.OPEN, 400, enc, None)
        return "".join(map(chr, ids))

    def chunks(context: str) -> list[str]:
        return sorted(re.findall(r"^def \w+", context, re.M))

    insert = "".join(f"def t{i}(a):\n    return g2(a) + g50(a)\n\n\n" for i in range(12))
    edited, current = RepoContext(), {"text": base}
    edited.opened(cursor, lambda: current["text"], "python")
    ask(edited, base, cut)
    for k in range(1, len(insert) + 1):  # a request after every key, as while typing
        current["text"] = base[:cut] + insert[:k] + base[cut:]
        edited.changed(cursor)
        ask(edited, current["text"], cut + k)
    fresh = RepoContext()
    fresh.opened(cursor, lambda: current["text"], "python")
    got = ask(edited, current["text"], cut + len(insert))
    assert chunks(got) == chunks(ask(fresh, current["text"], cut + len(insert)))
    assert "def g50(a)" in got and "def t5(a)" in got and "def g30" not in got


def test_recent_edits_are_remembered_by_place(project: Path) -> None:
    """Edits near a remembered place move it to the front; a closed document's are forgotten;
    the setting says how many rank (0: none)."""
    other = "".join(f"def h{i}(x):\n    return x - {i}\n\n\n" for i in range(60))
    repo = RepoContext()
    a, b = (project / "pkg/a.py").as_uri(), (project / "pkg/b.py").as_uri()
    repo.opened(a, lambda: other, "python")
    repo.opened(b, lambda: "", "python")
    for line in (5, 7, 100, 101, 180):
        repo.changed(a, [line])
    repo.changed(b, [3])
    assert repo._edits == [(b, 3), (a, 180), (a, 101), (a, 7)]
    cursor = (project / "pkg/c.py").as_uri()
    text = "result = run(\n"

    def ask(n: int) -> str:
        ids = repo.preamble(cursor, text, len(text), "python", (0, 1), RepoContextMode.OPEN,
                            400, enc, None, recent_edits=n)
        return "".join(map(chr, ids))

    # (line 7 is blank: h2's the nearest chunk)
    assert "def h45(" in ask(16) and "def h25(" in ask(16) and "def h2(" in ask(16)
    assert ask(0) == ""  # nothing else relates to the cursor
    repo.closed(a)
    assert repo._edits == [(b, 3)] and ask(16) == ""
