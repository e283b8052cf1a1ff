"""Data of a cohort's leaderboard: the taste function's top clips beside a model-free ranking.

The taste ranking reads the stored :class:`~scoring.models.ClipScore` rows of
one version. The model-free ranking fits Bradley-Terry strengths to the same
judgments that version was fitted on (same mark, same filters, same weights),
with percentile bootstrap intervals, so where the two disagree the features
miss something the raters see. Only curators and researchers may see it:
raters never see scores, which would bias their votes.
"""

import dataclasses
import logging
import time

import numpy as np
from django.core.cache import cache
from django.utils.translation import gettext as _

from comparisons.roles import CURATORS, RESEARCHERS
from scoring.models import ClipScore, TasteModel
from scoring.refit_inputs import current_mark, fit_readiness, gather_judgments, is_simulation_cohort, judgment_weights
from scoring.versions import active_version, finished_versions, latest_failure

logger = logging.getLogger(__name__)

LEADERBOARD_GROUPS = (CURATORS, RESEARCHERS)

# Each bootstrap replicate refits every strength: on two CPU cores a
# replicate took about 9 ms for 150 judgments of 20 clips and 160 ms for
# 10,000 judgments of 500 clips. The page caps replicates times judgments at
# BOOTSTRAP_WORK (about 30 s at the larger size), and caches each result.
DEFAULT_BOOTSTRAP = 100
MIN_BOOTSTRAP = 10
MAX_BOOTSTRAP = 500
BOOTSTRAP_WORK = 2_000_000
CACHE_SECONDS = 3600
DEFAULT_TOP = 20
MAX_TOP = 200
BOOTSTRAP_LEVEL = 0.95
BOOTSTRAP_SEED = 0


def can_view_leaderboard(user):
    """Return whether ``user`` may see scores: active staff in Curators or Researchers, or a superuser."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return user.is_superuser or user.groups.filter(name__in=LEADERBOARD_GROUPS).exists()


class InvalidOption(ValueError):
    """A query parameter that is not a number, with a translated message naming it and the fix."""


@dataclasses.dataclass(frozen=True)
class LeaderboardOptions:
    version_id: int | None = None
    n_boot: int = DEFAULT_BOOTSTRAP
    top: int = DEFAULT_TOP
    notes: tuple = ()


def _parse_int(query, name, default):
    raw = query.get(name, "")
    if raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidOption(
            _("The parameter %(name)s must be a whole number; got “%(value)s”. Remove it for the default of %(default)s.")
            % {"name": name, "value": raw[:40], "default": default if default is not None else _("the active version")}
        ) from None


def parse_options(query):
    """Return the :class:`LeaderboardOptions` in ``query`` (``version``, ``b``, ``top``).

    ``b`` (bootstrap replicates) and ``top`` are clamped to their ranges with
    a note saying so; a value that is not a whole number raises InvalidOption.
    """
    version_id = _parse_int(query, "version", None)
    n_boot = _parse_int(query, "b", DEFAULT_BOOTSTRAP)
    top = _parse_int(query, "top", DEFAULT_TOP)
    notes = []
    if n_boot != 0 and not MIN_BOOTSTRAP <= n_boot <= MAX_BOOTSTRAP:
        clamped = min(max(n_boot, MIN_BOOTSTRAP), MAX_BOOTSTRAP)
        notes.append(
            _("%(asked)d bootstrap replicates are outside %(low)d to %(high)d (or 0 for none); %(used)d were used.")
            % {"asked": n_boot, "low": MIN_BOOTSTRAP, "high": MAX_BOOTSTRAP, "used": clamped}
        )
        n_boot = clamped
    if not 1 <= top <= MAX_TOP:
        clamped = min(max(top, 1), MAX_TOP)
        notes.append(
            _("The page shows 1 to %(high)d clips; %(used)d are shown.") % {"high": MAX_TOP, "used": clamped}
        )
        top = clamped
    return LeaderboardOptions(version_id, n_boot, top, tuple(notes))


@dataclasses.dataclass
class BradleyTerryRow:
    clip: object
    strength: float
    lower: float | None
    upper: float | None
    wins: int
    losses: int
    taste_rank: int | None


@dataclasses.dataclass
class BradleyTerryRanking:
    rows: list
    n_judgments: int
    n_clips: int
    n_boot: int
    n_boot_requested: int
    level: float
    agreement: float | None
    elapsed_ms: int

    @property
    def n_boot_reduced(self):
        return self.n_boot < self.n_boot_requested


def bootstrap_budget(n_boot, n_judgments):
    """Return the replicates to run: ``n_boot``, cut so replicates times judgments stay within BOOTSTRAP_WORK."""
    if not n_boot:
        return 0
    return min(n_boot, max(MIN_BOOTSTRAP, BOOTSTRAP_WORK // max(n_judgments, 1)))


def _fit_strengths(n_items, winners, losers, weights, n_boot, cache_key):
    """Return ``(strengths, lower, upper)``, from the cache when this exact fit ran before."""
    from scoring.bradley_terry import bootstrap_bradley_terry, fit_bradley_terry

    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    if n_boot:
        fit = bootstrap_bradley_terry(n_items, winners, losers, weights, n_boot=n_boot,
                                      level=BOOTSTRAP_LEVEL, seed=BOOTSTRAP_SEED)
    else:
        fit = fit_bradley_terry(n_items, winners, losers, weights)
    result = (fit.strengths, fit.lower, fit.upper)
    cache.set(cache_key, result, CACHE_SECONDS)
    return result


def bradley_terry_ranking(cohort, version, n_boot, top):
    """Rank the clips of ``cohort``'s judgments by Bradley-Terry strength; None without judgments.

    With a ``version``, the judgments are those it was fitted on: up to its
    mark, between clips it scored. Without one, every judgment counted now.
    ``agreement`` is Kendall's tau between the strengths and the version's
    scores over the clips both rank. The fit is cached per cohort, version,
    mark and replicate count, because the same inputs give the same result.
    """
    from scoring.metrics import kendall_tau

    started = time.perf_counter()
    mark = version.high_water_judgment_id if version else current_mark(cohort)
    simulated = {cohort.pk} if is_simulation_cohort(cohort) else set()
    judgments = gather_judgments([cohort], mark, simulated_cohort_ids=simulated)
    taste = {}
    if version is not None:
        taste = dict(ClipScore.objects.filter(taste_model=version).values_list("clip_id", "rank"))
        scored = np.array([w in taste and loser in taste for w, loser in zip(judgments.winners, judgments.losers)],
                          dtype=bool)
        judgments = judgments.subset(scored)
    if len(judgments) == 0:
        return None

    clip_ids = np.unique(np.concatenate([judgments.winners, judgments.losers]))
    index = {int(clip_id): position for position, clip_id in enumerate(clip_ids)}
    winners = np.array([index[int(c)] for c in judgments.winners])
    losers = np.array([index[int(c)] for c in judgments.losers])
    n_boot_used = bootstrap_budget(n_boot, len(judgments))
    cache_key = f"salon:bradley-terry:{cohort.pk}:{version.pk if version else 0}:{mark}:{n_boot_used}"
    strengths, lower, upper = _fit_strengths(
        clip_ids.size, winners, losers, judgment_weights(judgments), n_boot_used, cache_key
    )

    wins = np.bincount(winners, minlength=clip_ids.size)
    losses = np.bincount(losers, minlength=clip_ids.size)
    agreement = None
    ranked = [position for position, clip_id in enumerate(clip_ids) if int(clip_id) in taste]
    if len(ranked) >= 2:
        # A lower rank is better, so the negated rank orders clips like a score.
        tau = kendall_tau(strengths[ranked], [-taste[int(clip_ids[p])] for p in ranked])
        agreement = None if np.isnan(tau) else float(tau)

    order = np.argsort(-strengths, kind="stable")[:top]
    clips = _clips_by_id([int(clip_ids[p]) for p in order])
    rows = [
        BradleyTerryRow(
            clip=clips[int(clip_ids[p])],
            strength=float(strengths[p]),
            lower=None if np.isnan(lower[p]) else float(lower[p]),
            upper=None if np.isnan(upper[p]) else float(upper[p]),
            wins=int(wins[p]),
            losses=int(losses[p]),
            taste_rank=taste.get(int(clip_ids[p])),
        )
        for p in order
    ]
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    logger.info(
        "Bradley-Terry ranking of cohort %s: %d judgments, %d clips, %d bootstrap replicates (%dms)",
        cohort.pk, len(judgments), clip_ids.size, n_boot_used, elapsed_ms,
    )
    return BradleyTerryRanking(rows, len(judgments), int(clip_ids.size), n_boot_used, n_boot, BOOTSTRAP_LEVEL,
                               agreement, elapsed_ms)


def _clips_by_id(clip_ids):
    from comparisons.models import Clip

    return Clip.objects.select_related("prompt").in_bulk(clip_ids)


class VersionNotFound(LookupError):
    """The requested version is not a finished version of this cohort."""


def leaderboard_context(cohort, options):
    """Return the template context of ``cohort``'s leaderboard under ``options``.

    Raises
    ------
    VersionNotFound
        When ``options.version_id`` names no finished version of the cohort.
    """
    versions = list(finished_versions(cohort))
    active = active_version(cohort)
    if options.version_id is not None:
        selected = next((v for v in versions if v.pk == options.version_id), None)
        if selected is None:
            raise VersionNotFound(options.version_id)
    else:
        selected = active

    top_scores = []
    if selected is not None:
        top_scores = list(
            ClipScore.objects.filter(taste_model=selected).select_related("clip", "clip__prompt")
            .order_by("rank")[: options.top]
        )
    readiness = fit_readiness(cohort)
    return {
        "cohort": cohort,
        "versions": versions,
        "active": active,
        "selected": selected,
        "metrics": selected.metrics if selected else {},
        "top_scores": top_scores,
        "n_scored": ClipScore.objects.filter(taste_model=selected).count() if selected else 0,
        "bradley_terry": bradley_terry_ranking(cohort, selected, options.n_boot, options.top),
        "readiness": readiness,
        "failure": latest_failure(cohort),
        "options": options,
        "running": TasteModel.objects.filter(cohort=cohort, status=TasteModel.Status.RUNNING).first(),
    }
