"""Run a BackgroundJob row once, and recover it when its worker is lost.

A web request creates the row QUEUED and sends a task on commit. The task
claims the row (QUEUED to RUNNING, with its task id), so a duplicate delivery
does nothing. Tasks of this kind acknowledge early, so a killed worker child
takes its message with it. The worker's main process receives Celery's
``task_failure`` signal for the lost child and queues the job again. Beat's
sweep does the same for jobs whose whole worker host was lost. A job lost
MAX_ATTEMPTS times fails with the reason, so one that kills its worker every
time does not loop.
"""

import logging

from billiard.exceptions import WorkerLostError
from celery.exceptions import TimeLimitExceeded
from celery.signals import task_failure
from django.db import connection
from django.db.models import F
from django.utils import timezone

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
SWEEP_BATCH = 100


def claim_job(model, job_id, task_id=""):
    """Mark the queued job ``job_id`` RUNNING under ``task_id`` and count the attempt.

    Return False, changing nothing, when the job was not queued.
    """
    claimed = model.objects.filter(pk=job_id, status=model.Status.QUEUED).update(
        status=model.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1, task_id=task_id or "",
    )
    return bool(claimed)


def unexpected_error_message(error):
    """Return the error text stored on a job that the unexpected exception ``error`` ended."""
    return f"Unexpected error {type(error).__name__}: {error}. The worker log has the traceback."


def _label(model, job_id):
    return f"{model._meta.verbose_name.capitalize()} {job_id}"


def recover_job(model, job_id, *, reason, advice, send, task_id=None):
    """Queue a RUNNING job again with ``send(job_id)``, or fail it once it has had MAX_ATTEMPTS runs.

    ``reason`` describes what happened. ``advice`` is the next step, written
    into the error when the job fails. With ``task_id``, only a job that this
    task claimed is touched, so a lost duplicate delivery leaves the live run
    alone. Return the new status, or None when the job was not running (or
    not under ``task_id``), so calling twice is safe.
    """
    running = model.objects.filter(pk=job_id, status=model.Status.RUNNING)
    if task_id is not None:
        running = running.filter(task_id=task_id)

    requeued = running.filter(attempts__lt=MAX_ATTEMPTS).update(
        status=model.Status.QUEUED, started_at=None, task_id="", sent_at=timezone.now()
    )
    if requeued:
        logger.warning("%s: %s; queued again", _label(model, job_id), reason)
        send(job_id)
        return model.Status.QUEUED

    failed = running.update(
        status=model.Status.FAILED, finished_at=timezone.now(),
        error=f"{reason} on each of {MAX_ATTEMPTS} runs. {advice}",
    )
    if failed:
        logger.warning("%s: %s on each of %d runs; marked failed", _label(model, job_id), reason, MAX_ATTEMPTS)
        return model.Status.FAILED
    return None


def sweep_jobs(model, *, send, queued_minutes, stale_minutes, advice):
    """Send jobs queued longer than ``queued_minutes`` again, and recover those running longer than ``stale_minutes``.

    A job still queued that long after its last send was most likely never
    delivered (a broker outage). A running job older than its task's hard
    time limit has lost its worker host. Return how many jobs were sent.
    """
    now = timezone.now()
    queued_ids = list(
        model.objects.filter(status=model.Status.QUEUED, sent_at__lt=now - timezone.timedelta(minutes=queued_minutes))
        .values_list("pk", flat=True)[:SWEEP_BATCH]
    )
    # Marked first, so the next sweep waits another ``queued_minutes`` for these.
    model.objects.filter(pk__in=queued_ids, status=model.Status.QUEUED).update(sent_at=now)
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
    killed child. A lost child queues the job again. A hard time limit, or an
    error that the task could not record itself (such as a failed final
    save), fails the job. Only the job that the failed task claimed is
    touched. The task's first argument must be the job id.
    """

    def record(sender=None, task_id=None, args=None, exception=None, **kwargs):
        if getattr(sender, "name", None) != task_name or not args:
            return
        job_id = args[0]
        try:
            if isinstance(exception, WorkerLostError):
                recover_job(
                    model, job_id, reason="The worker process stopped while running it", advice=advice, send=send,
                    task_id=task_id or "",
                )
                return
            if isinstance(exception, TimeLimitExceeded):
                error = f"The run passed its time limit of {time_limit_seconds} s. {advice}"
            else:
                error = f"The run failed with {type(exception).__name__}: {exception}. {advice}"
            failed = model.objects.filter(pk=job_id, status=model.Status.RUNNING, task_id=task_id or "").update(
                status=model.Status.FAILED, finished_at=timezone.now(), error=error
            )
            if failed:
                logger.warning("%s: %s; marked failed", _label(model, job_id), error)
        finally:
            # The worker's main process runs no tasks, so Django never closes
            # this connection for it; a stale one would fail the next receipt.
            if not connection.in_atomic_block:
                connection.close()

    # A strong reference: the receiver is a closure that nothing else keeps.
    task_failure.connect(record, weak=False, dispatch_uid=f"salon-recover-{task_name}")
    return record
