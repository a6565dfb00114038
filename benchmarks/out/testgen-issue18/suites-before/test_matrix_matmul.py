import pytest
from matrix import matmul


def test_matmul_empty_matrix():
    with pytest.raises(ValueError):
        matmul([], [])


def test_matmul_single_row_matrix():
    with pytest.raises(ValueError):
        matmul([[1]], [])


def test_matmul_single_col_matrix():
    with pytest.raises(ValueError):
        matmul([[1, 2]], [[3]])


def test_matmul_two_rows_and_one_col_matrix():
    expected = [[11]]
    result = matmul([[1, 2]], [[3], [4]])
    assert result == expected, f"Expected {expected}, got {result}"


def test_matmul_two_rows_and_two_cols_matrix():
    """Matrix product.

    >>> matmul([[1, 2]], [[3], [4]])
    [[11]]
    """
    assert matmul([[1, 2]], [[3], [4]]) == [[11]], "Test failed: cannot multiply 2x2 by 1x2"


def test_matmul_three_rows_and_one_col_matrix():
    """Matrix product.

    >>> matmul([[1, 2]], [[3], [4]])
    [[11]]
    """
    assert matmul([[1, 2]], [[3], [4]]) == [[11]], "Test failed: cannot multiply 3x2 by 1x2"


def test_matmul_three_rows_and_two_cols_matrix():
    """Matrix product.

    >>> matmul([[1, 2]], [[3], [4]])
    [[11]]
    """
    assert matmul([[1, 2]], [[3], [4]]) == [[11]], "Test failed: cannot multiply 4x2 by 3x2"
