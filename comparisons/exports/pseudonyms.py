"""Stable pseudonymous rater ids for exports.

A pseudonym is a keyed hash (HMAC-SHA256) of the rater's user id, so it is the
same in every export of one deployment and cannot be reversed or recomputed
without ``SALON_PSEUDONYM_SECRET``. Changing the secret changes every pseudonym.
"""

import hashlib
import hmac

from django.core.exceptions import ImproperlyConfigured

from taste_site.conf import salon_settings

PREFIX = "r_"
# 16 hex digits (64 bits): collisions stay negligible for millions of raters.
HEX_DIGITS = 16


def pseudonym_secret():
    """Return the configured secret as bytes, or raise ImproperlyConfigured when it is empty."""
    secret = salon_settings.PSEUDONYM_SECRET
    if not secret:
        raise ImproperlyConfigured(
            "SALON_PSEUDONYM_SECRET is empty. Set it to a long random string and keep it "
            "for the life of the deployment: rater pseudonyms in exports are derived from it."
        )
    return secret.encode() if isinstance(secret, str) else bytes(secret)


class Pseudonymizer:
    """Map user ids to pseudonyms, caching each one (an export repeats raters many times)."""

    def __init__(self, secret=None):
        self._secret = secret if secret is not None else pseudonym_secret()
        self._cache = {}

    def __call__(self, user_id):
        pseudonym = self._cache.get(user_id)
        if pseudonym is None:
            digest = hmac.new(self._secret, str(user_id).encode(), hashlib.sha256).hexdigest()
            pseudonym = PREFIX + digest[:HEX_DIGITS]
            self._cache[user_id] = pseudonym
        return pseudonym
