"""Model-free ranking of clips by Bradley-Terry strengths, with bootstrap intervals.

The Bradley-Terry model gives each item a strength ``s_i`` and lets item i beat
item j with probability ``sigmoid(s_i - s_j)``. It uses no features, so it
ranks only clips that were judged, and serves as a reference for the taste
function: where the two disagree, the features miss something the raters see.

The maximum-likelihood strengths do not exist when the comparison graph is
disconnected (no data fixes the offset between components) or when one item
wins all its comparisons (its strength runs to infinity). A Gaussian prior
``s ~ N(0, 1 / ridge)``, that is a penalty ``ridge / 2 * ||s||**2``, makes the
objective strictly convex, so the estimate always exists and is unique. It also
sums to 0: the likelihood does not change when every strength moves by the
same amount, and the penalty picks the centred solution.
"""

import dataclasses

import numpy as np
from scipy import optimize
from scipy.special import expit, log_expit

__all__ = ["DEFAULT_RIDGE", "BradleyTerryFit", "bootstrap_bradley_terry", "fit_bradley_terry"]

# A prior standard deviation of 10 logits: far wider than any strength seen in
# practice (a gap of 10 means a 99.995% win rate), so with a few judgments per
# item the likelihood dominates, yet an unbeaten item stays finite.
DEFAULT_RIDGE = 1e-2


def _check(n_items, winners, losers, weights, ridge):
    if not isinstance(n_items, (int, np.integer)) or n_items < 2:
        raise ValueError(f"n_items must be an integer >= 2; got {n_items!r}.")
    winners = np.asarray(winners)
    losers = np.asarray(losers)
    if winners.ndim != 1 or winners.shape != losers.shape or winners.size == 0:
        raise ValueError(
            f"winners and losers must be 1-dimensional, of equal length and not empty; "
            f"got shapes {winners.shape} and {losers.shape}."
        )
    if not (np.issubdtype(winners.dtype, np.integer) and np.issubdtype(losers.dtype, np.integer)):
        raise ValueError(f"winners and losers must be integer item indices; got {winners.dtype} and {losers.dtype}.")
    low = min(winners.min(), losers.min())
    high = max(winners.max(), losers.max())
    if low < 0 or high >= n_items:
        bad = low if low < 0 else high
        raise ValueError(f"item index {int(bad)} is out of range; indices must be in 0..{n_items - 1}.")
    if np.any(winners == losers):
        j = int(np.flatnonzero(winners == losers)[0])
        raise ValueError(f"pair {j} compares item {int(winners[j])} with itself; drop such pairs.")
    if weights is None:
        weights = np.ones(winners.size)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != winners.shape or not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"weights must be finite, >= 0 and one per pair ({winners.size}).")
    if not (np.isfinite(ridge) and ridge > 0):
        raise ValueError(f"ridge must be > 0 so that the estimate exists; got {ridge!r}.")
    return winners.astype(np.int64), losers.astype(np.int64), weights


def _negative_log_posterior(strengths, winners, losers, weights, ridge):
    diff = strengths[winners] - strengths[losers]
    value = -float(weights @ log_expit(diff)) + 0.5 * ridge * float(strengths @ strengths)
    # d/d diff of -log sigmoid(diff) is -(1 - sigmoid(diff)) = -sigmoid(-diff).
    slope = -weights * expit(-diff)
    n_items = strengths.size
    gradient = np.bincount(winners, slope, n_items) - np.bincount(losers, slope, n_items) + ridge * strengths
    return value, gradient


def _fit(n_items, winners, losers, weights, ridge, x0):
    result = optimize.minimize(
        _negative_log_posterior,
        x0,
        args=(winners, losers, weights, ridge),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 10_000, "ftol": 1e-14, "gtol": 1e-9},
    )
    return result.x, bool(result.success)


@dataclasses.dataclass(frozen=True)
class BradleyTerryFit:
    """Bradley-Terry strengths with bootstrap confidence intervals.

    Attributes
    ----------
    strengths : ndarray of shape (n_items,)
        Penalised maximum-likelihood strengths in logits, summing to 0.
    lower, upper : ndarray of shape (n_items,)
        Percentile bootstrap interval of each strength; NaN when no bootstrap ran.
    level : float
        Coverage the interval aims for, such as 0.95.
    n_boot : int
    converged : bool
        Whether the fit on the full data met its tolerance.
    """

    strengths: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    level: float
    n_boot: int
    converged: bool


def fit_bradley_terry(n_items, winners, losers, weights=None, *, ridge=DEFAULT_RIDGE):
    """Estimate Bradley-Terry strengths by penalised maximum likelihood.

    Maximises ``sum_j w_j log sigmoid(s[winners_j] - s[losers_j]) - ridge / 2 * ||s||**2``
    with L-BFGS-B; the objective is smooth and strictly convex.

    Parameters
    ----------
    n_items : int
    winners, losers : array-like of int, shape (n_pairs,)
    weights : array-like of shape (n_pairs,), default=None
        Judgment weights; None counts every judgment once.
    ridge : float, default=DEFAULT_RIDGE
        Precision of the Gaussian prior on each strength, > 0.

    Returns
    -------
    BradleyTerryFit
        With NaN intervals and ``n_boot = 0``; see :func:`bootstrap_bradley_terry`.
    """
    winners, losers, weights = _check(n_items, winners, losers, weights, ridge)
    strengths, converged = _fit(n_items, winners, losers, weights, ridge, np.zeros(n_items))
    missing = np.full(n_items, np.nan)
    return BradleyTerryFit(strengths, missing, missing.copy(), float("nan"), 0, converged)


def bootstrap_bradley_terry(n_items, winners, losers, weights=None, *, ridge=DEFAULT_RIDGE, n_boot=200,
                            level=0.95, seed=0):
    """Estimate strengths and percentile bootstrap confidence intervals.

    Each replicate resamples the judgments with replacement (as many as there
    are) and refits, starting from the full-data estimate.

    Parameters
    ----------
    n_items : int
    winners, losers : array-like of int, shape (n_pairs,)
    weights : array-like of shape (n_pairs,), default=None
    ridge : float, default=DEFAULT_RIDGE
    n_boot : int, default=200
        Number of bootstrap replicates, >= 10.
    level : float, default=0.95
        Two-sided coverage of each interval, in (0, 1).
    seed : int, default=0
        Seed of the resampling.

    Returns
    -------
    BradleyTerryFit
    """
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 10:
        raise ValueError(f"n_boot must be an integer >= 10 for a percentile interval; got {n_boot!r}.")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1 (exclusive), such as 0.95; got {level!r}.")
    winners, losers, weights = _check(n_items, winners, losers, weights, ridge)
    strengths, converged = _fit(n_items, winners, losers, weights, ridge, np.zeros(n_items))

    rng = np.random.default_rng(seed)
    replicates = np.empty((n_boot, n_items))
    for b in range(n_boot):
        sample = rng.integers(0, winners.size, winners.size)
        replicates[b], _ = _fit(n_items, winners[sample], losers[sample], weights[sample], ridge, strengths)
    tail = (1.0 - level) / 2.0
    lower, upper = np.quantile(replicates, [tail, 1.0 - tail], axis=0)
    return BradleyTerryFit(strengths, lower, upper, float(level), int(n_boot), converged)
