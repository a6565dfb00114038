"""Answers that need no model call.

Two cases, both cheap and exact:
- an identical request (same text around the cursor, same settings) → the same suggestion;
- typing through a suggestion: the user typed the first characters of what was suggested, so
  the rest of it is still the suggestion (Copilot-style "speculative reuse").
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

# Characters of context around the cursor that key the cache: beyond this the suggestion is
# unlikely to depend on the text, and hashing the whole file on every keystroke is waste.
_KEY_PREFIX_CHARS = 8192
_KEY_SUFFIX_CHARS = 2048


def request_key(prefix: str, suffix: str, mode: str, settings_key: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in (prefix[-_KEY_PREFIX_CHARS:], "\x00", suffix[:_KEY_SUFFIX_CHARS], "\x00",
                 mode, "\x00", settings_key):
        h.update(part.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@dataclass(frozen=True)
class _Shown:
    prefix: str
    suffix: str
    suggestion: str
    settings_key: str


class CompletionCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        # key -> the suggestions of that request, best first (one, or a reranked list).
        self._lru: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._shown: dict[str, _Shown] = {}
        self._keys_of: dict[str, set[str]] = {}  # document URI -> its entries' keys (didClose)
        self._uri_of: dict[str, str] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> str | None:
        """The first (best) suggestion stored under ``key``."""
        items = self.get_all(key)
        return items[0] if items else None

    def get_all(self, key: str) -> tuple[str, ...] | None:
        """Every suggestion stored under ``key``, best first."""
        value = self._lru.get(key)
        if value is None:
            self.misses += 1
            return None
        self._lru.move_to_end(key)
        self.hits += 1
        return value

    def put(self, key: str, suggestion: str | tuple[str, ...], uri: str = "") -> None:
        if self.max_entries <= 0:
            return
        self._lru[key] = (suggestion,) if isinstance(suggestion, str) else tuple(suggestion)
        self._lru.move_to_end(key)
        if uri:
            self._index(key, uri)
        while len(self._lru) > self.max_entries:
            old, _ = self._lru.popitem(last=False)
            self._unindex(old)

    def _index(self, key: str, uri: str) -> None:
        self._unindex(key)
        self._uri_of[key] = uri
        self._keys_of.setdefault(uri, set()).add(key)

    def _unindex(self, key: str) -> None:
        uri = self._uri_of.pop(key, None)
        if uri is not None:
            keys = self._keys_of.get(uri)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._keys_of[uri]

    def remember_shown(self, uri: str, prefix: str, suffix: str, suggestion: str,
                       settings_key: str) -> None:
        if suggestion:
            self._shown[uri] = _Shown(prefix, suffix, suggestion, settings_key)

    def typed_through(self, uri: str, prefix: str, suffix: str, settings_key: str) -> str | None:
        """The rest of the last suggestion for ``uri`` if the user typed its beginning."""
        shown = self._shown.get(uri)
        if shown is None or shown.settings_key != settings_key or suffix != shown.suffix:
            return None
        if len(prefix) <= len(shown.prefix) or not prefix.startswith(shown.prefix):
            return None
        typed = prefix[len(shown.prefix):]
        if not shown.suggestion.startswith(typed):
            return None
        rest = shown.suggestion[len(typed):]
        if not rest.strip():
            return None
        self.hits += 1
        return rest

    def forget(self, uri: str) -> None:
        """Drop everything kept for ``uri`` (the document was closed)."""
        self._shown.pop(uri, None)
        for key in self._keys_of.pop(uri, set()):
            self._lru.pop(key, None)
            self._uri_of.pop(key, None)

    def __len__(self) -> int:
        return len(self._lru)

    def clear(self) -> None:
        self._lru.clear()
        self._shown.clear()
        self._keys_of.clear()
        self._uri_of.clear()
