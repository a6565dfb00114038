import pytest
from bank import Account


def test_withdraw_positive():
    """Test withdraw with positive amount."""
    account = Account("bob", 10)
    assert account.withdraw(3) == 7


def test_withdraw_negative():
    """Test withdraw with negative amount."""
    account = Account("bob", 10)
    with pytest.raises(ValueError):
        account.withdraw(-5)
