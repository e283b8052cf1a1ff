"""Simulated pools with a planted taste, and raters who judge by it.

A planted taste is a taste function of the same form as the fitted one, with
known alpha, beta and gamma. Its hidden aesthetic direction lies in the span of
the few latent factors from which the embeddings are generated. Raters
follow the Bradley-Terry model: clip i beats clip j with probability
``sigmoid(T*(i) - T*(j))``. Because the truth is known, a fit can be scored by
its expected accuracy over every pair of the pool and compared with the
Bayes-optimal accuracy, which only the true ranking reaches.
"""

import dataclasses

import numpy as np
from scipy.special import expit

from scoring.taste import Pairs, TasteInputs, standardise_terms

__all__ = [
    "PlantedTaste",
    "bayes_accuracy",
    "expected_accuracy",
    "plant_taste",
    "simulate_judgments",
]


@dataclasses.dataclass(frozen=True)
class PlantedTaste:
    """A simulated pool and the taste planted in it.

    Attributes
    ----------
    inputs : TasteInputs
        The pool's simulated features.
    alpha, beta, gamma : float
        Planted weights.
    direction : ndarray of shape (dim,)
        Planted unit aesthetic direction, in the span of the latent factors.
    hidden : ndarray of shape (n_clips,)
        Standardised per-clip term that no feature carries (zeros unless
        ``hidden_weight`` was set).
    hidden_weight : float
    true_scores : ndarray of shape (n_clips,)
        ``T*``: the planted taste of each clip, the hidden term included.
    """

    inputs: TasteInputs
    alpha: float
    beta: float
    gamma: float
    direction: np.ndarray
    hidden: np.ndarray
    hidden_weight: float
    true_scores: np.ndarray


def plant_taste(n_clips=100, dim=32, n_factors=3, *, alpha=1.0, beta=2.0, gamma=0.5, hidden_weight=0.0,
                embedding_noise=0.0, missing_semantic=0.2, stills=0.2, seed=0):
    """Simulate a pool of clips and plant a taste in it.

    Parameters
    ----------
    n_clips : int, default=100
    dim : int, default=32
        Embedding dimension.
    n_factors : int, default=3
        Number of latent factors behind the embeddings. Embeddings are
        ``normalise(mu + A f + embedding_noise * eps)`` with a common offset
        ``mu`` (real embeddings share a large mean direction), ``A`` of shape
        (dim, n_factors) with orthonormal columns and ``f ~ N(0, I)``.
    alpha, beta, gamma : float
        Planted weights, >= 0.
    hidden_weight : float, default=0.0
        Weight of a standard-normal per-clip term added to the true taste but
        absent from every feature: a taste the fit cannot represent.
    embedding_noise : float, default=0.0
        Standard deviation of isotropic noise added to every embedding dimension.
    missing_semantic : float, default=0.2
        Share of clips without a semantic score.
    stills : float, default=0.2
        Share of still images (incoherence 0).
    seed : int, default=0

    Returns
    -------
    PlantedTaste
    """
    if n_factors < 1 or n_factors > dim:
        raise ValueError(f"n_factors must be between 1 and dim ({dim}); got {n_factors}.")
    rng = np.random.default_rng(seed)

    loadings, _ = np.linalg.qr(rng.standard_normal((dim, n_factors + 1)))
    offset, loadings = 2.0 * loadings[:, 0], loadings[:, 1:]
    factors = rng.standard_normal((n_clips, n_factors))
    raw = offset + factors @ loadings.T + embedding_noise * rng.standard_normal((n_clips, dim))
    embeddings = raw / np.linalg.norm(raw, axis=1, keepdims=True)

    semantic = rng.uniform(0.15, 0.35, n_clips)
    semantic[rng.random(n_clips) < missing_semantic] = np.nan
    is_still = rng.random(n_clips) < stills
    incoherence = np.column_stack([rng.gamma(2.0, 0.05, n_clips), rng.exponential(4.0, n_clips)])
    incoherence[is_still] = 0.0
    inputs = TasteInputs(semantic, embeddings, incoherence, is_still)

    direction = loadings @ rng.standard_normal(n_factors)
    direction /= np.linalg.norm(direction)
    terms, _ = standardise_terms(inputs, direction)
    hidden = rng.standard_normal(n_clips)
    hidden = (hidden - hidden.mean()) / hidden.std() if hidden_weight else np.zeros(n_clips)
    true_scores = (
        alpha * np.nan_to_num(terms.semantic_z)
        + beta * terms.aesthetic_z
        - gamma * terms.incoherence_z
        + hidden_weight * hidden
    )
    return PlantedTaste(inputs, alpha, beta, gamma, direction, hidden, hidden_weight, true_scores)


def simulate_judgments(true_scores, n_judgments, *, seed=0):
    """Simulate Bradley-Terry judgments of uniformly random pairs of distinct clips.

    Parameters
    ----------
    true_scores : array-like of shape (n_clips,)
        Each clip's true taste ``T*``.
    n_judgments : int
    seed : int, default=0

    Returns
    -------
    Pairs
        Winners and losers in judgment order, every weight 1. Clip ``i`` wins
        against ``j`` with probability ``sigmoid(T*(i) - T*(j))``.
    """
    true_scores = np.asarray(true_scores, dtype=np.float64)
    n_clips = true_scores.size
    if n_clips < 2 or n_judgments < 1:
        raise ValueError(f"need at least 2 clips and 1 judgment; got {n_clips} clips and {n_judgments} judgments.")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, n_clips, n_judgments)
    # An offset in 1..n-1 gives a uniform second clip different from the first.
    second = (first + rng.integers(1, n_clips, n_judgments)) % n_clips
    first_wins = rng.random(n_judgments) < expit(true_scores[first] - true_scores[second])
    return Pairs(np.where(first_wins, first, second), np.where(first_wins, second, first))


def _win_probabilities(true_scores):
    true_scores = np.asarray(true_scores, dtype=np.float64)
    rows, cols = np.triu_indices(true_scores.size, k=1)
    return rows, cols, expit(true_scores[rows] - true_scores[cols])


def expected_accuracy(scores, true_scores):
    """Return the expected share of a new judgment of a random pair that ``scores`` predicts.

    Averaged over all unordered pairs ``(i, j)`` of the pool: ``p_ij`` when
    ``scores`` ranks i above j, ``1 - p_ij`` when below and 0.5 when equal,
    with ``p_ij = sigmoid(T*(i) - T*(j))``.

    Parameters
    ----------
    scores : array-like of shape (n_clips,)
    true_scores : array-like of shape (n_clips,)

    Returns
    -------
    float
    """
    scores = np.asarray(scores, dtype=np.float64)
    rows, cols, p = _win_probabilities(true_scores)
    diff = scores[rows] - scores[cols]
    return float(np.mean(np.where(diff > 0, p, np.where(diff < 0, 1.0 - p, 0.5))))


def bayes_accuracy(true_scores):
    """Return the best expected accuracy of any ranking: the mean of ``max(p_ij, 1 - p_ij)``."""
    _, _, p = _win_probabilities(true_scores)
    return float(np.mean(np.maximum(p, 1.0 - p)))
