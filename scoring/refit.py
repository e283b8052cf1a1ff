"""Run one refit: claim a version, fit the taste function, store it with its metrics.

A refit is keyed on (cohort, backbone, high-water judgment id). It fits
exactly the cohort's judgments with an id up to the mark (which ones is
decided in ``scoring.refit_inputs``), so two runs of the same key fit the
same data. The unique constraint on ``TasteModel`` makes the second run find
the first one's row instead of adding a version.

The row is created as RUNNING before the fit (the claim). The fitted
weights, metrics, clip scores and FINISHED status are written in one
transaction, so a version and its mark appear together or not at all. A
failed fit is stored as FAILED with its reason, and the active version stays.

The cohort's direction is pulled towards ``w_all``, the direction of the active
all-judgments model of the same backbone (a ``TasteModel`` without cohort, fit
by :func:`run_all_judgments_refit` on the real judgments of every cohort).
Before the first all-judgments model exists there is no pull, and the version
records ``lambda_w = 0``.
"""

import dataclasses
import datetime
import logging
import math
import time

import numpy as np
from django.db import IntegrityError, transaction
from django.db.models import Max, Q
from django.utils import timezone

from comparisons.models import Clip, Cohort
from scoring.models import ClipScore, TasteModel, array_to_bytes
from scoring.refit_inputs import (
    FitReadiness,
    JudgmentSet,
    current_mark,
    fit_readiness,
    gather_judgments,
    is_simulation_cohort,
    judgment_weights,
    load_pool_features,
    minimum_judgments,
    resolve_backbone,
)
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# Share of the newest judgments held out to measure accuracy on judgments
# the fit has not seen.
HELD_OUT_FRACTION = 0.2
TOP_K_DIVERSITY = 10
CLAIM_ATTEMPTS = 3


class Outcome:
    """Codes of what one refit call did."""

    FINISHED = "finished"
    EXISTS = "exists"
    RUNNING_ELSEWHERE = "running_elsewhere"
    NOT_READY = "not_ready"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    MISSING = "missing"


@dataclasses.dataclass
class RefitOutcome:
    """Result of one refit call, for logs, task results and the ``refit`` command."""

    status: str
    cohort_id: int | None
    backbone: str | None
    mark: int
    taste_model_id: int | None = None
    version: int | None = None
    message: str = ""
    metrics: dict | None = None

    def as_dict(self):
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------
# Fit and metrics
# --------------------------------------------------------------------------


def _finite_or_none(value):
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclasses.dataclass
class FitResult:
    """A fitted taste function, its scores of the pool and its metrics."""

    fitted: object
    scores: object
    pairs: object
    judgments: JudgmentSet
    clip_ids: np.ndarray
    metrics: dict


def fit_pool(pool, judgments, *, weights_mode, declared=None, margin, w_all=None, seed=0):
    """Fit a taste function to ``judgments`` over ``pool`` and measure it.

    Pairs whose clips lack features are dropped first (``counts["unscored_clip"]``).
    Held-out accuracy comes from a separate fit on the oldest
    ``1 - HELD_OUT_FRACTION`` of the pairs, tested on the newest; the
    returned fit uses every pair.

    Returns
    -------
    FitResult
        ``judgments`` are the fitted ones; ``metrics`` lacks the drift, which
        needs the previous version (see :func:`drift_against`).

    Raises
    ------
    ValueError
        From :func:`scoring.taste.fit_taste` for inputs it cannot fit.
    """
    from scoring.metrics import pairwise_accuracy, split_held_out, top_k_diversity
    from scoring.taste import Pairs, fit_taste, score_clips

    winners = pool.index_of(judgments.winners)
    losers = pool.index_of(judgments.losers)
    scored = (winners >= 0) & (losers >= 0)
    kept = judgments.subset(scored)
    kept.counts["unscored_clip"] = int((~scored).sum())
    pairs = Pairs(winners[scored], losers[scored], judgment_weights(kept))
    options = {"weights_mode": weights_mode, "declared": declared, "margin": margin, "w_all": w_all, "seed": seed}

    held_out_accuracy, n_train, n_held_out, held_out_converged = None, pairs.n_pairs, 0, None
    if pairs.n_pairs >= 2:
        train, held_out = split_held_out(pairs.n_pairs, HELD_OUT_FRACTION)
        train_fit = fit_taste(pool.inputs, pairs.subset(train), **options)
        train_scores = score_clips(train_fit, pool.inputs).total
        test = pairs.subset(held_out)
        held_out_accuracy = pairwise_accuracy(train_scores, test.winners, test.losers, test.weights)
        n_train, n_held_out, held_out_converged = train.size, held_out.size, train_fit.converged

    fitted = fit_taste(pool.inputs, pairs, **options)
    scores = score_clips(fitted, pool.inputs)
    metrics = {
        "held_out_accuracy": _finite_or_none(held_out_accuracy),
        "held_out_fraction": HELD_OUT_FRACTION,
        "n_train": int(n_train),
        "n_held_out": int(n_held_out),
        "held_out_converged": held_out_converged,
        "train_accuracy": _finite_or_none(fitted.train_accuracy),
        "objective": _finite_or_none(fitted.objective),
        "hinge": _finite_or_none(fitted.hinge),
        "top10_diversity": _finite_or_none(top_k_diversity(scores.total, pool.inputs.embeddings, TOP_K_DIVERSITY)),
        "n_missing_semantic": int(fitted.n_missing_semantic),
        "n_pairs": int(pairs.n_pairs),
        "n_clips": int(pool.inputs.n_clips),
        "n_clips_ready": int(pool.n_ready),
        "n_clips_missing_features": int(pool.n_missing),
        "n_clips_invalid_features": int(pool.n_invalid),
        "judgments": dict(kept.counts),
        "converged": bool(fitted.converged),
        "n_iter": int(fitted.n_iter),
        "lambda_theta": float(fitted.lambda_theta),
        "lambda_w": float(fitted.lambda_w),
        "seed": int(seed),
    }
    return FitResult(fitted, scores, pairs, kept, pool.clip_ids, metrics)


def previous_version(row):
    """Return the newest finished version of the same cohort and backbone older than ``row``, or None."""
    return (
        TasteModel.objects.filter(
            _owner(row.cohort_id), backbone=row.backbone, status=TasteModel.Status.FINISHED, version__lt=row.version
        )
        .order_by("-version")
        .first()
    )


def drift_against(previous, clip_ids, totals):
    """Return Kendall's tau between ``totals`` of ``clip_ids`` and ``previous``'s scores of the same clips.

    None when there is no previous version, fewer than 2 clips in common or
    either ranking is constant.
    """
    from scoring.metrics import kendall_tau

    if previous is None:
        return None
    earlier = dict(ClipScore.objects.filter(taste_model=previous).values_list("clip_id", "total"))
    common = [index for index, clip_id in enumerate(clip_ids.tolist()) if clip_id in earlier]
    if len(common) < 2:
        return None
    before = np.array([earlier[int(clip_ids[index])] for index in common])
    return _finite_or_none(kendall_tau(before, np.asarray(totals)[common]))


# --------------------------------------------------------------------------
# Versions: claim, store, fail
# --------------------------------------------------------------------------


def _owner(cohort_id):
    """Return the filter for the versions of a cohort, or of the all-judgments model for None."""
    return Q(cohort_id=cohort_id) if cohort_id is not None else Q(cohort__isnull=True)


@dataclasses.dataclass
class Claim:
    """The RUNNING row this refit now owns, or the row that stopped it."""

    row: TasteModel | None
    existing: TasteModel | None = None
    created: bool = False


def claim_version(cohort_id, backbone, mark, *, task_id, fields, now):
    """Create or take over the RUNNING row of the refit keyed on ``(cohort_id, backbone, mark)``.

    A FAILED row is retried, and a RUNNING row is taken over when it started
    more than ``REFIT_STALE_MINUTES`` ago or belongs to this same task id (a
    message redelivered after its worker died). A FINISHED row, or a RUNNING
    row that another live task holds, stops the refit: ``Claim.row`` is None.
    The new owner's ``started_at`` marks the claim, so a refit that was taken
    over meanwhile cannot store its result.
    """
    stale_before = now - datetime.timedelta(minutes=salon_settings.REFIT_STALE_MINUTES)
    key = _owner(cohort_id) & Q(backbone=backbone, high_water_judgment_id=mark)
    for _attempt in range(CLAIM_ATTEMPTS):
        existing = TasteModel.objects.filter(key).first()
        if existing is None:
            try:
                with transaction.atomic():
                    newest = TasteModel.objects.filter(_owner(cohort_id), backbone=backbone).aggregate(v=Max("version"))
                    row = TasteModel.objects.create(
                        cohort_id=cohort_id, backbone=backbone, version=(newest["v"] or 0) + 1,
                        high_water_judgment_id=mark, status=TasteModel.Status.RUNNING, task_id=task_id, **fields,
                    )
                TasteModel.objects.filter(pk=row.pk).update(started_at=now)
                row.started_at = now
                return Claim(row, created=True)
            except IntegrityError:
                # Another refit took this key or the next version number; look again.
                continue
        if existing.status == TasteModel.Status.FINISHED:
            return Claim(None, existing)
        takeover = Q(status=TasteModel.Status.FAILED) | Q(status=TasteModel.Status.RUNNING, started_at__lt=stale_before)
        if task_id:
            takeover |= Q(status=TasteModel.Status.RUNNING, task_id=task_id)
        taken = TasteModel.objects.filter(takeover, pk=existing.pk).update(
            status=TasteModel.Status.RUNNING, task_id=task_id, started_at=now, failure_reason="", finished_at=None,
            **fields,
        )
        if taken:
            logger.info(
                "Refit %s v%d (%s, mark %d) taken over from %s state by task %s",
                _owner_label(cohort_id), existing.version, backbone, mark, existing.status, task_id or "-",
            )
            existing.refresh_from_db()
            return Claim(existing)
        return Claim(None, existing)
    raise IntegrityError(
        f"Could not claim the refit of {_owner_label(cohort_id)} ({backbone}, mark {mark}) after "
        f"{CLAIM_ATTEMPTS} attempts; other refits keep taking its version number. Run it again."
    )


def _owner_label(cohort_id):
    return f"cohort {cohort_id}" if cohort_id is not None else "all judgments"


def _still_ours(row):
    return Q(pk=row.pk, status=TasteModel.Status.RUNNING, started_at=row.started_at)


def store_version(row, result, *, activate):
    """Write ``result`` into the RUNNING ``row``, its clip scores, FINISHED, and activate it if asked.

    Everything happens in one transaction. The row is only activated when no
    active version of the same cohort and backbone has a later mark, so a
    slow refit of an older mark never replaces a newer active version.
    Return False, writing nothing, when another refit took the row over.
    """
    fitted, scores = result.fitted, result.scores
    answered = result.judgments.answered_at
    now = timezone.now()
    with transaction.atomic():
        updated = TasteModel.objects.filter(_still_ours(row)).update(
            status=TasteModel.Status.FINISHED,
            weights_mode=fitted.weights_mode,
            alpha=fitted.alpha,
            beta=fitted.beta,
            gamma=fitted.gamma,
            margin=fitted.margin,
            head=array_to_bytes(fitted.w),
            head_dim=int(fitted.w.size),
            standardisation=fitted.standardisation,
            n_judgments=result.pairs.n_pairs,
            window_start=min(answered),
            window_end=max(answered),
            metrics=result.metrics,
            finished_at=now,
        )
        if not updated:
            return False
        ranks = np.empty(scores.total.size, dtype=np.int64)
        ranks[np.argsort(-scores.total, kind="stable")] = np.arange(1, scores.total.size + 1)
        ClipScore.objects.bulk_create(
            [
                ClipScore(
                    taste_model_id=row.pk,
                    clip_id=int(clip_id),
                    total=float(scores.total[index]),
                    semantic=_finite_or_none(scores.semantic_z[index]),
                    aesthetic=float(scores.aesthetic_z[index]),
                    incoherence=float(scores.incoherence_z[index]),
                    rank=int(ranks[index]),
                )
                for index, clip_id in enumerate(result.clip_ids.tolist())
            ],
            batch_size=500,
        )
        if activate:
            newer_active = TasteModel.objects.filter(
                _owner(row.cohort_id), backbone=row.backbone, is_active=True,
                high_water_judgment_id__gt=row.high_water_judgment_id,
            ).exists()
            if not newer_active:
                TasteModel.objects.filter(_owner(row.cohort_id), backbone=row.backbone, is_active=True).update(
                    is_active=False
                )
                TasteModel.objects.filter(pk=row.pk).update(is_active=True)
    return True


def fail_version(row, reason):
    """Record ``reason`` on the RUNNING ``row`` as FAILED; the active version is not touched."""
    return TasteModel.objects.filter(_still_ours(row)).update(
        status=TasteModel.Status.FAILED, failure_reason=reason[:5000], finished_at=timezone.now()
    )


# --------------------------------------------------------------------------
# Refits
# --------------------------------------------------------------------------


def active_all_judgments_direction(backbone):
    """Return ``(w_all, version id)`` of the active all-judgments model of ``backbone``, or ``(None, None)``."""
    crowd = TasteModel.objects.filter(
        cohort__isnull=True, backbone=backbone, is_active=True, status=TasteModel.Status.FINISHED
    ).first()
    if crowd is None or not crowd.head_dim:
        return None, None
    return crowd.w.astype(np.float64), crowd.pk


def _version_fields(weights_mode, alpha, beta, gamma, margin, half_life_days):
    return {
        "weights_mode": weights_mode, "alpha": alpha, "beta": beta, "gamma": gamma,
        "margin": margin, "half_life_days": half_life_days,
    }


def run_refit(cohort_id, backbone=None, high_water_judgment_id=None, *, task_id="", now=None):
    """Fit ``cohort_id``'s judgments up to the mark and store a new version.

    Parameters
    ----------
    cohort_id : int
    backbone : str, optional
        Stored backbone name, or a choice resolved by :func:`resolve_backbone`.
    high_water_judgment_id : int, optional
        The mark; default the cohort's newest judgment now.
    task_id : str
        Celery task id stored on the row; a redelivery of the same task takes
        its row over.
    now : datetime, optional
        Time of the claim, for tests of stale rows.

    Returns
    -------
    RefitOutcome
        ``failed`` outcomes are also stored on the version row. Transient
        database errors and the soft time limit are re-raised after the row
        is marked failed, so the task retries.
    """
    from scoring.tasks.base import TRANSIENT_ERRORS

    started = time.perf_counter()
    now = now or timezone.now()
    cohort = Cohort.objects.select_related("pool").filter(pk=cohort_id).first()
    if cohort is None:
        return RefitOutcome(Outcome.MISSING, cohort_id, backbone, high_water_judgment_id or 0,
                            message=f"Cohort {cohort_id} does not exist.")
    mark = current_mark(cohort) if high_water_judgment_id is None else int(high_water_judgment_id)
    resolved = resolve_backbone(cohort, backbone)
    if resolved is None:
        reason = fit_readiness(cohort, backbone, mark).reason
        logger.info("No refit of cohort %s (mark %d): %s", cohort.pk, mark, reason)
        return RefitOutcome(Outcome.NOT_READY, cohort.pk, None, mark, message=reason)
    backbone = resolved

    declared = None
    if cohort.weights_mode == Cohort.WeightsMode.DECLARED:
        declared = (cohort.alpha, cohort.beta, cohort.gamma)
    fields = _version_fields(cohort.weights_mode, *(declared or (None, None, None)), cohort.margin,
                             cohort.half_life_days)
    claim = claim_version(cohort.pk, backbone, mark, task_id=task_id, fields=fields, now=now)
    if claim.row is None:
        return _stopped(claim.existing, cohort.pk, backbone, mark)
    row = claim.row

    try:
        pool = load_pool_features(
            cohort.pool.clips.filter(status=Clip.Status.READY).values_list("id", "kind"), backbone
        )
        simulated = {cohort.pk} if is_simulation_cohort(cohort) else set()
        judgments = gather_judgments([cohort], mark, simulated_cohort_ids=simulated)
        readiness = _readiness_of(cohort, backbone, pool, judgments)
        if not readiness.ready:
            # Not a failure: the cohort waits for judgments or features.
            # A row made by this claim goes, so no version exists for this
            # mark; a retried or stale row keeps its history as FAILED.
            _release(claim, readiness.reason)
            logger.info("No refit of cohort %s (%s, mark %d): %s", cohort.pk, backbone, mark, readiness.reason)
            return RefitOutcome(Outcome.NOT_READY, cohort.pk, backbone, mark, message=readiness.reason)

        w_all, crowd_id = active_all_judgments_direction(backbone)
        if w_all is not None and w_all.size != pool.inputs.dim:
            logger.warning("All-judgments model %s has dimension %d, not %d; no pull", crowd_id, w_all.size,
                           pool.inputs.dim)
            w_all, crowd_id = None, None
        result = fit_pool(
            pool, judgments, weights_mode=cohort.weights_mode, declared=declared, margin=cohort.margin,
            w_all=w_all, seed=salon_settings.REFIT_SEED,
        )
        result.metrics["pulled_towards"] = crowd_id
        return _finish(row, result, started)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        fail_version(row, reason)
        logger.exception("Refit of cohort %s v%d (%s, mark %d) failed", cohort.pk, row.version, backbone, mark)
        if isinstance(error, TRANSIENT_ERRORS):
            raise
        return RefitOutcome(Outcome.FAILED, cohort.pk, backbone, mark, row.pk, row.version, message=reason)


def _count_scored(pool, judgments):
    if pool.inputs is None:
        return 0
    return int(((pool.index_of(judgments.winners) >= 0) & (pool.index_of(judgments.losers) >= 0)).sum())


def _release(claim, reason):
    """Give up a claimed row without a fit: delete it if this claim made it, else mark it failed."""
    if claim.created:
        TasteModel.objects.filter(_still_ours(claim.row)).delete()
    else:
        fail_version(claim.row, reason)


def _readiness_of(cohort, backbone, pool, judgments):
    usable = _count_scored(pool, judgments)
    counts = dict(judgments.counts, unscored_clip=len(judgments) - usable)
    n_clips = 0 if pool.inputs is None else pool.inputs.n_clips
    return FitReadiness(cohort, backbone, [backbone], usable, minimum_judgments(cohort), n_clips, counts)


def _stopped(existing, cohort_id, backbone, mark):
    if existing.status == TasteModel.Status.FINISHED:
        status, message = Outcome.EXISTS, f"Version {existing.version} already fitted this mark."
    else:
        status, message = Outcome.RUNNING_ELSEWHERE, (
            f"Version {existing.version} is being fitted by task {existing.task_id or '-'} since "
            f"{existing.started_at:%Y-%m-%d %H:%M:%S}."
        )
    return RefitOutcome(status, cohort_id, backbone, mark, existing.pk, existing.version, message=message)


def _format_metric(value):
    return "none" if value is None else f"{value:.3f}"


def _finish(row, result, started):
    """Add the drift and timing to ``result``'s metrics, store it in ``row`` and return the outcome."""
    previous = previous_version(row)
    result.metrics["drift_kendall_tau"] = drift_against(previous, result.clip_ids, result.scores.total)
    result.metrics["drift_against_version"] = previous.version if previous else None
    result.metrics["fit_ms"] = round((time.perf_counter() - started) * 1000)
    # The all-judgments model is always active: it is what the cohorts are pulled towards.
    activate = row.cohort_id is None or row.cohort.auto_activate
    stored = store_version(row, result, activate=activate)
    outcome_status = Outcome.FINISHED if stored else Outcome.SUPERSEDED
    row.refresh_from_db()
    logger.info(
        "Refit %s v%d (%s, mark %d): %s, %d pairs over %d clips, held-out accuracy %s, drift %s (%dms)",
        _owner_label(row.cohort_id), row.version, row.backbone, row.high_water_judgment_id, outcome_status,
        result.pairs.n_pairs, result.clip_ids.size, _format_metric(result.metrics["held_out_accuracy"]),
        _format_metric(result.metrics["drift_kendall_tau"]), result.metrics["fit_ms"],
    )
    return RefitOutcome(
        outcome_status, row.cohort_id, row.backbone, row.high_water_judgment_id, row.pk, row.version,
        metrics=row.metrics if stored else None,
    )


def run_all_judgments_refit(backbone, high_water_judgment_id=None, *, task_id="", now=None):
    """Fit the hidden all-judgments model of ``backbone`` and activate it.

    It fits the real (not simulated) decided judgments of every cohort whose
    pool has clips with ``backbone`` features, over the union of their pools,
    with learned weights, each cohort's half-life and the default margin,
    and no pull. Simulated judgments are left out so that a simulation never
    shapes the direction real cohorts are pulled towards.
    """
    from scoring.taste import DEFAULT_MARGIN
    from scoring.tasks.base import TRANSIENT_ERRORS

    started = time.perf_counter()
    now = now or timezone.now()
    mark = current_mark() if high_water_judgment_id is None else int(high_water_judgment_id)
    cohorts = list(
        Cohort.objects.filter(
            pool__clips__features__backbone=backbone, pool__clips__status=Clip.Status.READY
        ).distinct().order_by("pk")
    )
    if not cohorts:
        return RefitOutcome(Outcome.NOT_READY, None, backbone, mark,
                            message=f"No cohort's pool has clips with {backbone} features.")
    judgments = gather_judgments(cohorts, mark)
    if len(judgments) == 0:
        return RefitOutcome(Outcome.NOT_READY, None, backbone, mark, message="No decided real judgments to fit.")

    half_lives = sorted({cohort.half_life_days for cohort in cohorts})
    fields = _version_fields("learned", None, None, None, DEFAULT_MARGIN, float(np.median(half_lives)))
    claim = claim_version(None, backbone, mark, task_id=task_id, fields=fields, now=now)
    if claim.row is None:
        return _stopped(claim.existing, None, backbone, mark)
    row = claim.row
    try:
        clips = Clip.objects.filter(pools__cohorts__in=cohorts, status=Clip.Status.READY).distinct()
        pool = load_pool_features(clips.values_list("id", "kind"), backbone)
        if pool.inputs is None or _count_scored(pool, judgments) == 0:
            message = "No judgment compares two clips with valid features."
            _release(claim, message)
            return RefitOutcome(Outcome.NOT_READY, None, backbone, mark, message=message)
        result = fit_pool(pool, judgments, weights_mode="learned", margin=DEFAULT_MARGIN,
                          seed=salon_settings.REFIT_SEED)
        result.metrics["pulled_towards"] = None
        result.metrics["half_life_days_by_cohort"] = {str(c.pk): c.half_life_days for c in cohorts}
        return _finish(row, result, started)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        fail_version(row, reason)
        logger.exception("All-judgments refit v%d (%s, mark %d) failed", row.version, backbone, mark)
        if isinstance(error, TRANSIENT_ERRORS):
            raise
        return RefitOutcome(Outcome.FAILED, None, backbone, mark, row.pk, row.version, message=reason)
