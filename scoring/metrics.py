"""Metrics stored with each taste model version.

Held-out split by judgment order, pairwise accuracy, Kendall's tau between two
rankings of a pool, and the diversity of a ranking's top clips.
"""

import math

import numpy as np
from scipy import stats

__all__ = ["kendall_tau", "pairwise_accuracy", "split_held_out", "top_k_diversity"]


def split_held_out(n, fraction=0.2):
    """Split judgments, oldest first, into an older training part and a newer held-out part.

    Parameters
    ----------
    n : int
        Number of judgments, ordered from oldest to newest, >= 2.
    fraction : float, default=0.2
        Share held out, 0 < fraction < 1. The held-out part has
        ``round(n * fraction)`` judgments, at least 1 and at most ``n - 1``.

    Returns
    -------
    train, held_out : ndarray of int
        Indices ``0 .. n - k - 1`` and ``n - k .. n - 1``.

    Raises
    ------
    ValueError
        If ``n < 2`` or ``fraction`` is outside (0, 1).
    """
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n must be an integer >= 2 so that both parts have a judgment; got {n!r}.")
    if not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction < 1:
        raise ValueError(f"fraction must be between 0 and 1 (exclusive); got {fraction!r}.")
    n_held = min(max(int(round(n * fraction)), 1), n - 1)
    indices = np.arange(n)
    return indices[: n - n_held], indices[n - n_held:]


def pairwise_accuracy(scores, winners, losers, weights=None):
    """Return the weighted share of pairs whose winner scores higher.

    Parameters
    ----------
    scores : array-like of shape (n_items,)
    winners, losers : array-like of int, shape (n_pairs,)
        Item indices of each pair's preferred and other item.
    weights : array-like of shape (n_pairs,), default=None
        Non-negative pair weights; None weighs every pair 1.

    Returns
    -------
    float
        In [0, 1]. A pair whose two scores are equal counts as half right, so
        a constant score gives 0.5.

    Raises
    ------
    ValueError
        If there are no pairs, the lengths differ or the weights are negative
        or all 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    winners = np.asarray(winners)
    losers = np.asarray(losers)
    if winners.size == 0:
        raise ValueError("pairwise_accuracy needs at least one pair.")
    if winners.shape != losers.shape:
        raise ValueError(f"winners and losers must have the same length; got {winners.size} and {losers.size}.")
    if weights is None:
        weights = np.ones(winners.size)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != winners.shape:
        raise ValueError(f"weights must have one value per pair ({winners.size}); got shape {weights.shape}.")
    if np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError("weights must be >= 0 and not all 0.")
    diff = scores[winners] - scores[losers]
    credit = np.where(diff > 0, 1.0, np.where(diff == 0, 0.5, 0.0))
    return float(weights @ credit / weights.sum())


def kendall_tau(scores_a, scores_b):
    """Return Kendall's tau-b between two scorings of the same items.

    Tau-b corrects for ties in either scoring, so a ranking with many equal
    scores is not penalised for them.

    Parameters
    ----------
    scores_a, scores_b : array-like of shape (n_items,)

    Returns
    -------
    float
        In [-1, 1]; NaN when either scoring is constant, where tau is undefined.

    Raises
    ------
    ValueError
        If the lengths differ or there are fewer than 2 items.
    """
    scores_a = np.asarray(scores_a, dtype=np.float64)
    scores_b = np.asarray(scores_b, dtype=np.float64)
    if scores_a.shape != scores_b.shape or scores_a.ndim != 1:
        raise ValueError(
            f"kendall_tau needs two 1-dimensional scorings of the same items; got shapes "
            f"{scores_a.shape} and {scores_b.shape}."
        )
    if scores_a.size < 2:
        raise ValueError(f"kendall_tau needs at least 2 items; got {scores_a.size}.")
    if np.all(scores_a == scores_a[0]) or np.all(scores_b == scores_b[0]):
        return math.nan
    return float(stats.kendalltau(scores_a, scores_b, variant="b").statistic)


def _mean_pairwise_cosine_distance(unit_vectors):
    # sum_{i != j} u_i . u_j = ||sum_i u_i||^2 - sum_i ||u_i||^2, so the mean
    # over the n (n - 1) ordered pairs takes O(n d) instead of O(n^2 d).
    n = unit_vectors.shape[0]
    total = unit_vectors.sum(axis=0)
    off_diagonal = float(total @ total) - float(np.einsum("ij,ij->", unit_vectors, unit_vectors))
    return 1.0 - off_diagonal / (n * (n - 1))


def top_k_diversity(scores, embeddings, k=10):
    """Return the top-k clips' mean pairwise cosine distance relative to the whole pool's.

    Parameters
    ----------
    scores : array-like of shape (n_clips,)
    embeddings : array-like of shape (n_clips, dim)
        Normalised here, so any non-zero scale works.
    k : int, default=10
        Number of top clips, >= 2; a pool of ``k`` clips or fewer gives 1.
        Equal scores are broken by the lower index first.

    Returns
    -------
    float
        Below 1 when the favourites are more alike than the pool; NaN when
        every clip of the pool has the same direction.

    Raises
    ------
    ValueError
        For shape mismatches, ``k < 2``, fewer than 2 clips or a zero embedding.
    """
    scores = np.asarray(scores, dtype=np.float64)
    embeddings = np.asarray(embeddings, dtype=np.float64)
    if embeddings.ndim != 2 or scores.shape != (embeddings.shape[0],):
        raise ValueError(
            f"scores must have shape (n_clips,) and embeddings (n_clips, dim); got {scores.shape} "
            f"and {embeddings.shape}."
        )
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an integer >= 2 (a distance needs two clips); got {k!r}.")
    if scores.size < 2:
        raise ValueError(f"top_k_diversity needs at least 2 clips; got {scores.size}.")
    norms = np.linalg.norm(embeddings, axis=1)
    if np.any(norms == 0):
        raise ValueError(f"embedding of clip {int(np.flatnonzero(norms == 0)[0])} is zero; it has no direction.")
    unit = embeddings / norms[:, None]

    pool = _mean_pairwise_cosine_distance(unit)
    if pool <= 1e-12:
        return math.nan
    if scores.size <= k:
        return 1.0
    top = np.argsort(-scores, kind="stable")[:k]
    return _mean_pairwise_cosine_distance(unit[top]) / pool
