"""The Celery task that writes an export requested from the web page (queue ``default``)."""

import logging
from pathlib import Path

from billiard.exceptions import WorkerLostError
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import task_failure
from django.core.exceptions import ImproperlyConfigured
from django.db.models import F
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from comparisons.exports.files import export_to_path
from comparisons.exports.options import ExportError, ExportOptions
from comparisons.models import Export
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# An export of a million judgments took 20-65 s on a 2 vCPU machine
# (docs/benchmarks.md). The limits are there to stop a run that is stuck, such
# as one waiting on a locked database.
SOFT_TIME_LIMIT_SECONDS = 2 * 60 * 60
TIME_LIMIT_SECONDS = SOFT_TIME_LIMIT_SECONDS + 120
# A queued export older than this was most likely never sent (broker outage).
QUEUED_RESEND_MINUTES = 10
# A running export older than this has outlived the hard time limit, so its
# worker host is gone. A lost child process is caught at once instead.
STALE_RUNNING_MINUTES = TIME_LIMIT_SECONDS // 60 + 10
EXPORT_TASK = "comparisons.exports.tasks.export_comparisons"
# Maximum runs per export, counting those a lost worker cut short, so an
# export that kills its worker every time (out of memory) does not loop.
MAX_ATTEMPTS = 3


def export_dir():
    """Return the folder exports are written to, creating it when missing."""
    folder = salon_settings.EXPORT_DIR
    if not folder:
        raise ImproperlyConfigured("SALON_EXPORT_DIR is empty: set it to a folder the workers can write to.")
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_file_name(export):
    return f"export-{export.pk}-{export.created_at:%Y%m%dT%H%M%SZ}.{export.format}"


def run_export(export_id):
    """Write the file of one queued export and record the outcome on its row.

    Only a queued export is started, so a duplicate delivery of the task finds
    it running or finished and does nothing.
    """
    claimed = Export.objects.filter(pk=export_id, status=Export.Status.QUEUED).update(
        status=Export.Status.RUNNING, started_at=timezone.now(), attempts=F("attempts") + 1
    )
    if not claimed:
        logger.info("Export %s is not queued (missing, running or done); nothing to do", export_id)
        return None
    export = Export.objects.get(pk=export_id)
    remove_partial_files(export)

    try:
        options = ExportOptions.from_json({**export.parameters, "format": export.format})
        file_name = export_file_name(export)
        result = export_to_path(options, export_dir() / file_name, overwrite=True)
    except (ExportError, ImproperlyConfigured, OSError, SoftTimeLimitExceeded) as error:
        Export.objects.filter(pk=export_id).update(
            status=Export.Status.FAILED, error=str(error) or error.__class__.__name__, finished_at=timezone.now()
        )
        logger.warning("Export %s failed: %s", export_id, error)
        return None
    except Exception:
        Export.objects.filter(pk=export_id).update(
            status=Export.Status.FAILED, error="Unexpected error; see the worker log.", finished_at=timezone.now()
        )
        raise

    counts = {cohort["slug"]: cohort["counts"] for cohort in result.card["cohorts"]}
    # Only while this run still owns the row: a run the sweep gave up on must
    # not overwrite the outcome of the one that replaced it.
    Export.objects.filter(pk=export_id, status=Export.Status.RUNNING, started_at=export.started_at).update(
        status=Export.Status.FINISHED, file_name=file_name, row_count=result.rows, size_bytes=result.size_bytes,
        counts=counts, finished_at=timezone.now(), error="",
    )
    return result.rows


# The route "comparisons.*" in CELERY_TASK_ROUTES sends this task to queue
# "default"; Celery 5.7 deprecates the per-task queue attribute.
@shared_task(
    name=EXPORT_TASK,
    ignore_result=True,
    max_retries=0,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def export_comparisons(export_id):
    """Write the export with id ``export_id``; see :func:`run_export`."""
    return run_export(export_id)


def remove_partial_files(export):
    """Delete temporary files an earlier, interrupted run of ``export`` left in the export folder."""
    try:
        leftovers = list(export_dir().glob(f".{export_file_name(export)}*.part"))
    except (ImproperlyConfigured, OSError):
        return  # The run itself reports the folder problem.
    for path in leftovers:
        path.unlink(missing_ok=True)
    if leftovers:
        logger.info("Export %s: removed %d partial files of an interrupted run", export.pk, len(leftovers))


def recover_export(export_id, reason):
    """Queue a RUNNING export again after its worker was lost, or fail it after MAX_ATTEMPTS runs.

    Return the new status, or None when the export was not running (it
    finished, failed or was recovered already), so calling twice is safe.
    """
    requeued = Export.objects.filter(
        pk=export_id, status=Export.Status.RUNNING, attempts__lt=MAX_ATTEMPTS
    ).update(status=Export.Status.QUEUED, started_at=None)
    if requeued:
        logger.warning("Export %s: %s; queued again", export_id, reason)
        send_export(export_id)
        return Export.Status.QUEUED
    failed = Export.objects.filter(pk=export_id, status=Export.Status.RUNNING).update(
        status=Export.Status.FAILED, finished_at=timezone.now(),
        error=(
            f"{reason} on each of {MAX_ATTEMPTS} runs. Check the worker log (memory, time limit), "
            "then request the export again, perhaps with a shorter time range."
        ),
    )
    if failed:
        logger.warning("Export %s: %s on each of %d runs; marked failed", export_id, reason, MAX_ATTEMPTS)
        return Export.Status.FAILED
    return None


@task_failure.connect
def record_lost_run(sender=None, args=None, exception=None, **kwargs):
    """Record on the row why a run ended without the task doing so itself.

    Celery sends ``task_failure`` from the worker's main process, which
    outlives a killed child. A lost child queues the export again (its row
    would otherwise stay RUNNING); a hard time limit fails it. Other failures
    were already recorded on the row by the task.
    """
    if getattr(sender, "name", None) != EXPORT_TASK or not args:
        return
    if isinstance(exception, WorkerLostError):
        recover_export(args[0], "The worker process stopped while writing")
    elif isinstance(exception, TimeLimitExceeded):
        # The soft limit normally ends the run first; this is the hard one.
        Export.objects.filter(pk=args[0], status=Export.Status.RUNNING).update(
            status=Export.Status.FAILED, finished_at=timezone.now(),
            error=(
                f"The export ran past its time limit of {TIME_LIMIT_SECONDS} s. "
                "Request a shorter time range or fewer cohorts."
            ),
        )


def send_export(export_id):
    """Send the export task; a broker outage leaves the export queued for the sweep to resend."""
    try:
        export_comparisons.apply_async((export_id,), retry=False)
    except BrokerError as error:
        logger.warning("Broker unavailable; export %s stays queued until it is sent again: %s", export_id, error)


@shared_task(name="comparisons.exports.tasks.resend_queued_exports", ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_queued_exports():
    """Send exports still queued after QUEUED_RESEND_MINUTES again, and recover stale running ones.

    A running export that started more than STALE_RUNNING_MINUTES ago has
    outlived the task's hard time limit, so its worker is gone. Safe to run
    twice: the task only starts an export that is still queued, and recovery
    only touches exports that are still running. Return how many were sent.
    """
    now = timezone.now()
    queued_before = now - timezone.timedelta(minutes=QUEUED_RESEND_MINUTES)
    export_ids = list(
        Export.objects.filter(status=Export.Status.QUEUED, created_at__lt=queued_before).values_list("pk", flat=True)[:100]
    )
    for export_id in export_ids:
        export_comparisons.apply_async((export_id,))
    if export_ids:
        logger.info("Sent %d queued exports again", len(export_ids))

    running_before = now - timezone.timedelta(minutes=STALE_RUNNING_MINUTES)
    stale_ids = list(
        Export.objects.filter(status=Export.Status.RUNNING, started_at__lt=running_before).values_list("pk", flat=True)[:100]
    )
    recovered = [recover_export(export_id, "The worker was lost while writing") for export_id in stale_ids]
    return len(export_ids) + recovered.count(Export.Status.QUEUED)
