"""The Celery beat task that sends due refits to the ``gpu`` queue (rules: ``scoring.scheduling``)."""

from scoring.tasks.base import salon_task


# Planning reads a few counts per cohort; two minutes covers thousands of cohorts.
@salon_task(name="scoring.tasks.scheduler.schedule_refits", queue="default", soft_time_limit=120, time_limit=150)
def schedule_refits(self):
    """Send one refit per due cohort, the due all-judgments models and refits left RUNNING; return what was sent."""
    from scoring.scheduling import schedule_due_refits

    plans = schedule_due_refits()
    return {"sent": [{"task": plan.task, "kwargs": plan.kwargs, "reason": plan.reason} for plan in plans]}
