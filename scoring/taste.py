"""The taste function of a cohort, its hinge loss and its fit.

For clip ``x`` with semantic score ``s``, mean embedding ``e`` and incoherence
``P``::

    T(x) = alpha * z(s) + beta * z(w . e) - gamma * z(P)

``z`` standardises a term over the clips of the pool passed in, ``w`` is a unit
vector, and alpha, beta and gamma are >= 0 priorities in standard-deviation
units. The fit minimises::

    L = sum_j omega_j * max(0, m - (T(x_j+) - T(x_j-))) / sum_j omega_j
        + lambda_theta * (alpha**2 + beta**2 + gamma**2)     (learned weights only)
        + lambda_w * ||w - w_all||**2

Solver
------
``z(w . e)`` does not change when ``w`` is scaled, so only the direction of
``w`` matters and ``beta`` carries the scale. Whitening the embeddings with the
pool covariance ``Sigma = U diag(lam) U^T`` gives per-clip features
``g = lam**-1/2 U^T (e - mean e)`` with identity covariance, and then
``beta * z(w . e) = b . g`` exactly, with ``b = beta * (unit whitened
direction)``, ``beta = ||b||`` and ``w = normalise(U lam**-1/2 b)``. With
learned weights and no pull towards ``w_all`` the fit is therefore a linear
RankSVM in the features ``[z(s), g, -z(P)]`` with the penalty
``lambda_theta * ||(alpha, b, gamma)||**2`` and bounds ``alpha, gamma >= 0``:
a convex problem, solved to its global minimum (stage A).

The pull towards ``w_all`` and declared weights (which fix ``beta``, so ``b``
lies on a sphere) make the problem non-convex. Stage B starts from stage A's
solution, from the crowd's direction and from one seeded random direction,
optimises ``(alpha, beta, gamma, y)`` with ``w = normalise(U lam**-1/2 y)``,
and keeps the start with the lowest objective.

Both stages run L-BFGS-B on the hinge smoothed quadratically over a width
``h``, annealed from ``h = m`` down to ``h = 1e-4 * m``. The smoothed hinge is
never above the hinge and never more than ``h / 2`` below it, so for the convex
stage the true objective at the final point is within ``h / 2 = 5e-5 * m`` of
the true minimum, plus the solver's tolerance. The objective reported is always
the true (unsmoothed) one.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping

import numpy as np
from scipy import optimize
from threadpoolctl import threadpool_limits

from scoring.metrics import pairwise_accuracy

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_LAMBDA_THETA",
    "DEFAULT_LAMBDA_W",
    "DEFAULT_MARGIN",
    "WEIGHTS_MODES",
    "FittedTaste",
    "LinearHingeFit",
    "Pairs",
    "ScoredTerms",
    "TasteInputs",
    "TasteLoss",
    "decay_weights",
    "fit_all_judgments",
    "fit_linear_hinge",
    "fit_taste",
    "linear_hinge_objective",
    "score_clips",
    "standardise_terms",
    "taste_loss",
]

WEIGHTS_MODES = ("learned", "declared")
DEFAULT_MARGIN = 1.0

# The hinge term is a weighted mean, between 0 and about 1 for a sensible fit,
# and the weights are in standard-deviation units, so a typical learned
# (alpha, beta, gamma) has a squared norm of 1 to 10. At 0.01 the penalty costs
# 0.01 to 0.1: enough to fix the scale, which the hinge alone leaves free once
# the pairs are ranked, and small enough that the judgments choose the
# direction. Simulated pools with 100 clips and 2,000 judgments rank within
# 2 points of the Bayes-optimal accuracy at this value (tests/test_planted_taste.py).
DEFAULT_LAMBDA_THETA = 1e-2

# ||w - w_all||**2 = 2 * (1 - cos(w, w_all)) for unit vectors. At 0.1 a cohort
# whose direction is 60 degrees from the crowd's (cos = 0.5) pays 0.1, as much as
# a tenth of its judgments each falling short of the margin by a full margin:
# a cohort leaves the crowd's direction only where its own judgments support it.
DEFAULT_LAMBDA_W = 0.1

DEFAULT_MAX_ITER = 2000

# Widths of the smoothed hinge, as fractions of the margin, from first to last.
SMOOTHING_SCHEDULE = (1.0, 1e-1, 1e-2, 1e-3, 1e-4)

# A term whose standard deviation is below this fraction of its largest
# absolute value is treated as constant (z = 0): float32 features that are
# equal up to rounding differ by about 1e-7 of their size.
_STD_RTOL = 1e-6

# Directions of the pool covariance whose variance is below this fraction of
# the largest variance are treated as constant across the pool, so w never
# points along them and whitening never divides by a rounding-level variance.
_EIGEN_RTOL = 1e-8

# Unit-norm check on the embeddings; stored float32 vectors are within ~1e-7.
_UNIT_NORM_ATOL = 1e-3


# --------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------


def _as_float_array(name, value, ndim):
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric; got {type(value).__name__}: {error}") from error
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional; got shape {array.shape}.")
    return array


def _as_index_array(name, value):
    array = np.asarray(value)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-dimensional array of clip indices; got shape {array.shape}.")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)) or np.any(array != np.round(array)):
            raise ValueError(f"{name} must contain integer clip indices; got dtype {array.dtype}.")
    array = array.astype(np.int64)
    if array.size and array.min() < 0:
        raise ValueError(
            f"{name} contains the negative index {int(array.min())}; indices count clips from 0."
        )
    return array


@dataclasses.dataclass(frozen=True)
class TasteInputs:
    """Per-clip inputs of the taste function over one pool of clips.

    Parameters
    ----------
    semantic : array-like of shape (n_clips,)
        ``S_semantic`` of each clip; NaN where a clip has no caption or prompt.
    embeddings : array-like of shape (n_clips, dim)
        L2-normalised mean frame embedding of each clip.
    incoherence : array-like of shape (n_clips, 2)
        Frame-to-frame dissimilarity and flicker of each clip. The values of
        still images are ignored.
    is_still : array-like of shape (n_clips,) of bool, default=None
        True for still images, whose incoherence is 0 by definition. None
        means every clip is a video.

    Raises
    ------
    ValueError
        If a shape disagrees with ``n_clips``, an embedding is not finite or not
        of unit norm, a semantic score is infinite or an incoherence component
        is not finite.
    """

    semantic: np.ndarray
    embeddings: np.ndarray
    incoherence: np.ndarray
    is_still: np.ndarray | None = None

    def __post_init__(self):
        embeddings = _as_float_array("embeddings", self.embeddings, 2)
        n_clips, dim = embeddings.shape
        if n_clips < 2 or dim < 1:
            raise ValueError(
                f"embeddings must have shape (n_clips, dim) with at least 2 clips and 1 dimension; "
                f"got {embeddings.shape}. Standardising a term needs at least 2 clips."
            )
        bad_rows = np.flatnonzero(~np.all(np.isfinite(embeddings), axis=1))
        if bad_rows.size:
            raise ValueError(
                f"embeddings of clips {bad_rows[:10].tolist()} contain NaN or infinity; "
                f"re-extract their features or leave those clips out."
            )
        norms = np.linalg.norm(embeddings, axis=1)
        off = np.flatnonzero(np.abs(norms - 1.0) > _UNIT_NORM_ATOL)
        if off.size:
            raise ValueError(
                f"embeddings must be L2-normalised; clip {int(off[0])} has norm {norms[off[0]]:.6g}. "
                f"Divide each row by its norm first."
            )

        semantic = _as_float_array("semantic", self.semantic, 1)
        if semantic.shape != (n_clips,):
            raise ValueError(
                f"semantic must have shape ({n_clips},) to match embeddings; got {semantic.shape}."
            )
        if np.any(np.isinf(semantic)):
            raise ValueError("semantic contains infinity; use NaN for a clip without a semantic score.")

        incoherence = _as_float_array("incoherence", self.incoherence, 2)
        if incoherence.shape != (n_clips, 2):
            raise ValueError(
                f"incoherence must have shape ({n_clips}, 2) (frame dissimilarity, flicker); "
                f"got {incoherence.shape}."
            )

        if self.is_still is None:
            is_still = np.zeros(n_clips, dtype=bool)
        else:
            is_still = np.asarray(self.is_still)
            if is_still.shape != (n_clips,) or is_still.dtype != bool:
                raise ValueError(
                    f"is_still must be a boolean array of shape ({n_clips},); "
                    f"got dtype {is_still.dtype} and shape {is_still.shape}."
                )
        bad_videos = np.flatnonzero(~is_still & ~np.all(np.isfinite(incoherence), axis=1))
        if bad_videos.size:
            raise ValueError(
                f"incoherence of videos {bad_videos[:10].tolist()} contains NaN or infinity; "
                f"re-extract their features or leave those clips out."
            )

        object.__setattr__(self, "embeddings", embeddings)
        object.__setattr__(self, "semantic", semantic)
        object.__setattr__(self, "incoherence", incoherence)
        object.__setattr__(self, "is_still", is_still.copy())

    @property
    def n_clips(self):
        return self.embeddings.shape[0]

    @property
    def dim(self):
        return self.embeddings.shape[1]


@dataclasses.dataclass(frozen=True)
class Pairs:
    """Decided judgments: clip ``winners[j]`` was preferred to ``losers[j]``.

    Ties and skips are not fitted, so they have no place here: build pairs with
    :meth:`from_choices` to reject them, or filter them out first.

    Parameters
    ----------
    winners, losers : array-like of int, shape (n_pairs,)
        Indices into the clips of a :class:`TasteInputs`.
    weights : array-like of shape (n_pairs,), default=None
        ``omega_j >= 0`` of each judgment (see :func:`decay_weights`); None
        gives every judgment weight 1.

    Raises
    ------
    ValueError
        If there are no pairs, the arrays differ in length, an index is not a
        non-negative integer, a clip is paired with itself, or the weights are
        negative, not finite or all zero.
    """

    winners: np.ndarray
    losers: np.ndarray
    weights: np.ndarray | None = None

    def __post_init__(self):
        winners = _as_index_array("winners", self.winners)
        losers = _as_index_array("losers", self.losers)
        if winners.size == 0:
            raise ValueError("No pairs to fit: pass at least one decided judgment (ties and skips do not count).")
        if winners.shape != losers.shape:
            raise ValueError(
                f"winners and losers must have the same length; got {winners.size} and {losers.size}."
            )
        same = np.flatnonzero(winners == losers)
        if same.size:
            raise ValueError(
                f"pair {int(same[0])} compares clip {int(winners[same[0]])} with itself; drop such pairs."
            )
        if self.weights is None:
            weights = np.ones(winners.size)
        else:
            weights = _as_float_array("weights", self.weights, 1)
            if weights.shape != winners.shape:
                raise ValueError(
                    f"weights must have one value per pair ({winners.size}); got shape {weights.shape}."
                )
            if not np.all(np.isfinite(weights)):
                raise ValueError("weights contain NaN or infinity; every judgment weight must be finite.")
            if np.any(weights < 0):
                j = int(np.flatnonzero(weights < 0)[0])
                raise ValueError(f"weights must be >= 0; pair {j} has weight {weights[j]:.6g}.")
            if weights.sum() <= 0:
                raise ValueError("All pair weights are 0; at least one judgment must count.")
        object.__setattr__(self, "winners", winners)
        object.__setattr__(self, "losers", losers)
        object.__setattr__(self, "weights", weights)

    @classmethod
    def from_choices(cls, left, right, choices, weights=None):
        """Build pairs from compared clips and the rater's choice.

        Parameters
        ----------
        left, right : array-like of int, shape (n_pairs,)
            Clip indices shown on the left and on the right.
        choices : sequence of str, length n_pairs
            ``"left"`` or ``"right"``.
        weights : array-like of shape (n_pairs,), default=None

        Raises
        ------
        ValueError
            If a choice is a tie, a skip or anything other than left or right.
        """
        left = _as_index_array("left", left)
        right = _as_index_array("right", right)
        choices = np.asarray(choices, dtype=object)
        if choices.shape != left.shape or left.shape != right.shape:
            raise ValueError(
                f"left, right and choices must have the same length; "
                f"got {left.size}, {right.size} and {choices.size}."
            )
        is_left = choices == "left"
        is_right = choices == "right"
        undecided = np.flatnonzero(~(is_left | is_right))
        if undecided.size:
            j = int(undecided[0])
            raise ValueError(
                f"choice {j} is {choices[j]!r}; only 'left' and 'right' are fitted. "
                f"Filter out ties and skips before fitting."
            )
        return cls(np.where(is_left, left, right), np.where(is_left, right, left), weights)

    @property
    def n_pairs(self):
        return self.winners.size

    def check_clips(self, n_clips):
        """Raise ValueError if a pair refers to a clip index >= ``n_clips``."""
        largest = int(max(self.winners.max(), self.losers.max()))
        if largest >= n_clips:
            raise ValueError(
                f"pair index {largest} is out of range for a pool of {n_clips} clips; "
                f"indices must be below {n_clips}."
            )

    def subset(self, index):
        """Return the pairs selected by ``index`` (an integer or boolean array)."""
        return Pairs(self.winners[index], self.losers[index], self.weights[index])


def decay_weights(ages_days, half_life_days, rater_weights=None):
    """Compute judgment weights ``0.5 ** (age / half_life) * rater_weight``.

    Parameters
    ----------
    ages_days : array-like of shape (n_pairs,)
        Age of each judgment in days, >= 0.
    half_life_days : float
        Age at which a judgment counts half, > 0.
    rater_weights : array-like of shape (n_pairs,), default=None
        Weight of each judgment's rater, >= 0; None means 1.

    Returns
    -------
    ndarray of shape (n_pairs,)

    Raises
    ------
    ValueError
        If an age is negative or not finite, the half-life is not positive or a
        rater weight is negative or not finite.
    """
    ages = _as_float_array("ages_days", ages_days, 1)
    if not np.all(np.isfinite(ages)) or np.any(ages < 0):
        bad = ages[~np.isfinite(ages) | (ages < 0)][0]
        raise ValueError(
            f"ages_days must be finite and >= 0; got {float(bad)!r}. A negative age means a judgment "
            f"dated after the fit's reference time: use the latest judgment's time or now."
        )
    if not (isinstance(half_life_days, (int, float, np.floating, np.integer)) and math.isfinite(half_life_days)
            and half_life_days > 0):
        raise ValueError(f"half_life_days must be a finite number > 0; got {half_life_days!r}.")
    weights = 0.5 ** (ages / float(half_life_days))
    if rater_weights is not None:
        raters = _as_float_array("rater_weights", rater_weights, 1)
        if raters.shape != ages.shape:
            raise ValueError(
                f"rater_weights must have one value per judgment ({ages.size}); got shape {raters.shape}."
            )
        if not np.all(np.isfinite(raters)) or np.any(raters < 0):
            bad = raters[~np.isfinite(raters) | (raters < 0)][0]
            raise ValueError(f"rater_weights must be finite and >= 0; got {float(bad)!r}.")
        weights = weights * raters
    return weights


# --------------------------------------------------------------------------
# Standardisation
# --------------------------------------------------------------------------


def _mean_std(values):
    """Return the mean and the population standard deviation, std 0 for a constant term."""
    mean = float(values.mean())
    std = float(values.std())
    if std <= _STD_RTOL * float(np.abs(values).max()):
        std = 0.0
    return mean, std


def _z(values, mean, std):
    if std is None or std == 0.0:
        return np.zeros_like(values)
    return (values - mean) / std


@dataclasses.dataclass(frozen=True)
class _FixedTerms:
    """The z-scored terms that do not depend on ``w``."""

    semantic_z: np.ndarray  # (n,), 0 where missing
    incoherence_z: np.ndarray  # (n,)
    standardisation: dict  # without the "aesthetic" entry


def _fixed_terms(inputs):
    has_semantic = ~np.isnan(inputs.semantic)
    n_missing = int((~has_semantic).sum())
    if has_semantic.sum() >= 2:
        semantic_mean, semantic_std = _mean_std(inputs.semantic[has_semantic])
    else:
        semantic_mean, semantic_std = None, None
    semantic_z = np.where(has_semantic, _z(np.nan_to_num(inputs.semantic), semantic_mean, semantic_std), 0.0)

    # Each component is standardised over the videos only: a still has no
    # motion, and its incoherence is 0 by definition, not "no flicker".
    videos = ~inputs.is_still
    component_means, component_stds = [], []
    video_p = np.zeros(inputs.n_clips)
    if videos.sum() >= 2:
        for k in range(2):
            mean, std = _mean_std(inputs.incoherence[videos, k])
            component_means.append(mean)
            component_stds.append(std)
            video_p[videos] += 0.5 * _z(inputs.incoherence[videos, k], mean, std)
    else:
        component_means, component_stds = [None, None], [None, None]
    incoherence_mean, incoherence_std = _mean_std(video_p)
    incoherence_z = _z(video_p, incoherence_mean, incoherence_std)

    standardisation = {
        "semantic": {"mean": semantic_mean, "std": semantic_std, "n_missing": n_missing},
        "incoherence_components": {
            "names": ["frame_dissimilarity", "flicker"],
            "mean": component_means,
            "std": component_stds,
            "n_stills": int(inputs.is_still.sum()),
        },
        "incoherence": {"mean": incoherence_mean, "std": incoherence_std},
    }
    return _FixedTerms(semantic_z, incoherence_z, standardisation)


def _aesthetic_z(embeddings, w):
    """Return ``z(E w)`` over the pool with its mean and std."""
    raw = embeddings @ w
    mean, std = _mean_std(raw)
    return _z(raw, mean, std), mean, std


def standardise_terms(inputs, w):
    """Standardise the three terms of the taste function over the pool.

    Parameters
    ----------
    inputs : TasteInputs
        The pool's clips.
    w : array-like of shape (dim,)
        Aesthetic direction.

    Returns
    -------
    terms : ScoredTerms
        ``total`` is 0; the z-scored terms as in :func:`score_clips`.
    standardisation : dict
        JSON-serialisable means and standard deviations of every term (a std of
        0 marks a constant term, whose z is 0; None marks a term with fewer than
        2 clips to standardise over) and ``semantic.n_missing``.
    """
    w = _as_float_array("w", w, 1)
    if w.shape != (inputs.dim,):
        raise ValueError(f"w must have shape ({inputs.dim},) to match the embeddings; got {w.shape}.")
    fixed = _fixed_terms(inputs)
    aesthetic_z, mean, std = _aesthetic_z(inputs.embeddings, w)
    standardisation = dict(fixed.standardisation, aesthetic={"mean": mean, "std": std})
    semantic_z = np.where(np.isnan(inputs.semantic), np.nan, fixed.semantic_z)
    terms = ScoredTerms(np.zeros(inputs.n_clips), semantic_z, aesthetic_z, fixed.incoherence_z)
    return terms, standardisation


@dataclasses.dataclass(frozen=True)
class ScoredTerms:
    """A taste function's score of each clip and its three z-scored terms.

    Attributes
    ----------
    total : ndarray of shape (n_clips,)
        ``alpha * semantic_z + beta * aesthetic_z - gamma * incoherence_z``,
        with a missing semantic term counted as 0.
    semantic_z : ndarray of shape (n_clips,)
        NaN for a clip without a semantic score.
    aesthetic_z, incoherence_z : ndarray of shape (n_clips,)
    """

    total: np.ndarray
    semantic_z: np.ndarray
    aesthetic_z: np.ndarray
    incoherence_z: np.ndarray


# --------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------


def _hinge(residual, smoothing):
    """Return the hinge ``max(0, r)``, smoothed quadratically over [0, smoothing], and its slope."""
    if smoothing <= 0:
        return np.maximum(residual, 0.0), (residual > 0).astype(np.float64)
    value = np.where(
        residual <= 0.0,
        0.0,
        np.where(residual < smoothing, residual * residual / (2.0 * smoothing), residual - 0.5 * smoothing),
    )
    return value, np.clip(residual / smoothing, 0.0, 1.0)


def _pair_hinge(scores, pairs, norm_weights, margin, smoothing, n_clips):
    """Return the weighted mean hinge, its gradient per clip score and the residuals."""
    residual = margin - (scores[pairs.winners] - scores[pairs.losers])
    value, slope = _hinge(residual, smoothing)
    coefficient = -norm_weights * slope
    grad_scores = np.bincount(pairs.winners, coefficient, n_clips) - np.bincount(pairs.losers, coefficient, n_clips)
    return float(norm_weights @ value), grad_scores, residual


def _check_hyper(margin, lambda_theta, lambda_w):
    for name, value, positive in (("margin", margin, True), ("lambda_theta", lambda_theta, False),
                                  ("lambda_w", lambda_w, False)):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number; got {value!r}.")
        if positive and value <= 0:
            raise ValueError(f"{name} must be > 0; got {value!r}. The default margin is {DEFAULT_MARGIN}.")
        if not positive and value < 0:
            raise ValueError(f"{name} must be >= 0; got {value!r}. Use 0 to switch the penalty off.")


def _check_w_all(w_all, dim):
    if w_all is None:
        return None
    w_all = _as_float_array("w_all", w_all, 1)
    if w_all.shape != (dim,):
        raise ValueError(f"w_all must have shape ({dim},) to match the embeddings; got {w_all.shape}.")
    norm = float(np.linalg.norm(w_all))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"w_all must be a finite non-zero vector; got norm {norm!r}.")
    return w_all / norm


def _check_mode(weights_mode):
    if weights_mode not in WEIGHTS_MODES:
        raise ValueError(f"weights_mode must be one of {', '.join(WEIGHTS_MODES)}; got {weights_mode!r}.")


@dataclasses.dataclass(frozen=True)
class TasteLoss:
    """The objective ``L`` at one point and its gradient.

    Attributes
    ----------
    value : float
        The objective.
    hinge : float
        Its first term, the weighted mean hinge.
    grad_alpha, grad_beta, grad_gamma : float
        Partial derivatives. They are returned with declared weights too,
        where the fit keeps the weights fixed and ``lambda_theta`` does not apply.
    grad_w : ndarray of shape (dim,)
        Gradient with respect to ``w`` as a free vector, through the
        standardisation of ``w . e``.
    residuals : ndarray of shape (n_pairs,)
        ``m - (T(x_j+) - T(x_j-))``: the hinge has a kink where one is 0.
    """

    value: float
    hinge: float
    grad_alpha: float
    grad_beta: float
    grad_gamma: float
    grad_w: np.ndarray
    residuals: np.ndarray


def taste_loss(alpha, beta, gamma, w, inputs, pairs, *, weights_mode="learned", margin=DEFAULT_MARGIN,
               lambda_theta=DEFAULT_LAMBDA_THETA, lambda_w=DEFAULT_LAMBDA_W, w_all=None, smoothing=0.0):
    """Evaluate the fit's objective ``L`` and its gradient at one point.

    Parameters
    ----------
    alpha, beta, gamma : float
        Weights of the semantic, aesthetic and incoherence terms.
    w : array-like of shape (dim,)
        Aesthetic direction, used as given (the fit keeps it unit-norm, and
        ``z(w . e)`` ignores its scale, but the pull term does not).
    inputs : TasteInputs
    pairs : Pairs
    weights_mode : {"learned", "declared"}, default="learned"
        With "declared", the ``lambda_theta`` penalty is left out.
    margin : float, default=1.0
    lambda_theta, lambda_w : float
        Penalty weights (see :func:`fit_taste`).
    w_all : array-like of shape (dim,), default=None
        The crowd's direction, normalised here; None leaves the pull out.
    smoothing : float, default=0.0
        Width of the quadratic smoothing of the hinge; 0 is the true hinge,
        whose gradient at a kink is taken as 0.

    Returns
    -------
    TasteLoss
    """
    _check_mode(weights_mode)
    _check_hyper(margin, lambda_theta, lambda_w)
    pairs.check_clips(inputs.n_clips)
    w = _as_float_array("w", w, 1)
    if w.shape != (inputs.dim,):
        raise ValueError(f"w must have shape ({inputs.dim},) to match the embeddings; got {w.shape}.")
    w_all = _check_w_all(w_all, inputs.dim)

    fixed = _fixed_terms(inputs)
    aesthetic_z, _, aesthetic_std = _aesthetic_z(inputs.embeddings, w)
    scores = alpha * fixed.semantic_z + beta * aesthetic_z - gamma * fixed.incoherence_z
    norm_weights = pairs.weights / pairs.weights.sum()
    hinge, grad_scores, residuals = _pair_hinge(scores, pairs, norm_weights, margin, smoothing, inputs.n_clips)

    grad_alpha = float(grad_scores @ fixed.semantic_z)
    grad_beta = float(grad_scores @ aesthetic_z)
    grad_gamma = -float(grad_scores @ fixed.incoherence_z)
    # z_i = c_i . w / sigma with c_i the centred embedding and
    # sigma**2 = w^T Sigma w, so for q = dL/dz:
    # dL/dw = C^T (q - (q . z) z / n) / sigma.
    q = beta * grad_scores
    if aesthetic_std > 0:
        centred = inputs.embeddings - inputs.embeddings.mean(axis=0)
        grad_w = centred.T @ (q - (q @ aesthetic_z) * aesthetic_z / inputs.n_clips) / aesthetic_std
    else:
        grad_w = np.zeros(inputs.dim)

    value = hinge
    if weights_mode == "learned":
        value += lambda_theta * (alpha**2 + beta**2 + gamma**2)
        grad_alpha += 2 * lambda_theta * alpha
        grad_beta += 2 * lambda_theta * beta
        grad_gamma += 2 * lambda_theta * gamma
    if w_all is not None:
        value += lambda_w * float((w - w_all) @ (w - w_all))
        grad_w = grad_w + 2 * lambda_w * (w - w_all)
    return TasteLoss(float(value), hinge, grad_alpha, grad_beta, grad_gamma, grad_w, residuals)


# --------------------------------------------------------------------------
# Solver: the reduced (linear) case
# --------------------------------------------------------------------------


class _DenseDifferences:
    """Pair differences given row by row: ``diff = X @ theta``."""

    def __init__(self, differences):
        self.matrix = differences

    def matvec(self, theta):
        return self.matrix @ theta

    def rmatvec(self, coefficient):
        return coefficient @ self.matrix


class _IndexedDifferences:
    """Pair differences of per-clip features: ``diff = F[winners] @ theta - F[losers] @ theta``."""

    def __init__(self, features, winners, losers):
        self.features = features
        self.winners = winners
        self.losers = losers

    def matvec(self, theta):
        scores = self.features @ theta
        return scores[self.winners] - scores[self.losers]

    def rmatvec(self, coefficient):
        n_clips = self.features.shape[0]
        per_clip = np.bincount(self.winners, coefficient, n_clips) - np.bincount(self.losers, coefficient, n_clips)
        return per_clip @ self.features


def _linear_objective(theta, design, norm_weights, margin, lambda_theta, smoothing):
    diff = design.matvec(theta)
    value, slope = _hinge(margin - diff, smoothing)
    gradient = design.rmatvec(-norm_weights * slope) + 2 * lambda_theta * theta
    return float(norm_weights @ value) + lambda_theta * float(theta @ theta), gradient


def _minimise_annealed(objective, x0, bounds, margin, max_iter):
    """Minimise ``objective(x, smoothing)`` by L-BFGS-B along the smoothing schedule.

    Returns the final point, the total number of iterations and whether the
    last (narrowest) stage met its tolerance.
    """
    n_iter = 0
    result = None
    last = len(SMOOTHING_SCHEDULE) - 1
    for stage, fraction in enumerate(SMOOTHING_SCHEDULE):
        # Wide stages only need to bring the point near the next stage's
        # minimum, so their tolerances are loose. The last one stops when a
        # step gains under 1e-10 of the objective, far below the smoothing's
        # own bound of 5e-5 * margin.
        options = {
            "maxiter": max_iter,
            "maxcor": 20,
            "ftol": 1e-10 if stage == last else 1e-9,
            "gtol": 1e-8 if stage == last else 1e-7,
        }
        result = optimize.minimize(
            objective, x0, args=(fraction * margin,), jac=True, method="L-BFGS-B", bounds=bounds, options=options
        )
        x0 = result.x
        n_iter += int(result.nit)
    return result.x, n_iter, bool(result.success)


@dataclasses.dataclass(frozen=True)
class LinearHingeFit:
    """Result of :func:`fit_linear_hinge`.

    Attributes
    ----------
    theta : ndarray of shape (n_features,)
    objective : float
        True (unsmoothed) objective at ``theta``.
    n_iter : int
        L-BFGS-B iterations over all smoothing stages.
    converged : bool
        Whether the last stage met its tolerance before ``max_iter``.
    """

    theta: np.ndarray
    objective: float
    n_iter: int
    converged: bool


def _check_differences(differences, weights):
    if differences.ndim != 2 or differences.shape[0] == 0:
        raise ValueError(
            f"differences must have shape (n_pairs, n_features) with n_pairs >= 1; got {differences.shape}."
        )
    if weights is None:
        weights = np.ones(differences.shape[0])
    weights = _as_float_array("weights", weights, 1)
    if weights.shape != (differences.shape[0],):
        raise ValueError(f"weights must have one value per row ({differences.shape[0]}); got {weights.shape}.")
    if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
        raise ValueError("weights must be finite, >= 0 and not all 0.")
    return weights / weights.sum()


def linear_hinge_objective(theta, differences, weights=None, *, margin=DEFAULT_MARGIN,
                           lambda_theta=DEFAULT_LAMBDA_THETA):
    """Evaluate ``sum_j w_j max(0, m - x_j . theta) / sum_j w_j + lambda_theta ||theta||**2``.

    Parameters
    ----------
    theta : array-like of shape (n_features,)
    differences : array-like of shape (n_pairs, n_features)
        Row ``x_j``: features of the preferred item minus those of the other.
    weights : array-like of shape (n_pairs,), default=None
    margin, lambda_theta : float

    Returns
    -------
    float
    """
    differences = np.asarray(differences)
    norm_weights = _check_differences(differences, weights)
    theta = np.asarray(theta, dtype=np.float64)
    # Chunked so that float32 rows are accumulated in float64 without a full copy.
    total = 0.0
    for start in range(0, differences.shape[0], 65536):
        block = np.asarray(differences[start:start + 65536], dtype=np.float64)
        total += float(norm_weights[start:start + 65536] @ np.maximum(margin - block @ theta, 0.0))
    return total + lambda_theta * float(theta @ theta)


def fit_linear_hinge(differences, weights=None, *, margin=DEFAULT_MARGIN, lambda_theta=DEFAULT_LAMBDA_THETA,
                     lower_bounds=None, max_iter=DEFAULT_MAX_ITER):
    """Minimise :func:`linear_hinge_objective` over ``theta``.

    This is the taste fit's convex stage in its plain form: with learned
    weights and no pull towards the crowd, :func:`fit_taste` solves exactly this
    problem with the same solver, on the whitened per-clip features. It is
    also the form that a linear SVM without intercept solves (``bench/fit.py``).

    Parameters
    ----------
    differences : array-like of shape (n_pairs, n_features)
        Row ``x_j``: features of the preferred item minus those of the other.
        Converted to float64 once.
    weights : array-like of shape (n_pairs,), default=None
    margin : float, default=1.0
    lambda_theta : float, default=DEFAULT_LAMBDA_THETA
    lower_bounds : array-like of shape (n_features,), default=None
        Lower bound per coefficient (``-inf`` for none).
    max_iter : int, default=DEFAULT_MAX_ITER
        Iterations allowed to each smoothing stage.

    Returns
    -------
    LinearHingeFit
    """
    _check_hyper(margin, lambda_theta, 0.0)
    differences = np.asarray(differences, dtype=np.float64)
    norm_weights = _check_differences(differences, weights)
    n_features = differences.shape[1]
    bounds = None
    if lower_bounds is not None:
        lower = _as_float_array("lower_bounds", lower_bounds, 1)
        if lower.shape != (n_features,):
            raise ValueError(f"lower_bounds must have shape ({n_features},); got {lower.shape}.")
        bounds = [(None if np.isneginf(lo) else float(lo), None) for lo in lower]
    design = _DenseDifferences(differences)
    x0 = np.zeros(n_features)
    if bounds is not None:
        x0 = np.maximum(x0, [lo if lo is not None else -np.inf for lo, _ in bounds])

    def objective(theta, smoothing):
        return _linear_objective(theta, design, norm_weights, margin, lambda_theta, smoothing)

    theta, n_iter, converged = _minimise_annealed(objective, x0, bounds, margin, max_iter)
    value, _ = objective(theta, 0.0)
    return LinearHingeFit(theta, value, n_iter, converged)


# --------------------------------------------------------------------------
# Solver: the taste function
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Whitening:
    """Range of the pool covariance: ``Sigma ~= basis diag(variances) basis^T``."""

    basis: np.ndarray  # (dim, rank), orthonormal columns
    variances: np.ndarray  # (rank,)
    features: np.ndarray  # (n_clips, rank), identity covariance over the pool

    @property
    def rank(self):
        return self.variances.size

    def direction(self, y):
        """Return the unit ``w`` whose standardised scores are ``features @ y / ||y||``."""
        raw = self.basis @ (y / np.sqrt(self.variances))
        return raw / np.linalg.norm(raw)

    def coordinates(self, w):
        """Return whitened coordinates ``y`` of the direction ``w`` projected on the range."""
        return np.sqrt(self.variances) * (self.basis.T @ w)


def _whiten(embeddings):
    n_clips, dim = embeddings.shape
    centred = embeddings - embeddings.mean(axis=0)
    if n_clips >= dim:
        variances, vectors = np.linalg.eigh(centred.T @ centred / n_clips)
    else:
        # Fewer clips than dimensions: the n x n Gram matrix has the same
        # non-zero eigenvalues and a smaller eigenproblem.
        variances, vectors = np.linalg.eigh(centred @ centred.T / n_clips)
    largest = float(variances.max())
    keep = variances > _EIGEN_RTOL * largest if largest > 0 else np.zeros(variances.size, dtype=bool)
    variances, vectors = variances[keep][::-1], vectors[:, keep][:, ::-1]
    if n_clips >= dim:
        basis = vectors
    else:
        # u = C^T v / sqrt(n lam) is a unit eigenvector of the covariance for
        # each unit eigenvector v of the Gram matrix C C^T / n.
        basis = centred.T @ vectors / np.sqrt(n_clips * variances)
    features = centred @ basis / np.sqrt(variances)
    return _Whitening(basis, variances, features)


@dataclasses.dataclass(frozen=True)
class _Problem:
    """Everything the stage-B objective needs, precomputed once per fit."""

    semantic_z: np.ndarray
    incoherence_z: np.ndarray
    whitening: _Whitening
    pairs: Pairs
    norm_weights: np.ndarray
    margin: float
    lambda_theta: float
    lambda_w: float
    w_all: np.ndarray | None
    learned: bool
    declared: tuple  # (alpha, beta, gamma), used when not learned

    def unpack(self, x):
        if self.learned:
            return x[0], x[1], x[2], x[3:]
        alpha, beta, gamma = self.declared
        return alpha, beta, gamma, x

    def objective(self, x, smoothing):
        """Return ``L`` and its gradient over ``x = (alpha, beta, gamma, y)`` or ``x = y``."""
        alpha, beta, gamma, y = self.unpack(x)
        y_norm = np.linalg.norm(y)
        unit_y = y / y_norm
        aesthetic_z = self.whitening.features @ unit_y
        scores = alpha * self.semantic_z + beta * aesthetic_z - gamma * self.incoherence_z
        value, grad_scores, _ = _pair_hinge(scores, self.pairs, self.norm_weights, self.margin, smoothing, scores.size)

        # z = G y / ||y||, so dL/dy = (I - y y^T / ||y||^2) G^T q / ||y|| with q = dL/dz.
        grad_unit = self.whitening.features.T @ (beta * grad_scores)
        grad_y = (grad_unit - (grad_unit @ unit_y) * unit_y) / y_norm

        if self.w_all is not None and self.lambda_w > 0:
            raw = self.whitening.basis @ (y / np.sqrt(self.whitening.variances))
            raw_norm = np.linalg.norm(raw)
            w = raw / raw_norm
            value += self.lambda_w * float((w - self.w_all) @ (w - self.w_all))
            grad_w = 2 * self.lambda_w * (w - self.w_all)
            grad_raw = (grad_w - (grad_w @ w) * w) / raw_norm
            grad_y = grad_y + (self.whitening.basis.T @ grad_raw) / np.sqrt(self.whitening.variances)

        if not self.learned:
            return value, grad_y
        value += self.lambda_theta * (alpha**2 + beta**2 + gamma**2)
        gradient = np.empty_like(x)
        gradient[0] = grad_scores @ self.semantic_z + 2 * self.lambda_theta * alpha
        gradient[1] = grad_scores @ aesthetic_z + 2 * self.lambda_theta * beta
        gradient[2] = -(grad_scores @ self.incoherence_z) + 2 * self.lambda_theta * gamma
        gradient[3:] = grad_y
        return value, gradient


@dataclasses.dataclass(frozen=True)
class FittedTaste:
    """One fitted taste function.

    Attributes
    ----------
    weights_mode : {"learned", "declared"}
    alpha, beta, gamma : float
        Weights in standard-deviation units, >= 0.
    w : ndarray of shape (dim,)
        Unit aesthetic direction.
    standardisation : dict
        JSON-serialisable mean and std of every term over the fitted pool
        (see :func:`standardise_terms`); :func:`score_clips` reuses them.
    objective : float
        True (unsmoothed) objective ``L`` at the solution.
    hinge : float
        Its weighted mean hinge term.
    train_accuracy : float
        Weighted share of training pairs ranked the right way (ties count half).
    n_missing_semantic : int
        Clips of the pool without a semantic score, counted as 0 after z.
    n_pairs : int
    n_iter : int
        L-BFGS-B iterations over all stages and starts.
    converged : bool
        Whether every stage that produced the solution met its tolerance.
    margin, lambda_theta, lambda_w : float
        Hyper-parameters of the fit. ``lambda_w`` is 0 when no ``w_all`` was given.
    """

    weights_mode: str
    alpha: float
    beta: float
    gamma: float
    w: np.ndarray
    standardisation: dict
    objective: float
    hinge: float
    train_accuracy: float
    n_missing_semantic: int
    n_pairs: int
    n_iter: int
    converged: bool
    margin: float
    lambda_theta: float
    lambda_w: float


def _check_declared(weights_mode, declared):
    if weights_mode == "learned":
        if declared is not None:
            raise ValueError(
                "declared weights were given with weights_mode='learned'; "
                "pass weights_mode='declared' to use them or leave declared=None."
            )
        return None
    if declared is None:
        raise ValueError("weights_mode='declared' needs declared={'alpha': ..., 'beta': ..., 'gamma': ...}.")
    if isinstance(declared, Mapping):
        missing = {"alpha", "beta", "gamma"} - set(declared)
        if missing:
            raise ValueError(f"declared weights lack {', '.join(sorted(missing))}; give alpha, beta and gamma.")
        values = (declared["alpha"], declared["beta"], declared["gamma"])
    else:
        values = tuple(declared)
        if len(values) != 3:
            raise ValueError(f"declared must be (alpha, beta, gamma); got {len(values)} values.")
    for name, value in zip(("alpha", "beta", "gamma"), values):
        if not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"declared {name} must be a finite number >= 0; got {value!r}.")
    return tuple(float(v) for v in values)


def _fallback_direction(w_all, dim):
    """Direction stored when the pool gives none (all embeddings equal, or beta = 0)."""
    if w_all is not None:
        return w_all.copy()
    w = np.zeros(dim)
    w[0] = 1.0
    return w


def _stage_a(problem, declared, max_iter):
    """Solve the convex problem without the pull: a linear RankSVM in whitened features.

    With declared weights, alpha and gamma are held at their declared values
    and the result only serves as a start for stage B.
    """
    features = np.column_stack([problem.semantic_z, problem.whitening.features, -problem.incoherence_z])
    design = _IndexedDifferences(features, problem.pairs.winners, problem.pairs.losers)
    rank = problem.whitening.rank
    bounds = [(0.0, None)] + [(None, None)] * rank + [(0.0, None)]
    x0 = np.zeros(rank + 2)
    if declared is not None:
        bounds[0] = (declared[0], declared[0])
        bounds[-1] = (declared[2], declared[2])
        x0[0], x0[-1] = declared[0], declared[2]

    def objective(theta, smoothing):
        return _linear_objective(
            theta, design, problem.norm_weights, problem.margin, problem.lambda_theta, smoothing
        )

    theta, n_iter, converged = _minimise_annealed(objective, x0, bounds, problem.margin, max_iter)
    return theta[0], theta[1:-1], theta[-1], n_iter, converged


def _stage_b_starts(problem, weights_a, b, seed):
    """Return stage B's starts: stage A's direction, the crowd's and a seeded random one."""
    whitening = problem.whitening
    directions = [b / np.linalg.norm(b)] if np.linalg.norm(b) > 0 else []
    if problem.w_all is not None:
        crowd = whitening.coordinates(problem.w_all)
        if np.linalg.norm(crowd) > 0:
            directions.append(crowd / np.linalg.norm(crowd))
    random_direction = np.random.default_rng(seed).standard_normal(whitening.rank)
    directions.append(random_direction / np.linalg.norm(random_direction))
    if not problem.learned:
        return directions
    return [np.concatenate([weights_a, y]) for y in directions]


def _stage_b(problem, starts, max_iter):
    """Run the non-convex fit from each start; return the best point and the iteration count."""
    best = None
    n_iter_total = 0
    for x0 in starts:
        bounds = [(0.0, None)] * 3 + [(None, None)] * (x0.size - 3) if problem.learned else None
        x, n_iter, converged = _minimise_annealed(problem.objective, x0, bounds, problem.margin, max_iter)
        n_iter_total += n_iter
        value, _ = problem.objective(x, 0.0)
        if best is None or value < best[1]:
            best = (x, value, converged)
    return best[0], best[2], n_iter_total


def fit_taste(inputs, pairs, *, weights_mode, declared=None, margin=DEFAULT_MARGIN,
              lambda_theta=DEFAULT_LAMBDA_THETA, lambda_w=DEFAULT_LAMBDA_W, w_all=None, seed=0,
              max_iter=DEFAULT_MAX_ITER):
    """Fit a cohort's taste function to its decided judgments.

    Parameters
    ----------
    inputs : TasteInputs
        The ready clips of the cohort's pool; every term is standardised over them.
    pairs : Pairs
        Decided judgments with their weights ``omega_j``.
    weights_mode : {"learned", "declared"}
        "learned" fits alpha, beta, gamma >= 0 and ``w``; "declared" fits only ``w``.
    declared : mapping or tuple, default=None
        ``{"alpha": a, "beta": b, "gamma": c}`` or ``(a, b, c)``, each >= 0;
        required with "declared", rejected with "learned".
    margin : float, default=1.0
        ``m`` in the hinge, > 0.
    lambda_theta : float, default=DEFAULT_LAMBDA_THETA
        Penalty on alpha**2 + beta**2 + gamma**2 (learned weights only).
    lambda_w : float, default=DEFAULT_LAMBDA_W
        Pull of ``w`` towards ``w_all``.
    w_all : array-like of shape (dim,), default=None
        Direction of the all-judgments model; normalised here. None (no crowd
        model yet) leaves the pull out, and the result records ``lambda_w = 0``.
    seed : int, default=0
        Seed of the random start of the non-convex stage.
    max_iter : int, default=DEFAULT_MAX_ITER
        L-BFGS-B iterations allowed to each smoothing stage of each start.

    Returns
    -------
    FittedTaste

    Raises
    ------
    ValueError
        For an unknown weights mode, missing or invalid declared weights, a
        margin <= 0, a negative penalty, a pair index outside the pool or a
        ``w_all`` of the wrong shape.

    Notes
    -----
    See the module docstring for the parametrisation and the solver. ``w`` is
    kept in the span of the pool's embedding variation. A component along a
    direction in which every clip of the pool is equal changes no score, and
    under the pull it would only trade the informative part of ``w`` for
    agreement with ``w_all``.

    NOTE: the penalty on beta is isotropic in whitened coordinates, so a
    direction in which the pool varies little gets the same prior weight as
    one in which it varies a lot, and ``w = normalise(U lam**-1/2 b)`` leans
    towards the low-variance directions. Scores are unaffected, but when the
    embeddings carry noise in every direction, the raw cosine between ``w``
    and another direction understates their agreement on the pool: on
    simulated pools ranked within 1 point of the Bayes-optimal accuracy,
    cos(w, planted direction) was 0.1 to 0.3.
    """
    started = time.perf_counter()
    _check_mode(weights_mode)
    declared = _check_declared(weights_mode, declared)
    _check_hyper(margin, lambda_theta, lambda_w)
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1; got {max_iter!r}.")
    pairs.check_clips(inputs.n_clips)
    w_all = _check_w_all(w_all, inputs.dim)
    if w_all is None:
        lambda_w = 0.0

    # A taste fit works on clips x rank matrices, where BLAS threads only add
    # synchronisation: on a busy 2-core machine a 100-clip fit took 0.7-3.6 s
    # with 2 OpenBLAS threads and 0.11 s with 1.
    with threadpool_limits(limits=1, user_api="blas"):
        fitted = _fit_taste(inputs, pairs, weights_mode, declared, margin, lambda_theta, lambda_w, w_all, seed,
                            max_iter)
    logger.info(
        "Fitted %s taste on %d pairs over %d clips: objective %.6f, train accuracy %.3f, "
        "%d iterations, converged %s (%dms)",
        weights_mode, pairs.n_pairs, inputs.n_clips, fitted.objective, fitted.train_accuracy,
        fitted.n_iter, fitted.converged, (time.perf_counter() - started) * 1000,
    )
    return fitted


def _fit_taste(inputs, pairs, weights_mode, declared, margin, lambda_theta, lambda_w, w_all, seed, max_iter):
    learned = weights_mode == "learned"
    fixed = _fixed_terms(inputs)
    whitening = _whiten(inputs.embeddings)
    problem = _Problem(
        semantic_z=fixed.semantic_z,
        incoherence_z=fixed.incoherence_z,
        whitening=whitening,
        pairs=pairs,
        norm_weights=pairs.weights / pairs.weights.sum(),
        margin=float(margin),
        lambda_theta=float(lambda_theta),
        lambda_w=float(lambda_w),
        w_all=w_all if lambda_w > 0 else None,
        learned=learned,
        declared=declared,
    )

    alpha_a, b, gamma_a, n_iter, converged = _stage_a(problem, declared, max_iter)
    beta_a = float(np.linalg.norm(b))
    rank = whitening.rank
    needs_stage_b = rank > 0 and (not learned or problem.w_all is not None)

    if not needs_stage_b:
        alpha, beta, gamma = (alpha_a, beta_a, gamma_a) if learned else declared
        w = whitening.direction(b) if beta_a > 0 else _fallback_direction(w_all, inputs.dim)
    else:
        starts = _stage_b_starts(problem, (alpha_a, beta_a, gamma_a), b, seed)
        x, converged, n_iter_b = _stage_b(problem, starts, max_iter)
        n_iter += n_iter_b
        alpha, beta, gamma, y = problem.unpack(x)
        w = whitening.direction(y)
    alpha, beta, gamma = float(alpha), float(beta), float(gamma)

    _, standardisation = standardise_terms(inputs, w)
    loss = taste_loss(
        alpha, beta, gamma, w, inputs, pairs, weights_mode=weights_mode, margin=margin,
        lambda_theta=lambda_theta, lambda_w=lambda_w, w_all=w_all,
    )
    scores = _total(alpha, beta, gamma, fixed.semantic_z, _aesthetic_z(inputs.embeddings, w)[0], fixed.incoherence_z)

    fitted = FittedTaste(
        weights_mode=weights_mode,
        alpha=alpha,
        beta=beta,
        gamma=gamma,
        w=w,
        standardisation=standardisation,
        objective=loss.value,
        hinge=loss.hinge,
        train_accuracy=pairwise_accuracy(scores, pairs.winners, pairs.losers, pairs.weights),
        n_missing_semantic=standardisation["semantic"]["n_missing"],
        n_pairs=pairs.n_pairs,
        n_iter=n_iter,
        converged=converged,
        margin=float(margin),
        lambda_theta=float(lambda_theta),
        lambda_w=float(lambda_w),
    )
    return fitted


def fit_all_judgments(inputs, pairs, **kwargs):
    """Fit the hidden all-judgments model whose ``w`` becomes ``w_all``.

    The same fit as :func:`fit_taste` with learned weights and no pull, on
    the judgments of every cohort over the union of their pools. ``kwargs``
    go to :func:`fit_taste` (``margin``, ``lambda_theta``, ``seed``, ``max_iter``).
    """
    for name in ("weights_mode", "declared", "lambda_w", "w_all"):
        if name in kwargs:
            raise ValueError(f"fit_all_judgments fixes {name}; do not pass it.")
    return fit_taste(inputs, pairs, weights_mode="learned", lambda_w=0.0, w_all=None, **kwargs)


def _total(alpha, beta, gamma, semantic_z, aesthetic_z, incoherence_z):
    return alpha * semantic_z + beta * aesthetic_z - gamma * incoherence_z


def score_clips(fitted, inputs):
    """Score clips with a fitted taste function.

    Every term is standardised with the means and standard deviations stored
    in ``fitted.standardisation``, so scoring the fitted pool reproduces the
    fit's scores and a clip added later is scored on the same scale.

    Parameters
    ----------
    fitted : FittedTaste
    inputs : TasteInputs
        Clips to score, with the embedding dimension of the fit.

    Returns
    -------
    ScoredTerms
    """
    if inputs.dim != fitted.w.size:
        raise ValueError(
            f"inputs have embedding dimension {inputs.dim}, but the taste model was fitted on "
            f"{fitted.w.size}; score with features from the same backbone."
        )
    stored = fitted.standardisation
    semantic = stored["semantic"]
    semantic_z = _z(inputs.semantic, semantic["mean"], semantic["std"])
    semantic_z = np.where(np.isnan(inputs.semantic), np.nan, semantic_z)

    components = stored["incoherence_components"]
    video_p = np.zeros(inputs.n_clips)
    videos = ~inputs.is_still
    for k in range(2):
        video_p[videos] += 0.5 * _z(inputs.incoherence[videos, k], components["mean"][k], components["std"][k])
    incoherence_z = _z(video_p, stored["incoherence"]["mean"], stored["incoherence"]["std"])

    aesthetic = stored["aesthetic"]
    aesthetic_z = _z(inputs.embeddings @ fitted.w, aesthetic["mean"], aesthetic["std"])

    total = _total(fitted.alpha, fitted.beta, fitted.gamma, np.nan_to_num(semantic_z), aesthetic_z, incoherence_z)
    return ScoredTerms(total, semantic_z, aesthetic_z, incoherence_z)
