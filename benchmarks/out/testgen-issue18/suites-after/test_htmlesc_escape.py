import pytest
import re as _re
from html.entities import html5 as _html5
from htmlesc import escape


def test_escape_1():
    assert escape('Hello, World!') == 'Hello, World!'


def test_escape_2():
    assert escape('Hello, <World>') == 'Hello, &lt;World&gt;'


def test_escape_3():
    assert escape('Hello, >World') == 'Hello, &gt;World'


def test_escape_4():
    assert escape('Hello, &World!') == 'Hello, &amp;World!'


def test_escape_no_quote_1():
    assert escape('Hello') == 'Hello'


def test_escape_no_quote_2():
    assert escape('Hello <World>') == 'Hello &lt;World&gt;'


def test_escape_quote_true_1():
    assert escape('Hello') == 'Hello'


def test_escape_quote_true_2():
    assert escape('Hello <World>') == 'Hello &lt;World&gt;'


def test_escape_invalid_characters_2():
    assert escape('Hello <World>') == 'Hello &lt;World&gt;'
