"""Decide which refits are due; Celery beat runs this through ``schedule_refits``.

A cohort's refit is due when all of these hold:

- a backbone resolves for it (its pool has clips with features);
- it has at least ``min_judgments`` decided judgments (a cheap count; the
  refit itself applies every filter and may still find too few);
- no refit of it is running, unless that one is stale;
- its last attempt (finished or failed) ended at least
  ``refit_interval_minutes`` ago;
- at least ``REFIT_MIN_NEW_JUDGMENTS`` decided judgments arrived after the
  mark of its newest finished version (any number for the first version).

The all-judgments model of each backbone in use is due under the same rules,
with the shortest interval and the smallest minimum of the cohorts that use
the backbone. A RUNNING row older than ``REFIT_STALE_MINUTES`` (its worker
died, and late acknowledgement did not bring the task back) is sent again
with its own mark, and the new task takes the row over.
"""

import dataclasses
import datetime
import logging

from django.db.models import Max, Q
from django.utils import timezone

from comparisons.models import Cohort, Judgment
from scoring.models import TasteModel
from scoring.refit_inputs import is_simulation_cohort, resolve_backbone
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

REFIT_COHORT_TASK = "scoring.tasks.refit.refit_cohort"
REFIT_ALL_TASK = "scoring.tasks.refit.refit_all_judgments"
REFIT_QUEUE = "gpu"


@dataclasses.dataclass(frozen=True)
class PlannedRefit:
    """A refit task to send: its name, keyword arguments and why it is due."""

    task: str
    kwargs: dict
    reason: str


def _decided(judgments):
    return judgments.filter(choice__in=[Judgment.Choice.LEFT, Judgment.Choice.RIGHT])


def _owner(cohort_id):
    return Q(cohort_id=cohort_id) if cohort_id is not None else Q(cohort__isnull=True)


def due_check(owner_id, backbone, decided, *, needed, interval_minutes, now, task_id=""):
    """Return None when a refit of ``owner_id`` (a cohort id, None for all judgments) is due, else why not.

    ``decided`` is the queryset of the decided judgments the refit would count.
    A RUNNING row of ``task_id`` does not count as a refit running: it is
    this task's own claim, left when its worker died and the message came back.
    """
    versions = TasteModel.objects.filter(_owner(owner_id), backbone=backbone)
    stale_before = now - datetime.timedelta(minutes=salon_settings.REFIT_STALE_MINUTES)
    running = versions.filter(status=TasteModel.Status.RUNNING, started_at__gte=stale_before)
    if task_id:
        running = running.exclude(task_id=task_id)
    if running.exists():
        return "a refit is running"
    total = decided.count()
    if total < needed:
        return f"{total} of {needed} judgments"
    last_attempt = (
        versions.exclude(status=TasteModel.Status.RUNNING).aggregate(last=Max("finished_at"))["last"]
    )
    if last_attempt is not None and now - last_attempt < datetime.timedelta(minutes=interval_minutes):
        return "refit interval not passed"
    mark = versions.filter(status=TasteModel.Status.FINISHED).aggregate(mark=Max("high_water_judgment_id"))["mark"]
    if mark is not None:
        new = decided.filter(id__gt=mark).count()
        if new < max(1, salon_settings.REFIT_MIN_NEW_JUDGMENTS):
            return f"{new} new judgments since mark {mark}"
    return None


def cohort_due(cohort, backbone, now, task_id=""):
    """Return None when ``cohort``'s refit on ``backbone`` is due, else why not (see :func:`due_check`)."""
    decided = _decided(Judgment.objects.filter(comparison__cohort=cohort))
    if not is_simulation_cohort(cohort):
        decided = decided.filter(is_simulated=False)
    return due_check(
        cohort.pk, backbone, decided, needed=max(1, cohort.min_judgments),
        interval_minutes=cohort.refit_interval_minutes, now=now, task_id=task_id,
    )


def all_judgments_due(backbone, cohorts, now, task_id=""):
    """Return None when the all-judgments model of ``backbone`` (used by ``cohorts``) is due, else why not."""
    decided = _decided(Judgment.objects.filter(comparison__cohort__in=cohorts, is_simulated=False))
    return due_check(
        None, backbone, decided, needed=max(1, min(cohort.min_judgments for cohort in cohorts)),
        interval_minutes=min(cohort.refit_interval_minutes for cohort in cohorts), now=now, task_id=task_id,
    )


def plan_refits(now=None):
    """Return the :class:`PlannedRefit` list that is due at ``now``: stale rows first, then cohorts, then all-judgments models."""
    now = now or timezone.now()
    plans = []
    stale_before = now - datetime.timedelta(minutes=salon_settings.REFIT_STALE_MINUTES)
    for row in TasteModel.objects.filter(status=TasteModel.Status.RUNNING, started_at__lt=stale_before).order_by("pk"):
        kwargs = {"backbone": row.backbone, "high_water_judgment_id": row.high_water_judgment_id}
        if row.cohort_id is None:
            plans.append(PlannedRefit(REFIT_ALL_TASK, kwargs, f"stale RUNNING v{row.version} since {row.started_at:%Y-%m-%d %H:%M}"))
        else:
            plans.append(PlannedRefit(
                REFIT_COHORT_TASK, dict(kwargs, cohort_id=row.cohort_id),
                f"stale RUNNING v{row.version} since {row.started_at:%Y-%m-%d %H:%M}",
            ))

    cohorts_by_backbone = {}
    for cohort in Cohort.objects.select_related("pool").order_by("pk"):
        backbone = resolve_backbone(cohort)
        if backbone is None:
            logger.debug("Cohort %s has no clip features yet; no refit", cohort.pk)
            continue
        cohorts_by_backbone.setdefault(backbone, []).append(cohort)
        not_due = cohort_due(cohort, backbone, now)
        if not_due:
            logger.debug("Cohort %s (%s) not due: %s", cohort.pk, backbone, not_due)
            continue
        plans.append(PlannedRefit(
            REFIT_COHORT_TASK, {"cohort_id": cohort.pk, "backbone": backbone, "if_due": True}, "due",
        ))

    for backbone, cohorts in sorted(cohorts_by_backbone.items()):
        not_due = all_judgments_due(backbone, cohorts, now)
        if not_due:
            logger.debug("All-judgments model (%s) not due: %s", backbone, not_due)
            continue
        plans.append(PlannedRefit(REFIT_ALL_TASK, {"backbone": backbone, "if_due": True}, "due"))
    return plans


def send_by_name(plan):
    """Send ``plan`` to the ``gpu`` queue by task name, so this process never imports the fit code."""
    from taste_site.celery import app

    return app.send_task(plan.task, kwargs=plan.kwargs, queue=REFIT_QUEUE)


def schedule_due_refits(send=send_by_name, now=None):
    """Send every refit that is due at ``now`` with ``send(plan)``; return the plans sent."""
    plans = plan_refits(now)
    for plan in plans:
        send(plan)
    logger.info(
        "Scheduler sent %d refits: %s", len(plans),
        ", ".join(f"{plan.task.rsplit('.', 1)[-1]}({plan.kwargs.get('cohort_id', 'all')}, {plan.reason})"
                  for plan in plans) or "none due",
    )
    return plans
