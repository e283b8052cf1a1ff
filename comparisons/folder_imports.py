"""Folder imports started from admin: recorded as a FolderImport, then run by a worker.

The admin form checks the folder against ``SALON_IMPORT_ROOTS`` and stores
the request; :func:`run_folder_import` checks it again on the worker, whose
settings decide, and saves the counts and outcomes as the import goes, so
the admin page shows progress.
"""

import logging
import tempfile
import time
from functools import partial
from pathlib import Path

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from comparisons.importer import Importer, ImportInputError, resolve_import_folder
from comparisons.jobs import claim_job, unexpected_error_message
from comparisons.models import FolderImport
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# Seconds between two progress saves of a running import.
PROGRESS_SECONDS = 2.0
# Next step for the curator, written into the error of an import that a lost
# worker or the time limit ended.
RETRY_ADVICE = "Check the worker log, then import the folder again or split it into smaller folders."


def request_folder_import(user, folder, pool_name="", captions_upload=None):
    """Record a folder import for ``user`` and send its task once the row is committed.

    Parameters
    ----------
    folder : Path
        The folder, already resolved inside the import roots by the form.
    captions_upload : UploadedFile, optional
        A caption CSV whose paths are relative to ``folder``. Its text is
        stored on the row, so the worker needs no access to the web's uploads.

    Raises
    ------
    ImportInputError
        When the caption CSV is not UTF-8 text. Nothing is stored then.
    """
    captions_csv = ""
    if captions_upload is not None:
        try:
            captions_csv = captions_upload.read().decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ImportInputError(
                _("The caption CSV %(name)s is not UTF-8 text (%(error)s); save it as UTF-8 and upload it again.")
                % {"name": captions_upload.name, "error": error}
            ) from error
    with transaction.atomic():
        job = FolderImport.objects.create(
            requested_by=user, folder=str(folder), pool_name=(pool_name or "").strip(), captions_csv=captions_csv,
        )
        transaction.on_commit(partial(send_folder_import, job.pk))
    logger.info("Folder import %s queued by user %s", job.pk, getattr(user, "pk", None))
    return job


def send_folder_import(import_id):
    """Send the import task; a broker outage leaves the import queued for beat's sweep to send again."""
    from kombu.exceptions import OperationalError as BrokerError

    from comparisons.tasks import import_folder

    try:
        import_folder.apply_async((import_id,), retry=False)
    except BrokerError as error:
        logger.warning("Broker unavailable; folder import %s stays queued until it is sent again: %s", import_id, error)


class _Progress:
    """Save the importer's counts and outcomes on the row at most every PROGRESS_SECONDS."""

    def __init__(self, job_id, importer):
        self.job_id = job_id
        self.importer = importer
        self.saved_at = time.monotonic()

    def fields(self):
        report = self.importer.report
        return {
            "counts": report.counts,
            "outcomes": [
                {"status": outcome.status, "display": outcome.display, "message": outcome.message,
                 "clip_id": outcome.clip_id}
                for outcome in report.outcomes
            ],
            "notices": list(report.notices),
        }

    def maybe_save(self, _line=None):
        if time.monotonic() - self.saved_at >= PROGRESS_SECONDS:
            self.save()

    def save(self, **extra):
        FolderImport.objects.filter(pk=self.job_id).update(**self.fields(), **extra)
        self.saved_at = time.monotonic()


def run_folder_import(import_id, task_id=""):
    """Import the folder of one queued FolderImport and record the outcome on its row.

    Only a queued import is started, so a duplicate delivery of the task does
    nothing. Running an import again is safe in any case: files already
    imported come out as duplicates, and failed ones are tried again.
    Return the counts, or None when the import was not queued.
    """
    from celery.exceptions import SoftTimeLimitExceeded

    if not claim_job(FolderImport, import_id, task_id):
        logger.info("Folder import %s is not queued (missing, running or done); nothing to do", import_id)
        return None
    job = FolderImport.objects.get(pk=import_id)

    roots = salon_settings.IMPORT_ROOTS
    # Verbosity 3 emits a line for every file, so progress is saved as files go by.
    importer = Importer(pool_name=job.pool_name or None, allowed_roots=roots, verbosity=3)
    progress = _Progress(job.pk, importer)
    importer.emit = progress.maybe_save
    started = time.monotonic()
    try:
        folder = resolve_import_folder(job.folder, roots)
        with tempfile.TemporaryDirectory(prefix="salon-captions-") as scratch:
            captions = None
            if job.captions_csv:
                captions = Path(scratch) / "captions.csv"
                captions.write_text(job.captions_csv, encoding="utf-8")
            importer.import_folder(folder, captions, captions_base=folder)
    except (ImportInputError, OSError, SoftTimeLimitExceeded) as error:
        progress.save(status=FolderImport.Status.FAILED, error=str(error) or error.__class__.__name__,
                      finished_at=timezone.now())
        logger.warning("Folder import %s failed: %s", import_id, error)
        return None
    except Exception as error:
        logger.exception("Folder import %s failed with an unexpected error", import_id)
        progress.save(
            status=FolderImport.Status.FAILED, finished_at=timezone.now(),
            error=unexpected_error_message(error),
        )
        raise

    progress.save(status=FolderImport.Status.FINISHED, finished_at=timezone.now())
    counts = importer.report.counts
    logger.info(
        "Folder import %s finished: %d imported, %d duplicate, %d failed, %d ignored (%d ms)",
        import_id, counts["imported"], counts["duplicate"], counts["failed"], counts["ignored"],
        (time.monotonic() - started) * 1000,
    )
    return counts

