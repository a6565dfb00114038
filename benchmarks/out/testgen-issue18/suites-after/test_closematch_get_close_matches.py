import pytest
from closematch import get_close_matches


def test_get_close_matches_1():
    assert get_close_matches('appel', ['ape', 'apple', 'peach', 'puppy']) == ['apple', 'ape']


def test_get_close_matches_6():
    with pytest.raises(ValueError):
        get_close_matches('appel', ['ape', 'apple', 'peach', 'puppy'], n=0)


def test_get_close_matches_10():
    with pytest.raises(ValueError):
        get_close_matches('appel', ['ape', 'apple', 'peach', 'puppy'], n=-1)


def test_get_close_matches_11():
    with pytest.raises(ValueError):
        get_close_matches('appel', ['ape', 'apple', 'peach', 'puppy'], n=0.0)
