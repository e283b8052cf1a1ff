"""Folder imports started from admin and run by a worker, with their outcome per file."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from comparisons.models.jobs import BackgroundJob


class FolderImport(BackgroundJob):
    """One folder import requested in admin; a worker on queue ``default`` runs it and fills the report.

    A folder of thousands of large files takes longer than a web request may,
    so only uploads, which ``SALON_MAX_UPLOAD_BYTES`` bounds, are imported
    inside the request.
    """

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("requested by"), null=True, blank=True,
        on_delete=models.SET_NULL, related_name="folder_imports",
    )
    folder = models.CharField(
        _("folder"), max_length=1024, help_text=_("Absolute path, inside one of the import roots.")
    )
    pool_name = models.CharField(_("pool"), max_length=200, blank=True)
    captions_csv = models.TextField(_("caption CSV"), blank=True, help_text=_("The uploaded caption CSV, if any."))
    counts = models.JSONField(
        _("counts"), default=dict, blank=True, help_text=_("Files imported, duplicate, failed and ignored so far.")
    )
    outcomes = models.JSONField(
        _("outcomes"), default=list, blank=True,
        help_text=_("Status, file, message and clip id of each file, ignored ones included."),
    )
    notices = models.JSONField(
        _("notices"), default=list, blank=True,
        help_text=_("Messages about the import as a whole, such as a pool created or problems in the caption CSV."),
    )

    class Meta(BackgroundJob.Meta):
        verbose_name = _("folder import")
        verbose_name_plural = _("folder imports")

    def __str__(self):
        return f"#{self.pk} {self.folder} ({self.status})"
