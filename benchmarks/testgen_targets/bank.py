"""A bank account."""


class InsufficientFunds(Exception):
    pass


class Account:
    def __init__(self, owner: str, balance: int = 0) -> None:
        if balance < 0:
            raise ValueError("opening balance must be >= 0")
        self.owner = owner
        self.balance = balance
        self.history: list[int] = []

    def deposit(self, amount: int) -> int:
        """Add ``amount`` (> 0) and return the new balance.

        >>> Account("ann").deposit(5)
        5
        """
        if amount <= 0:
            raise ValueError("deposit must be positive")
        self.balance += amount
        self.history.append(amount)
        return self.balance

    def withdraw(self, amount: int) -> int:
        """Take ``amount`` (> 0) out; InsufficientFunds if the balance is too low.

        >>> Account("bob", 10).withdraw(3)
        7
        """
        if amount <= 0:
            raise ValueError("withdrawal must be positive")
        if amount > self.balance:
            raise InsufficientFunds(f"balance {self.balance} < {amount}")
        self.balance -= amount
        self.history.append(-amount)
        return self.balance
