from server.debounce import Debouncer


def test_first_request_and_pauses_are_not_delayed() -> None:
    d = Debouncer(0.15)
    assert d.delay("a", 0.0) == 0.0
    assert d.delay("a", 5.0) == 0.0  # after a pause


def test_fast_typing_waits_a_bit_longer_than_the_rhythm() -> None:
    d = Debouncer(0.15)
    t = 0.0
    delays = []
    for _ in range(10):
        delays.append(d.delay("a", t))
        t += 0.08
    assert delays[0] == 0.0
    assert all(abs(x - 0.1) < 1e-9 for x in delays[2:]), delays  # 1.25 x 80 ms


def test_slow_typing_is_not_delayed_and_delay_is_capped() -> None:
    d = Debouncer(0.15)
    t = 0.0
    for _ in range(5):
        assert d.delay("a", t) == 0.0 or t == 0.0
        t += 0.3  # slower than the cap: waiting would only add latency
    d2 = Debouncer(0.15)
    for i in range(5):
        x = d2.delay("b", i * 0.14)
    assert x <= 0.15


def test_documents_are_independent_and_zero_disables() -> None:
    d = Debouncer(0.15)
    d.delay("a", 0.0)
    assert d.delay("b", 0.05) == 0.0
    off = Debouncer(0.0)
    off.delay("a", 0.0)
    assert off.delay("a", 0.05) == 0.0
