"""Simulated raters with a planted taste who vote through the real vote path.

The planted taste has the form of the fitted one::

    T*(x) = alpha * z(S_semantic) + beta * z(d . e(x)) - gamma * z(P_incoherence)

with the pool's stored features and a hidden unit direction ``d`` drawn in
the span of the top principal directions of the pool's embeddings, where a
fit can find it. A simulated rater served clips i and j (by
``serve_comparison``) prefers i with probability ``sigmoid(T*(i) - T*(j))``,
the Bradley-Terry model, and votes with ``record_judgment``, so every
rule of real voting applies: pairing, daily goal, no repeated pair, closed
cohorts. Only the minimum view time and the rate limit are skipped, and
only while ``SIMULATED_RATERS_EXEMPT`` is on. Memberships and judgments are
marked simulated; a cohort whose members are all simulated fits them.
"""

import dataclasses
import logging
import math
import random
import time
from collections import Counter

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from scipy.special import expit

from comparisons.actions import ActionError, record_judgment, serve_comparison
from comparisons.models import Clip, Judgment, Membership
from scoring.refit_inputs import configured_backbone_names, load_pool_features, resolve_backbone
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# A rejection on these codes would repeat on every vote of the run.
BLOCKING_CODES = {"too_fast", "rate_limited"}


class SimulationError(Exception):
    """Error raised when the simulation cannot run as requested; the message gives the cause and the fix."""


@dataclasses.dataclass
class PlantedPoolTaste:
    """A taste planted in a cohort's pool: its parameters and each clip's true score."""

    backbone: str
    alpha: float
    beta: float
    gamma: float
    dims: int
    direction_seed: int
    direction: np.ndarray
    true_scores: dict
    n_clips_without_features: int

    def bayes_accuracy(self):
        """Return the expected accuracy of the true ranking on a uniformly random pair of scored clips."""
        scores = np.array(list(self.true_scores.values()))
        rows, cols = np.triu_indices(scores.size, k=1)
        p = expit(scores[rows] - scores[cols])
        return float(np.mean(np.maximum(p, 1 - p)))

    def as_dict(self):
        return {
            "backbone": self.backbone, "alpha": self.alpha, "beta": self.beta, "gamma": self.gamma,
            "dims": self.dims, "direction_seed": self.direction_seed, "direction": self.direction.tolist(),
            "true_scores": {str(clip_id): score for clip_id, score in self.true_scores.items()},
        }


def plant_pool_taste(cohort, *, alpha, beta, gamma, dims=3, direction_seed=0, backbone=None):
    """Plant a taste in ``cohort``'s pool; return a :class:`PlantedPoolTaste`.

    ``d`` is a standard-normal combination of the ``dims`` principal
    directions of the pool's centred embeddings with the largest variance
    (fewer when the pool varies in fewer), normalised. The same cohort,
    features and arguments always give the same taste.

    Raises
    ------
    SimulationError
        For negative weights, ``dims < 1`` or a pool with fewer than 2 clips
        with features.
    """
    from scoring.taste import standardise_terms

    for name, value in (("alpha", alpha), ("beta", beta), ("gamma", gamma)):
        if not math.isfinite(value) or value < 0:
            raise SimulationError(f"--{name} must be a finite number >= 0, got {value}.")
    if dims < 1:
        raise SimulationError(f"--dims must be at least 1, got {dims}.")
    resolved = resolve_backbone(cohort, backbone)
    if resolved is None:
        raise SimulationError(
            f"No clip of the pool of {cohort.slug!r} has {' or '.join(configured_backbone_names(backbone))} "
            "features. Run manage.py extract_features --all first."
        )
    pool = load_pool_features(cohort.pool.clips.filter(status=Clip.Status.READY).values_list("id", "kind"), resolved)
    if pool.inputs is None:
        raise SimulationError(
            f"Only {pool.clip_ids.size} clip of the pool of {cohort.slug!r} has valid {resolved} features; "
            "a planted taste needs at least 2. Extract the features of more clips."
        )

    embeddings = pool.inputs.embeddings
    _, singular, components = np.linalg.svd(embeddings - embeddings.mean(axis=0), full_matrices=False)
    varying = int(np.sum(singular > 1e-6 * singular.max())) if singular.size and singular.max() > 0 else 0
    if varying == 0:
        raise SimulationError(f"Every clip of the pool has the same {resolved} embedding; no direction to plant.")
    used = min(dims, varying)
    rng = np.random.default_rng(direction_seed)
    direction = components[:used].T @ rng.standard_normal(used)
    direction /= np.linalg.norm(direction)

    terms, _ = standardise_terms(pool.inputs, direction)
    totals = alpha * np.nan_to_num(terms.semantic_z) + beta * terms.aesthetic_z - gamma * terms.incoherence_z
    return PlantedPoolTaste(
        backbone=resolved, alpha=float(alpha), beta=float(beta), gamma=float(gamma), dims=used,
        direction_seed=int(direction_seed), direction=direction,
        true_scores={int(clip_id): float(score) for clip_id, score in zip(pool.clip_ids, totals)},
        n_clips_without_features=pool.n_missing + pool.n_invalid,
    )


def simulated_rater_name(cohort, number):
    return f"sim-{cohort.slug}-{number}"


def ensure_simulated_raters(cohort, count):
    """Return ``count`` simulated raters of ``cohort`` named ``sim-<slug>-<n>``, creating those missing.

    Returns
    -------
    raters : list of User
    created : int

    Raises
    ------
    SimulationError
        When such a user exists but is a real (not simulated) member of the cohort.
    """
    User = get_user_model()
    raters, created = [], 0
    with transaction.atomic():
        for number in range(1, count + 1):
            user, made = User.objects.get_or_create(username=simulated_rater_name(cohort, number))
            if made:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            membership, joined = Membership.objects.get_or_create(
                user=user, cohort=cohort, defaults={"is_simulated": True}
            )
            if not membership.is_simulated or user.memberships.filter(is_simulated=False).exists():
                raise SimulationError(
                    f"User {user.username!r} is a real rater; simulated raters never reuse real accounts. "
                    "Rename that user or simulate in another cohort."
                )
            created += int(made or joined)
            raters.append(user)
    return raters, created


@dataclasses.dataclass
class SimulationRun:
    """Counts of one simulation: judgments stored per choice and why raters stopped."""

    requested: int
    choices: Counter = dataclasses.field(default_factory=Counter)
    end_states: dict = dataclasses.field(default_factory=dict)
    unscored_pairs: int = 0
    elapsed_ms: int = 0

    @property
    def stored(self):
        return sum(self.choices.values())


def check_can_vote_fast(cohort, raters, judgments):
    """Raise SimulationError when the minimum view time or rate limit would reject the simulated votes."""
    if salon_settings.SIMULATED_RATERS_EXEMPT:
        return
    if cohort.min_view_ms > 0:
        raise SimulationError(
            f"Cohort {cohort.slug!r} rejects votes faster than {cohort.min_view_ms} ms and simulated raters "
            "answer at once. Set SALON_SIMULATED_RATERS_EXEMPT=1 or the cohort's minimum view time to 0."
        )
    limit = salon_settings.VOTE_RATE_LIMIT_PER_MINUTE
    if limit and math.ceil(judgments / raters) > limit:
        raise SimulationError(
            f"Each rater would vote {math.ceil(judgments / raters)} times in well under a minute, above the rate "
            f"limit of {limit} per minute. Set SALON_SIMULATED_RATERS_EXEMPT=1 or use more raters."
        )


def run_simulation(cohort, raters, planted, judgments, *, seed=0):
    """Let ``raters`` judge up to ``judgments`` pairs in turn through the real vote path.

    A pair with a clip the planted taste cannot score (no features) is
    skipped, as a rater would skip a clip that does not load. A rater who
    reaches an end state (daily goal, every pair judged, closed cohort)
    leaves the rotation; the run stops when all have left.

    Raises
    ------
    SimulationError
        When the vote path rejects votes for a reason that would repeat
        (minimum view time, rate limit); votes stored before stay stored.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    run = SimulationRun(requested=judgments)
    active = list(raters)
    turn = 0
    while run.stored < judgments and active:
        rater = active[turn % len(active)]
        serving = serve_comparison(cohort, rater, rng=random.Random(int(rng.integers(2**32))))
        if serving.end:
            run.end_states[rater.username] = serving.end
            active.remove(rater)
            continue
        comparison = serving.comparison
        left = planted.true_scores.get(comparison.left_id)
        right = planted.true_scores.get(comparison.right_id)
        if left is None or right is None:
            choice = Judgment.Choice.SKIP
            run.unscored_pairs += 1
        elif rng.random() < expit(left - right):
            choice = Judgment.Choice.LEFT
        else:
            choice = Judgment.Choice.RIGHT
        try:
            record_judgment(cohort=cohort, rater=rater, comparison_id=comparison.pk, choice=choice)
        except ActionError as error:
            if error.code in BLOCKING_CODES:
                raise SimulationError(
                    f"The vote path rejected a simulated vote ({error.code}: {error.message}). "
                    "Set SALON_SIMULATED_RATERS_EXEMPT=1 to exempt simulated raters."
                ) from error
            run.end_states[rater.username] = error.code
            active.remove(rater)
            continue
        run.choices[choice] += 1
        turn += 1
    run.elapsed_ms = round((time.perf_counter() - started) * 1000)
    logger.info(
        "Simulated %d of %d judgments in cohort %s by %d raters (%dms); %d raters stopped",
        run.stored, judgments, cohort.pk, len(raters), run.elapsed_ms, len(run.end_states),
    )
    return run
