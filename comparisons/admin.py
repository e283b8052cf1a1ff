"""Admin pages for curators: clips and their import, pools, prompts, cohorts and members.

Comparisons and judgments are read-only for everyone: they are the raters'
record, and an edit would silently change what the taste models fit.
Which staff user sees what comes from the groups in :mod:`comparisons.roles`.
"""

from django.contrib import admin, messages
from django.db import models
from django.db.models import Count, IntegerField, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.shortcuts import redirect
from django.urls import path
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from comparisons.admin_import import import_view

# The export admin lives with the export code; importing it registers it.
from comparisons.exports import admin as _export_admin  # noqa: F401
from comparisons.models import Clip, Cohort, Comparison, FolderImport, Judgment, Membership, Pool, Prompt
from comparisons.models.cohorts import new_invite_token

PREVIEW_STYLE = "max-width: 640px; max-height: 480px; background: #000;"
THUMBNAIL_STYLE = "max-height: 48px; max-width: 96px;"


def count_of(model, field):
    """Return an annotation counting the ``model`` rows whose ``field`` is the outer row.

    A correlated subquery per count, unlike several ``Count`` joins on one
    queryset, does not multiply the rows of one join by those of another.
    """
    rows = (
        model.objects.filter(**{field: OuterRef("pk")})
        .order_by()
        .values(field)
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(rows, output_field=IntegerField()), Value(0))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Admin that lists and shows rows but never adds, changes or deletes them."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


# Clips


@admin.register(Clip)
class ClipAdmin(admin.ModelAdmin):
    list_display = (
        "thumbnail", "original_name", "kind", "status", "failure_excerpt", "size", "duration", "caption_excerpt",
        "created_at",
    )
    list_display_links = ("thumbnail", "original_name")
    list_filter = ("status", "kind", "pools")
    search_fields = ("caption", "original_name", "^sha256")
    readonly_fields = (
        "preview", "sha256", "kind", "status", "failure_reason", "original_name", "source_path", "original",
        "rendition", "poster", "width", "height", "duration", "fps", "codec", "created_at", "updated_at",
    )
    fieldsets = (
        (None, {"fields": ("preview", "status", "failure_reason")}),
        (_("Description"), {"fields": ("caption", "prompt", "generator", "licence", "credit", "source")}),
        (_("File"), {"fields": (
            "original_name", "source_path", "sha256", "kind", "width", "height", "duration", "fps", "codec",
            "original", "rendition", "poster", "created_at", "updated_at",
        )}),
    )
    autocomplete_fields = ("prompt",)
    actions = ("process_again",)
    list_per_page = 50
    change_list_template = "admin/comparisons/clip/change_list.html"

    def get_urls(self):
        view = self.admin_site.admin_view(self.import_clips_view)
        return [path("import/", view, name="comparisons_clip_import"), *super().get_urls()]

    def import_clips_view(self, request):
        return import_view(self, request)

    def add_view(self, request, form_url="", extra_context=None):
        # A clip row without its probe and rendition would be broken, so
        # adding a clip means importing its file.
        if not self.has_add_permission(request):
            return super().add_view(request, form_url, extra_context)
        return redirect("admin:comparisons_clip_import")

    @admin.display(description=_("poster"))
    def thumbnail(self, clip):
        if not clip.poster:
            return "-"
        return format_html('<img src="{}" alt="" style="{}" loading="lazy">', clip.poster.url, THUMBNAIL_STYLE)

    @admin.display(description=_("preview"))
    def preview(self, clip):
        if clip.is_video and clip.rendition:
            return format_html(
                '<video src="{}" poster="{}" style="{}" autoplay loop muted playsinline controls></video>',
                clip.rendition.url, clip.poster.url if clip.poster else "", PREVIEW_STYLE,
            )
        if not clip.is_video and (clip.rendition or clip.original):
            source = clip.rendition or clip.original
            return format_html('<img src="{}" alt="{}" style="{}">', source.url, clip.caption, PREVIEW_STYLE)
        return _("No preview: the clip is %(status)s.") % {"status": clip.get_status_display()}

    @admin.display(description=_("size"))
    def size(self, clip):
        if clip.width and clip.height:
            return "%d x %d" % (clip.width, clip.height)
        return "-"

    @admin.display(description=_("caption"), ordering="caption")
    def caption_excerpt(self, clip):
        return Truncator(clip.display_text).chars(80)

    @admin.display(description=_("failure reason"))
    def failure_excerpt(self, clip):
        return Truncator(clip.failure_reason).chars(100)

    @admin.action(description=_("Process the selected failed clips again"), permissions=["change"])
    def process_again(self, request, queryset):
        from comparisons.tasks import send_process_clip

        retried, skipped = 0, 0
        for clip in queryset.filter(status=Clip.Status.FAILED):
            if not clip.original:
                skipped += 1
                continue
            changed = Clip.objects.filter(pk=clip.pk, status=Clip.Status.FAILED).update(
                status=Clip.Status.PENDING, failure_reason="", updated_at=timezone.now()
            )
            if changed:
                send_process_clip(clip.pk)
                retried += 1
        self.message_user(
            request,
            ngettext("%(count)d clip sent for processing.", "%(count)d clips sent for processing.", retried)
            % {"count": retried},
        )
        if skipped:
            self.message_user(
                request,
                ngettext(
                    "%(count)d clip has no stored file because its probe failed; import the file again.",
                    "%(count)d clips have no stored file because their probe failed; import the files again.",
                    skipped,
                ) % {"count": skipped},
                messages.WARNING,
            )


@admin.register(FolderImport)
class FolderImportAdmin(ReadOnlyAdmin):
    """Folder imports started on the import page, with their progress and the outcome of each file."""

    change_form_template = "admin/comparisons/folderimport/change_form.html"
    list_display = ("id", "folder", "pool_name", "status", "summary", "requested_by", "created_at")
    list_filter = ("status",)
    fields = (
        "folder", "pool_name", "status", "summary", "error", "notice_lines", "attempts", "requested_by",
        "created_at", "started_at", "finished_at",
    )
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("requested_by")

    # A user who may import clips is sent to this page after a folder import.
    def has_view_permission(self, request, obj=None):
        return super().has_view_permission(request, obj) or request.user.has_perm("comparisons.add_clip")

    def has_module_permission(self, request):
        return super().has_module_permission(request) or request.user.has_perm("comparisons.add_clip")

    @admin.display(description=_("files"))
    def summary(self, job):
        counts = {status: job.counts.get(status, 0) for status in ("imported", "duplicate", "failed", "ignored")}
        return _("%(imported)d imported, %(duplicate)d duplicate, %(failed)d failed, %(ignored)d ignored") % counts

    @admin.display(description=_("notices"))
    def notice_lines(self, job):
        return format_html_join(mark_safe("<br>"), "{}", ((notice,) for notice in job.notices)) or "-"


@admin.register(Pool)
class PoolAdmin(admin.ModelAdmin):
    list_display = ("name", "clip_count", "ready_count", "created_at")
    search_fields = ("name", "description")
    autocomplete_fields = ("clips",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            clip_total=Count("clips", distinct=True),
            ready_total=Count("clips", filter=Q(clips__status=Clip.Status.READY), distinct=True),
        )

    @admin.display(description=_("clips"), ordering="clip_total")
    def clip_count(self, pool):
        return pool.clip_total

    @admin.display(description=_("ready clips"), ordering="ready_total")
    def ready_count(self, pool):
        return pool.ready_total


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
    list_display = ("__str__", "clip_count", "created_at")
    search_fields = ("text",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(clip_total=Count("clips"))

    @admin.display(description=_("clips"), ordering="clip_total")
    def clip_count(self, prompt):
        return prompt.clip_total


# Cohorts and members


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "status", "platform", "participant_id", "rater_weight", "is_simulated", "joined_at")
    readonly_fields = ("joined_at",)
    show_change_link = True


@admin.register(Cohort)
class CohortAdmin(admin.ModelAdmin):
    list_display = (
        "name", "pool", "is_open", "weights_mode", "member_count", "comparison_count", "judgment_count",
        "created_at",
    )
    list_filter = ("is_open", "weights_mode", "pool")
    list_select_related = ("pool",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = (
        "invite_link", "invite_token", "member_count", "comparison_count", "judgment_count", "taste_status",
    )
    inlines = (MembershipInline,)
    actions = ("new_invite_links",)
    fieldsets = (
        (None, {"fields": ("name", "slug", "pool", "is_open", "invite_link", "invite_token")}),
        (_("Counts"), {"fields": ("member_count", "comparison_count", "judgment_count")}),
        (_("What raters see"), {"fields": (
            "question", "instructions", "show_captions", "daily_goal", "min_view_ms", "completion_after",
            "completion_code", "return_url",
        )}),
        (_("Pairs"), {"fields": ("same_prompt", "sampler")}),
        (_("Taste function"), {"fields": (
            "weights_mode", "alpha", "beta", "gamma", "margin", "half_life_days", "refit_interval_minutes",
            "min_judgments", "auto_activate", "taste_status",
        )}),
    )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # A return URL typed without a scheme gets https://, because
        # recruitment platforms serve their pages over HTTPS.
        if isinstance(db_field, models.URLField):
            kwargs.setdefault("assume_scheme", "https")
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            member_total=count_of(Membership, "cohort"),
            comparison_total=count_of(Comparison, "cohort"),
            judgment_total=count_of(Judgment, "comparison__cohort"),
        )

    def get_object(self, request, object_id, from_field=None):
        cohort = super().get_object(request, object_id, from_field)
        if cohort is not None:
            # Read-only fields see only the object, and the link needs the
            # request's scheme and host.
            cohort.absolute_join_url = request.build_absolute_uri(cohort.get_join_url())
        return cohort

    @admin.display(description=_("taste model"))
    def taste_status(self, cohort):
        from scoring.admin_taste import cohort_taste_status

        return cohort_taste_status(cohort)

    @admin.display(description=_("invite link"))
    def invite_link(self, cohort):
        url = getattr(cohort, "absolute_join_url", None)
        if not cohort.pk or not url:
            return _("Save the cohort to get its invite link.")
        return format_html('<a href="{0}">{0}</a>', url)

    @admin.display(description=_("members"), ordering="member_total")
    def member_count(self, cohort):
        return getattr(cohort, "member_total", 0)

    @admin.display(description=_("comparisons"), ordering="comparison_total")
    def comparison_count(self, cohort):
        return getattr(cohort, "comparison_total", 0)

    @admin.display(description=_("judgments"), ordering="judgment_total")
    def judgment_count(self, cohort):
        return getattr(cohort, "judgment_total", 0)

    @admin.action(description=_("Issue new invite links (the old links stop working)"), permissions=["change"])
    def new_invite_links(self, request, queryset):
        count = 0
        for cohort in queryset:
            cohort.invite_token = new_invite_token()
            cohort.save(update_fields=["invite_token"])
            count += 1
        self.message_user(
            request,
            ngettext("%(count)d cohort has a new invite link.", "%(count)d cohorts have new invite links.", count)
            % {"count": count},
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = (
        "user", "cohort", "status", "platform", "participant_id", "rater_weight", "is_simulated", "joined_at",
    )
    list_filter = ("status", "cohort", "platform", "is_simulated")
    list_select_related = ("user", "cohort")
    search_fields = ("user__username", "participant_id", "cohort__name")
    raw_id_fields = ("user",)
    readonly_fields = ("joined_at",)
    actions = ("flag", "unflag", "deactivate")

    @staticmethod
    def _set_status(queryset, status):
        return queryset.exclude(status=status).update(status=status)

    @admin.action(description=_("Flag the selected members (they can no longer vote)"), permissions=["change"])
    def flag(self, request, queryset):
        count = self._set_status(queryset, Membership.Status.FLAGGED)
        self.message_user(
            request,
            ngettext("%(count)d membership flagged.", "%(count)d memberships flagged.", count) % {"count": count},
        )

    @admin.action(description=_("Unflag the selected members (they can vote again)"), permissions=["change"])
    def unflag(self, request, queryset):
        count = self._set_status(queryset.filter(status=Membership.Status.FLAGGED), Membership.Status.ACTIVE)
        self.message_user(
            request,
            ngettext("%(count)d membership unflagged.", "%(count)d memberships unflagged.", count)
            % {"count": count},
        )

    @admin.action(description=_("Deactivate the selected members"), permissions=["change"])
    def deactivate(self, request, queryset):
        count = self._set_status(queryset, Membership.Status.INACTIVE)
        self.message_user(
            request,
            ngettext("%(count)d membership deactivated.", "%(count)d memberships deactivated.", count)
            % {"count": count},
        )


# The raters' record


@admin.register(Comparison)
class ComparisonAdmin(ReadOnlyAdmin):
    list_display = ("id", "cohort", "rater", "left", "right", "reason", "choice", "served_at")
    list_filter = ("reason", "cohort")
    list_select_related = ("cohort", "rater", "left", "right", "judgment")
    search_fields = ("rater__username",)
    date_hierarchy = "served_at"

    @admin.display(description=_("choice"))
    def choice(self, comparison):
        judgment = getattr(comparison, "judgment", None)
        return judgment.get_choice_display() if judgment else "-"


@admin.register(Judgment)
class JudgmentAdmin(ReadOnlyAdmin):
    list_display = ("id", "cohort", "rater", "choice", "client_ms", "server_ms", "is_simulated", "created_at")
    list_filter = ("choice", "is_simulated", "comparison__cohort")
    list_select_related = ("comparison__cohort", "comparison__rater")
    search_fields = ("comparison__rater__username",)
    date_hierarchy = "created_at"

    @admin.display(description=_("cohort"), ordering="comparison__cohort__name")
    def cohort(self, judgment):
        return judgment.comparison.cohort

    @admin.display(description=_("rater"), ordering="comparison__rater__username")
    def rater(self, judgment):
        return judgment.comparison.rater


# Registers the Export admin, which lives with the exports.
import comparisons.exports.admin  # noqa: E402,F401
