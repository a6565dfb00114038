"""Small statistics over text."""

import re
from collections import Counter

_WORD = re.compile(r"[a-z']+")


def word_frequencies(text: str, top: int = 3) -> list[tuple[str, int]]:
    """The ``top`` most frequent lower-cased words, ties broken alphabetically.

    >>> word_frequencies("the cat and the hat", top=2)
    [('the', 2), ('and', 1)]
    """
    if top < 0:
        raise ValueError("top must be >= 0")
    counts = Counter(_WORD.findall(text.lower()))
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ranked[:top]


def average_word_length(text: str) -> float:
    """Mean length of the words in ``text``; 0.0 when there are none.

    >>> average_word_length("ab abcd")
    3.0
    """
    words = _WORD.findall(text.lower())
    if not words:
        return 0.0
    return sum(len(w) for w in words) / len(words)
