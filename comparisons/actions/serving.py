"""Serve the rater's next comparison, or the end state that stops them.

Preloading: while the rater looks at comparison N, the page preloads the media
of the pair that will follow it (``Serving.upcoming``). That pair must be the
one actually served after N, and the rater must not be able to fish for pairs
by reloading. So the pair after N is drawn with a random generator seeded by a
keyed hash of N's id (:func:`_rng_after`): the draw made to show the upcoming
pair and the draw made when N is answered see the same seed and the same
served pairs, and return the same pair in the same left/right order. It
differs only when the pool or the rater's served pairs changed in between
(a clip failed, another tab served a pair), and then the preloaded media go
unused. Nothing about the upcoming pair is stored or trusted from the client.
"""

import datetime
import logging
import random
import time
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from comparisons.actions.common import EndState, get_membership, membership_end_state
from comparisons.models import Clip, Comparison, Judgment
from comparisons.sampling import Exhausted, draw_pair, pairable_groups

logger = logging.getLogger(__name__)


@dataclass
class Serving:
    """What the rater sees now: a comparison or an end state, and their progress.

    ``judged_today`` and ``judged_total`` count answers other than skips in
    this cohort; today starts at midnight in ``settings.TIME_ZONE``.
    """

    cohort: object
    membership: object
    comparison: Comparison | None = None
    upcoming: tuple[Clip, Clip] | None = None
    end: str | None = None
    judged_today: int = 0
    judged_total: int = 0

    @property
    def completed(self):
        """Return True once the rater has made the cohort's ``completion_after`` judgments."""
        after = self.cohort.completion_after
        return after is not None and self.judged_total >= after


def start_of_local_day(now):
    """Return the aware datetime of the last midnight before ``now`` in the site's time zone."""
    zone = timezone.get_default_timezone()
    local = timezone.localtime(now, zone)
    midnight = datetime.datetime.combine(local.date(), datetime.time.min)
    return timezone.make_aware(midnight, zone)


def count_judged(cohort, rater, now):
    """Return ``(today, total)`` answers other than skips by ``rater`` in ``cohort``."""
    counts = Judgment.objects.filter(comparison__cohort=cohort, comparison__rater=rater).exclude(
        choice=Judgment.Choice.SKIP
    ).aggregate(
        total=Count("id"),
        today=Count("id", filter=Q(created_at__gte=start_of_local_day(now))),
    )
    return counts["today"], counts["total"]


def _rng_after(comparison_id):
    """Return the random generator that draws the pair following ``comparison_id``.

    Keyed with SECRET_KEY, so raters cannot predict pairs from ids.
    """
    seed = salted_hmac("comparisons.serving.pair-after", str(comparison_id)).digest()
    return random.Random(seed)


def _open_comparison(cohort, rater):
    """Return the oldest served, unanswered comparison whose clips can still be shown."""
    return (
        Comparison.objects.filter(
            cohort=cohort,
            rater=rater,
            judgment__isnull=True,
            left__status=Clip.Status.READY,
            right__status=Clip.Status.READY,
            left__pools=cohort.pool,
            right__pools=cohort.pool,
        )
        .select_related("left", "right", "left__prompt", "right__prompt")
        .order_by("id")
        .first()
    )


def _draw_ordered(cohort, rater, rng, groups):
    """Draw the next pair and its left/right order, or return an Exhausted end state."""
    draw = draw_pair(cohort, rater, rng, groups=groups)
    if isinstance(draw, Exhausted):
        return draw
    if rng.random() < 0.5:
        return draw.first_id, draw.second_id, draw.reason
    return draw.second_id, draw.first_id, draw.reason


def serve_comparison(cohort, rater, *, now=None, rng=None):
    """Return the rater's open comparison, a new one, or the end state that stops them.

    A reload returns the same open comparison, so leaving the page never skips
    a pair. A new comparison gets a random left/right order, which is stored.
    ``rng`` draws a rater's first pair in the cohort; later pairs are drawn by
    :func:`_rng_after`. Raise ActionError (403) when ``rater`` is not a member.
    """
    started = time.monotonic()
    now = now or timezone.now()
    with transaction.atomic():
        # The lock queues two tabs of one rater, so they get one open comparison.
        membership = get_membership(cohort, rater, lock=True)
        judged_today, judged_total = count_judged(cohort, rater, now)
        serving = Serving(cohort=cohort, membership=membership, judged_today=judged_today, judged_total=judged_total)

        serving.end = _end_state(cohort, membership, judged_today)
        if serving.end:
            return serving

        comparison = _open_comparison(cohort, rater)
        # One query for the pool's ready clips serves both draws below.
        groups = pairable_groups(cohort)
        if comparison is None:
            comparison = _create_comparison(cohort, rater, rng, groups)
            if isinstance(comparison, Exhausted):
                serving.end = comparison.code
                logger.info("No pair for rater %s in cohort %s: %s", rater.pk, cohort.pk, comparison.code)
                return serving
        serving.comparison = comparison
        serving.upcoming = _upcoming_pair(cohort, rater, comparison, groups)

    logger.debug(
        "Served comparison %s to rater %s in cohort %s in %.1f ms",
        comparison.pk, rater.pk, cohort.pk, (time.monotonic() - started) * 1000,
    )
    return serving


def _end_state(cohort, membership, judged_today):
    if not cohort.is_open:
        return EndState.COHORT_CLOSED
    blocked = membership_end_state(membership)
    if blocked:
        return blocked
    if cohort.daily_goal and judged_today >= cohort.daily_goal:
        return EndState.DAILY_GOAL_REACHED
    return None


def _create_comparison(cohort, rater, rng, groups):
    previous = Comparison.objects.filter(cohort=cohort, rater=rater).order_by("-id").values_list("id", flat=True).first()
    if previous is not None:
        rng = _rng_after(previous)
    draw = _draw_ordered(cohort, rater, rng or random.Random(), groups)
    if isinstance(draw, Exhausted):
        return draw
    left_id, right_id, reason = draw
    comparison = Comparison.objects.create(
        cohort=cohort, rater=rater, left_id=left_id, right_id=right_id, reason=reason
    )
    return Comparison.objects.select_related("left", "right", "left__prompt", "right__prompt").get(pk=comparison.pk)


def _upcoming_pair(cohort, rater, comparison, groups):
    """Return the clips that will follow ``comparison`` as (left, right), or None."""
    draw = _draw_ordered(cohort, rater, _rng_after(comparison.pk), groups)
    if isinstance(draw, Exhausted):
        return None
    left_id, right_id, _reason = draw
    clips = Clip.objects.select_related("prompt").in_bulk([left_id, right_id])
    return clips[left_id], clips[right_id]
