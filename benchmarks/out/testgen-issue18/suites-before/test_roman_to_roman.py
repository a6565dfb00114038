import roman
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from roman import to_roman


def test_to_roman_1994():
    assert to_roman(1994) == 'MCMXCIV'


def test_to_roman_1999():
    assert to_roman(1999) == 'MCMXCIX'


def test_to_roman_3999():
    assert to_roman(3999) == 'MMMCMXCIX'


def test_to_roman_3998():
    assert to_roman(3998) == 'MMMCMXCVIII'


def test_to_roman_3997():
    assert to_roman(3997) == 'MMMCMXCVII'


def test_to_roman_3996():
    assert to_roman(3996) == 'MMMCMXCVI'


def test_to_roman_3995():
    assert to_roman(3995) == 'MMMCMXCV'


def test_to_roman_3994_1():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_2():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_3():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_4():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_5():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_6():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_7():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_8():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_9():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_10():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_11():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_12():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_13():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_14():
    assert to_roman(3994) == 'MMMCMXCIV'


def test_to_roman_3994_15():
    assert to_roman(3994) == 'MMMCMXCIV'


@settings(derandomize=True, deadline=None, database=None)
@given(number=st.integers())
def test_fuzz_to_roman(number: int) -> None:
    try:
        roman.to_roman(number=number)
    except (TypeError, ValueError):
        reject()
