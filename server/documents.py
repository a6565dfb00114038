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
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


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
    if line.isascii():
        return min(column, len(line))
    units = 0
    for i, ch in enumerate(line):
        units += _units(ch, encoding)
        if units > column:
            return i
    return len(line)


def index_to_column(line: str, index: int, encoding: PositionEncoding) -> int:
    """Code-point index within ``line`` → code-unit column."""
    head = line[: max(0, index)]
    if encoding is PositionEncoding.UTF32 or head.isascii():
        return len(head)
    return sum(_units(ch, encoding) for ch in head)


@dataclass
class Document:
    """The text of one open document; mutated only through :meth:`apply_change`."""

    uri: str
    text: str
    version: int = 0
    language_id: str = ""

    def __post_init__(self) -> None:
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        if self._starts is None:
            self._starts = line_starts(self.text)
        return self._starts

    def line_text(self, line: int) -> str:
        """The content of ``line`` without its terminator ('' past the end)."""
        starts = self.starts
        if line < 0 or line >= len(starts):
            return ""
        end = starts[line + 1] if line + 1 < len(starts) else len(self.text)
        return self.text[starts[line]:end].rstrip("\r\n")

    def offset_at(self, line: int, character: int, encoding: PositionEncoding) -> int:
        """A (line, character) position → offset into :attr:`text`, clamped to the document."""
        starts = self.starts
        if line < 0:
            return 0
        if line >= len(starts):
            return len(self.text)
        return starts[line] + column_to_index(self.line_text(line), character, encoding)

    def position_at(self, offset: int, encoding: PositionEncoding) -> tuple[int, int]:
        """Offset → (line, character) in ``encoding`` units."""
        import bisect

        offset = max(0, min(offset, len(self.text)))
        line = bisect.bisect_right(self.starts, offset) - 1
        return line, index_to_column(self.line_text(line), offset - self.starts[line], encoding)

    def apply_change(
        self,
        new_text: str,
        start: tuple[int, int] | None,
        end: tuple[int, int] | None,
        encoding: PositionEncoding,
    ) -> None:
        """Apply one ``TextDocumentContentChangeEvent``; a missing range replaces everything."""
        if start is None or end is None:
            self.text = new_text
        else:
            a = self.offset_at(*start, encoding)
            b = self.offset_at(*end, encoding)
            if b < a:
                a, b = b, a
            self.text = self.text[:a] + new_text + self.text[b:]
        self._starts = None


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
