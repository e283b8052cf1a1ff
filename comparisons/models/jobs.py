"""The fields that every request run later by a worker keeps: status, attempts, error and times."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class BackgroundJob(models.Model):
    """Abstract base of a row that a web request creates and a Celery task claims and completes.

    :mod:`comparisons.jobs` claims the row, queues it again when its worker is
    lost, and fails it after too many lost runs.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        RUNNING = "running", _("running")
        FINISHED = "finished", _("finished")
        FAILED = "failed", _("failed")

    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveSmallIntegerField(
        _("attempts"), default=0, help_text=_("Runs started, counting those a lost worker cut short.")
    )
    task_id = models.CharField(
        _("task id"), max_length=255, blank=True, help_text=_("Celery task id of the run that claimed the job.")
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(
        _("sent at"), default=timezone.now, help_text=_("When the task message was last sent.")
    )
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_done(self):
        return self.status in (self.Status.FINISHED, self.Status.FAILED)
