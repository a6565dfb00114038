import pytest
from bank import Account


def test_withdraw_negative_amount():
    """Test withdraw with a negative amount."""
    with pytest.raises(ValueError):
        Account("bob", 10).withdraw(-3)


def test_withdraw_zero_amount():
    """Test withdraw with a zero amount."""
    with pytest.raises(ValueError):
        Account("bob", 10).withdraw(0)
