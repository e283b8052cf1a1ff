"""Salon's Django project: settings, URLs and the Celery app."""

from taste_site.celery import app as celery_app

__all__ = ["celery_app"]
