"""Roman numerals."""

_VALUES = [(1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), (100, "C"), (90, "XC"),
           (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), (5, "V"), (4, "IV"), (1, "I")]


def to_roman(number: int) -> str:
    """Write 1..3999 in Roman numerals.

    >>> to_roman(1994)
    'MCMXCIV'
    """
    if not isinstance(number, int) or isinstance(number, bool):
        raise TypeError("number must be an int")
    if not 0 < number < 4000:
        raise ValueError("number must be between 1 and 3999")
    out = []
    for value, letters in _VALUES:
        count, number = divmod(number, value)
        out.append(letters * count)
    return "".join(out)


def from_roman(text: str) -> int:
    """Read a Roman numeral (upper or lower case).

    >>> from_roman("xiv")
    14
    """
    text = text.strip().upper()
    if not text:
        raise ValueError("empty numeral")
    total, i = 0, 0
    for value, letters in _VALUES:
        while text.startswith(letters, i):
            total += value
            i += len(letters)
    if i != len(text) or to_roman(total) != text:
        raise ValueError(f"not a Roman numeral: {text!r}")
    return total
