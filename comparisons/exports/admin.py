"""Admin for exports: the list of background exports with their download links."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.translation import gettext_lazy as _

from comparisons.exports.files import card_paths
from comparisons.exports.permissions import can_export
from comparisons.exports.tasks import export_dir
from comparisons.models import Export


@admin.register(Export)
class ExportAdmin(admin.ModelAdmin):
    """Read-only: exports are requested on the export page and written by the worker."""

    change_list_template = "comparisons/exports/admin_change_list.html"
    list_display = ["id", "format", "status", "requested_by", "cohorts", "row_count", "created_at", "links"]
    list_filter = ["status", "format"]
    readonly_fields = [
        "requested_by", "status", "format", "parameters", "file_name", "row_count", "counts", "size_bytes",
        "error", "attempts", "created_at", "started_at", "finished_at", "links",
    ]

    def get_queryset(self, request):
        queryset = super().get_queryset(request).select_related("requested_by")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(requested_by=request.user)

    def has_module_permission(self, request):
        return can_export(request.user)

    def has_view_permission(self, request, obj=None):
        return can_export(request.user)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return can_export(request.user) and (obj is None or request.user.is_superuser
                                              or obj.requested_by_id == request.user.pk)

    def delete_model(self, request, obj):
        _remove_files(obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for export in queryset:
            _remove_files(export)
        super().delete_queryset(request, queryset)

    @admin.display(description=_("cohorts"))
    def cohorts(self, obj):
        return ", ".join(obj.parameters.get("cohorts", []))

    @admin.display(description=_("files"))
    def links(self, obj):
        if obj.status != Export.Status.FINISHED:
            return "-"
        links = [
            (reverse("exports:download", args=[obj.pk]), _("download")),
            (reverse("exports:card_md", args=[obj.pk]), _("card")),
            (reverse("exports:card_json", args=[obj.pk]), _("card (JSON)")),
        ]
        return format_html_join(" · ", '<a href="{}">{}</a>', links)


def _remove_files(export):
    """Delete an export's file and cards, which live outside the database."""
    if not export.file_name:
        return
    path = export_dir() / export.file_name
    for file_path in (path, *card_paths(path)):
        file_path.unlink(missing_ok=True)

