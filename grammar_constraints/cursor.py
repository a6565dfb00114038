"""A per-sequence syntax cursor: the state after each accepted token, and the two checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from grammar_constraints.languages import PythonSyntax, Syntax
from grammar_constraints.python_lexer import CODE
from grammar_constraints.vocab import TokenTable

Detokenize = Callable[[Sequence[int]], str]

# Generated text this long (characters) after the base is folded into it at the next line end
# (see SyntaxCursor._fold).
FOLD_CHARS = 200


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
        # The base with generated lines folded in: (tokens accepted then, the skeleton of base
        # + the text then), newest last; see _fold.
        self._folds: list[tuple[int, str]] = []
        self._foldable = self.enabled and isinstance(self.syntax, PythonSyntax)
        self.ids: list[int] = []
        self._texts: list[str] = [""]  # generated text after each accepted token
        self._states: list[Any] = [start if start is not None else self.syntax.start()]
        self._last: tuple[tuple[int, int], tuple[str, Any]] | None = None
        self._passed: tuple[int, int] | None = None  # (position, token) the last check passed

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
        passed = self._passed == (len(self.ids), token)
        self.ids.append(token)
        self._texts.append(text)
        # A lexically impossible token can only come in when failing open: keep the last good
        # state, so later checks stay meaningful rather than failing everything.
        self._states.append(state if state is not None else self.state)
        if self._foldable and passed:
            # Only a text the oracle found viable: after a token taken against its verdict
            # (failing open) the skeleton's guarantee does not hold.
            self._fold()

    def _fold(self) -> None:
        """Keep what each check parses short as the generation grows: at the end of a logical
        line, once the text since the last fold is FOLD_CHARS long, the base becomes the
        skeleton of base + text, so finished generated statements are elided as the document's
        own are (the skeleton's guarantee: every continuation gets the same verdict). A
        256-token suggestion no longer re-parses all it wrote for every token."""
        text, state = self.text, self.state
        n, base = self._folds[-1] if self._folds else (0, self.base)
        done = self._texts[n]
        if len(text) - len(done) < FOLD_CHARS or not text.endswith(("\n", "\r")) or \
                state.mode != CODE or state.stack or not text.startswith(done):
            return
        self._folds.append((len(self.ids), self.syntax.skeleton(base + text[len(done):])))

    def _probe_text(self, text: str) -> str:
        """What a check parses for the generated ``text``: the newest fold that ``text``
        continues, then the rest of it."""
        for n, base in reversed(self._folds):
            done = self._texts[n]
            if text.startswith(done):
                return base + text[len(done):]
        return self.base + text

    def rollback(self, n: int) -> None:
        if n <= 0:
            return  # (sync calls this every step: the decoded token below must stay cached)
        # Keyed by position: a rolled-back position may come back with other text.
        self._last = self._passed = None
        for _ in range(min(n, len(self.ids))):
            self.ids.pop()
            self._texts.pop()
            self._states.pop()
        while self._folds and self._folds[-1][0] > len(self.ids):
            self._folds.pop()

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
        ok = state is not None and self.syntax.still_viable(
            self._probe_text(text), state, self._probe_text(self.text), self.state)
        self._passed = (len(self.ids), token) if ok else None
        return ok
