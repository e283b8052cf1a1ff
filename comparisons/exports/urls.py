"""Routes of the staff-only export pages, mounted under /exports/."""

from django.urls import path

from comparisons.exports import views

app_name = "exports"

urlpatterns = [
    path("", views.index, name="index"),
    path("<int:pk>/download/", views.download, name="download"),
    path("<int:pk>/card.md", views.card, {"kind": "md"}, name="card_md"),
    path("<int:pk>/card.json", views.card, {"kind": "json"}, name="card_json"),
    path("taste-models/<slug:slug>.json", views.taste_models, name="taste_models"),
]
