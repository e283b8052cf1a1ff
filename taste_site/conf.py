"""The one accessor for Salon's own settings.

``settings.SALON`` holds the values that ``settings.py`` read from the
environment. Code reads them as ``salon_settings.MAX_VIDEO_SECONDS``; the
lookup happens on first use, never at import, and follows ``override_settings``
in tests.
"""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

DEFAULTS = {
    # Import limits.
    "MAX_VIDEO_SECONDS": 120.0,
    "MAX_VIDEO_PIXELS": 1920 * 1080,
    "MAX_IMAGE_PIXELS": 50_000_000,
    "MAX_UPLOAD_BYTES": 200 * 1024 * 1024,
    "IMPORT_ROOTS": [],
    "RENDITION_MAX_WIDTH": 1280,
    "TRANSCODE_TIMEOUT_SECONDS": 600,
    # Rating.
    "SIMULATED_RATERS_EXEMPT": True,
    "VOTE_RATE_LIMIT_PER_MINUTE": 120,
    # Acceptance media pack, read by the tests that import it.
    "MEDIA_PACK_DIR": "",
    # Scoring.
    "BACKBONE": "auto",
    "CLIP_MODEL": "ViT-B-32",
    "CLIP_PRETRAINED": "openai",
    "CLIP_CHECKPOINT": "",
    "CLIP_ALLOW_DOWNLOAD": False,
    "CLIP_DEVICE": "",
    "CLIP_MODEL_CONFIG": "",
    "CLIP_CACHE_DIR": "",
    "ENCODER_BATCH_FRAMES": 32,
    "FRAMES_PER_CLIP": 8,
    "FLICKER_FPS": 8.0,
    "FEATURE_BATCH_CLIPS": 16,
    "TORCH_THREADS": 0,
    "SCHEDULER_INTERVAL_SECONDS": 300,
    "REFIT_STALE_MINUTES": 60,
    "REFIT_SEED": 0,
    "REFIT_MIN_NEW_JUDGMENTS": 10,
    # Export.
    "PSEUDONYM_SECRET": "",
    "EXPORT_DIR": "",
    "EXPORT_LICENCE": "",
}


class SalonSettings:
    """Attribute access to ``settings.SALON`` with defaults, read lazily."""

    def __init__(self, defaults):
        self._defaults = defaults
        self._cache = {}

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._defaults:
            raise ImproperlyConfigured(
                f"Unknown Salon setting {name!r}; known settings: {', '.join(sorted(self._defaults))}."
            )
        if name not in self._cache:
            configured = getattr(settings, "SALON", {})
            self._cache[name] = configured.get(name, self._defaults[name])
        return self._cache[name]

    def reload(self):
        self._cache.clear()


salon_settings = SalonSettings(DEFAULTS)


def _reload_on_change(*, setting, **kwargs):
    if setting == "SALON":
        salon_settings.reload()


setting_changed.connect(_reload_on_change)
