"""Open documents and LSP positions, exactly as the LSP specification defines them.

Two rules that libraries commonly get wrong, and why this module exists instead of pygls'
``TextDocument`` (which splits with ``str.splitlines``):
- Only ``\\n``, ``\\r\\n`` and ``\\r`` end a line. ``\\u2028``, ``\\x0c``, ``\\x1c``, ``\\x85`` and
  friends are ordinary characters inside a line.
- ``Position.character`` counts code units of the negotiated encoding: UTF-16 by default (a
  character outside the BMP, such as most emoji, counts 2), UTF-8 bytes or UTF-32 code points
  if negotiated. A column inside a surrogate pair or a multi-byte sequence, or past the end of a
  line, is clamped to the line's end or the character boundary before it, as the spec asks.

Offsets returned here are indices into the Python ``str`` (code points).
"""

from __future__ import annotations

import enum
import re

import numpy as np

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_SURROGATE = re.compile("[\ud800-\udfff]")


class PositionEncoding(enum.Enum):
    UTF8 = "utf-8"
    UTF16 = "utf-16"
    UTF32 = "utf-32"

    @classmethod
    def from_lsp(cls, value: object) -> PositionEncoding:
        raw = getattr(value, "value", value)
        for member in cls:
            if member.value == raw:
                return member
        return cls.UTF16


def line_starts(text: str) -> list[int]:
    """Offsets at which each line starts (LSP line breaks only)."""
    starts = [0]
    starts.extend(m.end() for m in _LINE_BREAK.finditer(text))
    return starts


def split_lines(text: str) -> list[str]:
    """Lines without their terminators. ``"a\\r\\nb"`` → ``["a", "b"]``; ``"a\\n"`` → ``["a", ""]``."""
    return _LINE_BREAK.split(text)


def _units(ch: str, encoding: PositionEncoding) -> int:
    cp = ord(ch)
    if encoding is PositionEncoding.UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding is PositionEncoding.UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def column_to_index(line: str, column: int, encoding: PositionEncoding) -> int:
    """Code-unit column → code-point index within ``line`` (clamped, never splits a character)."""
    if column <= 0:
        return 0
    if encoding is PositionEncoding.UTF32:
        return min(column, len(line))
    # Every character is at least one unit: the index is at most ``column``.
    head = line[:column]
    if head.isascii():
        return len(head)
    if _SURROGATE.search(head):  # lone surrogates would pair up when encoded: count one by one
        units = 0
        for i, ch in enumerate(head):
            units += _units(ch, encoding)
            if units > column:
                return i
        return len(head)
    # The codecs count in C; a long line must not cost a Python loop per character.
    if encoding is PositionEncoding.UTF16:
        data = head.encode("utf-16-le")
        if len(data) <= 2 * column:
            return len(head)
        kept = data[: 2 * column].decode("utf-16-le", "surrogatepass")
        # A cut between the two halves of a pair leaves the high half: step back before it.
        return len(kept) - 1 if kept[-1] != head[len(kept) - 1] else len(kept)
    data = head.encode("utf-8")
    if len(data) <= column:
        return len(head)
    return len(data[:column].decode("utf-8", "ignore"))


def index_to_column(line: str, index: int, encoding: PositionEncoding) -> int:
    """Code-point index within ``line`` → code-unit column."""
    head = line[: max(0, index)]
    if encoding is PositionEncoding.UTF32 or head.isascii():
        return len(head)
    if encoding is PositionEncoding.UTF16:
        return len(head.encode("utf-16-le", "surrogatepass")) // 2
    return len(head.encode("utf-8", "surrogatepass"))


class Document:
    """The text of one open document; mutated only through :meth:`apply_change`.

    A burst of keystrokes costs little per edit, whatever the document's size:

    - the text is kept as ``_base`` with one run of ``_typed`` text inserted at ``_at``:
      typing (and deleting what was typed) at one place edits only that run; the whole text
      is joined when it is read (:attr:`text`) or when an edit lands elsewhere;
    - line starts are kept up to date instead of being recomputed. An edit within one line
      only moves the starts of the lines after it, and that move is recorded (``_shift_from``,
      ``_shift``), not done, until an edit elsewhere or a lookup by offset needs it (one
      vectorised add). Any other edit rescans its own text and the characters next to it (a
      line start depends on two characters, for ``\\r\\n``) and moves the later starts.
    """

    def __init__(self, uri: str, text: str, version: int = 0, language_id: str = "") -> None:
        self.uri = uri
        self.version = version
        self.language_id = language_id
        self._base = text
        self._at = 0
        self._typed = ""
        # Line starts; replaced by each edit, never changed in place (snapshots share them).
        # Starts at index >= _shift_from are _shift further on than _arr says.
        self._arr: np.ndarray | None = None
        self._shift_from = 0
        self._shift = 0
        self._list: list[int] | None = None

    def __repr__(self) -> str:
        return f"Document({self.uri!r}, version={self.version}, {len(self)} characters)"

    # --- text --------------------------------------------------------------------------------

    @property
    def text(self) -> str:
        if self._typed:
            self._base = self._base[:self._at] + self._typed + self._base[self._at:]
            self._typed = ""
        return self._base

    def __len__(self) -> int:
        return len(self._base) + len(self._typed)

    def _slice(self, i: int, j: int) -> str:
        """``text[i:j]`` for 0 <= i <= j, without joining the text."""
        at, typed = self._at, self._typed
        if not typed or j <= at:
            return self._base[i:j]
        end = at + len(typed)
        if i >= end:
            return self._base[i - len(typed):j - len(typed)]
        return (self._base[i:at] if i < at else "") + typed[max(i - at, 0):j - at] + \
            (self._base[at:j - len(typed)] if j > end else "")

    # --- line starts -------------------------------------------------------------------------

    def _raw(self) -> np.ndarray:
        if self._arr is None:
            self._arr = np.array(line_starts(self.text), dtype=np.int64)
            self._shift = 0
        return self._arr

    def _starts(self) -> np.ndarray:
        """The line starts with any recorded move done."""
        arr = self._raw()
        if self._shift:
            arr = arr.copy()
            arr[self._shift_from:] += self._shift
            self._arr, self._shift = arr, 0
        return arr

    def _start(self, line: int) -> int:
        value = int(self._raw()[line])
        return value + self._shift if line >= self._shift_from else value

    @property
    def starts(self) -> list[int]:
        """Offsets at which each line starts (see :func:`line_starts`)."""
        if self._list is None:
            self._list = self._starts().tolist()
        return self._list

    @property
    def line_count(self) -> int:
        return len(self._raw())

    def snapshot(self) -> Document:
        """A copy that later edits of this document leave alone (it shares the line starts
        instead of computing them again)."""
        copy = Document(self.uri, self.text, self.version, self.language_id)
        copy._arr, copy._shift_from, copy._shift = self._arr, self._shift_from, self._shift
        return copy

    # --- positions ---------------------------------------------------------------------------

    def _line_span(self, line: int) -> tuple[int, int]:
        """Start and end of ``line``'s content (without its terminator); 0 <= line < count."""
        start = self._start(line)
        end = self._start(line + 1) if line + 1 < self.line_count else len(self)
        brk = self._slice(max(start, end - 2), end)
        return start, end - (len(brk) - len(brk.rstrip("\r\n")))

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its terminator ('' past the end)."""
        if line < 0 or line >= self.line_count:
            return ""
        return self._slice(*self._line_span(line))

    def offset_at(self, line: int, character: int, encoding: PositionEncoding) -> int:
        """A (line, character) position → offset into :attr:`text`, clamped to the document."""
        if line < 0:
            return 0
        if line >= self.line_count:
            return len(self)
        start, end = self._line_span(line)
        # A column counts at least one unit per character: only that many characters matter.
        head = self._slice(start, min(end, start + max(character, 0)))
        return start + column_to_index(head, character, encoding)

    def position_at(self, offset: int, encoding: PositionEncoding) -> tuple[int, int]:
        """Offset → (line, character) in ``encoding`` units."""
        offset = max(0, min(offset, len(self)))
        line = int(np.searchsorted(self._starts(), offset, side="right")) - 1
        start, end = self._line_span(line)
        return line, index_to_column(self._slice(start, min(offset, end)), offset - start,
                                     encoding)

    # --- edits -------------------------------------------------------------------------------

    def apply_change(
        self,
        new_text: str,
        start: tuple[int, int] | None,
        end: tuple[int, int] | None,
        encoding: PositionEncoding,
    ) -> None:
        """Apply one ``TextDocumentContentChangeEvent``; a missing range replaces everything."""
        self._list = None
        if start is None or end is None:
            self._base, self._typed, self._arr = new_text, "", None
            return
        self._raw()  # the line starts of the text before the edit
        a = self.offset_at(*start, encoding)
        b = self.offset_at(*end, encoding)
        if b < a:
            a, b = b, a
        line = start[0]
        if line == end[0] and 0 <= line < self.line_count and "\n" not in new_text and \
                "\r" not in new_text and not (not new_text and self._slice(max(a - 1, 0), a)
                                              == "\r" and self._slice(b, b + 1) == "\n"):
            # Within one line (offsets are clamped to its content), no line break written,
            # none joined: only the starts of the lines after it move.
            self._move_after(line, len(new_text) - (b - a))
            self._replace(a, b, new_text)
        else:
            old = self._starts()
            self._replace(a, b, new_text)
            self._arr = _spliced_starts(old, self.text, a, b, len(new_text))

    def _replace(self, a: int, b: int, new_text: str) -> None:
        at, typed = self._at, self._typed
        if typed and at <= a and b <= at + len(typed):
            self._typed = typed[:a - at] + new_text + typed[b - at:]  # typing on
            return
        base = self.text  # an edit elsewhere: join the text first
        if a == b:
            self._at, self._typed = a, new_text  # start typing here
        else:
            self._base = base[:a] + new_text + base[b:]

    def _move_after(self, line: int, delta: int) -> None:
        if not delta:
            return
        if self._shift and self._shift_from != line + 1:
            self._starts()  # a move recorded for other lines: do it first
        self._shift_from = line + 1
        self._shift += delta


def _spliced_starts(old: np.ndarray, text: str, a: int, b: int, n: int) -> np.ndarray:
    """The line starts of ``text`` after ``old_text[a:b]`` was replaced by ``n`` characters.

    Whether a line starts at ``p`` depends only on the characters at ``p - 1`` and ``p`` (a
    ``\\r`` followed by ``\\n`` does not end a line). So starts at or before ``a - 1`` are
    unchanged, starts after ``b + 1`` only move by the change in length, and the starts in
    between are read from the new text around the edit.
    """
    lo = int(np.searchsorted(old, max(a, 1), side="left"))  # old starts >= a are redone...
    hi = int(np.searchsorted(old, b + 1, side="right"))  # ...up to b + 1; the rest move
    first, last = max(a, 1), min(a + n + 1, len(text))
    region_start = max(a - 1, 0)
    region = text[region_start:last + 1]
    found = [region_start + m.end() for m in _LINE_BREAK.finditer(region)]
    new = np.array([p for p in found if first <= p <= last], dtype=np.int64)
    return np.concatenate((old[:lo], new, old[hi:] + (n - (b - a))))


class DocumentStore:
    """Open documents by URI."""

    def __init__(self) -> None:
        self._docs: dict[str, Document] = {}

    def open(self, uri: str, text: str, version: int, language_id: str) -> Document:
        doc = Document(uri, text, version, language_id)
        self._docs[uri] = doc
        return doc

    def get(self, uri: str) -> Document | None:
        return self._docs.get(uri)

    def close(self, uri: str) -> None:
        self._docs.pop(uri, None)

    def __len__(self) -> int:
        return len(self._docs)
