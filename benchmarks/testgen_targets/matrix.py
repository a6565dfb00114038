"""Lists-of-lists matrices."""

Matrix = list[list[float]]


def transpose(m: Matrix) -> Matrix:
    """Rows become columns.

    >>> transpose([[1, 2, 3], [4, 5, 6]])
    [[1, 4], [2, 5], [3, 6]]
    """
    if not m:
        return []
    width = len(m[0])
    if any(len(row) != width for row in m):
        raise ValueError("ragged matrix")
    return [[row[j] for row in m] for j in range(width)]


def matmul(a: Matrix, b: Matrix) -> Matrix:
    """Matrix product.

    >>> matmul([[1, 2]], [[3], [4]])
    [[11]]
    """
    if not a or not b:
        raise ValueError("empty matrix")
    if len(a[0]) != len(b):
        raise ValueError(f"cannot multiply {len(a)}x{len(a[0])} by {len(b)}x{len(b[0])}")
    cols = transpose(b)
    return [[sum(x * y for x, y in zip(row, col)) for col in cols] for row in a]
