"""Rater routes: the cohort page, its JSON endpoints and invite links."""

from django.urls import path

from comparisons.views import rater

urlpatterns = [
    path("", rater.home, name="home"),
    path("c/<slug:slug>/", rater.compare, name="compare"),
    path("c/<slug:slug>/next/", rater.next_pair, name="next_pair"),
    path("c/<slug:slug>/vote/", rater.vote, name="vote"),
    path("join/<str:token>/", rater.join, name="join"),
]
