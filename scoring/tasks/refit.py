"""Celery tasks that refit taste functions on the ``gpu`` queue.

Both tasks are idempotent: a refit is keyed on (cohort, backbone, mark), and
a second run of the same key finds the stored version and writes nothing.
That makes late acknowledgement safe, so a refit whose worker died goes
back to the queue, and the scheduler re-sends a refit that stayed RUNNING.
"""

import logging

from django.utils import timezone

from scoring.tasks.base import salon_task

logger = logging.getLogger(__name__)

# A refit fits twice (held-out and full). On two CPU cores, 500 clips and
# 10,000 judgments took about 5 s, so the limits leave room for pools and
# judgment counts many times that. REFIT_STALE_MINUTES must stay above the
# hard limit, or the scheduler would hand a live refit to a second worker.
REFIT_SOFT_TIME_LIMIT = 900
REFIT_TIME_LIMIT = 960
REFIT_MAX_RETRIES = 3


def _check_id(name, value, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer id, got {value!r}")
    return value


@salon_task(
    name="scoring.tasks.refit.refit_cohort", queue="gpu", gpu=True,
    soft_time_limit=REFIT_SOFT_TIME_LIMIT, time_limit=REFIT_TIME_LIMIT, max_retries=REFIT_MAX_RETRIES,
)
def refit_cohort(self, cohort_id, backbone=None, high_water_judgment_id=None, if_due=False):
    """Refit cohort ``cohort_id`` on its judgments up to ``high_water_judgment_id`` (default: the newest now).

    ``backbone`` is a stored backbone name or None to resolve it from the
    settings and the pool's features. With ``if_due`` (set by the
    scheduler), the task first checks that the refit is still due, so copies
    that queued up behind a slow worker stop at once. Returns the outcome as
    a dict.
    """
    from comparisons.models import Cohort
    from scoring.refit import run_refit
    from scoring.refit_inputs import resolve_backbone
    from scoring.scheduling import cohort_due

    _check_id("cohort_id", cohort_id)
    _check_id("high_water_judgment_id", high_water_judgment_id, allow_none=True)
    task_id = self.request.id or ""
    if if_due:
        cohort = Cohort.objects.select_related("pool").filter(pk=cohort_id).first()
        resolved = resolve_backbone(cohort, backbone) if cohort else None
        not_due = cohort_due(cohort, resolved, timezone.now(), task_id=task_id) if resolved else "no backbone"
        if not_due:
            logger.info("Refit of cohort %s skipped: %s", cohort_id, not_due)
            return {"status": "not_due", "cohort_id": cohort_id, "message": not_due}
    return run_refit(cohort_id, backbone, high_water_judgment_id, task_id=task_id).as_dict()


@salon_task(
    name="scoring.tasks.refit.refit_all_judgments", queue="gpu", gpu=True,
    soft_time_limit=REFIT_SOFT_TIME_LIMIT, time_limit=REFIT_TIME_LIMIT, max_retries=REFIT_MAX_RETRIES,
)
def refit_all_judgments(self, backbone, high_water_judgment_id=None, if_due=False):
    """Refit the hidden all-judgments model of ``backbone`` (a stored backbone name) and activate it.

    With ``if_due``, the task first checks that the refit is still due.
    Returns the outcome as a dict.
    """
    from comparisons.models import Cohort
    from scoring.refit import run_all_judgments_refit
    from scoring.scheduling import all_judgments_due

    if not isinstance(backbone, str) or ":" not in backbone:
        raise ValueError(f"backbone must be a stored backbone name such as 'handcrafted:v1', got {backbone!r}")
    _check_id("high_water_judgment_id", high_water_judgment_id, allow_none=True)
    task_id = self.request.id or ""
    if if_due:
        cohorts = list(Cohort.objects.filter(pool__clips__features__backbone=backbone).distinct())
        not_due = all_judgments_due(backbone, cohorts, timezone.now(), task_id=task_id) if cohorts else "no cohort uses it"
        if not_due:
            logger.info("All-judgments refit (%s) skipped: %s", backbone, not_due)
            return {"status": "not_due", "backbone": backbone, "message": not_due}
    return run_all_judgments_refit(backbone, high_water_judgment_id, task_id=task_id).as_dict()
