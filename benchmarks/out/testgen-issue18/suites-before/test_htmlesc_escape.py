import re as _re
from html.entities import html5 as _html5
from htmlesc import escape


def escape(s, quote=True):
    """
    Replace special characters "&", "<" and ">" to HTML-safe sequences.
    If the optional flag quote is true (the default), the quotation mark
    characters, both double quote (") and single quote (') characters are also
    translated.
    """
    s = s.replace("&", "&amp;")
    s = s.replace("<", "&lt;")
    s = s.replace(">", "&gt;")
    if quote:
        s = s.replace('"', "&quot;")
        s = s.replace('\'', "&#x27;")
    return s


def test_escape_basic():
    assert escape("Hello, World!") == "Hello, World!"
    assert escape("This is a test string with special characters: &quot; and &apos;")
    assert escape("No special characters here!") == "No special characters here!"
