"""The workspace on disk as repository context (``repoContext: "workspace"``, issue 21).

A background thread walks the workspace folders once, lazily (the first time a completion
could use them), and chunks every source file it may read into the shared
:class:`~server.repo_context.ChunkIndex`; saved, created, changed and deleted files are
re-read one by one afterwards (``didSave``, ``workspace/didChangeWatchedFiles``). Completions
never wait for it: they use whatever is indexed so far.

What is never read: anything outside the workspace folders (symbolic links leaving them are not
followed), what ``.gitignore`` files ignore (the ``pathspec`` library, git's own matching rules),
version-control, dependency and build folders, binary files, files over ``repoMaxFileBytes``,
and the denylist of secrets (``.env`` files, keys, certificates, credentials), which the user
can extend (``repoExclude``). Bounded: at most ``repoMaxFiles`` files are indexed, the walk can
be cancelled at any file, and it yields the CPU between files.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from server.languages import LANGUAGES
from server.repo_context import ChunkIndex, ChunkSource, OwnFile, chunk_file, language_of

logger = logging.getLogger(__name__)

# Folders that are never project code of one's own: VCS, dependencies, builds, caches.
SKIP_DIRS = frozenset({
    ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "env", "__pycache__", "site-packages",
    "dist", "build", "target", ".tox", ".nox", ".mypy_cache", ".pytest_cache", ".ruff_cache",
    "vendor", "third_party", ".idea", ".vscode", ".eggs", "bower_components", ".next", "out"})
# Files that may hold secrets: never indexed (gitignore syntax; the user's `repoExclude` adds).
DENYLIST = (".env", ".env.*", "*.env", "*.pem", "*.key", "*.p12", "*.pfx", "*.jks", "*.keystore",
            "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*", "*.kdbx", ".netrc", ".npmrc",
            ".pypirc", ".pgpass", "*credentials*", "*secret*", "*.tfstate", "*.tfvars")
# Source files pingti chunks: the languages it knows.
EXTENSIONS = tuple(ext for spec in LANGUAGES.values() for ext in spec.extensions)


@dataclass(frozen=True)
class WorkspaceLimits:
    max_files: int
    max_file_bytes: int
    exclude: tuple[str, ...] = ()


def _spec(patterns: Sequence[str]) -> Any:
    import pathspec

    return pathspec.GitIgnoreSpec.from_lines(list(patterns))


class Workspace:
    """Indexes the workspace folders into a :class:`ChunkIndex` (see the module doc)."""

    def __init__(self, roots: Sequence[Path], index: ChunkIndex, limits: WorkspaceLimits,
                 progress: Callable[[str, int | None], None] | None = None) -> None:
        self.roots = [r.resolve() for r in roots]
        self.index = index
        self.limits = limits
        self._progress = progress or (lambda message, pct: None)
        self._deny = _spec([*DENYLIST, *limits.exclude])
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.indexed: set[str] = set()  # workspace-relative paths in the index
        self.done = threading.Event()
        self.seconds = 0.0  # how long the first walk took
        self.skipped = 0  # files left out by the limits

    # --- paths ------------------------------------------------------------------------------

    def relative(self, path: Path) -> str | None:
        """The path as the prompt shows it (relative to its workspace folder, with the folder's
        name first when there are several), or None outside every folder."""
        try:
            p = path.resolve()
        except OSError:
            return None
        for root in self.roots:
            if p == root or root in p.parents:
                rel = p.relative_to(root).as_posix()
                return rel if len(self.roots) == 1 else f"{root.name}/{rel}"
        return None

    def readable(self, path: Path) -> bool:
        """May pingti read this file: inside a folder, a known language, not denied."""
        rel = self.relative(path)
        return (rel is not None and path.name.endswith(EXTENSIONS)
                and not self._deny.match_file(rel)
                and not any(part in SKIP_DIRS for part in Path(rel).parts[:-1]))

    # --- the walk ---------------------------------------------------------------------------

    def start(self) -> None:
        """Begin the first walk in the background (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="pingti-workspace",
                                            daemon=True)
            self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def _files(self) -> Iterator[Path]:
        for root in self.roots:
            yield from self._walk(root, root, [], _spec([]))

    def _walk(self, root: Path, folder: Path, patterns: list[str], ignored: Any
              ) -> Iterator[Path]:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        gi = folder / ".gitignore"
        if gi.is_file():
            try:
                base = folder.relative_to(root).as_posix()
                prefix = "" if base == "." else base + "/"
                # Patterns of a nested .gitignore are relative to its folder.
                patterns = [*patterns, *(_anchor(line, prefix) for line in
                                         gi.read_text("utf-8", "replace").splitlines())]
                ignored = _spec(patterns)
            except (OSError, ValueError):
                pass
        for e in entries:
            if self._cancel.is_set():
                return
            rel = Path(e.path).relative_to(root).as_posix()
            try:
                if e.is_symlink():
                    continue  # may lead outside the workspace
                if e.is_dir():
                    if e.name not in SKIP_DIRS and not e.name.startswith(".") and \
                            not ignored.match_file(rel + "/"):
                        yield from self._walk(root, Path(e.path), patterns, ignored)
                elif e.is_file() and e.name.endswith(EXTENSIONS) and \
                        not ignored.match_file(rel) and not self._deny.match_file(rel):
                    yield Path(e.path)
            except OSError:
                continue

    def _run(self) -> None:
        t0 = time.perf_counter()
        n = 0
        try:
            self._progress("Indexing the workspace", 0)
            for path in self._files():
                if self._cancel.is_set():
                    return
                if n >= self.limits.max_files:
                    self.skipped += 1
                    continue
                if self.refresh(path):
                    n += 1
                    if n % 200 == 0:
                        self._progress(f"Indexed {n} files", None)
                time.sleep(0)  # let the completion threads run between files
        except Exception:  # noqa: BLE001 - the index is a help; completions go on without it
            logger.exception("indexing the workspace failed")
        finally:
            self.seconds = time.perf_counter() - t0
            self.done.set()
            if self.skipped:
                logger.warning("workspace: %d files indexed, %d more left out (repoMaxFiles)",
                               n, self.skipped)
            self._progress(f"Indexed {n} files in {self.seconds:.1f} s", 100)

    def refresh(self, path: Path) -> bool:
        """(Re-)read one file into the index; a file that is gone or unreadable leaves it.
        Returns whether the file is in the index now."""
        rel = self.relative(path)
        if rel is None or not self.readable(path):
            return False
        try:
            st = path.stat()
            if st.st_size > self.limits.max_file_bytes:
                self._drop(rel)
                return False
            data = path.read_bytes()
        except OSError:
            self._drop(rel)
            return False
        if b"\0" in data[:8192]:
            self._drop(rel)
            return False
        text = data.decode("utf-8", "replace")
        self.index.set_file(rel, chunk_file(rel, text, language_of(path.name)), ChunkSource.DISK)
        self.indexed.add(rel)
        return True

    def _drop(self, rel: str) -> None:
        self.index.remove_file(rel, ChunkSource.DISK)
        self.indexed.discard(rel)

    def removed(self, path: Path) -> None:
        rel = self.relative(path)
        if rel is not None:
            self._drop(rel)


def _anchor(pattern: str, prefix: str) -> str:
    """A nested .gitignore's pattern, made relative to the workspace folder."""
    p = pattern.strip()
    if not p or p.startswith("#") or not prefix:
        return p
    neg = p.startswith("!")
    body = p[1:] if neg else p
    if "/" not in body.rstrip("/"):
        body = f"{prefix}**/{body}"  # a bare name matches at any depth below its folder
    else:
        body = prefix + body.lstrip("/")
    return ("!" if neg else "") + body


# --- the service's side: open documents, the workspace, and the context of one prompt ---------

def uri_to_path(uri: str) -> Path | None:
    """The local path of a ``file:`` URI (None for other schemes: untitled, remote)."""
    from urllib.parse import unquote, urlparse

    u = urlparse(uri)
    if u.scheme != "file":
        return None
    return Path(unquote(u.path))


@dataclass
class _OpenDoc:
    text: Callable[[], str | None]  # reads the document's current text
    language_id: str
    path: str  # its display path (resolved once: prompts list recent edits by it)
    dirty: bool = True
    own: OwnFile = field(default_factory=OwnFile)  # for its own prompts


# Edits within this many lines of a remembered one are the same place.
EDIT_SPAN_LINES = 32
# Recent edit places remembered (the setting repoRecentEdits uses the first ones).
MAX_RECENT_EDITS = 256


class RepoContext:
    """Repository context for the completion service: open documents and, in ``workspace``
    mode, the workspace folders, in one :class:`ChunkIndex`; :meth:`preamble` gives a prompt's
    context tokens. Thread-safe (LSP handlers on the event loop, the prompt on the worker)."""

    def __init__(self) -> None:
        self.index = ChunkIndex()
        self.roots: list[Path] = []
        self.workspace: Workspace | None = None
        self._open: dict[str, _OpenDoc] = {}
        self._lock = threading.Lock()
        self._order: dict[str, list[tuple[str, int, str]]] = {}  # uri -> its last chunks
        self._rendered: dict[str, tuple[tuple[Any, ...], list[int]]] = {}
        self._progress: Callable[[str, int | None], None] | None = None
        self.last_chunks: dict[str, list[str]] = {}  # uri -> "path:line" of its last context
        # Token counts of chunks by file (the budget is filled on every prompt; chunks rarely
        # change); a closed document's go with it.
        self._ntokens: dict[str, dict[tuple[str, int, str], int]] = {}
        self._edits: list[tuple[str, int]] = []  # (uri, line) of recent edits, latest first
        # Edits of open documents not yet in the index (it is brought up to date lazily, by
        # the next prompt): all of them, and each document's own.
        self._changes = 0
        self._own_changes: dict[str, int] = {}

    # --- configuration ----------------------------------------------------------------------

    def set_roots(self, roots: Sequence[Path],
                  progress: Callable[[str, int | None], None] | None = None) -> None:
        self.roots = [r for r in roots if r.is_dir()]
        self._progress = progress

    def ensure_workspace(self, limits: WorkspaceLimits) -> Workspace | None:
        """The workspace index for these limits, started on first use (lazily: a user who
        never asks for a completion never pays for it)."""
        if not self.roots:
            return None
        ws = self.workspace
        if ws is None or ws.limits != limits:
            if ws is not None:
                ws.cancel()
                for rel in list(ws.indexed):
                    self.index.remove_file(rel, ChunkSource.DISK)
            ws = self.workspace = Workspace(self.roots, self.index, limits, self._progress)
            ws.start()
        return ws

    def close(self) -> None:
        if self.workspace is not None:
            self.workspace.cancel()

    # --- documents --------------------------------------------------------------------------

    def display_path(self, uri: str) -> str:
        path = uri_to_path(uri)
        if path is not None and self.roots:
            for root in self.roots:
                try:
                    rel = path.resolve().relative_to(root.resolve()).as_posix()
                except (ValueError, OSError):
                    continue
                return rel if len(self.roots) == 1 else f"{root.name}/{rel}"
        return path.name if path is not None else uri.rsplit("/", 1)[-1]

    def opened(self, uri: str, text: Callable[[], str | None], language_id: str) -> None:
        path = self.display_path(uri)
        with self._lock:
            self._open[uri] = _OpenDoc(text, language_id, path)
            self._changes += 1
            self._own_changes[uri] = self._own_changes.get(uri, 0) + 1

    def changed(self, uri: str, lines: Sequence[int] = ()) -> None:
        """An open document changed; ``lines``: where (the changes' first lines)."""
        with self._lock:
            doc = self._open.get(uri)
            if doc is None:
                return
            doc.dirty = True
            self._changes += 1
            self._own_changes[uri] = self._own_changes.get(uri, 0) + 1
            for line in lines:
                # An edit near one already remembered moves it to the front (typing along a
                # function is one place, as llama.vim evicts a chunk much like a new one).
                self._edits = [e for e in self._edits
                               if e[0] != uri or abs(e[1] - line) >= EDIT_SPAN_LINES]
                self._edits.insert(0, (uri, line))
            del self._edits[MAX_RECENT_EDITS:]

    def version(self, uri: str) -> str:
        """The state of every file but ``uri`` that its prompts read context from: it changes
        when another document is edited, opened or closed, or a workspace file changes, and
        not when ``uri`` itself is typed in (its text is in the answer cache's key anyway)."""
        with self._lock:
            others = self._changes - self._own_changes.get(uri, 0)
        # Open documents count by their edits (the index takes them in lazily, at the next
        # prompt: its version would change after the answer was cached), files on disk by the
        # index's version.
        return f"{self.index.versions[ChunkSource.DISK]}.{others}"

    def closed(self, uri: str) -> None:
        with self._lock:
            if self._open.pop(uri, None) is not None:
                self._changes += 1  # its text leaves the context (others' answers change)
            self._own_changes.pop(uri, None)
            self._edits = [e for e in self._edits if e[0] != uri]
            self._order.pop(uri, None)
            self._rendered.pop(uri, None)
            self.last_chunks.pop(uri, None)
            self._ntokens.pop(self.display_path(uri), None)
        self.index.remove_file(self.display_path(uri), ChunkSource.OPEN)
        # Back to what the disk says (the user may have closed without saving).
        path = uri_to_path(uri)
        if self.workspace is not None and path is not None:
            self.workspace.refresh(path)

    def saved(self, uri: str) -> None:
        path = uri_to_path(uri)
        if self.workspace is not None and path is not None:
            self.workspace.refresh(path)

    def files_changed(self, uris: Sequence[tuple[str, bool]]) -> None:
        """``workspace/didChangeWatchedFiles``: (uri, deleted) pairs."""
        if self.workspace is None:
            return
        for uri, deleted in uris:
            path = uri_to_path(uri)
            if path is None:
                continue
            if deleted:
                self.workspace.removed(path)
            else:
                self.workspace.refresh(path)

    def _sync_open(self, current: str) -> None:
        """Chunk the open documents that changed, but the cursor's (its own prompts chunk its
        current text, :class:`OwnFile`; it is chunked here once another document asks)."""
        with self._lock:
            todo = [(u, d) for u, d in self._open.items() if d.dirty and u != current]
            for _, d in todo:
                d.dirty = False
        for uri, doc in todo:
            text = doc.text()
            if text is None or len(text) > (1 << 20):
                continue
            rel = self.display_path(uri)
            self.index.set_file(rel, chunk_file(rel, text, language_of(rel, doc.language_id)),
                                ChunkSource.OPEN)

    # --- one prompt -------------------------------------------------------------------------

    def preamble(self, uri: str, text: str, offset: int, language_id: str,
                 window: tuple[int, int], mode: Any, budget: int,
                 encode: Callable[[str], list[int]], tokens: Any, recent_edits: int = 0
                 ) -> list[int]:
        """The context tokens for a prompt at ``offset`` in ``uri`` (before its FIM part);
        empty when off, over no chunks, or with no budget. ``window``: the cursor file's lines
        already in the prompt; ``recent_edits``: how many of the last edited places rank."""
        from server.config import RepoContextMode
        from server.repo_context import fill_budget, query_of, render, stable_order

        if mode is RepoContextMode.OFF or budget <= 0:
            return []
        self._sync_open(uri)
        sources = frozenset({ChunkSource.OPEN} if mode is RepoContextMode.OPEN
                            else {ChunkSource.OPEN, ChunkSource.DISK})
        path = self.display_path(uri)
        query = query_of(path, language_of(path, language_id), text, offset, window)
        with self._lock:
            doc = self._open.get(uri)
            own = doc.own if doc is not None else OwnFile()  # not open: a one-off request
            # (an edit's document is open: closing forgets its edits)
            recent = [(self._open[u].path, line) for u, line in self._edits[:recent_edits]]
        snap = own.snapshot(query, text, offset)
        ranked = self.index.search(query, sources, own=snap, recent=recent)
        if len(self._ntokens) > 5_000:
            self._ntokens.clear()

        def count(chunk: Any) -> int:
            counts = self._ntokens.setdefault(chunk.path, {})
            n = counts.get(chunk.key)
            if n is None:
                if len(counts) > 1_000:
                    counts.clear()  # a file edited over and over
                n = counts[chunk.key] = len(encode(chunk.text))
            return n

        chosen = fill_budget(ranked, budget, count)
        with self._lock:
            ordered = stable_order(chosen, self._order.get(uri, ()))
            self._order[uri] = [c.key for c in ordered]
            self.last_chunks[uri] = [f"{c.path}:{c.start_line + 1}" for c in ordered]
            key = (tuple(c.key for c in ordered), path, tokens)
            hit = self._rendered.get(uri)
        if hit is not None and hit[0] == key:
            return hit[1]
        name = self.roots[0].name if self.roots else "workspace"
        ids = render(ordered, path, name, encode, tokens, language_id)
        with self._lock:
            self._rendered[uri] = (key, ids)
        return ids

    def status(self) -> dict[str, Any]:
        ws = self.workspace
        return {"roots": [str(r) for r in self.roots], "chunks": len(self.index),
                "openDocuments": len(self._open),
                "workspaceFiles": len(ws.indexed) if ws else 0,
                "indexing": bool(ws and not ws.done.is_set()),
                "indexSeconds": round(ws.seconds, 2) if ws and ws.done.is_set() else None,
                "leftOut": ws.skipped if ws else 0}
