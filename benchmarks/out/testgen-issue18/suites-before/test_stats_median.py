import math
import numbers
import pytest
import random
import sys
from bisect import bisect_left, bisect_right
from collections import Counter, namedtuple, defaultdict
from decimal import Decimal
from fractions import Fraction
from functools import reduce
from itertools import groupby, repeat
from math import hypot, sqrt, fabs, exp, erf, tau, log, fsum
from operator import mul
from stats import median


def median(data):
    """Return the median (middle value) of numeric data.

    When the number of data points is odd, return the middle data point.
    When the number of data points is even, the median is interpolated by
    taking the average of the two middle values:

    >>> median([1, 3, 5])
    3
    >>> median([1, 3, 5, 7])
    4.0

    """
    data = sorted(data)
    n = len(data)
    if n == 0:
        raise StatisticsError("no median for empty data")
    if n % 2 == 1:
        return data[n // 2]
    else:
        i = n // 2
        return (data[i - 1] + data[i]) / 2


def test_median_two_elements():
    assert median([1, 3, 5]) == 3


def test_median_three_elements():
    assert median([1, 3, 5, 7]) == 4.0


def test_median_negative_numbers():
    assert median([-1, -2, -3, -4, -5]) == -3.0


def test_median_zero():
    assert median([0]) == 0


def test_median_large_numbers_with_zero():
    assert median([0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) == 0.0


def test_median_odd_number_of_elements():
    """Test the median function with an odd number of elements."""
    data = [1, 3, 5]
    expected = 3
    assert median(data) == expected


def test_median_even_number_of_elements():
    """Test the median function with an even number of elements."""
    data = [1, 3, 5, 7]
    expected = 4.0
    assert median(data) == expected


def test_median_large_number_of_elements():
    """Test the median function with a large number of elements."""
    data = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    expected = 55.0
    assert median(data) == expected


def test_median_fractions():
    """Test the median function with a fraction."""
    data = [Fraction(1, 2), Fraction(3, 4), Fraction(5, 6)]
    expected = Fraction(3, 4)
    assert median(data) == expected


def test_median_decimal():
    """Test the median function with a decimal."""
    data = [Decimal(1.1), Decimal(2.2), Decimal(3.3)]
    expected = Decimal(2.2)
    assert median(data) == expected
