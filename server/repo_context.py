"""Repository context: code from the rest of the project, chosen for the cursor, within a
token budget (issue 21).

Pure stages, no I/O (``server/workspace.py`` reads the files):

- **chunking** (:func:`chunk_file`): a file becomes chunks along its tree-sitter definitions
  (functions, classes, and for Python each method too, with a class outline: header,
  docstring and method signatures), long bodies cut to their first lines ("signature +
  docstring + short body"), the statements between definitions (imports, constants) in groups;
  languages without a grammar in fixed line windows. Each chunk knows the names it defines.
- **retrieval** (:class:`ChunkIndex`): rankings fused by reciprocal rank (k = 60, as Tabby
  does): the definitions of the names the cursor's code imports or uses near the cursor
  (nearest first), and BM25 over the chunks' identifiers (the ``bm25s`` library; the open
  documents and the disk each their own index) with the identifiers around the cursor as the
  query; and the code around the places last edited. The cursor's own file takes part through
  :class:`OwnFile` (the code above and below its prompt window, chunked from the text being
  edited) by name and by recent edits, not by BM25. The chosen chunks fill the budget in rank
  order.
- **order** (:func:`stable_order`): the chosen chunks keep the order they had in the document's
  previous prompt, new ones go last, so a changed choice re-evaluates only the prompt's tail
  and the KV cache of what stayed survives. The query ignores the line being typed, so typing
  within a line never changes the choice.
- **layout** (:func:`render`): Qwen2.5-Coder's repository format when the tokenizer has its
  tokens (``<|repo_name|>name``, then ``<|file_sep|>path`` and the code per file, then
  ``<|file_sep|>`` and the cursor's path before the FIM part, as llama.cpp's ``/infill`` lays
  out ``input_extra``), otherwise each file under a commented path header.
"""

from __future__ import annotations

import dataclasses
import enum
import keyword
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from server.languages import Language, from_lsp_id, from_uri, line_comment


class ChunkSource(enum.Enum):
    OPEN = "open"
    DISK = "disk"


@dataclass(frozen=True)
class Chunk:
    path: str  # workspace-relative (or the URI of a document outside the workspace)
    start_line: int  # 0-based, in the file
    end_line: int  # exclusive
    text: str
    symbols: frozenset[str]  # the names it defines
    # Its identifiers and their parts for BM25, space-separated: one string per chunk rather
    # than a tuple of many (a 1,000-file workspace holds ~50,000 chunks).
    tokens: str

    @property
    def key(self) -> tuple[str, int, str]:
        return (self.path, self.start_line, self.text)


# Definitions longer than this keep their first lines ("short body").
MAX_DEF_LINES = 24
# Runs of statements between definitions, and line windows, are cut at this many lines.
MAX_GROUP_LINES = 30
# Reciprocal rank fusion constant (Cormack et al.; Tabby uses 60).
RRF_K = 60
# The lines around the cursor whose identifiers make the query.
QUERY_LINES_BEFORE = 30
QUERY_LINES_AFTER = 10

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP = frozenset(keyword.kwlist) | frozenset(
    {"self", "cls", "None", "True", "False", "this", "return", "const", "let", "var", "func",
     "function", "public", "private", "static", "void", "int", "str", "new", "fn", "pub"})

# tree-sitter node kinds that are definitions worth a chunk of their own, across grammars.
_DEF_KINDS = frozenset({
    "function_definition", "class_definition", "decorated_definition",  # python
    "function_declaration", "class_declaration", "method_definition", "lexical_declaration",
    "interface_declaration", "type_alias_declaration", "enum_declaration", "export_statement",
    "method_declaration", "type_declaration", "const_declaration", "var_declaration",  # go
    "function_item", "struct_item", "enum_item", "impl_item", "trait_item", "const_item",
    "static_item", "type_item", "mod_item",  # rust
    "record_declaration", "constructor_declaration",  # java
    "struct_specifier", "enum_specifier", "class_specifier", "namespace_definition",
    "template_declaration", "declaration", "type_definition",  # c, c++
})
_GRAMMAR_OF = {Language.PYTHON: "python", Language.JAVASCRIPT: "javascript",
               Language.TYPESCRIPT: "typescript", Language.GO: "go", Language.RUST: "rust",
               Language.JAVA: "java", Language.C: "c", Language.CPP: "cpp"}


def identifiers(text: str) -> list[str]:
    """The identifiers of some code, keywords and trivial names left out."""
    return [w for w in _IDENT.findall(text) if w not in _STOP and len(w) > 1]


def index_tokens(text: str) -> tuple[str, ...]:
    """What BM25 matches: each identifier whole (lower case) and its snake/camel parts, so that
    ``parse_version`` meets ``ParseVersion`` and ``version``."""
    out: list[str] = []
    for word in identifiers(text):
        low = word.lower()
        out.append(low)
        parts = [p.lower() for p in _PARTS.findall(word)]
        if len(parts) > 1:
            out.extend(p for p in parts if len(p) > 2)
    return tuple(out)


def language_of(path: str, language_id: str = "") -> Language | None:
    return from_lsp_id(language_id) or from_uri(path)


# --- chunking ---------------------------------------------------------------------------------

def chunk_file(path: str, text: str, language: Language | None) -> list[Chunk]:
    """The file's chunks (see the module doc). Never raises on odd input: a file the grammar
    cannot make sense of falls back to line windows."""
    if not text.strip():
        return []
    lines = text.splitlines()
    grammar = _GRAMMAR_OF.get(language) if language is not None else None
    if grammar is not None and language is not None:
        try:
            return _chunk_tree(path, text, lines, grammar, language)
        except Exception:  # noqa: BLE001 - a grammar problem costs this file its definitions
            pass
    return _windows(path, lines, 0, len(lines))


def _make(path: str, lines: list[str], start: int, end: int, symbols: Iterable[str],
          cut: int | None = None, comment: str = "#") -> Chunk:
    body = lines[start:end]
    if cut is not None and len(body) > cut:
        indent = re.match(r"\s*", body[min(1, len(body) - 1)]).group(0)  # type: ignore[union-attr]
        body = [*body[:cut], f"{indent}{comment} ..."]
    text = "\n".join(body)
    return Chunk(path, start, end, text, frozenset(symbols), " ".join(index_tokens(text)))


def _windows(path: str, lines: list[str], start: int, end: int) -> list[Chunk]:
    out = []
    for a in range(start, end, MAX_GROUP_LINES):
        b = min(end, a + MAX_GROUP_LINES)
        if any(line.strip() for line in lines[a:b]):
            out.append(_make(path, lines, a, b, ()))
    return out


def _name_of(node: Any) -> str | None:
    """The name a definition node defines (its ``name`` field, looking through decorators,
    exports and declarators)."""
    for child_field in ("definition", "declaration"):
        inner = node.child_by_field_name(child_field)
        if inner is not None:
            return _name_of(inner)
    name = node.child_by_field_name("name")
    if name is None:
        for child in node.named_children:
            if child.type in ("variable_declarator", "const_spec", "var_spec", "type_spec",
                              "init_declarator", "function_declarator"):
                return _name_of(child)
        decl = node.child_by_field_name("declarator")
        return _name_of(decl) if decl is not None else None
    if name.type in ("identifier", "type_identifier", "field_identifier", "property_identifier",
                     "constant"):
        return name.text.decode("utf-8", "replace")
    return _name_of(name) if name.named_child_count else name.text.decode("utf-8", "replace")


def _assigned(node: Any) -> list[str]:
    """Python: the names a module-level statement assigns (``X = 1``, ``A, B = ...``)."""
    if node.type != "expression_statement" or not node.named_children:
        return []
    stmt = node.named_children[0]
    if stmt.type != "assignment":
        return []
    left = stmt.child_by_field_name("left")
    if left is None:
        return []
    return [n.text.decode() for n in _walk(left) if n.type == "identifier"]


def _walk(node: Any) -> Iterable[Any]:
    yield node
    for child in node.named_children:
        yield from _walk(child)


def _chunk_tree(path: str, text: str, lines: list[str], grammar: str,
                language: Language) -> list[Chunk]:
    import tree_sitter

    from grammar_constraints.ts_oracle import language as ts_language

    tree = tree_sitter.Parser(ts_language(grammar)).parse(text.encode("utf-8"))
    comment = line_comment(language.value)
    out: list[Chunk] = []
    group: list[Any] = []

    def flush() -> None:
        if group:
            a, b = group[0].start_point[0], group[-1].end_point[0] + 1
            for c in range(a, b, MAX_GROUP_LINES):
                d = min(b, c + MAX_GROUP_LINES)
                names = [n for g in group if c <= g.start_point[0] < d for n in _assigned(g)]
                out.append(_make(path, lines, c, d, names))
            group.clear()

    for node in tree.root_node.named_children:
        if node.type not in _DEF_KINDS or node.type == "declaration" and \
                node.end_point[0] == node.start_point[0]:
            group.append(node)
            continue
        flush()
        a, b = node.start_point[0], node.end_point[0] + 1
        name = _name_of(node)
        # A Python class with methods is its outline and its methods; anything else one chunk.
        parts = _python_class(path, lines, node, name, comment) if grammar == "python" else []
        out.extend(parts or [_make(path, lines, a, b, [name] if name else [], MAX_DEF_LINES,
                                   comment)])
    flush()
    return out


def _python_class(path: str, lines: list[str], node: Any, name: str | None,
                  comment: str) -> list[Chunk]:
    """A Python class's outline (header, docstring, every method's signature) and each of its
    methods as a chunk of its own: a call ``obj.method(`` finds the method's definition."""
    cls = node.child_by_field_name("definition") if node.type == "decorated_definition" else node
    if cls is None or cls.type != "class_definition" or name is None:
        return []
    body = cls.child_by_field_name("body")
    if body is None:
        return []
    out: list[Chunk] = []
    outline = lines[node.start_point[0]:body.start_point[0]]  # decorators and header
    methods: list[str] = []
    taken = body.start_point[0]  # the lines already in the outline end here
    for child in body.named_children:
        inner = child.child_by_field_name("definition") if child.type == "decorated_definition" \
            else child
        if inner is None or inner.type != "function_definition":
            # The docstring, fields and class constants (their first lines).
            a = child.start_point[0]
            if child.type != "comment" and a >= taken:
                taken = min(child.end_point[0] + 1, a + 6)
                outline.extend(lines[a:taken])
            continue
        mname = _name_of(inner)
        a, b = child.start_point[0], child.end_point[0] + 1
        mbody = inner.child_by_field_name("body")
        sig_end = mbody.start_point[0] if mbody is not None and \
            mbody.start_point[0] > inner.start_point[0] else inner.start_point[0] + 1
        outline.extend(lines[a:sig_end])
        taken = max(taken, sig_end)
        if mname:
            methods.append(mname)
            out.append(_make(path, lines, a, b, [mname, f"{name}.{mname}"], MAX_DEF_LINES,
                             comment))
    if not methods:
        return []
    text = "\n".join(outline)
    # The outline first: it is what a use of the class needs most.
    start = node.start_point[0]
    return [Chunk(path, start, start + 1, text, frozenset({name}), " ".join(index_tokens(text))),
            *out]


# --- what the cursor's code refers to ----------------------------------------------------------

_PY_FROM = re.compile(r"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+(\([^)]*\)|[^\n#]*)", re.M)
_JS_IMPORT = re.compile(r"import\s*(?:\w+\s*,\s*)?\{([^}]*)\}\s*from|import\s+(\w+)\s+from")


def imported_names(text: str, language: Language | None, end: int | None = None) -> list[str]:
    """The names the code imports from elsewhere, whose definitions it likely needs (Python
    ``from m import a, b as c``; JavaScript/TypeScript ``import {a, b} from``), in order. (A
    module imported whole, ``import m``, is used as ``m.name``: the name near the cursor
    finds the definition.)"""
    out: list[str] = []
    if language is Language.PYTHON:
        for m in _PY_FROM.finditer(text, 0, len(text) if end is None else end):
            for part in m.group(1).strip("()").replace("\n", " ").split(","):
                bits = part.split()
                if bits and bits[0] != "*":
                    out.append(bits[0])
    elif language in (Language.JAVASCRIPT, Language.TYPESCRIPT):
        for m in _JS_IMPORT.finditer(text, 0, len(text) if end is None else end):
            if m.group(1):
                out.extend(p.split(" as ")[0].strip() for p in m.group(1).split(",")
                           if p.strip())
            elif m.group(2):
                out.append(m.group(2))
    return out


@dataclass(frozen=True)
class ContextQuery:
    """What the index is asked: the cursor's file and the code around the cursor."""

    path: str
    language: Language | None
    near: str  # the lines before the cursor's line (QUERY_LINES_BEFORE) and after it
    imported: tuple[str, ...]  # names the file imports
    window: tuple[int, int]  # the cursor file's lines that are in the prompt anyway


def query_of(path: str, language: Language | None, text: str, offset: int,
             window_lines: tuple[int, int]) -> ContextQuery:
    """The query for a cursor. The cursor's own line is left out, so that typing within a line
    never changes the chosen chunks (and the KV cache of the prompt's start survives)."""
    line_start = text.rfind("\n", 0, offset) + 1
    nl = text.find("\n", offset)
    line_end = len(text) if nl < 0 else nl
    # Only the window is cut out of the document (this runs on every completion request).
    start = line_start
    for _ in range(QUERY_LINES_BEFORE):
        if start == 0:
            break
        start = text.rfind("\n", 0, start - 1) + 1
    end = line_end
    for _ in range(QUERY_LINES_AFTER):
        if end >= len(text):
            break
        nxt = text.find("\n", end + 1)
        end = len(text) if nxt < 0 else nxt
    near = text[start:line_start] + text[line_end + 1:end]
    return ContextQuery(path, language, near.strip("\n"),
                        tuple(imported_names(text, language, line_start)), window_lines)


# --- the index ---------------------------------------------------------------------------------

@dataclass
class _Files:
    chunks: dict[str, list[Chunk]] = field(default_factory=dict)
    source: dict[str, ChunkSource] = field(default_factory=dict)


@dataclass(frozen=True)
class _Snapshot:
    """The searchable form of one source's chunks at some moment: BM25 and names."""

    chunks: list[Chunk]
    bm25: Any
    by_symbol: dict[str, list[int]]
    by_path: dict[str, list[int]]

    @classmethod
    def build(cls, chunks: list[Chunk], lexical: bool = True) -> _Snapshot:
        """``lexical``: with the BM25 index (else searchable by name and place only)."""
        by_symbol: dict[str, list[int]] = {}
        by_path: dict[str, list[int]] = {}
        for i, c in enumerate(chunks):
            for s in c.symbols:
                by_symbol.setdefault(s, []).append(i)
            by_path.setdefault(c.path, []).append(i)
        bm25 = None
        if chunks and lexical:
            import bm25s

            bm25 = bm25s.BM25()
            bm25.index([c.tokens.split() or [""] for c in chunks], show_progress=False)
        return cls(chunks, bm25, by_symbol, by_path)

    def around(self, path: str, line: int, reach: int = 8) -> Chunk | None:
        """The smallest chunk of ``path`` holding ``line`` (a method rather than its class), or
        else the nearest within ``reach`` lines (an edit on a blank line between two)."""
        best: tuple[int, int] | None = None
        found: Chunk | None = None
        for i in self.by_path.get(path, ()):
            c = self.chunks[i]
            gap = c.start_line - line if line < c.start_line else max(0, line - c.end_line + 1)
            key = (gap, c.end_line - c.start_line)
            if gap <= reach and (best is None or key < best):
                best, found = key, c
        return found


_EMPTY = _Snapshot([], None, {}, {})
# A disk snapshot of more chunks than this is rebuilt in the background (the search meanwhile
# uses the previous one); smaller ones, and the open documents' always, on the spot.
SYNC_REBUILD_CHUNKS = 4000


class ChunkIndex:
    """The chunks of the files pingti may read, searchable. Thread-safe: the workspace indexer
    and the LSP handlers update it, the completion worker searches it.

    Two snapshots, so that typing never waits for the workspace: the open documents' (small,
    rebuilt on the first search after one changed) and the disk's (rebuilt after files change;
    a large one in a background thread while searches use the previous snapshot). A chunk of a
    snapshot counts only while its file still comes from that source, so an open document's
    text wins over its file on disk at once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files = _Files()
        self._snap = {ChunkSource.OPEN: _EMPTY, ChunkSource.DISK: _EMPTY}
        self._dirty = {ChunkSource.OPEN: False, ChunkSource.DISK: False}
        self._rebuilding = False
        self.rebuilds = 0  # disk snapshots built (tests, status)
        # Bumped by every change to a source's chunks: answers cached under an older version
        # may have used text that is gone.
        self.versions = {ChunkSource.OPEN: 0, ChunkSource.DISK: 0}

    def set_file(self, path: str, chunks: list[Chunk], source: ChunkSource) -> None:
        with self._lock:
            # An open document's text wins over the file on disk until it is closed.
            if source is ChunkSource.DISK and self._files.source.get(path) is ChunkSource.OPEN:
                return
            old = self._files.source.get(path)
            if old is source and self._files.chunks.get(path) == chunks:
                return  # the same text again (a file saved unchanged, a re-read)
            self._files.chunks[path] = chunks
            self._files.source[path] = source
            # (An open document shadowing its file on disk counts as an open document's change:
            # whoever keys answers on the versions counts the documents' comings and goings.)
            self.versions[source] += 1
            self._dirty[source] = True
            if old is not None and old is not source:
                self._dirty[old] = True

    def remove_file(self, path: str, source: ChunkSource | None = None) -> None:
        with self._lock:
            current = self._files.source.get(path)
            if current is None or (source is not None and current is not source):
                return
            del self._files.chunks[path]
            del self._files.source[path]
            self._dirty[current] = True
            self.versions[current] += 1

    def __len__(self) -> int:
        with self._lock:
            return sum(len(c) for c in self._files.chunks.values())

    def _chunks_of(self, source: ChunkSource) -> list[Chunk]:
        return [c for p, chunks in self._files.chunks.items()
                if self._files.source[p] is source for c in chunks]

    def _refresh(self) -> dict[ChunkSource, _Snapshot]:
        """The snapshots to search now (called with the lock held)."""
        if self._dirty[ChunkSource.OPEN]:
            self._snap[ChunkSource.OPEN] = _Snapshot.build(self._chunks_of(ChunkSource.OPEN))
            self._dirty[ChunkSource.OPEN] = False
        if self._dirty[ChunkSource.DISK] and not self._rebuilding:
            chunks = self._chunks_of(ChunkSource.DISK)
            self._dirty[ChunkSource.DISK] = False
            if len(chunks) <= SYNC_REBUILD_CHUNKS:
                self._snap[ChunkSource.DISK] = _Snapshot.build(chunks)
                self.rebuilds += 1
            else:
                self._rebuilding = True
                threading.Thread(target=self._rebuild_disk, args=(chunks,),
                                 name="pingti-bm25", daemon=True).start()
        return dict(self._snap)

    def _rebuild_disk(self, chunks: list[Chunk]) -> None:
        try:
            snap = _Snapshot.build(chunks)
            with self._lock:
                self._snap[ChunkSource.DISK] = snap
                self.rebuilds += 1
        finally:
            with self._lock:
                self._rebuilding = False

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Until no background rebuild runs (tests and benchmarks)."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._rebuilding:
                    return True
            time.sleep(0.01)
        return False

    def search(self, query: ContextQuery, modes: frozenset[ChunkSource],
               limit: int = 64, own: _Snapshot = _EMPTY,
               recent: Sequence[tuple[str, int]] = ()) -> list[Chunk]:
        """Chunks ranked for the query (best first), at most ``limit``, from files of the given
        sources and from ``own`` (the cursor file's, :meth:`OwnFile.snapshot`); the index's
        chunks of the cursor's file are never used (they may be older than its text).
        ``recent``: (path, line) of the places last edited in open documents, most recent
        first."""
        fused: dict[int, float] = {}
        by_id: dict[int, Chunk] = {}
        for ranking in self._rankings(query, modes, limit, own, recent):
            for rank, c in enumerate(ranking[:limit * 2]):
                fused[id(c)] = fused.get(id(c), 0.0) + 1.0 / (RRF_K + rank + 1)
                by_id[id(c)] = c
        best = sorted(fused, key=lambda k: -fused[k])[:limit]
        return [by_id[k] for k in best]

    def _rankings(self, query: ContextQuery, modes: frozenset[ChunkSource], limit: int,
                  own: _Snapshot, recent: Sequence[tuple[str, int]]) -> list[list[Chunk]]:
        """The ranked lists :meth:`search` fuses (each best first)."""
        with self._lock:
            snaps = self._refresh()
            current = dict(self._files.source)

        def usable(c: Chunk, source: ChunkSource) -> bool:
            # A file that left this source since the snapshot, or the cursor's own.
            return current.get(c.path) is source and c.path != query.path

        used = list(dict.fromkeys(reversed(identifiers(query.near))))
        wanted = [*used, *[n for n in query.imported if n not in used]]
        q = list(index_tokens(query.near))
        rankings: list[list[Chunk]] = []
        # Ranking 1: definitions of the names used near the cursor (nearest use first), then
        # of the names imported; open documents before the disk.
        defs: list[Chunk] = []
        seen: set[int] = set()
        for name in wanted:
            for i in own.by_symbol.get(name, ()):
                if id(own.chunks[i]) not in seen:
                    seen.add(id(own.chunks[i]))
                    defs.append(own.chunks[i])
            for source in (ChunkSource.OPEN, ChunkSource.DISK):
                if source not in modes:
                    continue
                snap = snaps[source]
                for i in snap.by_symbol.get(name, ()):
                    c = snap.chunks[i]
                    if id(c) not in seen and usable(c, source):
                        seen.add(id(c))
                        defs.append(c)
        rankings.append(defs)
        # Ranking 2: the code around recent edits (in the cursor's file, outside its window).
        if recent:
            edited: list[Chunk] = []
            open_snap = snaps[ChunkSource.OPEN]
            for path, line in recent:
                got = (own.around(path, line) if path == query.path
                       else open_snap.around(path, line))
                if got is not None and (path == query.path or usable(got, ChunkSource.OPEN)) \
                        and got not in edited:
                    edited.append(got)
            rankings.append(edited)
        # Rankings 3, 4: BM25 over identifiers, in each source's snapshot.
        for source in (ChunkSource.OPEN, ChunkSource.DISK):
            snap = snaps[source]
            if source not in modes or snap.bm25 is None or not q:
                continue
            scores = snap.bm25.get_scores(q)
            order = scores.argsort()[::-1][: limit * 4]
            rankings.append([snap.chunks[int(i)] for i in order
                             if scores[i] > 0 and usable(snap.chunks[int(i)], source)])
        return rankings


def _line_start(text: str, line: int, anchor: int, anchor_line: int) -> int:
    """The offset where ``line`` starts (``len(text)`` past the end), walking from ``anchor``,
    the start of ``anchor_line``: the window's edges are near the cursor, so this reads a few
    lines, not the document."""
    if line <= 0:
        return 0
    pos, k = anchor, anchor_line
    while k > line and pos > 0:
        pos, k = text.rfind("\n", 0, pos - 1) + 1, k - 1
    while k < line:
        nxt = text.find("\n", pos)
        if nxt < 0:
            return len(text)
        pos, k = nxt + 1, k + 1
    return pos


# The cursor's own file is chunked for its prompts only up to this size (chunking 100 KB of
# Python takes ~30 ms here, and it happens again each time the window slides by a line).
OWN_FILE_MAX_CHARS = 256 * 1024


class OwnFile:
    """The cursor's own file as repository context: the code above its prompt window and below
    it, chunked from the text being edited.

    The index's chunks of an open document are refreshed only when another document asks (the
    one typed in changes on every key), so for its own prompts they may be minutes old: its
    prompt would then depend on the editing history, not on its text, and their line numbers
    would no longer say what the window already shows. The parts above and below the window are
    chunked apart and each kept while its text stays the same, so typing inside the window
    chunks nothing again; a window that slides by a line chunks one side again. One per open
    document; thread-safe (prefetch and the completion worker may both ask)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._head: tuple[str, list[Chunk]] = ("", [])
        self._tail: tuple[str, list[Chunk]] = ("", [])  # lines counted from the tail's start
        self._key: tuple[str, str, int] | None = None
        self._snap = _EMPTY
        self.chunkings = 0  # texts chunked (tests)

    def _chunks(self, cached: tuple[str, list[Chunk]], path: str, text: str,
                language: Language | None) -> tuple[str, list[Chunk]]:
        if cached[0] == text:
            return cached
        self.chunkings += 1
        return text, chunk_file(path, text, language)

    def snapshot(self, query: ContextQuery, text: str, offset: int) -> _Snapshot:
        """The searchable chunks of ``text`` (the cursor's file, cursor at ``offset``) outside
        ``query.window``; nothing for a file over OWN_FILE_MAX_CHARS."""
        if len(text) > OWN_FILE_MAX_CHARS:
            return _EMPTY
        first, end = query.window
        end = max(first, end)
        anchor = text.rfind("\n", 0, offset) + 1
        line = text.count("\n", 0, anchor)
        head_end = _line_start(text, first, anchor, line)
        tail_start = max(head_end, _line_start(text, end, anchor, line))
        head, tail = text[:head_end], text[tail_start:]
        key = (head, tail, end)
        with self._lock:
            return self._snapshot(query, key)

    def _snapshot(self, query: ContextQuery, key: tuple[str, str, int]) -> _Snapshot:
        head, tail, end = key
        if key != self._key:
            self._head = self._chunks(self._head, query.path, head, query.language)
            self._tail = self._chunks(self._tail, query.path, tail, query.language)
            below = [dataclasses.replace(c, start_line=c.start_line + end,
                                         end_line=c.end_line + end) for c in self._tail[1]]
            # By name and place only: a BM25 list of its own would put the file's chunks that
            # share words with the cursor's code (often more of the same function) before
            # the other files' (benchmarks/repo_recall.py: the hole symbol's definition was
            # in the context of 0.58 of the dev projects' holes with it, 0.62 without).
            self._snap = _Snapshot.build([*self._head[1], *below], lexical=False)
            self._key = key
        return self._snap


def fill_budget(ranked: Sequence[Chunk], budget: int, count: Callable[[Chunk], int]
                ) -> list[Chunk]:
    """The best chunks that fit ``budget`` tokens together, without overlaps (a chunk inside a
    chosen one, or the reverse, adds nothing)."""
    out: list[Chunk] = []
    used = 0
    for c in ranked:
        if any(o.path == c.path and o.start_line < c.end_line and c.start_line < o.end_line
               and (o.text in c.text or c.text in o.text) for o in out):
            continue
        n = count(c) + 8  # the file header
        if used + n > budget:
            continue
        out.append(c)
        used += n
    return out


def stable_order(chosen: Sequence[Chunk], previous: Sequence[tuple[str, int, str]]
                 ) -> list[Chunk]:
    """The chosen chunks in the order of the previous prompt, new ones after them (see the
    module doc)."""
    rank = {k: i for i, k in enumerate(previous)}
    old = sorted((c for c in chosen if c.key in rank), key=lambda c: rank[c.key])
    new = [c for c in chosen if c.key not in rank]
    return [*old, *new]


@dataclass(frozen=True)
class RepoTokens:
    """Qwen2.5-Coder's repository tokens, when the tokenizer has them."""

    repo_name: int
    file_sep: int


def repo_tokens(tokenizer: Any) -> RepoTokens | None:
    """The tokenizer's repository tokens (Qwen2.5-Coder), or None."""
    name, sep = tokenizer.token_id("<|repo_name|>"), tokenizer.token_id("<|file_sep|>")
    return RepoTokens(name, sep) if name is not None and sep is not None else None


def render(chunks: Sequence[Chunk], cursor_path: str, repo_name: str,
           encode: Callable[[str], list[int]], tokens: RepoTokens | None,
           language_id: str) -> list[int]:
    """The token ids of the context that goes before the FIM part (empty without chunks).
    Chunks of one file are shown together, in the order of their first chunk."""
    if not chunks:
        return []
    files: dict[str, list[Chunk]] = {}
    for c in chunks:
        files.setdefault(c.path, []).append(c)
    if tokens is not None:
        ids = [tokens.repo_name, *encode(f"{repo_name}\n")]
        for path, parts in files.items():
            ids += [tokens.file_sep, *encode(f"{path}\n" + "\n\n".join(p.text for p in parts)
                                             + "\n")]
        return [*ids, tokens.file_sep, *encode(f"{cursor_path}\n")]
    comment = line_comment(language_id)
    text = "".join(f"{comment} Path: {path}\n" + "\n\n".join(p.text for p in parts) + "\n\n"
                   for path, parts in files.items())
    return encode(text + f"{comment} Path: {cursor_path}\n")
