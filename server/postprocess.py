"""Turn raw model output into a suggestion the user would accept.

A small instruct model given a FIM prompt rarely stops at the end of the hole: it goes on to
rewrite the suffix, add tests or prose. Knowing where to stop is this module's job:

- cut at any special-token text that slipped through;
- single-line mode: keep the first line;
- multi-line mode: keep the block the cursor is in (stop at the first line indented less than
  the block), and stop where the model starts repeating the first line of the suffix;
- drop closing brackets the line after the cursor already has;
- never return whitespace only.

The same rules drive early stopping during generation (:func:`should_stop`), so the model is not
run past the point where its output would be cut anyway.

Cost: :func:`should_stop` runs after every generated token, so it reads the generated text and
only as much of the document as it needs (the first line of code after the cursor's line, by
a search). The cursor's line is read whole at most a few times per suggestion, in C.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable

from server.context import CompletionMode, CursorContext
from server.documents import line_starts, split_lines

# The same line breaks as LSP and server.documents: \r\n, \r and \n.
_BREAK = re.compile(r"\r\n|\r|\n")

_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {v: k for k, v in _OPEN.items()}
# Lines that continue a statement at a lower indentation rather than ending the block.
_CONTINUATIONS = (")", "]", "}")


def _indent_width(line: str) -> int:
    return len(line.expandtabs(4)) - len(line.expandtabs(4).lstrip())


def cut_special(text: str, specials: Iterable[str]) -> str:
    cut = len(text)
    for tok in specials:
        if tok:
            idx = text.find(tok)
            if idx != -1:
                cut = min(cut, idx)
    return text[:cut]


_SIGN = {"(": -1, "[": -1, "{": -1, ")": 1, "]": 1, "}": 1}
_NOT_BRACKET = re.compile(r"[^()\[\]{}]+")


def _closers(text: str) -> tuple[int, int]:
    """``(unmatched, net)`` for ``text`` (strings ignored; good enough for a line): the closers
    with no opener before them, and closers minus openers. Counted in C (``accumulate``,
    ``max``) over the brackets only, so a minified line of a megabyte costs milliseconds."""
    brackets = _NOT_BRACKET.sub("", text)
    if not brackets:
        return 0, 0
    sums = list(itertools.accumulate(map(_SIGN.__getitem__, brackets)))
    return max(0, max(sums)), sums[-1]


class _Excess:
    """Closers without an opener in ``head + middle + tail``, for many ``middle``s: the long
    parts (the cursor's line before and after it) are read once.

    Starting at depth ``d``, a text with ``unmatched`` u and ``net`` n adds ``max(0, u - d)``
    excess closers and ends at depth ``d - n + max(0, u - d)``.
    """

    def __init__(self, head: str, tail: str) -> None:
        u, n = _closers(head)
        self._excess, self._depth = u, u - n
        self._tail_unmatched = _closers(tail)[0]

    def __call__(self, middle: str) -> int:
        u, n = _closers(middle)
        added = max(0, u - self._depth)
        depth = self._depth - n + added
        return self._excess + added + max(0, self._tail_unmatched - depth)


def drop_suffix_overlap(completion: str, ctx: CursorContext) -> str:
    """Remove closing characters at the end of the completion that the line already has.

    ``foo(|)`` completed with ``a, b)`` becomes ``a, b``: only while the joined line would have
    more closers than openers, so ``foo(|)`` + ``bar(x)`` is kept as is.
    """
    line_suffix = ctx.line_suffix.strip()
    if not line_suffix:
        return completion
    last_nl = max(completion.rfind("\n"), completion.rfind("\r"))
    head, tail = completion[: last_nl + 1], completion[last_nl + 1:]
    excess = _Excess(ctx.line_prefix if last_nl == -1 else "", ctx.line_suffix)
    stripped = tail.rstrip()
    # The whole rest of the line repeated: drop it.
    if len(line_suffix) > 1 and stripped.endswith(line_suffix):
        candidate = stripped[: -len(line_suffix)]
        if excess(candidate) <= excess(stripped):
            return head + candidate
    base = excess("")
    while stripped and excess(stripped) > base:
        k = next((k for k in range(min(len(stripped), len(line_suffix)), 0, -1)
                  if stripped.endswith(line_suffix[:k])), 0)
        if k == 0:
            break
        stripped = stripped[:-k].rstrip()
    if excess(stripped) > base and line_suffix[0] in _CLOSE:
        # `def f(|)` + `x):` — the closer the line already has, followed by more text: the
        # suggestion ends where the existing closer takes over.
        cut = stripped.rfind(line_suffix[0])
        if cut > 0 and excess(stripped[:cut]) <= base:
            stripped = stripped[:cut].rstrip()
    return head + stripped


# The first line after the cursor's line that holds something other than whitespace.
_NEXT_CODE_LINE = re.compile(r"(?:\r\n|\r|\n)[^\S\r\n]*(\S[^\r\n]*)")


def _first_suffix_line(ctx: CursorContext) -> str:
    # A search, not a split of the suffix: this runs after every decoding step.
    m = _NEXT_CODE_LINE.search(ctx.suffix)
    return m.group(1).strip() if m else ""


def _multi_line_cut(text: str, ctx: CursorContext) -> tuple[str, bool]:
    """Keep the block; return (kept text, whether something was cut)."""
    lines = split_lines(text)
    starts = line_starts(text)

    def upto(i: int) -> str:
        """The text of lines[:i], without the break after the last of them."""
        end = starts[i]
        return text[: end - (2 if text[end - 2:end] == "\r\n" else 1)]

    cursor_blank = not ctx.line_prefix.strip()
    first = lines[0]
    # The block's indentation: on a blank cursor line, that line's (the cursor's indentation plus
    # whatever the model indents at the cursor); else what the first body line the model writes
    # uses (it must be deeper than the current line).
    base: int | None = _indent_width(ctx.line_prefix + first) \
        if cursor_blank and (ctx.line_prefix or first.strip()) else None
    current = _indent_width(ctx.line_prefix)
    suffix_line = _first_suffix_line(ctx)
    content_seen = bool(first.strip())
    seen_blank = False  # a blank line after some content
    for i, line in enumerate(lines):
        if i == 0:
            continue
        if not line.strip():
            seen_blank = seen_blank or content_seen
            continue
        content_seen = True
        is_last_partial = i == len(lines) - 1
        width = _indent_width(line)
        if base is None:
            if cursor_blank:
                base = width  # cursor at column 0 of an empty body: the model sets the indent
            elif width <= current:
                return upto(i), True
            else:
                base = width
        stripped = line.strip()
        if width < base and not stripped.startswith(_CONTINUATIONS):
            return upto(i), True
        if base == 0 and width == 0 and seen_blank:
            # Top level: one unit (a statement or a definition) per suggestion.
            return upto(i), True
        if suffix_line and stripped == suffix_line and len(suffix_line) > 2 and \
                not is_last_partial:
            return upto(i), True
        if i >= 2 and not is_last_partial and \
                stripped == lines[i - 1].strip() == lines[i - 2].strip():
            # A degenerate loop (the same line three times): keep one copy.
            return upto(i - 1), True
    return text, False


def prompt_prefix(ctx: CursorContext) -> str:
    """The prefix the model sees. On an indentation-only line the indentation is left out.

    Tokenizers merge indentation with the first word (``"    return"`` is not ``"    "`` +
    ``"return"``), so a prompt that ends in spaces leaves the model at a token boundary it never
    saw in training, and it tends to indent again. It writes the indentation itself instead;
    :func:`strip_cursor_indent` removes it again.
    """
    if ctx.line_prefix and not ctx.line_prefix.strip():
        return ctx.prefix[: len(ctx.prefix) - len(ctx.line_prefix)]
    return ctx.prefix


def strip_cursor_indent(text: str, ctx: CursorContext) -> str:
    """Model output for a :func:`prompt_prefix` prompt → text to insert at the cursor."""
    indent = ctx.line_prefix
    if not indent or indent.strip():
        return text
    if text.startswith(indent):
        return text[len(indent):]
    m = _BREAK.search(text)
    first, rest = (text[: m.start()], text[m.start():]) if m else (text, "")
    if not m and indent.startswith(first):
        return ""  # the indentation is still being written
    # The model chose another indentation for this line: the cursor's wins.
    return first.lstrip(" \t") + rest


def truncate(text: str, ctx: CursorContext, specials: Iterable[str] = ()) -> tuple[str, bool]:
    """Cut raw output to what should be shown; second value: whether anything was cut."""
    clean = cut_special(text, specials)
    cut = len(clean) < len(text)
    if ctx.mode is CompletionMode.SINGLE_LINE:
        m = _BREAK.search(clean)
        if m:
            return clean[: m.start()], True
        return clean, cut
    kept, was_cut = _multi_line_cut(clean, ctx)
    return kept, cut or was_cut


def should_stop(text: str, ctx: CursorContext) -> bool:
    """True once generation has produced everything the suggestion will keep."""
    if ctx.mode is CompletionMode.SINGLE_LINE:
        # The first line is complete (a leading line break ends it too: nothing to suggest).
        return _BREAK.search(text) is not None
    return _multi_line_cut(text, ctx)[1]


def postprocess(text: str, ctx: CursorContext, specials: Iterable[str] = ()) -> str:
    """The suggestion to show, or '' for none."""
    kept, _ = truncate(text, ctx, specials)
    if ctx.mode is CompletionMode.MULTI_LINE:
        kept = "\n".join(line.rstrip() for line in split_lines(kept)).rstrip()
        if not ctx.line_prefix.strip() and kept.startswith("\n"):
            # The model left the cursor line empty: its first line moves up to the cursor,
            # which already has the line's indentation.
            kept = kept.lstrip("\n")
            if ctx.line_prefix:
                kept = kept.lstrip(" \t")  # the cursor's indentation wins
    else:
        kept = "\n".join(line.rstrip() for line in split_lines(kept)).rstrip()
    kept = drop_suffix_overlap(kept, ctx)
    if not kept.strip():
        return ""
    eol = _document_eol(ctx)
    return kept if eol == "\n" else _BREAK.sub(eol, kept)


def _document_eol(ctx: CursorContext) -> str:
    """The line break the document uses (its first one), so suggestions match it."""
    for text in (ctx.prefix, ctx.suffix):
        # str.find, not a regular expression: a long first line (a minified file) is
        # scanned at memory speed.
        n, r = text.find("\n"), text.find("\r")
        if r != -1 and (n == -1 or r < n):
            return "\r\n" if text.startswith("\n", r + 1) else "\r"
        if n != -1:
            return "\n"
    return "\n"
