from closematch import get_close_matches


def test_get_close_matches_word():
    """Test get_close_matches with a word."""
    assert get_close_matches("appel", ["ape", "apple", "peach", "puppy"]) == ['apple', 'ape']


def test_get_close_matches_word_cutoff():
    """Test get_close_matches with a word and cutoff=0.6."""
    assert get_close_matches("appel", ["ape", "apple", "peach", "puppy"]) == ['apple', 'ape']
