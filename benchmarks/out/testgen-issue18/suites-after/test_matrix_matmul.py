import pytest
from matrix import matmul


def test_matmul_empty_matrix():
    with pytest.raises(ValueError):
        matmul([], [])


def test_matmul_single_col():
    with pytest.raises(ValueError):
        matmul([[1, 2]], [[4]])


def test_matmul_two_rows():
    expected = [[11]]
    result = matmul([[1, 2]], [[3], [4]])
    assert result == expected, f"Expected {expected}, got {result}"


def test_matmul_different_rows():
    expected = [[11]]
    result = matmul([[1, 2]], [[3], [4]])
    assert result == expected, f"Expected {expected}, got {result}"


def test_matmul_single_row():
    """Test matmul with a single row."""
    a = [[1, 2]]
    b = [[3], [4]]
    expected = [[11]]
    assert matmul(a, b) == expected, "Expected [[11]], got [[10]]"


def test_matmul_different_cols():
    """Test matmul with different columns."""
    a = [[1, 2]]
    b = [[3], [4]]
    expected = [[11]]
    assert matmul(a, b) == expected, "Expected [[11]], got [[10]]"
