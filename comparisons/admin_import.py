"""The admin page that imports clips from a server folder or an upload.

The view checks permissions and input. An upload, limited to
``MAX_UPLOAD_BYTES`` in total, is imported inside the request by the same
:class:`comparisons.importer.Importer` as ``manage.py import_clips``; the
limit is checked on the request's Content-Length before the body is parsed,
and again on the files received. A folder, which must resolve inside
``IMPORT_ROOTS`` and has no size limit, becomes a FolderImport that a worker
runs, and the view redirects to its progress page.
"""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from comparisons.folder_imports import request_folder_import
from comparisons.importer import FAILED, IGNORED, ImportInputError, Importer, resolve_import_folder
from taste_site.conf import salon_settings

# Room for the form fields and multipart boundaries around the files.
FORM_OVERHEAD_BYTES = 64 * 1024


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that accepts several files and cleans to a list."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(*args, **kwargs)

    def clean(self, data, initial=None):
        if not data:
            return super().clean(None, initial) or []
        files = data if isinstance(data, (list, tuple)) else [data]
        return [super(MultipleFileField, self).clean(item, initial) for item in files]


def format_bytes(size):
    return "%.1f MB" % (size / 1_000_000)


class ImportForm(forms.Form):
    """Import form: a folder or uploaded files, the target pool and a caption CSV."""

    folder = forms.CharField(
        label=gettext_lazy("Folder on the server"), required=False, max_length=1000,
        help_text=gettext_lazy("A folder inside the import roots, walked recursively."),
    )
    files = MultipleFileField(
        label=gettext_lazy("Or upload files"), required=False,
        help_text=gettext_lazy("JPEG, PNG or WebP images and videos."),
    )
    pool = forms.CharField(
        label=gettext_lazy("Pool"), required=False, max_length=200,
        help_text=gettext_lazy("Imported clips join this pool; it is created when it does not exist."),
    )
    captions = forms.FileField(
        label=gettext_lazy("Caption CSV"), required=False,
        help_text=gettext_lazy(
            "Columns path,caption and optional prompt, generator, licence, credit, source. "
            "Paths are relative to the folder, or the names of the uploaded files."
        ),
    )

    def clean(self):
        cleaned = super().clean()
        folder = (cleaned.get("folder") or "").strip()
        files = cleaned.get("files") or []
        if bool(folder) == bool(files):
            raise forms.ValidationError(_("Give either a folder or files to upload, not both and not neither."))
        limit = salon_settings.MAX_UPLOAD_BYTES
        uploaded = [*files, *([cleaned["captions"]] if cleaned.get("captions") else [])]
        total = sum(upload.size for upload in uploaded)
        if total > limit:
            raise forms.ValidationError(
                _("The upload is %(size)s, over the limit of %(limit)s (MAX_UPLOAD_BYTES). "
                  "Upload fewer files at a time, or copy them into an import folder.")
                % {"size": format_bytes(total), "limit": format_bytes(limit)}
            )
        if folder:
            try:
                cleaned["folder_path"] = resolve_import_folder(folder, salon_settings.IMPORT_ROOTS)
            except ImportInputError as error:
                self.add_error("folder", str(error))
        return cleaned


def import_uploads(cleaned):
    """Import the uploaded files the form describes and return ``(report, lines)``."""
    lines = []
    importer = Importer(pool_name=cleaned.get("pool"), emit=lines.append)
    report = importer.import_uploads(cleaned["files"], cleaned.get("captions"))
    return report, lines


def import_view(model_admin, request):
    """Show the import form; on a valid POST run the import and show its report."""
    if not model_admin.has_add_permission(request):
        raise PermissionDenied
    limit = salon_settings.MAX_UPLOAD_BYTES
    form = None
    report = None
    lines = []
    too_large = None
    if request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit + FORM_OVERHEAD_BYTES:
            # Checked before request.POST is read, so the body is never parsed.
            too_large = _(
                "The upload is %(size)s, over the limit of %(limit)s (MAX_UPLOAD_BYTES). Upload fewer files "
                "at a time, or copy them into an import folder."
            ) % {"size": format_bytes(length), "limit": format_bytes(limit)}
            form = ImportForm()
        else:
            form = ImportForm(request.POST, request.FILES)
            if form.is_valid():
                cleaned = form.cleaned_data
                try:
                    if cleaned.get("folder_path"):
                        job = request_folder_import(
                            request.user, cleaned["folder_path"], cleaned.get("pool"), cleaned.get("captions")
                        )
                        messages.success(request, _("The import of %(folder)s is queued; this page shows its progress.")
                                         % {"folder": job.folder})
                        return redirect("admin:comparisons_folderimport_change", job.pk)
                    report, lines = import_uploads(cleaned)
                except ImportInputError as error:
                    form.add_error(None, str(error))
    else:
        form = ImportForm()

    context = {
        **model_admin.admin_site.each_context(request),
        "title": _("Import clips"),
        "opts": model_admin.model._meta,
        "form": form,
        "too_large": too_large,
        "report": report,
        "lines": lines,
        "outcomes": [o for o in report.outcomes if o.status != IGNORED] if report else [],
        "failed": report.count(FAILED) if report else 0,
        "import_roots": salon_settings.IMPORT_ROOTS,
        "max_upload": format_bytes(limit),
    }
    return TemplateResponse(request, "admin/comparisons/clip/import.html", context)
