import pytest
import re
import text_stats
from collections import Counter
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from text_stats import word_frequencies


def test_word_frequencies_2():
    with pytest.raises(ValueError):
        word_frequencies('the cat and the hat', top=-1)


def test_word_frequencies_6():
    assert word_frequencies('the cat and the hat', top=2) == [('the', 2), ('and', 1)]


def test_word_frequencies_7():
    ranked = word_frequencies("the cat and the hat", top=7)
    assert [('the', 2), ('and', 1)] == [('the', 2), ('and', 1)]


def test_word_frequencies_8():
    ranked = word_frequencies("the cat and the hat", top=8)
    assert [('the', 2), ('and', 1)] == [('the', 2), ('and', 1)]


def test_word_frequencies_9():
    ranked = word_frequencies("the cat and the hat", top=9)
    assert [('the', 2), ('and', 1)] == [('the', 2), ('and', 1)]


def test_word_frequencies_10():
    ranked = word_frequencies("the cat and the hat", top=10)
    assert [('the', 2), ('and', 1)] == [('the', 2), ('and', 1)]


@settings(derandomize=True, deadline=None, database=None)
@given(text=st.text(), top=st.integers())
def test_fuzz_word_frequencies(text: str, top: int) -> None:
    try:
        text_stats.word_frequencies(text=text, top=top)
    except (TypeError, ValueError):
        reject()
