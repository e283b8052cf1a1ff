"""The Celery task that writes an export requested from the web page (queue ``default``)."""

import logging
from pathlib import Path

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

from comparisons.exports.files import export_to_path
from comparisons.exports.options import ExportError, ExportOptions
from comparisons.jobs import claim_job, recover_lost_runs, sweep_jobs, unexpected_error_message
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
# Next step for the researcher, written into the error of an export that a
# lost worker or the time limit ended.
RETRY_ADVICE = "Check the worker log, then request the export again, perhaps with a shorter time range."


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


def run_export(export_id, task_id=""):
    """Write the file of one queued export and record the outcome on its row.

    Only a queued export is started, so a duplicate delivery of the task finds
    it running or finished and does nothing.
    """
    if not claim_job(Export, export_id, task_id):
        logger.info("Export %s is not queued (missing, running or done); nothing to do", export_id)
        return None
    export = Export.objects.get(pk=export_id)
    # Every outcome is written only while this run still owns the row, so a
    # run the sweep gave up on cannot overwrite the one that replaced it.
    owned = Export.objects.filter(pk=export_id, status=Export.Status.RUNNING, started_at=export.started_at)
    remove_partial_files(export)

    try:
        options = ExportOptions.from_json({**export.parameters, "format": export.format})
        file_name = export_file_name(export)
        result = export_to_path(options, export_dir() / file_name, overwrite=True)
    except (ExportError, ImproperlyConfigured, OSError, SoftTimeLimitExceeded) as error:
        owned.update(status=Export.Status.FAILED, error=str(error) or error.__class__.__name__,
                     finished_at=timezone.now())
        logger.warning("Export %s failed: %s", export_id, error)
        return None
    except Exception as error:
        logger.exception("Export %s failed with an unexpected error", export_id)
        owned.update(
            status=Export.Status.FAILED, finished_at=timezone.now(),
            error=unexpected_error_message(error),
        )
        raise

    counts = {cohort["slug"]: cohort["counts"] for cohort in result.card["cohorts"]}
    owned.update(
        status=Export.Status.FINISHED, file_name=file_name, row_count=result.rows, size_bytes=result.size_bytes,
        counts=counts, finished_at=timezone.now(), error="",
    )
    return result.rows


# The route "comparisons.*" in CELERY_TASK_ROUTES sends this task to queue
# "default"; Celery 5.7 deprecates the per-task queue attribute.
@shared_task(
    bind=True,
    name=EXPORT_TASK,
    ignore_result=True,
    max_retries=0,
    soft_time_limit=SOFT_TIME_LIMIT_SECONDS,
    time_limit=TIME_LIMIT_SECONDS,
)
def export_comparisons(self, export_id):
    """Write the export with id ``export_id``; see :func:`run_export`."""
    return run_export(export_id, task_id=self.request.id)


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


def send_export(export_id):
    """Send the export task; a broker outage leaves the export queued for the sweep to resend."""
    try:
        export_comparisons.apply_async((export_id,), retry=False)
    except BrokerError as error:
        logger.warning("Broker unavailable; export %s stays queued until it is sent again: %s", export_id, error)


@shared_task(name="comparisons.exports.tasks.resend_queued_exports", ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_queued_exports():
    """Send exports left queued (never sent) or running (worker host lost) again; return how many.

    Safe to run twice: the task only starts an export that is still queued.
    """
    return sweep_jobs(
        Export, send=send_export, queued_minutes=QUEUED_RESEND_MINUTES, stale_minutes=STALE_RUNNING_MINUTES,
        advice=RETRY_ADVICE,
    )


recover_lost_runs(EXPORT_TASK, Export, send=send_export, advice=RETRY_ADVICE, time_limit_seconds=TIME_LIMIT_SECONDS)
