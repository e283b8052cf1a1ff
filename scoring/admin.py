"""Admin pages of the scoring app: read-only views of what the workers computed."""

from django.contrib import admin

from comparisons.admin import ReadOnlyAdmin
from scoring import admin_taste  # noqa: F401 (registers the taste model and clip score admins)
from scoring.models import ClipFeatures


# Read-only because workers write these rows: a hand edit would make stored
# features or fitted models disagree with the code that produced them.
@admin.register(ClipFeatures)
class ClipFeaturesAdmin(ReadOnlyAdmin):
    list_display = (
        "clip", "backbone", "n_frames", "dim", "semantic", "frame_dissimilarity", "flicker", "extract_ms",
        "created_at",
    )
    list_filter = ("backbone",)
    search_fields = ("clip__original_name", "clip__sha256", "backbone")
    list_select_related = ("clip",)
