import pytest
import slug
from hypothesis import given, reject, strategies as st
from hypothesis import settings
from slug import slugify


def test_slugify_normal():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("Crème brûlée") == "creme-brulee"


def test_slugify_empty():
    assert slugify("") == ""


@settings(derandomize=True, deadline=None, database=None)
@given(text=st.text(), max_length=st.integers())
def test_fuzz_slugify(text: str, max_length: int) -> None:
    try:
        slug.slugify(text=text, max_length=max_length)
    except (TypeError, ValueError):
        reject()
