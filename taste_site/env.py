"""Typed readers for the environment variables that configure Salon.

Only ``taste_site/settings.py`` calls these. Application code reads the
resulting values through :data:`taste_site.conf.salon_settings`.
"""

import os

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name, default=None):
    """Return the variable ``name``, or ``default`` when it is unset."""
    return os.environ.get(name, default)


def env_secret(name, fallback_file):
    """Return the variable ``name``, else the stripped contents of ``fallback_file``.

    ``bin/run-demo`` writes such files once per var folder, so management
    commands run by hand find the same secrets as the servers it started.
    """
    value = os.environ.get(name, "")
    if not value and fallback_file.is_file():
        value = fallback_file.read_text().strip()
    return value


def env_bool(name, default):
    """Return the variable ``name`` parsed as a boolean."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1, 0, true, false, yes, no, on, off."
    )


def env_int(name, default, minimum=None):
    """Return the variable ``name`` parsed as an integer of at least ``minimum``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name, default, minimum=None):
    """Return the variable ``name`` parsed as a float of at least ``minimum``."""
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_list(name, default):
    """Return the variable ``name`` split on commas, blanks dropped."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    return [item.strip() for item in raw.split(",") if item.strip()]
