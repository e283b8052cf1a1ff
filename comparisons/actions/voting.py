"""Record a rater's answer to one comparison, in one database transaction.

Status codes carried by the ActionError this module raises:

- 403: not a member, membership flagged or inactive, cohort closed, or the
  comparison was served to someone else;
- 404: no comparison has that id;
- 400: the comparison belongs to another cohort;
- 409: the comparison already has a different answer;
- 422: the answer came sooner than the cohort's minimum view time, measured
  on the server clock from ``Comparison.served_at``; the request was well
  formed but arrived too early, and may be sent again later;
- 429: the rater exceeded ``VOTE_RATE_LIMIT_PER_MINUTE`` (``retry_after`` set).

The same answer sent twice returns the stored judgment and stores nothing.
Simulated raters skip the minimum view time and the rate limit only when
``SIMULATED_RATERS_EXEMPT`` is on. Nothing here waits on Celery.
"""

import datetime
import logging
import math
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from comparisons.actions.common import ActionError, EndState, get_membership, membership_end_state
from comparisons.models import Comparison, Judgment
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# Largest value that a PositiveIntegerField can store on every supported database.
MAX_STORED_MS = 2**31 - 1
RATE_WINDOW = datetime.timedelta(minutes=1)


@dataclass(frozen=True)
class VoteResult:
    """The stored judgment, and whether this request created it."""

    judgment: Judgment
    created: bool


def record_judgment(*, cohort, rater, comparison_id, choice, client_ms=None):
    """Store ``rater``'s ``choice`` for comparison ``comparison_id`` in ``cohort``.

    ``choice`` is a ``Judgment.Choice`` value and ``client_ms`` the time in
    milliseconds from when the page showed the pair, or None; the caller
    validates both. Return a VoteResult, or raise ActionError with the status
    listed in the module docstring.
    """
    now = timezone.now()
    with transaction.atomic():
        # The lock queues one rater's concurrent votes, which keeps the rate
        # limit count exact on databases with row locks.
        membership = get_membership(cohort, rater, lock=True)
        _check_can_vote(cohort, membership)
        comparison = _get_own_comparison(cohort, rater, comparison_id)

        existing = Judgment.objects.filter(comparison=comparison).first()
        if existing is not None:
            return _replay(existing, choice)

        exempt = membership.is_simulated and salon_settings.SIMULATED_RATERS_EXEMPT
        if not exempt:
            _check_rate_limit(rater, now)
        server_ms = min(max(0, round((now - comparison.served_at).total_seconds() * 1000)), MAX_STORED_MS)
        if not exempt and server_ms < cohort.min_view_ms:
            raise ActionError(
                422,
                "too_fast",
                _(
                    "Please look at both clips a little longer: answers are accepted after "
                    "%(min_ms)d ms and this one came after %(elapsed_ms)d ms."
                )
                % {"min_ms": cohort.min_view_ms, "elapsed_ms": server_ms},
                retry_after=math.ceil((cohort.min_view_ms - server_ms) / 1000),
            )

        judgment, created = store_judgment(
            comparison,
            choice=choice,
            client_ms=client_ms,
            server_ms=server_ms,
            is_simulated=membership.is_simulated,
        )
        if not created:
            return _replay(judgment, choice)

    logger.debug(
        "Stored judgment %s (%s) for comparison %s by rater %s in cohort %s, server %d ms, client %s ms",
        judgment.pk, choice, comparison.pk, rater.pk, cohort.pk, server_ms, client_ms,
    )
    return VoteResult(judgment, created=True)


def store_judgment(comparison, **fields):
    """Insert the judgment of ``comparison``, or fetch the one a concurrent request stored.

    Return ``(judgment, created)``. The one-to-one constraint decides between
    two simultaneous inserts; the savepoint keeps the caller's transaction
    usable after the loser's IntegrityError.
    """
    try:
        with transaction.atomic():
            return Judgment.objects.create(comparison=comparison, **fields), True
    except IntegrityError:
        existing = Judgment.objects.filter(comparison=comparison).first()
        if existing is None:
            raise
        logger.info("Comparison %s was answered by a concurrent request; returning judgment %s",
                    comparison.pk, existing.pk)
        return existing, False


def _check_can_vote(cohort, membership):
    blocked = membership_end_state(membership)
    if blocked:
        raise ActionError(403, blocked, EndState.message(blocked))
    if not cohort.is_open:
        raise ActionError(403, EndState.COHORT_CLOSED, EndState.message(EndState.COHORT_CLOSED))


def _get_own_comparison(cohort, rater, comparison_id):
    comparison = Comparison.objects.filter(pk=comparison_id).first()
    if comparison is None:
        raise ActionError(
            404, "comparison_not_found",
            _("Comparison %(id)s does not exist. Reload the page to get a new pair.") % {"id": comparison_id},
        )
    if comparison.rater_id != rater.pk:
        raise ActionError(
            403, "not_your_comparison",
            _("Comparison %(id)s was served to another rater, so you cannot answer it.") % {"id": comparison_id},
        )
    if comparison.cohort_id != cohort.pk:
        raise ActionError(
            400, "wrong_cohort",
            _("Comparison %(id)s belongs to another cohort; send the vote to that cohort's page.")
            % {"id": comparison_id},
        )
    return comparison


def _replay(judgment, choice):
    if judgment.choice == choice:
        return VoteResult(judgment, created=False)
    raise ActionError(
        409, "already_answered",
        _("Comparison %(id)s already has the answer “%(stored)s”; an answer cannot be changed.")
        % {"id": judgment.comparison_id, "stored": judgment.get_choice_display()},
    )


def _check_rate_limit(rater, now):
    limit = salon_settings.VOTE_RATE_LIMIT_PER_MINUTE
    if not limit:
        return
    recent = list(
        Judgment.objects.filter(comparison__rater=rater, created_at__gt=now - RATE_WINDOW)
        .order_by("-created_at")
        .values_list("created_at", flat=True)[:limit]
    )
    if len(recent) < limit:
        return
    # The window falls below the limit once the limit-th newest vote leaves it.
    seconds = max(1, math.ceil((recent[-1] + RATE_WINDOW - now).total_seconds()))
    message = ngettext(
        "Too many votes: at most %(limit)d per minute. Please wait %(seconds)d second.",
        "Too many votes: at most %(limit)d per minute. Please wait %(seconds)d seconds.",
        seconds,
    ) % {"limit": limit, "seconds": seconds}
    raise ActionError(429, "rate_limited", message, retry_after=seconds)
