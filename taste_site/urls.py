"""URL routes: admin, accounts, the rater pages and media."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path, re_path

from comparisons.views.media import serve_media

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("exports/", include("comparisons.exports.urls")),
    path("scoring/", include("scoring.urls")),
    path("", include("comparisons.urls")),
]

if settings.SERVE_MEDIA:
    urlpatterns += [re_path(r"^media/(?P<path>.+)$", serve_media, name="media")]
