"""Settings for the test suite: the normal settings with a throwaway var folder.

The database and broker still come from ``DATABASE_URL`` and
``CELERY_BROKER_URL``, so the same suite runs embedded and on PostgreSQL.
"""

import os
from pathlib import Path

_base = Path(__file__).resolve().parent.parent
os.environ.setdefault("SALON_DEBUG", "1")
os.environ.setdefault("SALON_VAR_DIR", str(_base / "var" / "test"))
os.environ.setdefault("SALON_PSEUDONYM_SECRET", "test-pseudonym-secret")

from taste_site.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# WhiteNoise warns on every request when STATIC_ROOT is missing; tests serve
# static files through the finders instead of collectstatic.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
WHITENOISE_USE_FINDERS = True
