"""Fill-in-the-middle prompts within a token budget.

The prompt is ``<fim_prefix>{prefix}<fim_suffix>{suffix}<fim_middle>`` with the model's own
marker tokens (PSM order, as Qwen2.5-Coder, StarCoder and DeepSeek-Coder were trained). The prefix
gets ``prefix_share`` of the budget and the suffix what is left. Both are cut at line
boundaries, the prefix from the front and the suffix from the back, so that a keystroke changes
only the end of the prefix (which keeps a backend's prefix cache useful).

A model without FIM tokens gets the prefix alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from server.backends.base import FimTokens
from server.documents import line_starts, split_lines

Encode = Callable[[str], list[int]]


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
    starts = line_starts(window)
    if len(window) < len(text):
        starts = starts[1:]  # the window starts mid-line: that line cannot be whole
    best = _earliest_fitting(window, starts, budget, encode)
    if best is not None:
        return best
    # Even the last line is too long: keep as many of its last characters as fit.
    line = window[starts[-1]:] if starts else window
    lo, hi, best = 1, len(line), ("", [])
    while lo <= hi:
        mid = (lo + hi) // 2
        ids = encode(line[-mid:])
        if len(ids) <= budget:
            best, lo = (line[-mid:], ids), mid + 1
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
    """The longest head of ``text`` that ends at a line end and fits in ``budget`` tokens."""
    if budget <= 0 or not text:
        return "", []
    window = _window(text, budget, encode, from_end=False)
    # A window shorter than the text ends mid-line: only its line ends are candidates.
    ends = list(line_starts(window)[1:]) + ([len(window)] if len(window) == len(text) else [])
    if not ends:
        return "", []
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
    return best if best is not None else ("", [])


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
    candidates = [s - base for i, s in enumerate(line_starts(text))
                  if i % align_lines == 0 and s >= base]
    best = _earliest_fitting(window, candidates, budget, encode)
    return best if best is not None else tail_within(text, budget, encode)


def block_suffix(suffix: str, indent: int) -> str:
    """The suffix up to the end of the cursor's block: stop before the first line after the
    current one that is indented less than ``indent`` columns. Keeps the suffix short and
    stable while the user types inside a block."""
    if indent <= 0:
        return suffix
    starts = line_starts(suffix)
    lines = split_lines(suffix)
    for i in range(1, len(lines)):
        line = lines[i]
        if line.strip() and len(line) - len(line.lstrip()) < indent:
            return suffix[: starts[i]]
    return suffix


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
    prefix_budget = max(1, int(room * prefix_share))
    p_text, p_ids = aligned_tail(prefix, prefix_budget, encode, align_lines)
    s_room = room - len(p_ids)
    if suffix_max_tokens is not None:
        s_room = min(s_room, suffix_max_tokens)
    s_text, s_ids = head_within(suffix, s_room, encode)
    pre, suf, mid = fim_ids
    ids = [pre, *p_ids, suf, *s_ids, mid]
    return Prompt(ids, p_text, s_text, len(p_ids), len(s_ids))
