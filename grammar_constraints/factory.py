"""The syntax constraint for a server or a benchmark: compiled once per tokenizer, a fresh
constraint per sequence (outlines/xgrammar's split).

:class:`ConstraintFactory` holds what costs: the :class:`~grammar_constraints.vocab.TokenTable`
of the vocabulary, built on first use. :meth:`ConstraintFactory.for_document` binds it to one
request (its language, the text before the cursor, how the model's text is inserted), and each
:meth:`SequenceConstraints.make` gives a new :class:`~grammar_constraints.processor.SyntaxConstraint`
for one sequence of that request: a constraint follows one sequence, so it is never reused.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from grammar_constraints.languages import LANGUAGE_IDS, Syntax, syntax_for
from grammar_constraints.processor import SyntaxConstraint
from grammar_constraints.python_lexer import N_MODES
from grammar_constraints.vocab import TokenTable

logger = logging.getLogger(__name__)

Decode = Callable[[Sequence[int]], str]


class ConstraintFactory:
    """Compiled once per tokenizer (the TokenTable, ~0.5 s, built lazily on first use and
    logged), then a fresh per-sequence SyntaxConstraint for each sequence."""

    def __init__(self, decode: Decode, vocab_size: int, stop_ids: frozenset[int]) -> None:
        """``decode``: token ids → text; ``vocab_size``: the logits' length (the table covers
        every id, so a mask fits the logits); ``stop_ids``: the end-of-generation tokens, which
        the constraint never masks."""
        self._decode = decode
        self._vocab_size = vocab_size
        self._stop_ids = stop_ids
        self._table: TokenTable | None = None
        self._lock = threading.Lock()  # the first requests may come from several threads

    @property
    def table(self) -> TokenTable:
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = self._build()
        return self._table

    def warm(self) -> None:
        """Build the table and every lexical mode's part of it now (about 0.7 s on a 2-core
        CPU; the modes are otherwise compiled on first use, 20-75 ms each), so that no request
        waits for them."""
        table = self.table
        for mode in range(N_MODES):
            table.mode(mode)

    def _build(self) -> TokenTable:
        t0 = time.perf_counter()
        stop = self._stop_ids
        # A stop token's text (``<|endoftext|>``) is not code: it gets none, so the lexical
        # layer leaves it alone.
        table = TokenTable([self._decode([i]) if i not in stop else ""
                            for i in range(self._vocab_size)], stop)
        logger.info("syntax constraint table ready for %d tokens in %.2fs", self._vocab_size,
                    time.perf_counter() - t0)
        return table

    def supports(self, language_id: str) -> bool:
        """Is there a syntax constraint for this LSP language id (dialects included)?"""
        return language_id.lower() in LANGUAGE_IDS

    def for_document(self, language_id: str, prefix: str, render: Callable[[str], str]
                     ) -> SequenceConstraints | None:
        """The constraints of one request, or None when its language has none. ``prefix``:
        the document's text before the cursor; ``render``: the model's text → the text as it
        will be inserted after ``prefix`` (e.g. its first line's indentation adjusted)."""
        syntax = syntax_for(language_id.lower())
        if syntax is None:
            return None
        return SequenceConstraints(self.table, prefix, self._decode, render, syntax)


class SequenceConstraints:
    """One request's constraints: :meth:`make` one per sequence (a retry, each candidate);
    :meth:`stats` adds up their figures."""

    def __init__(self, table: TokenTable, prefix: str, decode: Decode,
                 render: Callable[[str], str], syntax: Syntax) -> None:
        self._table = table
        self._prefix = prefix
        self._decode = decode
        self._render = render
        # NOTE: one syntax for the request's sequences, as the server always had it: a C-family
        # syntax caches the oracle's verdicts by text, which the sequences share (they start
        # from one prefix).
        self._syntax = syntax
        self.made: list[SyntaxConstraint] = []

    def make(self) -> SyntaxConstraint:
        """A new constraint for one sequence (the constraint sees the document as the user
        will: the text before the cursor, then the generation as it will be inserted)."""
        decode, render = self._decode, self._render
        constraint = SyntaxConstraint(self._table, self._prefix,
                                      lambda ids: render(decode(ids)), self._syntax)
        self.made.append(constraint)
        return constraint

    __call__ = make

    def stats(self) -> dict[str, float]:
        """The figures of every constraint made, summed ({} when none was made)."""
        out: dict[str, float] = {}
        for constraint in self.made:
            for key, value in constraint.stats().items():
                out[key] = out.get(key, 0.0) + value
        return out
