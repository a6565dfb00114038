"""The decoder's lazy exact check, as ``server/backends/decoding.py`` (``BatchDecoder._checked``)
does it, shared by the simulations: take the best token, ask the constraint, mask it and take
the next best when refused, at most ``MAX_REFUSALS`` times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from server.backends.decoding import MAX_REFUSALS


def pick(constraint: Any, generated: Sequence[int], logits: np.ndarray, run: Any) -> int | None:
    """The first token the constraint accepts (None: every try refused, the decoder fails
    open); counts ``run.checks`` and ``run.refusals``; refused tokens are masked in place."""
    for _ in range(MAX_REFUSALS):
        tok = int(np.argmax(logits))
        run.checks += 1
        if constraint.check(generated, tok):
            return tok
        run.refusals += 1
        logits[tok] = -np.inf
    return None
