"""Export access: active staff with the ``comparisons.export_comparisons`` permission.

Grant the permission to the Researchers group in the admin; superusers have it
implicitly. Raters are never staff, so they can never export.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

EXPORT_PERMISSION = "comparisons.export_comparisons"


def can_export(user):
    """Return whether ``user`` may export comparisons and taste models."""
    return bool(user.is_authenticated and user.is_active and user.is_staff and user.has_perm(EXPORT_PERMISSION))


def export_permission_required(view):
    """Send anonymous users to the login page and return 403 to users who may not export."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not can_export(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper
