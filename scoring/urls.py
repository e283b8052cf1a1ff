"""Routes of the scoring app's staff pages, mounted under ``scoring/``."""

from django.urls import path

from scoring import views

app_name = "scoring"

urlpatterns = [
    path("cohorts/<slug:slug>/leaderboard/", views.leaderboard, name="leaderboard"),
]
