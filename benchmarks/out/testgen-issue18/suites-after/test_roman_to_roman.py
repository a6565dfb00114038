import roman
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from roman import to_roman


def test_to_roman_1():
    assert to_roman(1994) == 'MCMXCIV'


def test_to_roman_2():
    assert to_roman(1999) == 'MCMXCIX'


def test_to_roman_6():
    assert to_roman(3999) == 'MMMCMXCIX'


def test_to_roman_1_2():
    """Write 1 in Roman numerals."""
    assert to_roman(1) == "I"


def test_to_roman_2_2():
    """Write 2 in Roman numerals."""
    assert to_roman(2) == "II"


def test_to_roman_3():
    """Write 3 in Roman numerals."""
    assert to_roman(3) == "III"


def test_to_roman_4():
    """Write 4 in Roman numerals."""
    assert to_roman(4) == "IV"


def test_to_roman_5():
    """Write 5 in Roman numerals."""
    assert to_roman(5) == "V"


def test_to_roman_6_2():
    """Write 6 in Roman numerals."""
    assert to_roman(6) == "VI"


def test_to_roman_7():
    """Write 7 in Roman numerals."""
    assert to_roman(7) == "VII"


def test_to_roman_8():
    """Write 8 in Roman numerals."""
    assert to_roman(8) == "VIII"


def test_to_roman_9():
    """Write 9 in Roman numerals."""
    assert to_roman(9) == "IX"


def test_to_roman_10():
    """Write 10 in Roman numerals."""
    assert to_roman(10) == "X"


def test_to_roman_13():
    """Write 13 in Roman numerals."""
    assert to_roman(13) == "XIII"


def test_to_roman_14():
    """Write 14 in Roman numerals."""
    assert to_roman(14) == "XIV"


def test_to_roman_15():
    """Write 15 in Roman numerals."""
    assert to_roman(15) == "XV"


def test_to_roman_16():
    """Write 16 in Roman numerals."""
    assert to_roman(16) == "XVI"


def test_to_roman_17():
    """Write 17 in Roman numerals."""
    assert to_roman(17) == "XVII"


def test_to_roman_18():
    """Write 18 in Roman numerals."""
    assert to_roman(18) == "XVIII"


def test_to_roman_19():
    """Write 19 in Roman numerals."""
    assert to_roman(19) == "XIX"


def test_to_roman_20():
    """Write 20 in Roman numerals."""
    assert to_roman(20) == "XX"


def test_to_roman_21():
    """Write 21 in Roman numerals."""
    assert to_roman(21) == "XXI"


def test_to_roman_22():
    """Write 22 in Roman numerals."""
    assert to_roman(22) == "XXII"


def test_to_roman_23():
    """Write 23 in Roman numerals."""
    assert to_roman(23) == "XXIII"


@settings(derandomize=True, deadline=None, database=None)
@given(number=st.integers())
def test_fuzz_to_roman(number: int) -> None:
    try:
        roman.to_roman(number=number)
    except (TypeError, ValueError):
        reject()
