"""The lexical layer over the whole vocabulary, compiled once per tokenizer.

For every lexical mode (in code, in a comment, in each kind of string, ...) and every token,
what the token does to a state in that mode whose bracket stack is not known: it fails whatever
the stack (a line break inside a one-line string, ``(]``, ``$`` in code), or it closes some
brackets below its own (``))`` needs two open ``(``). Tokens are grouped by what they need, so
masking for a concrete state is a few numpy assignments, whatever the vocabulary size.

Most tokens hold none of the characters that matter (quotes, ``#``, backslashes, brackets, line
breaks, characters never valid in code): they are never simulated. Modes are compiled lazily, on
first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from grammar_constraints.python_lexer import CODE_ESC, FORBIDDEN, N_MODES, signature

_SPECIAL_CHARS = frozenset("'\"#\\()[]{}\n\r") | FORBIDDEN
# The C-family closer mask: a token with one of these may change the lexical mode (a string,
# a character or lifetime, a comment, a directive, an escape, a template), so its brackets
# are not simply brackets; such tokens are never masked by it.
_CLIKE_CONTEXTUAL = frozenset("'\"`/#\\$")
_OPENER_OF = {")": "(", "]": "[", "}": "{"}


@dataclass(frozen=True)
class ModeTable:
    fail: np.ndarray  # token ids that fail in this mode whatever the stack
    needs: tuple[tuple[str, np.ndarray], ...]  # (closed openers innermost first, token ids)


class TokenTable:
    """Token texts and their lexical signatures for one tokenizer."""

    def __init__(self, texts: Sequence[str], always_allowed: Iterable[int] = ()) -> None:
        self.texts = list(texts)
        self.size = len(self.texts)
        exempt = set(always_allowed)
        self.special = np.array(
            [i for i, t in enumerate(self.texts)
             if i not in exempt and t and not _SPECIAL_CHARS.isdisjoint(t)], dtype=np.int64)
        self.exempt = frozenset(exempt)
        self.exempt_ids = np.array(sorted(i for i in exempt if 0 <= i < self.size), dtype=np.int64)
        self._modes: list[ModeTable | None] = [None] * N_MODES
        self._closers: ModeTable | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_decoder(cls, size: int, piece: Callable[[int], str],
                     always_allowed: Iterable[int] = ()) -> TokenTable:
        return cls([piece(i) for i in range(size)], always_allowed)

    def mode(self, mode: int) -> ModeTable:
        table = self._modes[mode]
        if table is None:
            with self._lock:
                table = self._modes[mode]
                if table is None:
                    table = self._modes[mode] = self._compile(mode)
        return table

    def _compile(self, mode: int) -> ModeTable:
        fail: list[int] = []
        needs: dict[str, list[int]] = {}
        if mode == CODE_ESC:
            # After a backslash in code only a line break may come: check every token.
            ids: Iterable[int] = (i for i in range(self.size)
                                  if i not in self.exempt and self.texts[i])
        else:
            ids = self.special.tolist()
        for i in ids:
            failed, need = signature(mode, self.texts[i])
            if failed:
                fail.append(i)
            elif need:
                needs.setdefault(need, []).append(i)
        return ModeTable(np.array(fail, dtype=np.int64),
                         tuple((k, np.array(v, dtype=np.int64)) for k, v in needs.items()))

    def mask(self, logits: np.ndarray, mode: int, stack: str, run: int = 0) -> None:
        """Set the logits of tokens that cannot follow a state (mode, stack, run) to -inf."""
        if run:
            # Quotes just read inside a triple-quoted string: the signatures assume none (one
            # or two more may close it), so mask nothing here; the exact check still runs.
            return
        table = self.mode(mode)
        if table.fail.size:
            logits[table.fail] = -np.inf
        top = stack[::-1]  # innermost first, as needs are written
        for need, ids in table.needs:
            if not top.startswith(need):
                logits[ids] = -np.inf

    def closers(self) -> ModeTable:
        """The C-family layer, in code: tokens made only of characters whose meaning does not
        depend on the lexical context, grouped by the brackets they close below their own."""
        if self._closers is None:
            with self._lock:
                if self._closers is None:
                    fail: list[int] = []
                    needs: dict[str, list[int]] = {}
                    for i, text in enumerate(self.texts):
                        if i in self.exempt or not text or _CLIKE_CONTEXTUAL.intersection(text):
                            continue
                        failed, need = closer_signature(text)
                        if failed:
                            fail.append(i)
                        elif need:
                            needs.setdefault(need, []).append(i)
                    self._closers = ModeTable(
                        np.array(fail, dtype=np.int64),
                        tuple((k, np.array(v, dtype=np.int64)) for k, v in needs.items()))
        return self._closers

    def mask_closers(self, logits: np.ndarray, stack: str) -> None:
        """C-family code whose bracket stack is ``stack`` (openers, innermost last; a do or try
        block's marker stands for its ``{``): mask the tokens whose closers do not match it."""
        if "$" in stack:  # a template substitution: after its "}" brackets are text
            return
        table = self.closers()
        if table.fail.size:
            logits[table.fail] = -np.inf
        top = "".join(c if c in "([" else "{" for c in reversed(stack))
        for need, ids in table.needs:
            if not top.startswith(need):
                logits[ids] = -np.inf


def closer_signature(text: str) -> tuple[bool, str]:
    """What a token of plain code does to the brackets: (it fails whatever the stack, the
    openers its unmatched closers close, innermost first). ``(]`` fails; ``)}`` needs ``({``
    on top of the stack (the ``(`` innermost)."""
    own: list[str] = []
    need: list[str] = []
    for ch in text:
        if ch in "([{":
            own.append(ch)
        elif ch in _OPENER_OF:
            if own:
                if own.pop() != _OPENER_OF[ch]:
                    return True, ""
            else:
                need.append(_OPENER_OF[ch])
    return False, "".join(need)
