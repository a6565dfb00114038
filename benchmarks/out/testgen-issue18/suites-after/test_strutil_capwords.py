import pytest
from strutil import capwords


def test_capwords_no_sep():
    """Test with no separator"""
    assert capwords("hello") == "Hello"


def test_capwords_single_word():
    """Test with a single word"""
    assert capwords("hello world") == "Hello World"


def test_capwords_multiple_words():
    """Test with multiple words"""
    assert capwords("hello world this is a test") == "Hello World This Is A Test"


def test_capwords_whitespace():
    """Test with whitespace characters"""
    assert capwords("hello world  this is a test") == "Hello World This Is A Test"


def test_capwords_empty_string():
    """Test with an empty string"""
    assert capwords("") == ""
