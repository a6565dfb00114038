from intervals import merge_intervals


def test_merge_intervals_empty():
    """Test with empty intervals."""
    assert merge_intervals([]) == []


def test_merge_intervals_single():
    """Test with a single interval."""
    assert merge_intervals([(1, 3)]) == [(1, 3)]
