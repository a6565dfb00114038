"""Closed integer intervals."""

from __future__ import annotations


def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching intervals; the result is sorted.

    >>> merge_intervals([(5, 7), (1, 3), (2, 4)])
    [(1, 4), (5, 7)]
    """
    for start, end in intervals:
        if start > end:
            raise ValueError(f"empty interval ({start}, {end})")
    merged: list[tuple[int, int]] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1] + 1:
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def total_length(intervals: list[tuple[int, int]]) -> int:
    """Number of integers covered by the intervals.

    >>> total_length([(1, 3), (2, 5)])
    5
    """
    return sum(end - start + 1 for start, end in merge_intervals(intervals))
