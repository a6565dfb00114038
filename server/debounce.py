"""Adaptive debounce: while the user types fast, wait a moment before running the model.

Every automatic request cancels the previous one for its document anyway; waiting a little
first means a burst of keystrokes runs the model once, at the end, instead of starting (and
abandoning) a prefill per key. The wait adapts to the user's typing rhythm: it is a bit longer
than their recent gap between keys, so the next key usually arrives during the wait, and zero
when they type slower than the cap (waiting would only add latency).
"""

from __future__ import annotations


class Debouncer:
    def __init__(self, max_delay_s: float) -> None:
        self.max_delay_s = max_delay_s
        self._last: dict[str, float] = {}
        self._gap: dict[str, float] = {}  # exponential moving average of gaps between requests

    def delay(self, uri: str, now: float) -> float:
        """Seconds to wait before running the model for a request arriving at ``now``."""
        last = self._last.get(uri)
        self._last[uri] = now
        if self.max_delay_s <= 0 or last is None:
            return 0.0
        gap = now - last
        if gap > 4 * self.max_delay_s:
            # A pause: a new burst starts. Forget the old rhythm; answer at once.
            self._gap.pop(uri, None)
            return 0.0
        avg = self._gap.get(uri, gap)
        avg = 0.5 * avg + 0.5 * gap
        self._gap[uri] = avg
        if avg > self.max_delay_s:
            return 0.0
        return min(self.max_delay_s, 1.25 * avg)

    def forget(self, uri: str) -> None:
        self._last.pop(uri, None)
        self._gap.pop(uri, None)
