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


def test_median_odd():
    assert median([1, 3, 5]) == 3


def test_median_even():
    assert median([1, 3, 5, 7]) == 4.0


def test_median_zero():
    assert median([0]) == 0


def test_median_one():
    assert median([1]) == 1


def test_median_two():
    assert median([2, 3]) == 2.5


def test_median_three():
    assert median([3, 4, 5]) == 4.0


def test_median_four():
    """Test that 5.5 == 5.0."""
    assert median([5, 5, 5, 5]) == 5.0
