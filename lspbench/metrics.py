"""pass@k, CrossCodeEval's line figures and the summary figures of a run (pure functions)."""

from __future__ import annotations

import io
import keyword
import math
import tokenize
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """The unbiased estimator of Chen et al. (2021): the chance that at least one of ``k``
    samples drawn from ``n`` (``c`` of them correct) is correct; None when ``k > n``."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if k > n:
        return None
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def mean_pass_at_k(counts: Sequence[tuple[int, int]], k: int) -> float | None:
    """The mean of :func:`pass_at_k` over tasks given as (n, c); None if any task has n < k."""
    values = [pass_at_k(n, c, k) for n, c in counts]
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100) with linear interpolation, as numpy's default."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


# --- line completion (the ``repo`` suite): CrossCodeEval's figures ----------------------------
# CrossCodeEval (Ding et al., 2023) scores the first line of a suggestion against the rest of
# the reference line: exact match after stripping whitespace, identifier match (the sequence
# of identifiers equal; F1 over their sets) and edit similarity. Identifiers here come from
# Python's tokenizer: NAME tokens that are not keywords (True and False count as identifiers,
# as in CrossCodeEval's keyword list), never from strings or comments. Edit similarity is
# 1 - Levenshtein distance / the longer length (rapidfuzz); CrossCodeEval's fuzz.ratio is the
# Indel variant of the same idea and reads a few points higher on near misses.


def identifiers(code: str) -> list[str]:
    """The identifiers of a line of code, in order. Code cut off mid-statement (an open
    bracket, an unterminated string) keeps the identifiers read before the tokenizer stops."""
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.ERRORTOKEN and tok.string.strip() in ("'", '"'):
                break  # an unterminated string: the rest of the line is its text
            if tok.type == tokenize.NAME and tok.string not in _KEYWORDS:
                out.append(tok.string)
    except (tokenize.TokenError, SyntaxError):
        pass
    return out


_KEYWORDS = frozenset(keyword.kwlist) - {"True", "False"}


@dataclass(frozen=True)
class LineScores:
    exact_match: bool
    identifier_em: bool  # the same identifiers in the same order
    identifier_f1: float  # F1 of the identifier sets (1.0 when both have none)
    edit_similarity: float  # 0..1


def identifier_f1(predicted: Sequence[str], reference: Sequence[str]) -> float:
    pred, ref = set(predicted), set(reference)
    if not pred and not ref:
        return 1.0
    tp = len(pred & ref)
    if tp == 0:
        return 0.0
    precision, recall = tp / len(pred), tp / len(ref)
    return 2 * precision * recall / (precision + recall)


def edit_similarity(predicted: str, reference: str) -> float:
    return float(Levenshtein.normalized_similarity(predicted.strip(), reference.strip()))


def strip_comment(line: str) -> str:
    """The line without a trailing comment (a ``#`` inside a string stays)."""
    try:
        for tok in tokenize.generate_tokens(io.StringIO(line).readline):
            if tok.type == tokenize.COMMENT:
                return line[:tok.start[1]].rstrip()
    except (tokenize.TokenError, SyntaxError):
        pass  # cut off mid-statement: a comment, if any, came before the error
    return line


def score_line(predicted: str, reference: str) -> LineScores:
    """CrossCodeEval's figures for one predicted line against the reference line, both without
    a trailing comment (CrossCodeEval removes comments before scoring too)."""
    predicted, reference = strip_comment(predicted), strip_comment(reference)
    pred_ids, ref_ids = identifiers(predicted), identifiers(reference)
    return LineScores(predicted.strip() == reference.strip(), pred_ids == ref_ids,
                      identifier_f1(pred_ids, ref_ids), edit_similarity(predicted, reference))


def mean(values: Sequence[float | bool]) -> float | None:
    return sum(values) / len(values) if values else None


def sign_test(wins: int, losses: int) -> float:
    """Two-sided exact sign test (McNemar's exact test on paired yes/no outcomes): the chance
    of a split at least this uneven if neither side were better. Ties are left out."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)
