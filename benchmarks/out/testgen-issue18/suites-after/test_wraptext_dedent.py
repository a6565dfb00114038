import pytest
import re
from wraptext import dedent


def test_dedent_no_margin():
    """Test dedent with no margin."""
    text = "hello world"
    dedented_text = dedent(text)
    assert dedented_text == "hello world", "dedented_text = %r" % dedented_text


def test_dedent_single_line():
    """Test dedent with a single line."""
    text = "hello world"
    dedented_text = dedent(text)
    assert dedented_text == "hello world", "dedented_text = %r" % dedented_text


def test_dedent_multiple_lines():
    """Test dedent with multiple lines."""
    text = "hello\nworld\nthis is a test"
    dedented_text = dedent(text)
    assert dedented_text == "hello\nworld\nthis is a test", "dedented_text = %r" % dedented_text


def test_dedent_empty_text():
    """Test dedent with an empty text."""
    text = ""
    dedented_text = dedent(text)
    assert dedented_text == "", "dedented_text = %r" % dedented_text


def test_dedent_whitespace_only():
    """Test dedent with whitespace-only text."""
    text = "  hello world"
    dedented_text = dedent(text)
    assert dedented_text == "hello world", "dedented_text = %r" % dedented_text


def test_dedent_leading_whitespace():
    """Test dedented_text = '\\thello world'."""
    dedented_text = dedent("\\thello world")
    assert dedented_text == '\\thello world', "dedented_text = %r" % dedented_text


def test_dedent_multiple_leading_whitespace():
    """Test dedented_text = '\\thello world  this is a test'."""
    dedented_text = dedent("\\thello world  this is a test")
    assert dedented_text == '\\thello world  this is a test', "dedented_text = %r" % dedented_text


def test_dedent_multiple_leading_whitespace_and_margin():
    """Test dedented_text = '\\thello world  this is a test  \\thello world'."""
    dedented_text = dedent("\\thello world  this is a test  \\thello world")
    assert dedented_text == '\\thello world  this is a test  \\thello world', "dedented_text = %r" % dedented_text


def test_dedent_multiple_leading_whitespace_and_margin_and_margin():
    """Test dedented_text = '\\thello world  this is a test  \\thello world  this is a test'."""
    dedented_text = dedent("\\thello world  this is a test  \\thello world  this is a test  this is a test")
    assert dedented_text == '\\thello world  this is a test  \\thello world  this is a test  this is a test', "dedented_text = %r" % dedented_text
