"""Researcher exports prepared in the background, with their file and dataset card."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from comparisons.models.jobs import BackgroundJob


class Export(BackgroundJob):
    """One comparisons export requested from the web page and written by a worker.

    The file lives under ``SALON_EXPORT_DIR`` (not MEDIA_ROOT, so it is never
    served as public media) and is downloaded through a staff-only view.
    """

    class Format(models.TextChoices):
        CSV = "csv", _("CSV")
        JSONL = "jsonl", _("JSON Lines")
        PARQUET = "parquet", _("Parquet")

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="exports",
    )
    format = models.CharField(_("format"), max_length=7, choices=Format.choices)
    parameters = models.JSONField(_("parameters"), default=dict, help_text=_("Cohorts, time range and options."))
    file_name = models.CharField(
        _("file name"), max_length=255, blank=True, help_text=_("Relative to the export folder.")
    )
    row_count = models.PositiveBigIntegerField(_("rows"), null=True, blank=True)
    counts = models.JSONField(_("counts per cohort and choice"), default=dict, blank=True)
    size_bytes = models.PositiveBigIntegerField(_("size (bytes)"), null=True, blank=True)

    class Meta(BackgroundJob.Meta):
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        permissions = [
            ("export_comparisons", _("Can export comparisons and taste models")),
        ]

    def __str__(self):
        return f"#{self.pk} {self.format} ({self.status})"
