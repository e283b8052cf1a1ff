"""Django settings for Salon, built from environment variables.

With no variables set, Salon runs embedded on one machine: SQLite in WAL mode
and kombu's filesystem transport as Celery broker, both under ``SALON_VAR_DIR``.
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to PostgreSQL and Redis or
RabbitMQ without a code change. README.md lists every variable.
"""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from taste_site.env import env_bool, env_float, env_int, env_list, env_secret, env_str

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("SALON_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("SALON_DEBUG", False)

SECRET_KEY = env_secret("SALON_SECRET_KEY", VAR_DIR / "secret-key")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            f"SALON_SECRET_KEY is not set and {VAR_DIR / 'secret-key'} does not exist. Set it to a long "
            "random string, run bin/run-demo once to create that file, or set SALON_DEBUG=1 for a "
            "local development server."
        )
    SECRET_KEY = "salon-insecure-development-key"

ALLOWED_HOSTS = env_list("SALON_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("SALON_CSRF_TRUSTED_ORIGINS", [])
SESSION_COOKIE_SECURE = env_bool("SALON_SECURE_COOKIES", False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
# Behind a proxy that ends TLS (nginx, a load balancer) Django sees plain HTTP.
# Trust the proxy's X-Forwarded-Proto only when told that the proxy sets it
# and strips it from clients; otherwise any client could claim HTTPS.
if env_bool("SALON_BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SALON_SSL_REDIRECT", False)
# Secure cookies mean the site is served over HTTPS, so browsers may be told
# to use nothing else. Subdomains are left out: they may be other sites.
SECURE_HSTS_SECONDS = env_int("SALON_HSTS_SECONDS", 365 * 24 * 3600 if SESSION_COOKIE_SECURE else 0, minimum=0)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "comparisons",
    "scoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "taste_site.urls"
WSGI_APPLICATION = "taste_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite: WAL lets the web server read while a worker writes; IMMEDIATE takes
# the write lock at BEGIN, so two writers queue on the busy timeout instead of
# failing with "database is locked" when one upgrades a read lock.
DATABASE_URL = env_str("DATABASE_URL", "")
if DATABASE_URL:
    # Persistent connections save a PostgreSQL connect per request; the health
    # check replaces a connection the server dropped (restart, failover)
    # instead of failing the request that finds it.
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("SALON_DB_CONN_MAX_AGE", 60, minimum=0),
            conn_health_checks=True,
        )
    }
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "salon.sqlite3"}}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": env_float("SALON_SQLITE_TIMEOUT_SECONDS", 20.0, minimum=0.0),
    }
    # A file, not the in-memory default, so that a Celery worker process
    # started by a test can open the test database too.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-salon.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env_str("SALON_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves collected static files from the WSGI app, so gunicorn
# alone is enough for a single-host deployment.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
if DEBUG:
    STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(env_str("SALON_MEDIA_ROOT", str(VAR_DIR / "media"))).resolve()
# Django serves media itself (with HTTP range requests, which looping video
# needs) unless a front server such as nginx does it in production.
SERVE_MEDIA = env_bool("SALON_SERVE_MEDIA", True)
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

# Celery. The filesystem transport needs no server; 0.1 s polling keeps a
# round trip near 100 ms instead of the 1 s default.
# The host part means nothing to the filesystem transport, but without one
# kombu logs "No hostname was supplied" on every connection.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://localhost//")
BROKER_DIR = VAR_DIR / "broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "data_folder_processed": str(BROKER_DIR / "processed"),
        "store_processed": False,
        "control_folder": str(BROKER_DIR / "control"),
        "polling_interval": 0.1,
    }
    # kombu's filesystem transport fails on missing folders instead of making them.
    for _folder in ("queue", "processed", "control"):
        (BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND", None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "comparisons.*": {"queue": "default"},
    "scoring.tasks.features.*": {"queue": "gpu"},
    "scoring.tasks.refit.*": {"queue": "gpu"},
    "scoring.tasks.scheduler.*": {"queue": "default"},
    "scoring.tasks.export.*": {"queue": "default"},
}
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
# A worker or beat started before the broker keeps trying to connect instead
# of exiting, so the processes of a deployment may start in any order.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

SALON = {
    "MAX_VIDEO_SECONDS": env_float("SALON_MAX_VIDEO_SECONDS", 120.0, minimum=0.1),
    "MAX_VIDEO_PIXELS": env_int("SALON_MAX_VIDEO_PIXELS", 1920 * 1080, minimum=1),
    "MAX_IMAGE_PIXELS": env_int("SALON_MAX_IMAGE_PIXELS", 50_000_000, minimum=1),
    "MAX_UPLOAD_BYTES": env_int("SALON_MAX_UPLOAD_BYTES", 200 * 1024 * 1024, minimum=1),
    "IMPORT_ROOTS": [
        str(Path(p).resolve()) for p in env_list(
            "SALON_IMPORT_ROOTS", [str(VAR_DIR / "incoming"), str(BASE_DIR.parent / "shared" / "media")]
        )
    ],
    "RENDITION_MAX_WIDTH": env_int("SALON_RENDITION_MAX_WIDTH", 1280, minimum=16),
    "TRANSCODE_TIMEOUT_SECONDS": env_int("SALON_TRANSCODE_TIMEOUT_SECONDS", 600, minimum=1),
    "SIMULATED_RATERS_EXEMPT": env_bool("SALON_SIMULATED_RATERS_EXEMPT", True),
    "VOTE_RATE_LIMIT_PER_MINUTE": env_int("SALON_VOTE_RATE_LIMIT_PER_MINUTE", 120, minimum=0),
    "MEDIA_PACK_DIR": env_str("SALON_MEDIA_PACK_DIR", str(BASE_DIR.parent / "shared" / "media")),
    "BACKBONE": env_str("SALON_BACKBONE", "auto"),
    "CLIP_MODEL": env_str("SALON_CLIP_MODEL", "ViT-B-32"),
    "CLIP_PRETRAINED": env_str("SALON_CLIP_PRETRAINED", "openai"),
    "CLIP_CHECKPOINT": env_str("SALON_CLIP_CHECKPOINT", ""),
    "CLIP_ALLOW_DOWNLOAD": env_bool("SALON_CLIP_ALLOW_DOWNLOAD", False),
    "CLIP_DEVICE": env_str("SALON_CLIP_DEVICE", ""),
    "CLIP_MODEL_CONFIG": env_str("SALON_CLIP_MODEL_CONFIG", ""),
    "CLIP_CACHE_DIR": env_str("SALON_CLIP_CACHE_DIR", ""),
    "ENCODER_BATCH_FRAMES": env_int("SALON_ENCODER_BATCH_FRAMES", 32, minimum=1),
    "FRAMES_PER_CLIP": env_int("SALON_FRAMES_PER_CLIP", 8, minimum=1),
    "FLICKER_FPS": env_float("SALON_FLICKER_FPS", 8.0, minimum=0.5),
    "FEATURE_BATCH_CLIPS": env_int("SALON_FEATURE_BATCH_CLIPS", 16, minimum=1),
    "TORCH_THREADS": env_int("SALON_TORCH_THREADS", 0, minimum=0),
    "SCHEDULER_INTERVAL_SECONDS": env_int("SALON_SCHEDULER_INTERVAL_SECONDS", 300, minimum=5),
    "REFIT_STALE_MINUTES": env_int("SALON_REFIT_STALE_MINUTES", 60, minimum=1),
    "REFIT_SEED": env_int("SALON_REFIT_SEED", 0, minimum=0),
    "REFIT_MIN_NEW_JUDGMENTS": env_int("SALON_REFIT_MIN_NEW_JUDGMENTS", 10, minimum=1),
    "PSEUDONYM_SECRET": env_secret("SALON_PSEUDONYM_SECRET", VAR_DIR / "pseudonym-secret"),
    "EXPORT_DIR": env_str("SALON_EXPORT_DIR", str(VAR_DIR / "exports")),
    "EXPORT_LICENCE": env_str("SALON_EXPORT_LICENCE", ""),
}

# Celery beat sends the refit scheduler every SALON_SCHEDULER_INTERVAL_SECONDS.
# A scheduler message that waited a whole interval is dropped: the next one
# plans from fresher counts.
CELERY_BEAT_SCHEDULE = {
    "schedule-refits": {
        "task": "scoring.tasks.scheduler.schedule_refits",
        "schedule": float(SALON["SCHEDULER_INTERVAL_SECONDS"]),
        "options": {"queue": "default", "expires": float(SALON["SCHEDULER_INTERVAL_SECONDS"])},
    },
    "resend-pending-clips": {
        "task": "comparisons.tasks.resend_pending_clips",
        "schedule": 300.0,
        "options": {"queue": "default", "expires": 300.0},
    },
    "resend-queued-exports": {
        "task": "comparisons.exports.tasks.resend_queued_exports",
        "schedule": 300.0,
        "options": {"queue": "default", "expires": 300.0},
    },
    "resend-folder-imports": {
        "task": "comparisons.tasks.resend_folder_imports",
        "schedule": 300.0,
        "options": {"queue": "default", "expires": 300.0},
    },
}

LOG_LEVEL = env_str("SALON_LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "comparisons": {"level": LOG_LEVEL},
        "scoring": {"level": LOG_LEVEL},
        "imageio_ffmpeg": {"level": "ERROR"},
    },
}
