"""WSGI entry point, as served by gunicorn: ``gunicorn taste_site.wsgi``."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taste_site.settings")

application = get_wsgi_application()
