"""Regression tests from failing tests whose only fault may be the expected value.

The model often calls the code right and guesses the result wrong (``assert f([(1, 3), (4,
7)]) == [(1, 3), (4, 7)]`` where ``f`` merges touching intervals into ``[(1, 7)]``). Such a test
is not kept: its expectation was wrong, and nobody knows whether the code or the guess is. It
can become a *regression test* that pins what the code returns today — but only a person can
say the code is right, so these are offered apart and written only when the user agrees
(setting ``testgenRegressionTests``; the server asks).

Pure except for :func:`probe_tests`' output being run by the caller: a failing test whose last
statement is ``assert A == B`` with one side a literal is turned into a probe that fails with
the other side's value (``PINGTI_VALUE:<repr>``), which the sandbox run reports in the failure
message; :func:`pinned` then writes the test with that value as the expectation.
"""

from __future__ import annotations

import ast
import re

from testgen.split import TestCase

MARK = "PINGTI_VALUE:"
_VALUE = re.compile(re.escape(MARK) + r"(.*)")
# Values longer than this are left out: the failure report cuts messages at 500 characters,
# and a long literal is no test a person would read and check.
MAX_VALUE = 300
COMMENT = ("# Regression test: the expected value is what the code returned when the test "
           "was written{was} — you chose to keep these; check that it is right.")


def _comparison(test: TestCase) -> tuple[ast.FunctionDef, ast.Assert, ast.expr, int] | None:
    """The test's function, its last statement (``assert A == B``), the non-literal side and
    which side the literal is on (0 left, 1 right); None when the test is not of that form."""
    try:
        tree = ast.parse(test.source)
    except SyntaxError:
        return None
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), None)
    if fn is None or not fn.body or fn.decorator_list:
        return None
    last = fn.body[-1]
    if not isinstance(last, ast.Assert) or not isinstance(last.test, ast.Compare) \
            or len(last.test.ops) != 1 or not isinstance(last.test.ops[0], ast.Eq):
        return None
    left, right = last.test.left, last.test.comparators[0]
    if _literal(right) and not _literal(left):
        return fn, last, left, 1
    if _literal(left) and not _literal(right):
        return fn, last, right, 0
    return None


def _literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False
    return True


def probe_tests(tests: list[TestCase]) -> list[TestCase]:
    """For each test of the right form, a probe of the same name whose last statement fails
    with ``PINGTI_VALUE:<repr of the computed side>`` (or without a value when the repr is not
    a literal that reads back equal)."""
    out = []
    for test in tests:
        found = _comparison(test)
        if found is None:
            continue
        fn, _, computed, _ = found
        probe = ast.parse(
            "__pingti_actual = None\n"
            "import ast as __pingti_ast\n"
            "try:\n"
            "    __pingti_back = __pingti_ast.literal_eval(repr(__pingti_actual))\n"
            "except Exception:\n"
            "    __pingti_back = object()\n"
            f"assert False, ({MARK!r} + repr(__pingti_actual)) "
            "if __pingti_back == __pingti_actual and type(__pingti_back) is "
            "type(__pingti_actual) else 'no literal'\n").body
        assign = probe[0]
        assert isinstance(assign, ast.Assign)
        assign.value = computed
        fn.body = [*fn.body[:-1], *probe]
        ast.fix_missing_locations(fn)
        out.append(TestCase(test.name, ast.unparse(fn) + "\n"))
    return out


def value_of(failure: str) -> str | None:
    """The value a probe reported in its failure message, if it reported one."""
    m = _VALUE.search(failure)
    if m is None:
        return None
    text = m.group(1).strip()
    if len(text) > MAX_VALUE:
        return None
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return None
    return text


def pinned(test: TestCase, value: str) -> TestCase | None:
    """``test`` with its literal expectation replaced by ``value`` (a Python literal's text);
    None when that would not change it or it is not of the right form."""
    found = _comparison(test)
    if found is None:
        return None
    fn, last, _, side = found
    compare = last.test
    assert isinstance(compare, ast.Compare)
    old = compare.comparators[0] if side == 1 else compare.left
    new = ast.parse(value, mode="eval").body
    if ast.dump(old) == ast.dump(new):
        return None
    if side == 1:
        compare.comparators = [new]
    else:
        compare.left = new
    was = f" (the generated test expected {_short(ast.unparse(old))})"
    return TestCase(test.name, COMMENT.format(was=was) + "\n" + ast.unparse(fn) + "\n")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
