"""Settings for the vote benchmark's own server: production settings plus a floor endpoint.

``bench/votes.py`` starts gunicorn with ``DJANGO_SETTINGS_MODULE`` set to this
module, on a database it creates for the run. Nothing else uses it, so the
floor endpoint exists only on servers the benchmark started.
"""

from taste_site.settings import *  # noqa: F403

ROOT_URLCONF = "taste_site.bench_urls"
