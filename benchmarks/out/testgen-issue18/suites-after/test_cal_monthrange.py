import datetime
import locale as _locale
import pytest
import sys
from cal import monthrange
from itertools import repeat


def test_monthrange_2_2():
    day1, ndays = monthrange(2023, 2)
    assert ndays == 28


def test_monthrange_3_1():
    day1, ndays = monthrange(2023, 3)
    assert day1 == 2


def test_monthrange_3_2():
    day1, ndays = monthrange(2023, 3)
    assert ndays == 31


def test_monthrange_4_2():
    day1, ndays = monthrange(2023, 4)
    assert ndays == 30


def test_monthrange_5_2():
    day1, ndays = monthrange(2023, 5)
    assert ndays == 31


def test_monthrange_6_2():
    day1, ndays = monthrange(2023, 6)
    assert ndays == 30


def test_monthrange_7_2():
    day1, ndays = monthrange(2023, 7)
    assert ndays == 31


def test_monthrange_8_2():
    day1, ndays = monthrange(2023, 8)
    assert ndays == 31


def test_monthrange_10_2():
    day1, ndays = monthrange(2023, 10)
    assert ndays == 31


def test_monthrange_12_2():
    day1, ndays = monthrange(2023, 12)
    assert ndays == 31
