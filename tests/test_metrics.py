"""Held-out split, pairwise accuracy, Kendall's tau and top-k diversity on hand-computed cases."""

import itertools
import math

import numpy as np
import pytest

from scoring.metrics import kendall_tau, pairwise_accuracy, split_held_out, top_k_diversity


@pytest.mark.parametrize(
    ("n", "fraction", "n_held"),
    [(10, 0.2, 2), (7, 0.2, 1), (2, 0.2, 1), (3, 0.9, 2), (100, 0.25, 25)],
)
def test_split_keeps_newest_out(n, fraction, n_held):
    # round(7 * 0.2) = 1; round(2 * 0.2) = 0 is raised to 1; round(3 * 0.9) = 3 is capped at n - 1 = 2.
    train, held_out = split_held_out(n, fraction)

    np.testing.assert_array_equal(train, np.arange(n - n_held))
    np.testing.assert_array_equal(held_out, np.arange(n - n_held, n))


@pytest.mark.parametrize(
    ("args", "message"),
    [((1,), "n must be an integer >= 2"), ((10, 0.0), "fraction must be between 0 and 1"),
     ((10, 1.0), "fraction must be between 0 and 1")],
)
def test_split_rejects_invalid_input(args, message):
    with pytest.raises(ValueError, match=message):
        split_held_out(*args)


def test_pairwise_accuracy_by_hand():
    scores = [3.0, 1.0, 2.0]
    # (0 beat 1): 3 > 1 right; (1 beat 2): 1 < 2 wrong; (2 beat 0): 2 < 3 wrong.
    assert pairwise_accuracy(scores, [0, 1, 2], [1, 2, 0]) == pytest.approx(1 / 3)
    # Weights 1, 2, 3: 1 / 6.
    assert pairwise_accuracy(scores, [0, 1, 2], [1, 2, 0], [1.0, 2.0, 3.0]) == pytest.approx(1 / 6)


def test_pairwise_accuracy_counts_ties_as_half():
    # (0 beat 1) tie -> 0.5; (0 beat 2) 1 > 0 -> 1; mean 0.75.
    assert pairwise_accuracy([1.0, 1.0, 0.0], [0, 0], [1, 2]) == pytest.approx(0.75)


def test_pairwise_accuracy_rejects_invalid_input():
    with pytest.raises(ValueError, match="at least one pair"):
        pairwise_accuracy([1.0, 2.0], [], [])
    with pytest.raises(ValueError, match="weights must be >= 0 and not all 0"):
        pairwise_accuracy([1.0, 2.0], [0], [1], [-1.0])


def test_kendall_tau_by_hand():
    # One discordant pair (items 1 and 2) out of 6: (5 - 1) / 6.
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_tau_b_with_ties_by_hand():
    # a = [1, 1, 2, 3], b = [1, 2, 3, 3]: of the 6 pairs, (0,1) is tied in a only,
    # (2,3) in b only, the other 4 are concordant. tau-b = (4 - 0) / sqrt((6 - 1)(6 - 1)) = 0.8.
    assert kendall_tau([1, 1, 2, 3], [1, 2, 3, 3]) == pytest.approx(0.8)


def test_kendall_tau_of_constant_scores_is_nan():
    assert math.isnan(kendall_tau([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_top_k_diversity_by_hand():
    # e0 = e1 = (1, 0), e2 = (0, 1), e3 = (-1, 0). Cosine distances:
    # (0,1) 0, (0,2) 1, (0,3) 2, (1,2) 1, (1,3) 2, (2,3) 1: pool mean 7/6.
    embeddings = [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]

    # Top 2 = clips 0 and 1: distance 0, ratio 0.
    assert top_k_diversity([4.0, 3.0, 2.0, 1.0], embeddings, k=2) == pytest.approx(0.0)
    # Top 2 = clips 0 and 2: distance 1, ratio 1 / (7/6) = 6/7.
    assert top_k_diversity([4.0, 1.0, 3.0, 2.0], embeddings, k=2) == pytest.approx(6 / 7)
    # Top 3 = clips 2, 3, 0: distances 1, 1, 2, mean 4/3, ratio (4/3) / (7/6) = 8/7.
    assert top_k_diversity([2.0, 0.0, 4.0, 3.0], embeddings, k=3) == pytest.approx(8 / 7)
    # k covers the pool: 1.
    assert top_k_diversity([4.0, 3.0, 2.0, 1.0], embeddings, k=10) == 1.0


def test_top_k_diversity_matches_brute_force():
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((30, 5)) * rng.uniform(0.5, 2.0, (30, 1))
    scores = rng.standard_normal(30)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)

    def mean_distance(indices):
        return np.mean([1 - unit[i] @ unit[j] for i, j in itertools.combinations(indices, 2)])

    top = np.argsort(-scores)[:10]
    expected = mean_distance(top) / mean_distance(range(30))
    assert top_k_diversity(scores, embeddings, k=10) == pytest.approx(expected, rel=1e-12)


def test_top_k_diversity_rejects_invalid_input():
    with pytest.raises(ValueError, match="k must be an integer >= 2"):
        top_k_diversity([1.0, 2.0], [[1.0, 0.0], [0.0, 1.0]], k=1)
    with pytest.raises(ValueError, match="embedding of clip 1 is zero"):
        top_k_diversity([1.0, 2.0], [[1.0, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match=r"scores must have shape \(n_clips,\)"):
        top_k_diversity([1.0, 2.0, 3.0], [[1.0, 0.0], [0.0, 1.0]])
