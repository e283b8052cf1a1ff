"""Celery tasks that turn an imported clip into what browsers play (rendition and poster) and run folder imports.

The importer stores the original and enqueues :func:`process_clip` on the
``default`` queue. The task makes a browser rendition (videos only), a JPEG
poster for every clip and marks the clip ready or failed. A ready clip's
feature task is then sent to the ``gpu`` queue by name, so this module never
imports torch.
"""

import logging
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from celery import current_app, shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files import File
from django.db import OperationalError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from kombu.exceptions import OperationalError as BrokerError

from comparisons import media
from comparisons.folder_imports import RETRY_ADVICE, run_folder_import, send_folder_import
from comparisons.jobs import recover_lost_runs, sweep_jobs
from comparisons.models import Clip, FolderImport
from comparisons.models.clips import upload_poster, upload_rendition
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

FEATURES_TASK = "scoring.tasks.features.extract_features"
# Probing the result and making the poster come on top of the transcode.
EXTRA_SECONDS = 120
# Backstop limits for a message sent without limits (a plain ``delay``).
DEFAULT_SOFT_TIME_LIMIT = 1800
DEFAULT_TIME_LIMIT = 1860
# A clip pending this long without being processed is sent again by the sweep.
PENDING_RESEND_MINUTES = 10
RESEND_BATCH = 200


def time_limits():
    """Return ``(soft, hard)`` seconds for one clip, from TRANSCODE_TIMEOUT_SECONDS."""
    soft = salon_settings.TRANSCODE_TIMEOUT_SECONDS + EXTRA_SECONDS
    return soft, soft + 60


class ClipTask(DjangoTask):
    """Task class that sends each message with time limits taken from the settings.

    Celery reads ``soft_time_limit`` when the task is declared, before
    settings may be read, so the limits travel with each message instead.
    ``delay_on_commit`` goes through ``apply_async`` and gets them too.
    """

    def apply_async(self, args=None, kwargs=None, **options):
        soft, hard = time_limits()
        options.setdefault("soft_time_limit", soft)
        options.setdefault("time_limit", hard)
        options.setdefault("queue", "default")
        return super().apply_async(args, kwargs, **options)


@contextmanager
def local_path(field_file):
    """Yield a local path of ``field_file``, copying it to a temporary file when storage is remote."""
    try:
        path = field_file.path
    except NotImplementedError:
        path = None
    if path is not None:
        yield Path(path)
        return
    suffix = Path(field_file.name).suffix
    with tempfile.NamedTemporaryFile(suffix=suffix) as copy:
        with field_file.open("rb") as source:
            shutil.copyfileobj(source, copy)
        copy.flush()
        yield Path(copy.name)


def store_file(field_file, clip, upload_to, local_file, filename):
    """Save ``local_file`` into ``field_file`` at the name ``upload_to`` gives, replacing an old copy.

    The name depends only on the clip's sha256, so a second run of the task
    overwrites its own earlier output instead of adding a suffixed copy.
    """
    name = upload_to(clip, filename)
    storage = field_file.storage
    if storage.exists(name):
        storage.delete(name)
    with open(local_file, "rb") as handle:
        field_file.save(filename, File(handle), save=False)
    return field_file.name


def build_outputs(clip, workdir):
    """Make the rendition and poster of ``clip``; return their storage names and what was done.

    Raises MediaError when a file cannot be made.
    """
    if not clip.original:
        raise media.MediaError(_("The clip has no stored original file; import the file again."))
    max_width = salon_settings.RENDITION_MAX_WIDTH
    timeout = salon_settings.TRANSCODE_TIMEOUT_SECONDS
    stem = clip.sha256
    with local_path(clip.original) as original:
        if not original.is_file():
            raise media.MediaError(
                _("The stored original %(name)s is missing from storage; import the file again.")
                % {"name": clip.original.name}
            )
        poster_file = workdir / (stem + ".jpg")
        if not clip.is_video:
            media.image_poster(original, poster_file, max_width)
            rendition_name, action = clip.original.name, "kept"
        else:
            # The import checked the limits already; this probe only decides
            # between keeping, remuxing and transcoding.
            info = media.probe_video(original, media.read_head(original), float("inf"), float("inf"))
            rendition_file = workdir / (stem + ".mp4")
            if media.needs_transcode(info, max_width):
                media.transcode_video(original, rendition_file, max_width, timeout)
                action = "transcoded"
            elif media.needs_remux(info):
                media.remux_video(original, rendition_file, timeout)
                action = "remuxed"
            else:
                action = "kept"
            if action == "kept":
                # The original already is a faststart H.264 MP4 without
                # audio, so the rendition shares its file.
                rendition_name, rendition_path = clip.original.name, original
            else:
                media.check_rendition(rendition_file, max_width)
                rendition_name = store_file(clip.rendition, clip, upload_rendition, rendition_file, stem + ".mp4")
                rendition_path = rendition_file
            media.video_poster(rendition_path, poster_file, info.duration, max_width, timeout)
    poster_name = store_file(clip.poster, clip, upload_poster, poster_file, stem + ".jpg")
    return rendition_name, poster_name, action


def mark_failed(clip_id, reason):
    """Set a pending clip to failed with ``reason``; return True when this call changed it."""
    changed = Clip.objects.filter(pk=clip_id, status=Clip.Status.PENDING).update(
        status=Clip.Status.FAILED, failure_reason=reason, updated_at=timezone.now()
    )
    return bool(changed)


def request_features(clip_id):
    """Send the feature task for ``clip_id`` to the ``gpu`` queue by name, after commit."""
    transaction.on_commit(
        lambda: current_app.send_task(FEATURES_TASK, args=[[clip_id]], queue="gpu")
    )


def send_process_clip(clip_id):
    """Send :func:`process_clip` for ``clip_id`` once the current transaction commits.

    A broker outage must not fail an import whose clip is already stored:
    the clip stays pending, and :func:`resend_pending_clips` sends it again
    once the broker is back.
    """

    def send():
        try:
            process_clip.apply_async((clip_id,), retry=False)
        except BrokerError as error:
            logger.warning("Broker unavailable; clip %s stays pending until it is sent again: %s", clip_id, error)

    transaction.on_commit(send)


@shared_task(name="comparisons.tasks.resend_pending_clips", ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_pending_clips():
    """Send process_clip again for clips left pending, e.g. by a broker outage.

    Safe to run twice: process_clip ignores a clip that is no longer pending.
    Run by Celery beat; each run sends at most RESEND_BATCH clips, oldest first.
    """
    cutoff = timezone.now() - timezone.timedelta(minutes=PENDING_RESEND_MINUTES)
    clip_ids = list(
        Clip.objects.filter(status=Clip.Status.PENDING, updated_at__lt=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:RESEND_BATCH]
    )
    for clip_id in clip_ids:
        process_clip.apply_async((clip_id,))
    # Touch them so the next sweep waits another PENDING_RESEND_MINUTES.
    Clip.objects.filter(pk__in=clip_ids, status=Clip.Status.PENDING).update(updated_at=timezone.now())
    if clip_ids:
        logger.info("Sent %d pending clips for processing again", len(clip_ids))
    return len(clip_ids)


@shared_task(
    bind=True,
    base=ClipTask,
    name="comparisons.tasks.process_clip",
    soft_time_limit=DEFAULT_SOFT_TIME_LIMIT,
    time_limit=DEFAULT_TIME_LIMIT,
    autoretry_for=(OperationalError,),
    retry_backoff=5,
    retry_backoff_max=120,
    max_retries=5,
    ignore_result=True,
)
def process_clip(self, clip_id):
    """Make the rendition and poster of a pending clip and mark it ready or failed.

    Safe to run twice: a clip that is no longer pending is left alone, and
    the final update only applies while the clip is still pending, so two
    runs at once end with one state and one feature request. Database
    errors such as a locked SQLite file are retried; a file that cannot be
    converted marks the clip failed with the reason instead.
    """
    started = time.perf_counter()
    clip = Clip.objects.filter(pk=clip_id).first()
    if clip is None:
        logger.info("Clip %s no longer exists; nothing to process", clip_id)
        return "missing"
    if clip.status != Clip.Status.PENDING:
        logger.info("Clip %s is already %s; nothing to process", clip_id, clip.status)
        return clip.status

    try:
        with tempfile.TemporaryDirectory(prefix="salon-clip-") as workdir:
            rendition_name, poster_name, action = build_outputs(clip, Path(workdir))
    except media.MediaError as error:
        mark_failed(clip_id, str(error))
        logger.warning(
            "Clip %s (%s) failed after %d ms: %s",
            clip_id, clip.original_name, round((time.perf_counter() - started) * 1000), error,
        )
        return "failed"
    except SoftTimeLimitExceeded:
        reason = _("Processing took longer than %(seconds)d s and was stopped.") % {"seconds": time_limits()[0]}
        mark_failed(clip_id, reason)
        logger.warning("Clip %s (%s) timed out: %s", clip_id, clip.original_name, reason)
        return "failed"

    changed = Clip.objects.filter(pk=clip_id, status=Clip.Status.PENDING).update(
        status=Clip.Status.READY, rendition=rendition_name, poster=poster_name, failure_reason="",
        updated_at=timezone.now(),
    )
    elapsed_ms = round((time.perf_counter() - started) * 1000)
    if not changed:
        logger.info("Clip %s changed while it was processed; left as it is (%d ms)", clip_id, elapsed_ms)
        return "unchanged"
    request_features(clip_id)
    logger.info("Clip %s (%s) ready: rendition %s in %d ms", clip_id, clip.original_name, action, elapsed_ms)
    return "ready"


# Folder imports started from admin


# An import hashes, probes and copies every file; transcoding runs later in
# process_clip. The limits stop a run that is stuck, such as one reading a
# network folder that stopped responding.
IMPORT_SOFT_TIME_LIMIT = 2 * 60 * 60
IMPORT_TIME_LIMIT = IMPORT_SOFT_TIME_LIMIT + 120
IMPORT_TASK = "comparisons.tasks.import_folder"
# A queued import older than this was most likely never sent (broker outage).
QUEUED_IMPORT_RESEND_MINUTES = 10
# A running import older than this has outlived the hard time limit, so its
# worker host is gone. A lost child process is caught at once instead.
STALE_IMPORT_MINUTES = IMPORT_TIME_LIMIT // 60 + 10


@shared_task(
    bind=True, name=IMPORT_TASK, ignore_result=True, max_retries=0,
    soft_time_limit=IMPORT_SOFT_TIME_LIMIT, time_limit=IMPORT_TIME_LIMIT,
)
def import_folder(self, import_id):
    """Run the queued folder import ``import_id``; see :func:`comparisons.folder_imports.run_folder_import`."""
    return run_folder_import(import_id, task_id=self.request.id)


@shared_task(name="comparisons.tasks.resend_folder_imports", ignore_result=True, soft_time_limit=60, time_limit=90)
def resend_folder_imports():
    """Send folder imports left queued (never sent) or running (worker host lost) again; return how many.

    Safe to run twice: the task only starts an import that is still queued.
    """
    return sweep_jobs(
        FolderImport, send=send_folder_import, queued_minutes=QUEUED_IMPORT_RESEND_MINUTES,
        stale_minutes=STALE_IMPORT_MINUTES, advice=RETRY_ADVICE,
    )


recover_lost_runs(
    IMPORT_TASK, FolderImport, send=send_folder_import, advice=RETRY_ADVICE, time_limit_seconds=IMPORT_TIME_LIMIT
)
