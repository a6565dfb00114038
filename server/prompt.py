"""Fill-in-the-middle prompts within a token budget.

The prompt is ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`` with the model's own
marker tokens (PSM order, as Qwen2.5-Coder, StarCoder and DeepSeek-Coder were trained). The prefix
gets ``prefix_share`` of the budget and the suffix what is left. Both are cut at line
boundaries, the prefix from the front and the suffix from the back, so that a keystroke changes
only the end of the prefix (which keeps a backend's prefix cache useful). A single line longer
than its budget (a minified file) is cut inside: the prefix keeps the end of the cursor's line,
the suffix the start of the line after the cursor.

Cost: bounded by the budget, not by the document. Only a window of about ``budget`` times
``_CHARS_PER_TOKEN`` characters next to the cursor is ever tokenized, a few times over (binary
searches over line starts, or over characters within one long line); nothing here splits the
whole document into lines.

A model without FIM tokens gets the prefix alone.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from server.backends.base import FimTokens
from server.documents import line_starts

Encode = Callable[[str], list[int]]

_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Prompt:
    ids: list[int]
    prefix_text: str  # the part of the document's prefix that made it into the prompt
    suffix_text: str
    prefix_tokens: int
    suffix_tokens: int

    @property
    def n_tokens(self) -> int:
        return len(self.ids)


# A generous upper bound of characters per token for code, used only to avoid tokenizing a whole
# large file on every keystroke before trimming it.
_CHARS_PER_TOKEN = 8


def tail_within(text: str, budget: int, encode: Encode) -> tuple[str, list[int]]:
    """The longest tail of ``text`` that starts at a line start and encodes to at most
    ``budget`` tokens; if even the last line is too long, the longest tail of that line."""
    if budget <= 0 or not text:
        return "", []
    window = _window(text, budget, encode, from_end=True)
    return _tail(window, len(window) < len(text), budget, encode)


def _tail(window: str, cut: bool, budget: int, encode: Encode) -> tuple[str, list[int]]:
    """:func:`tail_within` on the end of a text; ``cut``: the window starts mid-text."""
    starts = line_starts(window)
    if cut:
        starts = starts[1:]  # the window starts mid-line: that line cannot be whole
    best = _earliest_fitting(window, starts, budget, encode)
    if best is not None:
        return best
    # Even the last line is too long: keep as many of its last characters as fit.
    line = window[starts[-1]:] if starts else window
    return _longest(line, budget, encode, from_end=True)


def _longest(line: str, budget: int, encode: Encode, from_end: bool) -> tuple[str, list[int]]:
    """The longest tail (or head) of ``line`` that fits in ``budget`` tokens: a binary search
    over its length, so a line of any length costs a few encodings of at most ``line``."""
    lo, hi = 1, len(line)
    best: tuple[str, list[int]] = ("", [])
    while lo <= hi:
        mid = (lo + hi) // 2
        piece = line[-mid:] if from_end else line[:mid]
        ids = encode(piece)
        if len(ids) <= budget:
            best, lo = (piece, ids), mid + 1
        else:
            hi = mid - 1
    return best


def _window(text: str, budget: int, encode: Encode, from_end: bool) -> str:
    """A slice of ``text`` (its end or its start) big enough to hold every candidate: it is
    either all of ``text`` or more than ``budget`` tokens. Avoids tokenizing a whole large file
    on every keystroke."""
    chars = budget * _CHARS_PER_TOKEN
    while True:
        window = text[-chars:] if from_end else text[:chars]
        if len(window) == len(text) or len(encode(window)) > budget:
            return window
        chars *= 2  # a tokenizer that packs more characters per token than we assumed


def _earliest_fitting(window: str, starts: list[int], budget: int,
                      encode: Encode) -> tuple[str, list[int]] | None:
    lo, hi = 0, len(starts) - 1
    best: tuple[str, list[int]] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        piece = window[starts[mid]:]
        ids = encode(piece)
        if len(ids) <= budget:
            best = (piece, ids)
            hi = mid - 1
        else:
            lo = mid + 1
    return best


def head_within(text: str, budget: int, encode: Encode) -> tuple[str, list[int]]:
    """The longest head of ``text`` that ends at a line end and fits in ``budget`` tokens; if
    even the first line (with its line break) is too long, the longest head of that line."""
    if budget <= 0 or not text:
        return "", []
    window = _window(text, budget, encode, from_end=False)
    # A window shorter than the text ends mid-line: only its line ends are candidates.
    ends = list(line_starts(window)[1:]) + ([len(window)] if len(window) == len(text) else [])
    lo, hi = 0, len(ends) - 1
    best: tuple[str, list[int]] | None = None
    while lo <= hi:
        mid = (lo + hi) // 2
        piece = window[: ends[mid]]
        ids = encode(piece)
        if len(ids) <= budget:
            best = (piece, ids)
            lo = mid + 1
        else:
            hi = mid - 1
    if best is not None:
        return best
    first = _BREAK.search(window)
    return _longest(window[: first.start()] if first else window, budget, encode,
                    from_end=False)


def _is_line_start(text: str, pos: int) -> bool:
    if pos == 0:
        return True
    before = text[pos - 1]
    return before == "\n" or (before == "\r" and text[pos: pos + 1] != "\n")


def _breaks_before(text: str, pos: int) -> int:
    """How many line breaks end at or before ``pos`` (counted in C, not by a scan in Python)."""
    n = text.count("\n", 0, pos) + text.count("\r", 0, pos) - text.count("\r\n", 0, pos)
    if 0 < pos < len(text) and text[pos - 1] == "\r" and text[pos] == "\n":
        n -= 1  # that \r ends a line only with the \n after it, after pos
    return n


def aligned_tail(text: str, budget: int, encode: Encode, align_lines: int
                 ) -> tuple[str, list[int]]:
    """Like :func:`tail_within`, but the tail may only start at every ``align_lines``-th line
    of the document.

    Why: a backend that keeps the KV cache of the previous prompt can only reuse it while the
    prompt's beginning stays the same. With a start that moves line by line, every new line
    typed would shift it and throw the cache away; aligned, it stays put until the budget
    overflows, then jumps ``align_lines`` lines at once (one cold prefill).
    """
    if align_lines <= 1 or budget <= 0 or not text:
        return tail_within(text, budget, encode)
    window = _window(text, budget, encode, from_end=True)
    base = len(text) - len(window)
    # Line numbers of the window's line starts: the breaks before it are counted, not split.
    before = _breaks_before(text, base)
    starts = line_starts(window)
    candidates = [s for j, s in enumerate(starts[1:], 1) if (before + j) % align_lines == 0]
    if _is_line_start(text, base) and before % align_lines == 0:
        candidates.insert(0, 0)
    best = _earliest_fitting(window, candidates, budget, encode)
    return best if best is not None else _tail(window, base > 0, budget, encode)


@functools.lru_cache(maxsize=64)
def _dedent_below(indent: int) -> re.Pattern[str]:
    """The start of the next line with code indented less than ``indent`` characters."""
    return re.compile(r"(?:\r\n|\r|\n)(?=[^\S\r\n]{0," + str(indent - 1) + r"}\S)")


def block_suffix(suffix: str, indent: int) -> str:
    """The suffix up to the end of the cursor's block: stop before the first line after the
    current one that is indented less than ``indent`` columns. Keeps the suffix short and
    stable while the user types inside a block. (One search that stops at that line: the
    suffix's other lines are never split.)"""
    if indent <= 0:
        return suffix
    m = _dedent_below(indent).search(suffix)
    return suffix[: m.end()] if m else suffix


def _prefix_budget(budget: int, prefix_share: float, fim: bool) -> int:
    if not fim:
        return budget
    return max(1, int(max(budget - 3, 1) * prefix_share))


def next_window_prefix(prefix: str, encode: Encode, fim_ids: tuple[int, int, int] | None,
                       budget: int, prefix_share: float, align_lines: int, margin: int
                       ) -> list[int] | None:
    """When the prompt's aligned start (see :func:`aligned_tail`) will move once about
    ``margin`` more tokens are typed, the beginning of that future prompt up to today's cursor
    (its FIM marker and prefix), so it can be evaluated ahead of time; else None.

    The future start is the one that leaves ``margin`` tokens of room: a later line of the
    same alignment, so the future prompt begins with exactly these tokens."""
    p_budget = _prefix_budget(budget, prefix_share, fim_ids is not None)
    if align_lines <= 1 or margin <= 0 or p_budget <= margin or not prefix:
        return None
    now_text, _ = aligned_tail(prefix, p_budget, encode, align_lines)
    later_text, later_ids = aligned_tail(prefix, p_budget - margin, encode, align_lines)
    if len(later_text) >= len(now_text) or not later_ids:
        return None
    return ([fim_ids[0]] if fim_ids is not None else []) + later_ids


def build_prompt(
    prefix: str,
    suffix: str,
    encode: Encode,
    fim: FimTokens | None,
    fim_ids: tuple[int, int, int] | None,
    budget: int,
    prefix_share: float,
    suffix_max_tokens: int | None = None,
    align_lines: int = 1,
) -> Prompt:
    """The FIM prompt. ``suffix_max_tokens`` caps the suffix below its share of the budget;
    ``align_lines`` > 1 keeps the prompt's start stable while typing (see :func:`aligned_tail`).
    """
    if fim is None or fim_ids is None:
        text, ids = aligned_tail(prefix, budget, encode, align_lines)
        return Prompt(ids, text, "", len(ids), 0)
    room = max(budget - 3, 1)
    prefix_budget = _prefix_budget(budget, prefix_share, True)
    p_text, p_ids = aligned_tail(prefix, prefix_budget, encode, align_lines)
    s_room = room - len(p_ids)
    if suffix_max_tokens is not None:
        s_room = min(s_room, suffix_max_tokens)
    s_text, s_ids = head_within(suffix, s_room, encode)
    pre, suf, mid = fim_ids
    ids = [pre, *p_ids, suf, *s_ids, mid]
    return Prompt(ids, p_text, s_text, len(p_ids), len(s_ids))
