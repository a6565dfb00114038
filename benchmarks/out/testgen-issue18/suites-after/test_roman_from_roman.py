import pytest
from roman import from_roman


def test_from_roman_empty():
    """Test with an empty string."""
    with pytest.raises(ValueError):
        from_roman("")


def test_from_roman_roman_numerals_with_negative():
    """Test with a Roman numeral with a negative value."""
    with pytest.raises(ValueError):
        from_roman("-ix")


def test_from_roman_roman_numerals_with_zero():
    """Test with a Roman numeral with a zero value."""
    with pytest.raises(ValueError):
        from_roman("0")


def test_from_roman_roman_numerals_with_non_numeric():
    """Test with a Roman numeral with a non-numeric value."""
    with pytest.raises(ValueError):
        from_roman("abc")


def test_from_roman_uppercase():
    """Test from_roman with a Roman numeral in uppercase."""
    assert from_roman("xiv") == 14


def test_from_roman_roman_numerals():
    """Test from_roman with a Roman numeral in roman numerals."""
    assert from_roman("xix") == 19


def test_from_roman_roman_numerals_with_spaces():
    """Test from_roman with a Roman numeral with spaces."""
    assert from_roman("xix ") == 19
