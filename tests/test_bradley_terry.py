"""Bradley-Terry strengths and their bootstrap confidence intervals."""

import math

import numpy as np
import pytest
from scipy.special import expit

from scoring.bradley_terry import bootstrap_bradley_terry, fit_bradley_terry
from scoring.metrics import kendall_tau

TRUE_STRENGTHS = np.linspace(-2.0, 2.0, 12)


def simulate(n_judgments, seed):
    rng = np.random.default_rng(seed)
    n_items = TRUE_STRENGTHS.size
    first = rng.integers(0, n_items, n_judgments)
    second = (first + rng.integers(1, n_items, n_judgments)) % n_items
    first_wins = rng.random(n_judgments) < expit(TRUE_STRENGTHS[first] - TRUE_STRENGTHS[second])
    return np.where(first_wins, first, second), np.where(first_wins, second, first)


def test_two_items_by_hand():
    # Item 0 wins 3 times, item 1 once. With s = (d/2, -d/2) the penalised
    # log-likelihood 3 log sigmoid(d) + log sigmoid(-d) - ridge d^2 / 4 is
    # stationary where 3 - 4 sigmoid(d) = ridge d / 2; without the ridge,
    # sigmoid(d) = 3/4, so d = log 3.
    ridge = 0.01
    fit = fit_bradley_terry(2, [0, 0, 0, 1], [1, 1, 1, 0], ridge=ridge)
    d = fit.strengths[0] - fit.strengths[1]

    assert fit.strengths.sum() == pytest.approx(0.0, abs=1e-9)
    assert 3 - 4 * expit(d) == pytest.approx(ridge * d / 2, abs=1e-7)
    assert d == pytest.approx(math.log(3), abs=0.01)
    assert d < math.log(3)


def test_recovers_known_ordering():
    winners, losers = simulate(3000, seed=0)
    fit = fit_bradley_terry(TRUE_STRENGTHS.size, winners, losers)

    assert fit.converged
    assert kendall_tau(fit.strengths, TRUE_STRENGTHS) > 0.9
    np.testing.assert_allclose(fit.strengths, TRUE_STRENGTHS, atol=0.35)


def test_unbeaten_item_and_disconnected_items_stay_finite():
    # Item 0 beats everyone; items 3 and 4 were only compared with each other.
    fit = fit_bradley_terry(5, [0, 0, 0, 1, 3], [1, 2, 1, 2, 4])

    assert np.all(np.isfinite(fit.strengths))
    assert fit.strengths[0] == max(fit.strengths)
    assert fit.strengths.sum() == pytest.approx(0.0, abs=1e-9)


def test_confidence_intervals_cover_truth_and_shrink():
    few = bootstrap_bradley_terry(TRUE_STRENGTHS.size, *simulate(600, seed=1), n_boot=100, level=0.9, seed=2)
    many = bootstrap_bradley_terry(TRUE_STRENGTHS.size, *simulate(2400, seed=3), n_boot=100, level=0.9, seed=4)

    coverage_few = np.mean((few.lower <= TRUE_STRENGTHS) & (TRUE_STRENGTHS <= few.upper))
    coverage_many = np.mean((many.lower <= TRUE_STRENGTHS) & (TRUE_STRENGTHS <= many.upper))
    width_few = np.mean(few.upper - few.lower)
    width_many = np.mean(many.upper - many.lower)
    print(f"90% intervals: coverage {coverage_few:.2f} and {coverage_many:.2f}, mean width {width_few:.3f} "
          f"with 600 judgments and {width_many:.3f} with 2400")
    assert coverage_few >= 0.75
    assert coverage_many >= 0.75
    assert np.all(few.lower <= few.strengths)
    assert np.all(few.strengths <= few.upper)
    # Four times the data should about halve the width.
    assert width_many < 0.7 * width_few


def test_bootstrap_is_deterministic_for_a_seed():
    winners, losers = simulate(300, seed=5)
    first = bootstrap_bradley_terry(TRUE_STRENGTHS.size, winners, losers, n_boot=20, seed=6)
    second = bootstrap_bradley_terry(TRUE_STRENGTHS.size, winners, losers, n_boot=20, seed=6)

    np.testing.assert_array_equal(first.lower, second.lower)
    np.testing.assert_array_equal(first.upper, second.upper)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((3, [0, 1], [1, 3]), {}, r"item index 3 is out of range; indices must be in 0..2"),
        ((3, [0, 1], [1, 1]), {}, "pair 1 compares item 1 with itself"),
        ((3, [], []), {}, "not empty"),
        ((3, [0], [1]), {"ridge": 0.0}, "ridge must be > 0"),
        ((3, [0], [1], [-1.0]), {}, "weights must be finite, >= 0"),
    ],
)
def test_invalid_input_raises(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fit_bradley_terry(*args, **kwargs)


def test_bootstrap_rejects_invalid_settings():
    with pytest.raises(ValueError, match="n_boot must be an integer >= 10"):
        bootstrap_bradley_terry(3, [0], [1], n_boot=5)
    with pytest.raises(ValueError, match="level must be between 0 and 1"):
        bootstrap_bradley_terry(3, [0], [1], level=95)
