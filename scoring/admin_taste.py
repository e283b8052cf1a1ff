"""Admin pages for taste model versions: list with metrics, activation and rollback, clip scores.

Versions are immutable: this admin adds, edits and deletes none, because a
version's weights, metrics and scores must stay what its fit produced. The
only change is which version is active, by the "Activate this version"
action or button, which needs the ``scoring.change_tastemodel`` permission
(give it to the Curators group). Activating an older version is a rollback.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from comparisons.admin import ReadOnlyAdmin
from comparisons.models import Cohort
from scoring.models import ClipScore, TasteModel
from scoring.refit_inputs import fit_readiness
from scoring.versions import ActivationError, activate_version, active_version, latest_failure

# The status box above the list reads each cohort's judgments, so it lists at
# most this many cohorts. Filter the list by cohort to see another one.
MAX_STATUS_COHORTS = 30


def format_metric(value, digits=3):
    return "–" if value is None else f"{value:.{digits}f}"


class TasteModelAdmin(ReadOnlyAdmin):
    list_display = (
        "owner", "version", "backbone", "status", "is_active", "held_out_accuracy", "drift", "diversity",
        "n_judgments", "failure_summary", "finished_at", "leaderboard_link",
    )
    list_display_links = ("owner", "version")
    list_filter = ("status", "is_active", "backbone", "weights_mode", "cohort")
    list_select_related = ("cohort",)
    ordering = ("cohort__name", "backbone", "-version")
    search_fields = ("cohort__name", "cohort__slug", "backbone")
    exclude = ("head",)
    actions = ["activate_selected"]
    change_form_template = "admin/scoring/tastemodel/change_form.html"
    change_list_template = "admin/scoring/tastemodel/change_list.html"

    def has_activate_permission(self, request, obj=None):
        return request.user.has_perm("scoring.change_tastemodel")

    @admin.display(description=gettext_lazy("cohort"), ordering="cohort__name")
    def owner(self, obj):
        return obj.cohort.name if obj.cohort_id else _("all judgments (hidden)")

    @admin.display(description=gettext_lazy("held-out accuracy"))
    def held_out_accuracy(self, obj):
        return format_metric((obj.metrics or {}).get("held_out_accuracy"))

    @admin.display(description=gettext_lazy("drift (Kendall tau)"))
    def drift(self, obj):
        return format_metric((obj.metrics or {}).get("drift_kendall_tau"))

    @admin.display(description=gettext_lazy("top-10 diversity"))
    def diversity(self, obj):
        return format_metric((obj.metrics or {}).get("top10_diversity"))

    @admin.display(description=gettext_lazy("failure reason"))
    def failure_summary(self, obj):
        reason = obj.failure_reason
        return reason if len(reason) <= 120 else reason[:117] + "..."

    @admin.display(description=gettext_lazy("leaderboard"))
    def leaderboard_link(self, obj):
        if not obj.cohort_id or obj.status != TasteModel.Status.FINISHED:
            return ""
        url = reverse("scoring:leaderboard", args=[obj.cohort.slug]) + f"?version={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, _("open"))

    @admin.action(description=gettext_lazy("Activate this version"), permissions=["activate"])
    def activate_selected(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(
                request,
                _("Select exactly one version to activate: one version per cohort and backbone is active at a time."),
                messages.ERROR,
            )
            return
        self.activate(request, queryset.get())

    def activate(self, request, version):
        """Activate ``version`` and tell the user what it replaced, or why it cannot be activated."""
        try:
            previous = activate_version(version, request.user)
        except ActivationError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.log_change(request, version, [{"changed": {"fields": ["active"]}}])
        values = {
            "version": version.version,
            "owner": self.owner(version),
            "backbone": version.backbone,
            "previous": previous.version if previous else 0,
        }
        if previous is None:
            message = _("Version %(version)d of %(owner)s (%(backbone)s) is now active.") % values
        else:
            message = _(
                "Version %(version)d of %(owner)s (%(backbone)s) is now active, replacing version %(previous)d."
            ) % values
        self.message_user(request, message, messages.SUCCESS)
        if version.cohort_id and version.cohort.auto_activate and previous and previous.version > version.version:
            self.message_user(
                request,
                _(
                    "This cohort activates new versions automatically, so its next refit will replace this one. "
                    "Turn off “activate new versions automatically” on the cohort to keep it."
                ),
                messages.WARNING,
            )

    def get_urls(self):
        urls = [
            path(
                "<int:object_id>/activate/",
                self.admin_site.admin_view(self.activate_view),
                name="scoring_tastemodel_activate",
            ),
        ]
        return urls + super().get_urls()

    def activate_view(self, request, object_id):
        """Activate one version from its page (POST only) and return to it."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_activate_permission(request):
            raise PermissionDenied
        version = get_object_or_404(TasteModel.objects.select_related("cohort"), pk=object_id)
        self.activate(request, version)
        return HttpResponseRedirect(reverse("admin:scoring_tastemodel_change", args=[version.pk]))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["can_activate"] = self.has_activate_permission(request)
        extra_context["activate_url"] = reverse("admin:scoring_tastemodel_activate", args=[object_id])
        return super().change_view(request, object_id, form_url, extra_context)

    def changelist_view(self, request, extra_context=None):
        extra_context = dict(extra_context or {})
        extra_context["cohort_status"] = cohort_status_rows(request.GET.get("cohort__id__exact"))
        return super().changelist_view(request, extra_context)


def cohort_taste_status(cohort):
    """Return HTML with ``cohort``'s active version, why it has no (new) fit, and a leaderboard link."""
    if not cohort.pk:
        return _("Save the cohort first.")
    active = active_version(cohort)
    readiness = fit_readiness(cohort)
    failure = latest_failure(cohort)
    if active:
        line = _("Active: version %(version)d (%(backbone)s), held-out accuracy %(accuracy)s.") % {
            "version": active.version, "backbone": active.backbone,
            "accuracy": format_metric((active.metrics or {}).get("held_out_accuracy")),
        }
    else:
        line = _("No active version.")
    return format_html(
        '{}<br>{}{}<br><a href="{}">{}</a>',
        line,
        readiness.reason or _("Enough judgments to fit."),
        format_html("<br>{}", _("Refit v%(version)d failed: %(reason)s") % {
            "version": failure.version, "reason": failure.failure_reason,
        }) if failure else "",
        reverse("scoring:leaderboard", args=[cohort.slug]),
        _("Leaderboard"),
    )


def cohort_status_rows(cohort_id=None):
    """Return, per cohort, its active version and why it has no (new) fit, for the list's status box."""
    cohorts = Cohort.objects.select_related("pool").order_by("name")
    if cohort_id and str(cohort_id).isdigit():
        cohorts = cohorts.filter(pk=int(cohort_id))
    rows = []
    for cohort in cohorts[:MAX_STATUS_COHORTS]:
        readiness = fit_readiness(cohort)
        rows.append({
            "cohort": cohort,
            "active": active_version(cohort),
            "reason": readiness.reason,
            "left_out": readiness.left_out,
            "failure": latest_failure(cohort),
        })
    return rows


class ClipScoreAdmin(ReadOnlyAdmin):
    list_display = ("clip", "taste_model", "rank", "total", "semantic", "aesthetic", "incoherence")
    list_filter = ("taste_model__backbone", "taste_model__cohort")
    list_select_related = ("clip", "taste_model", "taste_model__cohort")
    search_fields = ("clip__original_name", "clip__caption")
    ordering = ("taste_model", "rank")


admin.site.register(TasteModel, TasteModelAdmin)
admin.site.register(ClipScore, ClipScoreAdmin)
