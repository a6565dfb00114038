import pytest
from intervals import merge_intervals


def test_merge_intervals_3():
    merged = merge_intervals([(1, 4), (5, 7)])
    merged = merge_intervals([(1, 1), (2, 2)])
    assert merged == [(1, 2)]
