import pytest
import slug
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from slug import slugify


def test_slugify_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_3():
    assert slugify('Python 3.8') == 'python-3-8'


def test_slugify_4():
    assert slugify('1234567890') == '1234567890'


def test_slugify_5():
    assert slugify('1234567890-1234567890') == '1234567890-1234567890'


def test_slugify_6_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_6_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_7_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_7_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_8_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_8_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_9_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_9_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_10_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_10_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_11_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_11_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


def test_slugify_12_1():
    assert slugify('Hello, World!') == 'hello-world'


def test_slugify_12_2():
    assert slugify('Crème brûlée') == 'creme-brulee'


@settings(derandomize=True, deadline=None, database=None)
@given(text=st.text(), max_length=st.integers())
def test_fuzz_slugify(text: str, max_length: int) -> None:
    try:
        slug.slugify(text=text, max_length=max_length)
    except (TypeError, ValueError):
        reject()
