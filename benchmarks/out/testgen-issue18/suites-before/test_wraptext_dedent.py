import pytest
from wraptext import dedent


def test_dedent_normal():
    """Test dedent with a normal string."""
    assert dedent("hello world") == "hello world"


def test_dedent_empty():
    """Test dedent with an empty string."""
    assert dedent("") == ""


def test_dedent_single_line():
    """Test dedent with a single line."""
    assert dedent("hello") == "hello"


def test_dedent_tabs():
    """Test dedent with tabs."""
    assert dedent("hello\tworld") == "hello\tworld"


def test_dedent_spaces():
    """Test dedent with spaces."""
    assert dedent("hello  world") == "hello  world"
