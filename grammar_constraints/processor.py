"""The syntax cursor as a per-sequence logits processor for pingti's batch decoder (every
backend, llama.cpp and transformers alike, decodes through ``server/backends/decoding.py``)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from grammar_constraints.cursor import Detokenize, SyntaxCursor
from grammar_constraints.languages import Syntax
from grammar_constraints.vocab import TokenTable

logger = logging.getLogger(__name__)


@runtime_checkable
class SequenceProcessor(Protocol):
    """What the batch decoder asks of one sequence's constraint (the shape of
    :class:`server.backends.decoding.LogitsProcessor`, with its optional ``check``)."""

    def __call__(self, generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        """The logits to sample from (changed in place or a new array) after ``generated``."""
        ...

    def check(self, generated: Sequence[int], token: int) -> bool:
        """May the token the sampler picked follow ``generated``? A refused token is masked and
        another one sampled."""
        ...


class SyntaxConstraint:
    """One sequence's constraint, for :class:`server.backends.decoding.BatchDecoder`.

    ``__call__`` masks (in place) the lexically impossible tokens (whole vocabulary, vectorised);
    ``check`` asks the exact oracle about the token the sampler picked (the decoder masks it and
    samples again when it is refused). It fails open: it never masks every token, and an error
    of its own is logged and ends the constraint for this sequence, not the generation.
    """

    def __init__(self, table: TokenTable, prefix: str, detokenize: Detokenize,
                 syntax: Syntax | None = None) -> None:
        self.cursor = SyntaxCursor(table, prefix, detokenize, syntax)
        self.active = self.cursor.enabled
        # Figures for benchmarks: time spent here, tokens refused by each layer.
        self.mask_s = 0.0
        self.check_s = 0.0
        self.steps = 0
        self.refused = 0

    def __call__(self, generated: Sequence[int], logits: np.ndarray) -> np.ndarray:
        if not self.active:
            return logits
        t0 = time.perf_counter()
        try:
            self.cursor.sync(generated)
            self.steps += 1
            keep = self.cursor.table.exempt_ids
            # The lexical layer never masks the exempt (end-of-generation) tokens, so if one of
            # them is still possible something is left; otherwise check on a copy.
            if keep.size and np.isfinite(logits[keep]).any():
                self.cursor.fill_mask(logits)
            else:
                masked = logits.copy()
                self.cursor.fill_mask(masked)
                if np.isfinite(masked).any():
                    logits = masked
                else:  # fail open: a constraint that leaves nothing is wrong, not the model
                    logger.debug("syntax constraint allowed no token; not constraining this step")
        except Exception:  # noqa: BLE001 - the constraint must never break generation
            logger.exception("syntax constraint failed; generating without it")
            self.active = False
        finally:
            self.mask_s += time.perf_counter() - t0
        return logits

    def check(self, generated: Sequence[int], token: int) -> bool:
        """May ``token`` follow ``generated``? (True when the constraint is off.)"""
        if not self.active:
            return True
        t0 = time.perf_counter()
        try:
            self.cursor.sync(generated)
            ok = self.cursor.viable_with(token)
        except Exception:  # noqa: BLE001
            logger.exception("syntax constraint failed; generating without it")
            self.active = False
            ok = True
        finally:
            self.check_s += time.perf_counter() - t0
        if not ok:
            self.refused += 1
            if logger.isEnabledFor(logging.DEBUG):
                text, _ = self.cursor._after(token)
                logger.debug("syntax constraint refused %r after %r", text[len(self.cursor.text):],
                             (self.cursor.base + self.cursor.text)[-80:])
        return ok

    def stats(self) -> dict[str, float]:
        return {"syntax_steps": self.steps, "syntax_mask_s": self.mask_s,
                "syntax_check_s": self.check_s, "syntax_refused": self.refused,
                "syntax_active": float(self.active)}
