"""Run a BackgroundJob row once, and recover it when its worker is lost.

A web request creates the row QUEUED and sends a task on commit. The task
claims the row (QUEUED to RUNNING), so a duplicate delivery does nothing.
Tasks of this kind acknowledge early, so a killed worker child takes its
message with it. The worker's main process receives Celery's
``task_failure`` signal for the lost child and queues the job again. Beat's
sweep does the same for jobs whose whole worker host was lost. A job lost MAX_ATTEMPTS times
fails with the reason, so one that kills its worker every time does not loop.
"""

import logging

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SWEEP_BATCH = 100


def claim_job(model, job_id):
    """Mark the queued job ``job_id`` RUNNING and count the attempt; return False when it was not queued."""
    claimed = model.objects.filter(pk=job_id, status=model.Status.QUEUED).update(
        status=model.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    return bool(claimed)


def recover_job(model, job_id, *, reason, advice, send):
    """Queue a RUNNING job again with ``send(job_id)``, or fail it once it has had MAX_ATTEMPTS runs.

    ``reason`` describes what happened, and ``advice`` is the next step
    written into the error when the job fails. Return the new status, or None when the job was not running
    (finished, failed or recovered already), so calling twice is safe.
    """
    label = model._meta.verbose_name
    requeued = model.objects.filter(pk=job_id, status=model.Status.RUNNING, attempts__lt=MAX_ATTEMPTS).update(
        status=model.Status.QUEUED, started_at=None
    )
    if requeued:
        logger.warning("%s %s: %s; queued again", label.capitalize(), job_id, reason)
        send(job_id)
        return model.Status.QUEUED

    failed = model.objects.filter(pk=job_id, status=model.Status.RUNNING).update(
        status=model.Status.FAILED, finished_at=timezone.now(),
        error=f"{reason} on each of {MAX_ATTEMPTS} runs. {advice}",
    )
    if failed:
        logger.warning("%s %s: %s on each of %d runs; marked failed", label.capitalize(), job_id, reason, MAX_ATTEMPTS)
        return model.Status.FAILED
    return None


def sweep_jobs(model, *, send, queued_minutes, stale_minutes, advice):
    """Send jobs queued longer than ``queued_minutes`` again, and recover those running longer than ``stale_minutes``.

    A queued job that old was most likely never sent (a broker outage). A
    running job older than its task's hard time limit has lost its worker
    host. Return how many jobs were sent.
    """
    now = timezone.now()
    queued_ids = list(
        model.objects.filter(status=model.Status.QUEUED, created_at__lt=now - timezone.timedelta(minutes=queued_minutes))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    for job_id in queued_ids:
        send(job_id)
    stale_ids = list(
        model.objects.filter(status=model.Status.RUNNING, started_at__lt=now - timezone.timedelta(minutes=stale_minutes))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    recovered = [
        recover_job(model, job_id, reason="The worker was lost while running it", advice=advice, send=send)
        for job_id in stale_ids
    ]
    sent = len(queued_ids) + recovered.count(model.Status.QUEUED)
    if sent:
        logger.info("Sent %d %s again (%d queued, %d stale)", sent, model._meta.verbose_name_plural,
                    len(queued_ids), len(stale_ids))
    return sent


def recover_lost_runs(task_name, model, *, send, advice, time_limit_seconds):
    """Connect a ``task_failure`` receiver that records on the job why a run of ``task_name`` ended.

    Celery sends the signal from the worker's main process, which outlives a
    killed child. A lost child queues the job again; a hard time limit fails
    it. The task records its other failures itself. The task's first
    argument must be the job id.
    """

    def record(sender=None, args=None, exception=None, **kwargs):
        if getattr(sender, "name", None) != task_name or not args:
            return
        if isinstance(exception, WorkerLostError):
            recover_job(model, args[0], reason="The worker process stopped while running it", advice=advice, send=send)
        elif isinstance(exception, TimeLimitExceeded):
            model.objects.filter(pk=args[0], status=model.Status.RUNNING).update(
                status=model.Status.FAILED, finished_at=timezone.now(),
                error=f"The run passed its time limit of {time_limit_seconds} s. {advice}",
            )
            logger.warning("%s %s passed its time limit of %d s; marked failed",
                           model._meta.verbose_name.capitalize(), args[0], time_limit_seconds)

    # A strong reference: the receiver is a closure that nothing else keeps.
    task_failure.connect(record, weak=False, dispatch_uid=f"salon-recover-{task_name}")
    return record
