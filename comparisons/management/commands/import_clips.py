"""``manage.py import_clips``: import a folder or manifest of media files as clips."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from comparisons.importer import (
    FAILED,
    ImportInputError,
    Importer,
    Outcome,
    format_outcome,
    ping_workers,
    wait_for_clips,
)
from comparisons.models import Clip

WORKER_COMMAND = "celery -A taste_site worker -Q default,gpu"


class Command(BaseCommand):
    help = (
        "Import media files as clips. PATH is a folder, walked recursively (files that are not media are "
        "ignored), or a manifest CSV whose rows are imported exactly. Each file is probed and stored now; "
        "a Celery worker then makes its browser rendition and poster. Bad files get one line each and the "
        "import goes on; caption rows naming missing files count as failed. The exit status is 0 whenever "
        "the import ran, even when files failed; the summary counts them."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", help="Folder of media files, or a manifest CSV with the --captions columns.")
        parser.add_argument("--pool", default="", help="Pool the imported and duplicate clips join (created if new).")
        parser.add_argument(
            "--captions",
            help="CSV with columns path,caption and optional prompt, generator (JSON or plain text), licence, "
                 "credit, source. Paths are relative to the CSV's folder. With a manifest PATH, it fills the "
                 "cells the manifest leaves empty.",
        )
        parser.add_argument(
            "--wait", action="store_true",
            help="Wait until the worker has processed every imported clip, then report its failures.",
        )
        parser.add_argument(
            "--timeout", type=float, default=600.0,
            help="Seconds --wait waits at most (default 600).",
        )

    def handle(self, *args, path, pool, captions, wait, timeout, verbosity, **options):
        if timeout <= 0:
            raise CommandError(_("--timeout must be a positive number of seconds, got %(value)s.") % {"value": timeout})
        importer = Importer(pool_name=pool, emit=self.stdout.write, verbosity=verbosity)
        try:
            report = importer.import_path(Path(path), Path(captions) if captions else None)
        except ImportInputError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(report.summary())

        if wait and report.enqueued:
            self.wait_for_worker(report, timeout)

    def wait_for_worker(self, report, timeout):
        """Wait for the worker to process ``report.enqueued`` and print what it found."""
        clip_ids = list(dict.fromkeys(report.enqueued))
        if not ping_workers():
            raise CommandError(
                ngettext(
                    "No Celery worker replied to a ping, so %(count)d clip stays pending. Start a worker with "
                    "'%(command)s'; it processes the clip when it starts.",
                    "No Celery worker replied to a ping, so %(count)d clips stay pending. Start a worker with "
                    "'%(command)s'; it processes the clips when it starts.",
                    len(clip_ids),
                )
                % {"count": len(clip_ids), "command": WORKER_COMMAND}
            )
        self.stdout.write(
            ngettext(
                "Waiting for the worker to process %(count)d clip...",
                "Waiting for the worker to process %(count)d clips...",
                len(clip_ids),
            )
            % {"count": len(clip_ids)}
        )
        statuses, stopped = wait_for_clips(clip_ids, timeout)

        names = {outcome.clip_id: outcome.display for outcome in report.outcomes if outcome.clip_id}
        counts = {Clip.Status.READY: 0, Clip.Status.FAILED: 0, Clip.Status.PENDING: 0}
        for clip_id in clip_ids:
            status, reason = statuses.get(clip_id, (None, ""))
            if status is None:
                continue
            counts[status] += 1
            if status == Clip.Status.FAILED:
                self.stdout.write(format_outcome(Outcome(FAILED, names.get(clip_id, "#%d" % clip_id), reason)))
        self.stdout.write(
            _("After processing: %(ready)d ready, %(failed)d failed, %(pending)d pending.")
            % {
                "ready": counts[Clip.Status.READY],
                "failed": counts[Clip.Status.FAILED],
                "pending": counts[Clip.Status.PENDING],
            }
        )
        if stopped == "timeout":
            raise CommandError(
                _("Timed out after %(seconds).0f s with %(count)d clips still pending; the worker goes on "
                  "with them. Run again with a larger --timeout to wait longer.")
                % {"seconds": timeout, "count": counts[Clip.Status.PENDING]}
            )
        if stopped == "no-worker":
            raise CommandError(
                _("The Celery worker stopped replying with %(count)d clips still pending. Start a worker with "
                  "'%(command)s'.")
                % {"count": counts[Clip.Status.PENDING], "command": WORKER_COMMAND}
            )

