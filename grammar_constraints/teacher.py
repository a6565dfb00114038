"""Teacher forcing: feed a real, valid file through the syntax cursor the way the server would
(a fresh cursor every few lines, its prefix the text before), and collect the tokens it refuses.
A sound constraint refuses none; the soundness test and the held-out benchmark share this."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from grammar_constraints.cursor import SyntaxCursor
from grammar_constraints.languages import Syntax
from grammar_constraints.vocab import TokenTable

CHUNK_LINES = 8  # a completion's worth: a new cursor (a new request) every 8 lines
MAX_CHARS = 6000  # the part of a file fed (cut before a top-level declaration)


@dataclass
class Forced:
    """What teacher forcing found: tokens fed, cursors that stood aside (they judged the text
    before them broken, so they constrain nothing), and the refusals."""

    fed: int = 0
    aside: int = 0
    chunks: int = 0
    refused: list[str] = field(default_factory=list)

    def add(self, other: Forced, label: str = "") -> None:
        self.fed += other.fed
        self.aside += other.aside
        self.chunks += other.chunks
        self.refused += [f"{label}{r}" for r in other.refused]


def cut_whole(syntax: Syntax, source: str, max_chars: int = MAX_CHARS) -> str:
    """The file up to ``max_chars``, cut before a top-level declaration so it stays valid."""
    return source if len(source) <= max_chars else source[: syntax.anchor(source[:max_chars])]


def teacher_force_chunks(encode: Callable[[str], Sequence[int]],
                         decode: Callable[[Sequence[int]], str], table: TokenTable,
                         syntax: Syntax, source: str, chunk_lines: int = CHUNK_LINES) -> Forced:
    """Feed ``source`` ``chunk_lines`` lines at a time, each through a fresh cursor whose
    prefix is the text before it."""
    lines = source.splitlines(keepends=True)
    out = Forced()
    for start in range(0, len(lines), chunk_lines):
        out.chunks += 1
        prefix = "".join(lines[:start])
        ids = list(encode("".join(lines[start:start + chunk_lines])))
        cursor = SyntaxCursor(table, prefix, decode, syntax)
        if not cursor.enabled:  # fails open: no refusal, but no constraint either
            out.aside += 1
            continue
        for k, tok in enumerate(ids):
            out.fed += 1
            logits = np.zeros(table.size, dtype=np.float32)
            cursor.fill_mask(logits)  # the vectorised layer, then the exact check
            if not np.isfinite(logits[tok]) or not cursor.viable_with(tok):
                out.refused.append(f"after {(prefix + decode(ids[:k]))[-70:]!r}: "
                                   f"{decode([tok])!r}")
            cursor.accept(tok)
    return out
