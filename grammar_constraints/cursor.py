"""A per-sequence syntax cursor: the state after each accepted token, and the two checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grammar_constraints.languages import PythonSyntax, Syntax
from grammar_constraints.vocab import TokenTable

Detokenize = Callable[[Sequence[int]], str]


class SyntaxCursor:
    """Follows one generated sequence after a document prefix.

    ``accept(token)`` moves on, ``rollback(n)`` undoes, ``fill_mask(logits)`` applies the
    lexical layer over the whole vocabulary, ``viable_with(token)`` asks the exact oracle about
    one token. ``enabled`` is False when the document's own text before the cursor is not a
    viable prefix (the user's file is broken there): the constraint then stays out of the way.
    """

    def __init__(self, table: TokenTable, prefix: str, detokenize: Detokenize,
                 syntax: Syntax | None = None) -> None:
        """``detokenize``: generated ids → the text as it would stand after ``prefix`` (a
        server may adjust the model's raw output, e.g. its first line's indentation).
        ``syntax``: the language (Python when not given)."""
        self.table = table
        self.syntax: Syntax = syntax or PythonSyntax()
        self._detok = detokenize
        base = prefix[self.syntax.anchor(prefix):]
        start = self.syntax.feed(self.syntax.start(), base)
        self.enabled = start is not None and self.syntax.viable(base, start)
        # What each token's check parses before the generated text: the same verdicts on a
        # shorter text (for Python, the open blocks without their finished statements).
        self.base = self.syntax.skeleton(base) if self.enabled else base
        self.ids: list[int] = []
        self._texts: list[str] = [""]  # generated text after each accepted token
        self._states: list[Any] = [start if start is not None else self.syntax.start()]
        self._last: tuple[tuple[int, int], tuple[str, Any]] | None = None

    @property
    def text(self) -> str:
        return self._texts[-1]

    @property
    def state(self) -> Any:
        return self._states[-1]

    def _after(self, token: int) -> tuple[str, Any]:
        # The token checked last is usually the one accepted next: decode it once.
        key = (len(self.ids), token)
        if self._last is not None and self._last[0] == key:
            return self._last[1]
        out = self._decode_after(token)
        self._last = (key, out)
        return out

    def _decode_after(self, token: int) -> tuple[str, Any]:
        text = self._detok([*self.ids, token])
        prev = self.text
        if text.startswith(prev):
            return text, self.syntax.feed(self.state, text[len(prev):])
        # A multi-byte character completed differently: redo from the start.
        return text, self.syntax.feed(self._states[0], text)

    def accept(self, token: int) -> None:
        text, state = self._after(token)
        self.ids.append(token)
        self._texts.append(text)
        # A lexically impossible token can only come in when failing open: keep the last good
        # state, so later checks stay meaningful rather than failing everything.
        self._states.append(state if state is not None else self.state)

    def rollback(self, n: int) -> None:
        self._last = None  # keyed by position: a rolled-back position may come back changed
        for _ in range(min(n, len(self.ids))):
            self.ids.pop()
            self._texts.pop()
            self._states.pop()

    def sync(self, generated: Sequence[int]) -> None:
        """Catch up with the decoder's sequence (tokens appended, or fewer after a rollback)."""
        common = 0
        for a, b in zip(self.ids, generated, strict=False):
            if a != b:
                break
            common += 1
        self.rollback(len(self.ids) - common)
        for tok in generated[common:]:
            self.accept(tok)

    def fill_mask(self, logits: np.ndarray) -> None:
        self.syntax.fill_mask(self.table, logits, self.state)

    def viable_with(self, token: int) -> bool:
        if token in self.table.exempt:
            return True
        text, state = self._after(token)
        if state is None:
            return False
        return self.syntax.still_viable(self.base + text, state, self.base + self.text,
                                        self.state)
