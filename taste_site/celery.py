"""The Celery application shared by the web process, workers and beat."""

import os

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES

# "filesystem://" resolves to Salon's subclass, which writes each message
# atomically (see taste_site/broker.py for the race it closes).
TRANSPORT_ALIASES["filesystem"] = "taste_site.broker:Transport"

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taste_site.settings")

app = Celery("taste_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["comparisons", "comparisons.exports", "scoring"])
