"""Repository context, pure stages (server/repo_context.py): chunks along definitions, what the
cursor's code refers to, ranking (definitions of used names first, BM25 next), the budget, an
order that keeps the KV cache, and the prompt layout."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from server.languages import Language
from server.repo_context import (
    MAX_DEF_LINES,
    Chunk,
    ChunkIndex,
    ChunkSource,
    OwnFile,
    RepoTokens,
    chunk_file,
    fill_budget,
    identifiers,
    imported_names,
    index_tokens,
    query_of,
    render,
    stable_order,
)

MODELS = '''"""Models."""
import enum

MAX_ITEMS = 50
DEFAULT_NAME, OTHER = "x", "y"


class Colour(enum.Enum):
    RED = 1


@dataclass
class Basket:
    """A basket of items."""
    owner: str
    items: list = field(default_factory=list)

    def add_item(self, item, count=1):
        """Add ``count`` of ``item``."""
        self.items.extend([item] * count)

    @property
    def total(self):
        return len(self.items)


def make_basket(owner, *items):
    basket = Basket(owner)
''' + "".join(f"    basket.add_item({i})\n" for i in range(40)) + "    return basket\n"


def by_symbol(chunks: list[Chunk], name: str) -> Chunk:
    return next(c for c in chunks if name in c.symbols)


def test_python_chunks_follow_definitions() -> None:
    chunks = chunk_file("shop/models.py", MODELS, Language.PYTHON)
    consts = by_symbol(chunks, "MAX_ITEMS")
    assert {"MAX_ITEMS", "DEFAULT_NAME", "OTHER"} <= consts.symbols
    assert "class Colour" in by_symbol(chunks, "Colour").text
    outline = by_symbol(chunks, "Basket")
    # The class outline: decorator, header, docstring, fields, method signatures, no bodies.
    assert outline.text.startswith("@dataclass\nclass Basket:")
    assert "owner: str" in outline.text and "def add_item(self, item, count=1):" in outline.text
    assert "self.items.extend" not in outline.text and "def total(self):" in outline.text
    method = by_symbol(chunks, "Basket.add_item")
    assert "add_item" in method.symbols and "self.items.extend" in method.text
    # A long body keeps its first lines.
    long = by_symbol(chunks, "make_basket")
    assert long.text.count("\n") == MAX_DEF_LINES and long.text.endswith("# ...")
    assert long.end_line - long.start_line > MAX_DEF_LINES


def test_other_languages_chunk_by_their_grammar_or_by_lines() -> None:
    go = "package m\n\nconst Limit = 3\n\nfunc Parse(s string) int {\n\treturn len(s)\n}\n"
    assert "Parse" in by_symbol(chunk_file("m.go", go, Language.GO), "Parse").symbols
    js = "export function parseVersion(s) {\n  return s.split('.');\n}\nclass Tag {}\n"
    js_chunks = chunk_file("v.js", js, Language.JAVASCRIPT)
    assert by_symbol(js_chunks, "parseVersion") and by_symbol(js_chunks, "Tag")
    text = "\n".join(f"line {i}" for i in range(70))
    windows = chunk_file("notes.txt", text, None)
    assert [c.start_line for c in windows] == [0, 30, 60] and not windows[0].symbols
    assert chunk_file("empty.py", "  \n", Language.PYTHON) == []


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_chunking_never_raises(text: str) -> None:
    for lang in (Language.PYTHON, Language.RUST, None):
        for c in chunk_file("x", text, lang):
            assert c.start_line < c.end_line or c.symbols


def test_identifiers_and_index_tokens() -> None:
    assert identifiers("def parse_version(self, x): return None") == ["parse_version"]
    assert index_tokens("ParseVersion") == ("parseversion", "parse", "version")
    assert "version" in index_tokens("parse_version")


def test_imported_names() -> None:
    py = ("from .models import Basket, make_basket as mk\nimport shop.util as u\n"
          "from x import (\n    A,\n    B,\n)\nfrom y import *\n")
    assert imported_names(py, Language.PYTHON) == ["Basket", "make_basket", "A", "B"]
    js = "import { parse, format as fmt } from './v';\nimport React from 'react';\n"
    assert imported_names(js, Language.TYPESCRIPT) == ["parse", "format", "React"]


@settings(max_examples=80, deadline=None)
@given(st.text(alphabet="abc_(). ", max_size=20))
def test_typing_within_a_line_never_changes_the_query(typed: str) -> None:
    before = "import os\nfrom .models import Basket\n\ndef f(owner):\n    b = "
    after = "\n    return b\n"
    q0 = query_of("f.py", Language.PYTHON, before + after, len(before), (0, 6))
    text = before + typed + after
    q1 = query_of("f.py", Language.PYTHON, text, len(before) + len(typed), (0, 6))
    assert q0 == q1


def index_of(files: dict[str, str], source: ChunkSource = ChunkSource.DISK) -> ChunkIndex:
    index = ChunkIndex()
    for path, text in files.items():
        index.set_file(path, chunk_file(path, text, Language.PYTHON), source)
    return index


UTIL = "def slugify(text):\n    return text.lower().replace(' ', '-')\n"
NOISE = "".join(f"def noise_{i}(a):\n    return a + {i}\n\n" for i in range(30))


def test_definitions_of_names_used_near_the_cursor_come_first() -> None:
    index = index_of({"shop/models.py": MODELS, "shop/util.py": UTIL, "shop/noise.py": NOISE})
    text = "from .models import Basket\n\ndef checkout(owner):\n    b = Basket(owner)\n    b."
    q = query_of("shop/cart.py", Language.PYTHON, text, len(text), (0, 5))
    ranked = index.search(q, frozenset({ChunkSource.DISK}))
    assert "Basket" in ranked[0].symbols  # used on the line above, and imported
    assert not any("noise_3" in c.symbols for c in ranked[:3])


def test_lexical_matches_without_imports() -> None:
    index = index_of({"shop/util.py": UTIL, "shop/noise.py": NOISE})
    text = "def title(name):\n    # make a slug of the text\n    s = text.lower()\n    "
    q = query_of("shop/page.py", Language.PYTHON, text, len(text), (0, 4))
    ranked = index.search(q, frozenset({ChunkSource.DISK}))
    assert ranked and "slugify" in ranked[0].symbols


def test_sources_and_the_cursor_window() -> None:
    index = index_of({"a.py": UTIL})
    index.set_file("b.py", chunk_file("b.py", "def helper():\n    return 1\n", Language.PYTHON),
                   ChunkSource.OPEN)
    text = "x = slugify(helper())\n"
    q = query_of("c.py", Language.PYTHON, text + "y", len(text) + 1, (0, 2))
    disk_only = index.search(q, frozenset({ChunkSource.DISK}))
    assert {c.path for c in disk_only} == {"a.py"}
    open_only = index.search(q, frozenset({ChunkSource.OPEN}))
    assert {c.path for c in open_only} == {"b.py"}
    # The cursor's own file: only what lies outside the lines already in the prompt, and
    # never from the index (its chunks there may be older than the text).
    own = "def slugify(t):\n    return t\n\n\n" + "z = 1\n" * 5 + text
    index.set_file("c.py", chunk_file("c.py", own, Language.PYTHON), ChunkSource.OPEN)
    inside = query_of("c.py", Language.PYTHON, own, len(own), (0, 12))
    assert all(c.path != "c.py" for c in index.search(inside, frozenset(ChunkSource)))
    outside = query_of("c.py", Language.PYTHON, own, len(own), (4, 12))
    assert all(c.path != "c.py" for c in index.search(outside, frozenset(ChunkSource)))
    mine = OwnFile().snapshot(outside, own, len(own))
    got = index.search(outside, frozenset(ChunkSource), own=mine)
    assert [(c.start_line, c.symbols) for c in got if c.path == "c.py"][0] == (0, {"slugify"})
    assert OwnFile().snapshot(inside, own, len(own)).chunks == []


PY = "".join(f"def f{i}(a):\n    return a + {i}\n\n\n" for i in range(40))


@given(st.integers(0, 160), st.integers(0, 40), st.integers(0, 40))
@settings(max_examples=60, deadline=None)
def test_own_file_chunks_are_those_of_the_text_outside_the_window(cursor_line: int, up: int,
                                                                   down: int) -> None:
    """Whatever the window, the chunks are the text's own lines above and below it, with their
    line numbers in the file; and they depend on the text only, not on what came before."""
    lines = PY.splitlines(keepends=True)
    offset = sum(map(len, lines[:cursor_line])) + 2 * (cursor_line < len(lines))
    window = (max(0, cursor_line - up), cursor_line + down + 1)
    q = query_of("m.py", Language.PYTHON, PY, offset, window)
    warm = OwnFile()
    warm.snapshot(query_of("m.py", Language.PYTHON, "x = 1\n" + PY, 3, (0, 3)), "x = 1\n" + PY, 3)
    snaps = [OwnFile().snapshot(q, PY, offset), warm.snapshot(q, PY, offset)]
    assert [c.key for c in snaps[0].chunks] == [c.key for c in snaps[1].chunks]
    for c in snaps[0].chunks:
        assert c.end_line <= window[0] or c.start_line >= window[1]
        assert c.text == "".join(lines[c.start_line:c.end_line]).rstrip("\n")
    above = {f"f{i}" for i in range(40) if 4 * i + 2 <= window[0]}
    below = {f"f{i}" for i in range(40) if 4 * i >= window[1]}
    assert above | below <= {s for c in snaps[0].chunks for s in c.symbols}


def test_own_file_typing_in_the_window_chunks_nothing_again() -> None:
    own = OwnFile()
    head, tail = PY[:400], PY[400:]
    for typed in ("", "x", "xy", "xyz = 1"):
        text = head + typed + "\n" + tail
        line = head.count("\n")
        own.snapshot(query_of("m.py", Language.PYTHON, text, len(head) + len(typed),
                              (line - 3, line + 4)), text, len(head) + len(typed))
    assert own.chunkings == 2  # the part above the window and the part below, once each


def test_an_open_document_wins_over_the_disk_until_closed() -> None:
    index = ChunkIndex()
    index.set_file("m.py", chunk_file("m.py", "def edited():\n    pass\n", Language.PYTHON),
                   ChunkSource.OPEN)
    index.set_file("m.py", chunk_file("m.py", "def on_disk():\n    pass\n", Language.PYTHON),
                   ChunkSource.DISK)
    text = "edited()\non_disk()\n"
    q = query_of("x.py", Language.PYTHON, text, len(text), (0, 0))
    assert {s for c in index.search(q, frozenset(ChunkSource)) for s in c.symbols} == {"edited"}
    index.remove_file("m.py", ChunkSource.DISK)  # not the disk's to remove
    assert len(index) == 1
    index.remove_file("m.py", ChunkSource.OPEN)
    assert len(index) == 0


def chunk(path: str, line: int, text: str) -> Chunk:
    return Chunk(path, line, line + text.count("\n") + 1, text, frozenset(), "")


def test_fill_budget() -> None:
    a, b, c = chunk("a.py", 0, "a" * 40), chunk("b.py", 0, "b" * 400), chunk("c.py", 0, "c" * 40)
    inner = chunk("a.py", 0, "a" * 20)
    got = fill_budget([a, inner, b, c], 100, lambda ch: len(ch.text) // 2)
    assert got == [a, c]  # b does not fit; inner is inside a


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), unique=True, max_size=12),
       st.lists(st.integers(0, 30), unique=True, max_size=12))
def test_stable_order_keeps_the_previous_prompts_start(prev: list[int], now: list[int]) -> None:
    chunks = {i: chunk("f.py", i, f"c{i}") for i in range(31)}
    previous = [chunks[i].key for i in prev]
    ordered = stable_order([chunks[i] for i in now], previous)
    assert sorted(c.start_line for c in ordered) == sorted(now)
    kept = [c.start_line for c in ordered if c.start_line in prev]
    assert kept == [i for i in prev if i in now]  # the previous order
    assert ordered[:len(kept)] == [chunks[i] for i in kept]  # before the new ones


def test_render_layouts() -> None:
    def enc(text: str) -> list[int]:
        return [ord(ch) for ch in text]

    chunks = [chunk("pkg/a.py", 0, "def f(): ..."), chunk("pkg/b.py", 3, "X = 1"),
              chunk("pkg/a.py", 9, "def g(): ...")]
    ids = render(chunks, "pkg/c.py", "proj", enc, RepoTokens(1, 2), "python")
    text = "".join(chr(i) if i > 2 else f"<{i}>" for i in ids)
    assert text == ("<1>proj\n<2>pkg/a.py\ndef f(): ...\n\ndef g(): ...\n<2>pkg/b.py\nX = 1\n"
                    "<2>pkg/c.py\n")
    plain = "".join(map(chr, render(chunks[:1], "pkg/c.py", "proj", enc, None, "python")))
    assert plain == "# Path: pkg/a.py\ndef f(): ...\n\n# Path: pkg/c.py\n"
    assert render([], "pkg/c.py", "proj", enc, None, "python") == []


def test_a_large_disk_index_is_rebuilt_in_the_background(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import server.repo_context as rc

    monkeypatch.setattr(rc, "SYNC_REBUILD_CHUNKS", 5)
    index = index_of({f"m{i}.py": f"def f{i}():\n    return {i}\n" for i in range(20)})
    text = "x = f3()\n"
    q = query_of("q.py", Language.PYTHON, text, len(text), (0, 0))
    first = index.search(q, frozenset({ChunkSource.DISK}))  # no snapshot yet: nothing waits
    assert index.wait_idle() and index.rebuilds == 1
    assert not first or "f3" in first[0].symbols
    assert "f3" in index.search(q, frozenset({ChunkSource.DISK}))[0].symbols
    # A changed file: the old snapshot serves until the new one is built; a file that went
    # away is never offered meanwhile.
    index.remove_file("m3.py")
    assert all(c.path != "m3.py" for c in index.search(q, frozenset({ChunkSource.DISK})))
    assert index.wait_idle() and index.rebuilds == 2


def test_own_file_over_the_size_cap_gives_nothing() -> None:
    from server.repo_context import OWN_FILE_MAX_CHARS

    big = PY * (OWN_FILE_MAX_CHARS // len(PY) + 1)
    q = query_of("m.py", Language.PYTHON, big, len(big), (0, 1))
    assert OwnFile().snapshot(q, big, len(big)).chunks == []
    small = PY
    q = query_of("m.py", Language.PYTHON, small, len(small), (0, 1))
    assert OwnFile().snapshot(q, small, len(small)).chunks


def test_recent_edits_rank_the_code_around_them() -> None:
    """An edited function in another open document comes first though nothing near the cursor
    names it; in the cursor's own file only outside its window; a method, not its class."""
    index = ChunkIndex()
    other = "".join(f"def h{i}(x):\n    return x - {i}\n\n\n" for i in range(20))
    index.set_file("o.py", chunk_file("o.py", other, Language.PYTHON), ChunkSource.OPEN)
    index.set_file("k.py", chunk_file("k.py", MODELS, Language.PYTHON), ChunkSource.OPEN)
    text = PY + "value = compute(\n"
    q = query_of("m.py", Language.PYTHON, text, len(text), (150, 162))
    own = OwnFile().snapshot(q, text, len(text))
    def rank(chunks: list[Chunk], name: str) -> int:
        return next((i for i, c in enumerate(chunks) if name in c.symbols), len(chunks))

    plain = index.search(q, frozenset(ChunkSource), own=own)
    got = index.search(q, frozenset(ChunkSource), own=own,
                       recent=[("o.py", 13 * 4 + 1), ("m.py", 155), ("m.py", 9)])
    assert rank(got, "h13") < 8 and rank(plain, "h13") == len(plain)  # not there
    assert rank(got, "f2") < 8 and rank(plain, "f2") == len(plain)  # (m.py:155: in the window)
    assert all(c.path != "m.py" or c.end_line <= 150 or c.start_line >= 162 for c in got)
    method = MODELS.splitlines().index("    def total(self):")
    got = index.search(q, frozenset(ChunkSource), recent=[("k.py", method + 1)])
    assert got[0].symbols == {"total", "Basket.total"}  # the method, not the class outline
