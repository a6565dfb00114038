"""A model's answer into separate pytest tests (testgen/split.py)."""

from __future__ import annotations

import ast
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testgen.split import (
    ParsedTests,
    defined_names,
    extract_code,
    rename_colliding,
    render_module,
    split_tests,
)
from testgen.split import TestCase as Case  # not collected by pytest under this name


def fence(code: str, lang: str = "python") -> str:
    return f"```{lang}\n{textwrap.dedent(code).strip()}\n```"


def names(parsed: ParsedTests) -> list[str]:
    return [t.name for t in parsed.tests]


# --- extract_code ---------------------------------------------------------------------------


def test_one_python_block_with_prose_around() -> None:
    answer = "Here are the tests:\n\n" + fence("def test_a():\n    assert 1") + "\n\nHope it helps!"
    assert extract_code(answer) == "def test_a():\n    assert 1"


def test_several_blocks_are_joined() -> None:
    answer = (fence("import math", "python") + "\nthen\n" + fence("x = 1", "") + "\nand\n"
              + fence("y = 2", "py") + "\n" + fence("z = 3", "Python3"))
    assert extract_code(answer) == "import math\n\nx = 1\n\ny = 2\n\nz = 3"


def test_other_languages_are_left_out() -> None:
    answer = fence("pip install foo", "bash") + "\n" + fence("x = 1") + "\n" + fence("{}", "json")
    assert extract_code(answer) == "x = 1"


def test_info_string_after_the_language() -> None:
    assert extract_code("```python title=test_x.py\nx = 1\n```") == "x = 1"


def test_no_fence_is_the_whole_answer() -> None:
    answer = "def test_a():\n    assert 1\n"
    assert extract_code(answer) == answer


def test_unterminated_fence_at_the_token_limit() -> None:
    answer = "Sure:\n```python\ndef test_a():\n    assert 1\n\ndef test_b():\n    x = ["
    assert extract_code(answer) == "def test_a():\n    assert 1\n\ndef test_b():\n    x = ["


# --- split_tests ----------------------------------------------------------------------------


FULL = fence('''
    import pytest
    from mod import f
    import pytest
    from mod import f

    @pytest.fixture
    def data():
        return [1, 2]

    CONST: int = 3
    OTHER = 4

    def helper(x):
        return x

    class Builder:
        pass

    @pytest.mark.parametrize("a, b", [(1, 2), (2, 3)])
    def test_inc(a, b):
        assert f(a) == b

    async def test_async():
        assert True

    class TestGroup:
        def test_one(self):
            assert helper(1) == 1

    print("running")
    test_inc(1, 2)
    pytest.main()
    if __name__ == "__main__":
        pytest.main([__file__])
''')


def test_imports_deduplicated_first_in_the_preamble() -> None:
    parsed = split_tests(FULL)
    assert parsed.imports == ["import pytest", "from mod import f"]
    assert parsed.preamble[:2] == ["import pytest", "from mod import f"]


def test_fixtures_helpers_constants_stay_in_the_preamble() -> None:
    parsed = split_tests(FULL)
    assert parsed.preamble[2:] == [
        "@pytest.fixture\ndef data():\n    return [1, 2]",
        "CONST: int = 3",
        "OTHER = 4",
        "def helper(x):\n    return x",
        "class Builder:\n    pass",
    ]


def test_tests_are_split_with_their_decorators() -> None:
    parsed = split_tests(FULL)
    assert names(parsed) == ["test_inc", "test_async", "TestGroup"]
    inc, asy, group = parsed.tests
    assert inc.source.startswith("@pytest.mark.parametrize(")
    assert "def test_inc(a, b):\n    assert f(a) == b" in inc.source
    assert asy.source == "async def test_async():\n    assert True"
    assert group.source.startswith("class TestGroup:\n    def test_one(self):")
    assert parsed.dropped == 0
    for t in parsed.tests:
        ast.parse(t.source)


def test_top_level_calls_and_main_guard_are_dropped() -> None:
    parsed = split_tests(FULL)
    everything = "\n".join(parsed.preamble + [t.source for t in parsed.tests])
    assert "print(" not in everything
    assert "pytest.main" not in everything
    assert "__main__" not in everything
    assert "test_inc(1, 2)" not in everything


def test_several_decorators_are_kept_in_order() -> None:
    parsed = split_tests(fence('''
        import pytest

        @pytest.mark.slow
        @pytest.mark.parametrize("x", [1, 2])
        def test_x(x):
            assert x
    '''))
    src = parsed.tests[0].source
    assert src.index("@pytest.mark.slow") < src.index("@pytest.mark.parametrize") < src.index("def ")


def test_duplicate_names_are_renamed_def_line_included() -> None:
    parsed = split_tests(fence('''
        def test_x():
            assert 1

        def test_x():
            assert 2

        async def test_x():
            assert 3

        class TestX:
            pass

        class TestX:
            pass
    '''))
    assert names(parsed) == ["test_x", "test_x_2", "test_x_3", "TestX", "TestX_2"]
    assert parsed.tests[1].source == "def test_x_2():\n    assert 2"
    assert parsed.tests[2].source == "async def test_x_3():\n    assert 3"
    assert parsed.tests[4].source == "class TestX_2:\n    pass"


def test_renaming_avoids_a_name_the_answer_also_uses() -> None:
    parsed = split_tests(fence('''
        def test_x():
            assert 1

        def test_x():
            assert 2

        def test_x_2():
            assert 3
    '''))
    assert names(parsed) == ["test_x", "test_x_2", "test_x_2_2"]
    assert len(set(names(parsed))) == 3


def test_renaming_touches_only_the_definition_line() -> None:
    parsed = split_tests(fence('''
        def test_x():
            assert 1

        @pytest.mark.parametrize("name", ["test_x"])
        def test_x(name):
            assert name == "test_x"
    '''))
    second = parsed.tests[1]
    assert second.name == "test_x_2"
    assert "def test_x_2(name):" in second.source
    assert second.source.count('"test_x"') == 1 and "['test_x']" in second.source


def test_broken_piece_is_dropped_and_counted_the_rest_kept() -> None:
    parsed = split_tests(fence('''
        import pytest

        def test_a():
            assert 1 == 1

        def test_broken(:
            pass

        @pytest.mark.skipif(False, reason="never")
        def test_c():
            assert True
    '''))
    assert names(parsed) == ["test_a", "test_c"]
    assert parsed.dropped == 1
    assert parsed.imports == ["import pytest"]
    assert parsed.tests[1].source.startswith("@pytest.mark.skipif(")


def test_answer_cut_mid_function_at_the_token_limit() -> None:
    answer = ("```python\nfrom mod import f\n\ndef test_a():\n    assert f(1) == 2\n\n"
              "def test_b():\n    assert f(2) == 4\n\ndef test_c():\n    assert f(3) == [6,")
    parsed = split_tests(answer)
    assert names(parsed) == ["test_a", "test_b"]
    assert parsed.dropped == 1
    assert parsed.preamble == ["from mod import f"]


@pytest.mark.parametrize("answer", [
    "I cannot write tests for this function.",
    "```python\nAll lines are already covered.\n```",
])
def test_answer_without_any_top_level_statement(answer: str) -> None:
    parsed = split_tests(answer)
    assert parsed.tests == [] and parsed.preamble == []


def test_fenced_code_indented_in_a_list_is_dedented() -> None:
    parsed = split_tests("1. Tests:\n   ```python\n   def test_a():\n       assert 1\n   ```")
    assert [t.name for t in parsed.tests] == ["test_a"]


def test_prose_that_parses_is_no_test() -> None:
    # A one-word answer is a valid expression statement: dropped like any top-level expression.
    parsed = split_tests("Sorry")
    assert parsed.tests == [] and parsed.preamble == [] and parsed.dropped == 0


def test_no_tests_only_helpers() -> None:
    parsed = split_tests(fence("import os\n\ndef helper():\n    return 1\n"))
    assert parsed.tests == []
    assert parsed.preamble == ["import os", "def helper():\n    return 1"]


def test_unfenced_answer() -> None:
    parsed = split_tests("from m import g\n\ndef test_g():\n    assert g() is None\n")
    assert names(parsed) == ["test_g"]
    assert parsed.imports == ["from m import g"]


# --- property: render then split ------------------------------------------------------------

IDENT = st.from_regex(r"[a-z0-9_]{1,12}", fullmatch=True)
TEST_NAME = IDENT.map(lambda s: "test_" + s)
BODY = st.lists(
    st.sampled_from([
        "assert 1 + 1 == 2",
        "x = [1, 2, 3]\nassert len(x) == 3",
        "assert helper() == 1",
        'assert "def test_fake():" in "def test_fake(): pass"',
        "with pytest.raises(ZeroDivisionError):\n    1 / 0",
        "for i in range(3):\n    assert i >= 0",
        "pass",
    ]),
    min_size=1, max_size=3)


@st.composite
def case_lists(draw: st.DrawFn) -> list[Case]:
    test_names = draw(st.lists(TEST_NAME, min_size=1, max_size=6, unique=True))
    cases = []
    for name in test_names:
        body = textwrap.indent("\n".join(draw(BODY)), "    ")
        kind = draw(st.sampled_from(["def", "async def", "decorated"]))
        if kind == "decorated":
            src = f'@pytest.mark.parametrize("v", [1, 2])\ndef {name}(v):\n{body}'
        else:
            src = f"{kind} {name}():\n{body}"
        cases.append(Case(name, src))
    return cases


@settings(max_examples=60, deadline=None)
@given(case_lists())
def test_render_then_split_round_trips_the_names(cases: list[Case]) -> None:
    imports = ["import pytest", "from mod import helper"]
    helpers = ["CONST = 1", "def make():\n    return CONST"]
    text = render_module(imports, helpers, cases)
    ast.parse(text)
    parsed = split_tests(text)
    assert names(parsed) == [c.name for c in cases]
    assert parsed.dropped == 0
    assert parsed.imports == imports
    assert parsed.preamble == imports + helpers
    # Fenced like a model's answer, the same.
    assert names(split_tests("Here:\n```python\n" + text + "```\n")) == [c.name for c in cases]


# --- rename_colliding -----------------------------------------------------------------------


@settings(max_examples=80, deadline=None)
@given(st.lists(TEST_NAME, max_size=8), st.sets(TEST_NAME, max_size=8))
def test_rename_colliding_never_returns_a_taken_name(test_names: list[str], taken: set[str]) -> None:
    # Names may repeat among the tests too (two answers' test_x).
    tests = [Case(n, f"def {n}():\n    assert {i} == {i}") for i, n in enumerate(test_names)]
    out = rename_colliding(tests, taken)
    assert len(out) == len(tests)
    new_names = [t.name for t in out]
    assert not set(new_names) & taken
    assert len(set(new_names)) == len(new_names)
    for before, after in zip(tests, out, strict=True):
        # Order kept; a renamed test is its original name plus a suffix, with the def renamed.
        assert after.name == before.name or after.name.startswith(before.name + "_")
        assert defined_names(after.source) == {after.name}
        assert after.source.split("\n", 1)[1] == before.source.split("\n", 1)[1]


def test_rename_colliding_examples() -> None:
    tests = [Case("test_a", "def test_a():\n    pass"), Case("test_b", "def test_b():\n    pass"),
             Case("TestC", "class TestC:\n    pass")]
    out = rename_colliding(tests, {"test_a", "test_a_2", "TestC"})
    assert [t.name for t in out] == ["test_a_3", "test_b", "TestC_2"]
    assert out[0].source == "def test_a_3():\n    pass"
    assert out[1] is not tests[1] and out[1] == tests[1]
    assert out[2].source == "class TestC_2:\n    pass"
    # taken itself is not changed.
    assert rename_colliding([], {"x"}) == []


# --- defined_names, render_module -------------------------------------------------------------


def test_defined_names_of_valid_code() -> None:
    code = textwrap.dedent('''\
        import os
        X = 1

        def test_a():
            def inner():
                pass

        async def test_b():
            pass

        class TestC:
            def test_method(self):
                pass

        @pytest.fixture
        def fixture_d():
            pass
        ''')
    assert defined_names(code) == {"test_a", "test_b", "TestC", "fixture_d"}


def test_defined_names_of_broken_code_is_best_effort() -> None:
    code = "def test_a():\n    pass\n\nasync def test_b():\n    x = (\n\nclass TestC:\n    def m(self):\n"
    assert defined_names(code) >= {"test_a", "test_b", "TestC"}
    assert "m" not in defined_names(code)  # only top-level lines
    assert defined_names("") == set()


def test_render_module_layout_and_parse() -> None:
    tests = [Case("test_a", "def test_a():\n    assert 1\n"), Case("test_b", "\ndef test_b():\n    pass")]
    text = render_module(["import os", "from m import f"], ["X = 1", ""], tests)
    assert text == ("import os\nfrom m import f\n\n\nX = 1\n\n\ndef test_a():\n    assert 1\n\n\n"
                    "def test_b():\n    pass\n")
    ast.parse(text)
    assert defined_names(text) == {"test_a", "test_b"}


def test_render_module_without_imports_or_helpers() -> None:
    text = render_module([], [], [Case("test_a", "def test_a():\n    pass")])
    assert text == "def test_a():\n    pass\n"
    assert render_module([], [], []) == "\n"


# --- a model's answer: one test per check, a cut-off test kept, no copy of the code ----------

def test_a_test_with_several_asserts_becomes_one_test_per_assert() -> None:
    answer = '''```python
import pytest
from shop import Cart

def test_cart():
    """Totals."""
    cart = Cart()
    cart.add("apple", 2)
    assert cart.total() == 2
    cart.add("pear", 3)
    assert cart.total() == 5
    assert cart.total() == 5
    with pytest.raises(ValueError):
        cart.add("fig", -1)
```'''
    parsed = split_tests(answer, one_per_check=True)
    assert names(parsed) == ["test_cart_1", "test_cart_2", "test_cart_3"]
    second = parsed.tests[1].source
    # Every statement before the check comes with it, in order; the repeated assert is dropped.
    assert second.index("cart = Cart()") < second.index("cart.add('apple', 2)") < \
        second.index("cart.add('pear', 3)") < second.index("assert cart.total() == 5")
    assert "== 2" not in second and "raises" in parsed.tests[2].source
    # A user's own file is never split.
    assert names(split_tests(answer)) == ["test_cart"]


def test_asserts_inside_blocks_or_a_single_check_keep_the_test_whole() -> None:
    loop = "def test_loop():\n    for x in [1, 2]:\n        assert x > 0\n    assert True\n"
    one = "def test_one():\n    x = 1\n    assert x == 1\n"
    assert names(split_tests(loop, one_per_check=True)) == ["test_loop"]
    assert names(split_tests(one, one_per_check=True)) == ["test_one"]


def test_a_test_cut_off_at_the_token_limit_keeps_its_complete_asserts() -> None:
    answer = ('```python\nfrom m import f\n\ndef test_ok():\n    assert f(1) == 1\n\n'
              'def test_cut():\n    assert f(2) == 2\n    assert f(3) == "th')
    parsed = split_tests(answer, one_per_check=True)
    assert names(parsed) == ["test_ok", "test_cut"] and parsed.dropped == 0
    assert "f(3)" not in parsed.tests[1].source
    # Cut before any check: it would pass whatever f does, so it is dropped.
    setup_only = '```python\ndef test_ok():\n    assert 1\n\ndef test_cut():\n    x = f(2)\n    y = f('
    parsed = split_tests(setup_only, one_per_check=True)
    assert names(parsed) == ["test_ok"] and parsed.dropped == 1


def test_a_copy_of_the_code_under_test_is_dropped() -> None:
    answer = ('```python\nfrom shellwords import quote\n\ndef quote(s):\n    return s\n\n'
              'def helper():\n    return 1\n\ndef test_q():\n    assert quote("") == "\'\'"\n```')
    parsed = split_tests(answer, frozenset({"quote", "split"}))
    assert parsed.preamble == ["from shellwords import quote", "def helper():\n    return 1"]
