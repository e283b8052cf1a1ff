"""Staff-only export pages: the export form, downloads, cards and taste-model JSON."""

import json
from datetime import timezone as dt_timezone
from pathlib import Path

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from comparisons.exports.actions import request_export, stream_export
from comparisons.exports.files import card_paths
from comparisons.exports.forms import ExportForm
from comparisons.exports.options import ExportError
from comparisons.exports.permissions import export_permission_required
from comparisons.exports.taste_models import taste_models_document
from comparisons.exports.tasks import export_dir
from comparisons.models import Cohort, Export

LISTED_EXPORTS = 50


@require_http_methods(["GET", "POST"])
@export_permission_required
def index(request):
    form = ExportForm(request.POST or None)
    # The form labels its times as UTC, so read them in UTC whatever SALON_TIME_ZONE is.
    with timezone.override(dt_timezone.utc):
        valid = request.method == "POST" and form.is_valid()
    if valid:
        options = form.to_options()
        try:
            if request.POST.get("action") == "download":
                return stream_export(options)
            export = request_export(request.user, options)
        except (ExportError, ImproperlyConfigured) as error:
            form.add_error(None, str(error))
        else:
            messages.success(
                request, _("Export %(id)s is queued; its link appears here when it is ready.") % {"id": export.pk}
            )
            return redirect("exports:index")

    exports = list(Export.objects.filter(requested_by=request.user)[:LISTED_EXPORTS])
    context = {
        "form": form,
        "exports": exports,
        "pending": any(not export.is_done for export in exports),
        "cohorts": Cohort.objects.order_by("name"),
    }
    return render(request, "comparisons/exports/index.html", context)


def _finished_export(request, pk):
    export = get_object_or_404(Export, pk=pk, status=Export.Status.FINISHED)
    # Exports can contain platform ids, so only the requesting user (or a superuser) may download one.
    if export.requested_by_id != request.user.pk and not request.user.is_superuser:
        raise Http404
    name = export.file_name
    if not name or Path(name).name != name:
        raise Http404
    return export, export_dir() / name


def _file_response(path, name, content_type=None):
    if not path.is_file():
        raise Http404(_("The export file is no longer on disk."))
    response = FileResponse(open(path, "rb"), as_attachment=True, filename=name)
    if content_type:
        response["Content-Type"] = content_type
    return response


@require_GET
@export_permission_required
def download(request, pk):
    export, path = _finished_export(request, pk)
    return _file_response(path, export.file_name)


@require_GET
@export_permission_required
def card(request, pk, kind):
    export, path = _finished_export(request, pk)
    markdown_path, json_path = card_paths(path)
    if kind == "md":
        return _file_response(markdown_path, markdown_path.name, "text/markdown; charset=utf-8")
    return _file_response(json_path, json_path.name, "application/json")


@require_GET
@export_permission_required
def taste_models(request, slug):
    try:
        document = taste_models_document([slug])
    except ExportError as error:
        raise Http404(str(error)) from error
    response = HttpResponse(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n", content_type="application/json"
    )
    response["Content-Disposition"] = f'attachment; filename="taste-models-{slug}.json"'
    return response
