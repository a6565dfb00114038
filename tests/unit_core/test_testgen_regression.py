"""Regression tests on offer (testgen/regression.py): which failing tests qualify, the probe
that reports the computed value, and the pinned test."""

from __future__ import annotations

import ast

import pytest

from testgen.regression import MARK, MAX_VALUE, pinned, probe_tests, value_of
from testgen.split import TestCase as Case


def case(src: str) -> Case:
    name = src.split("def ", 1)[1].split("(", 1)[0]
    return Case(name, src)


MERGE = case("def test_m():\n    xs = [(1, 3), (4, 7)]\n    assert merge(xs) == [(1, 3), (4, 7)]\n")


def test_probe_reports_the_computed_side() -> None:
    (probe,) = probe_tests([MERGE])
    assert probe.name == "test_m"
    ns: dict[str, object] = {"merge": lambda xs: [(1, 7)]}
    exec(probe.source, ns)  # noqa: S102 - our own probe text
    with pytest.raises(AssertionError) as info:
        ns["test_m"]()  # type: ignore[operator]
    assert str(info.value) == f"{MARK}[(1, 7)]"
    assert value_of(f"AssertionError: {info.value}\nassert False") == "[(1, 7)]"


def test_probe_of_a_value_that_is_no_literal() -> None:
    (probe,) = probe_tests([case("def test_o():\n    assert 3 == make()\n")])
    ns: dict[str, object] = {"make": object}
    exec(probe.source, ns)  # noqa: S102
    with pytest.raises(AssertionError) as info:
        ns["test_o"]()  # type: ignore[operator]
    assert str(info.value) == "no literal"
    assert value_of("AssertionError: no literal") is None


def test_probe_of_a_value_of_another_type_that_compares_equal() -> None:
    # True == 1, but `assert f() == 1` pinned to `True` would be a different test.
    (probe,) = probe_tests([case("def test_b():\n    assert f() == 1\n")])
    ns: dict[str, object] = {"f": lambda: 1.0}
    exec(probe.source, ns)  # noqa: S102
    with pytest.raises(AssertionError) as info:
        ns["test_b"]()  # type: ignore[operator]
    assert str(info.value) == f"{MARK}1.0"


@pytest.mark.parametrize("src", [
    "def test_a():\n    assert f(1) == g(2)\n",  # no literal side
    "def test_a():\n    assert 1 == 1\n",  # both literal
    "def test_a():\n    assert f(1) != 2\n",
    "def test_a():\n    assert f(1) == 2\n    print('after')\n",  # not the last statement
    "def test_a():\n    assert 0 < f(1) == 2\n",
    "@pytest.mark.parametrize('x', [1])\ndef test_a(x):\n    assert f(x) == 2\n",
    "class TestA:\n    def test_a(self):\n        assert f(1) == 2\n",
    "def test_a(:\n",
])
def test_tests_that_do_not_qualify(src: str) -> None:
    test = Case("test_a", src)
    assert probe_tests([test]) == []
    assert pinned(test, "3") is None


def test_pinned_replaces_the_literal_side_and_says_so() -> None:
    fixed = pinned(MERGE, "[(1, 7)]")
    assert fixed is not None and fixed.name == "test_m"
    first, rest = fixed.source.split("\n", 1)
    assert first.startswith("# Regression test: the expected value is what the code returned")
    assert "(the generated test expected [(1, 3), (4, 7)])" in first
    tree = ast.parse(rest)
    assert ast.unparse(tree.body[0]).endswith("assert merge(xs) == [(1, 7)]")
    left = pinned(case("def test_l():\n    assert 'x' == f()\n"), "'y'")
    assert left is not None and "assert 'y' == f()" in left.source
    assert pinned(MERGE, "[(1, 3), (4, 7)]") is None  # nothing to change


def test_value_of_rejects_long_or_broken_values() -> None:
    assert value_of("nothing here") is None
    assert value_of(f"{MARK}[1, 2") is None
    assert value_of(MARK + "'" + "x" * MAX_VALUE + "'") is None
    assert value_of(f"E   AssertionError: {MARK}{{'a': 1}}\n") == "{'a': 1}"
