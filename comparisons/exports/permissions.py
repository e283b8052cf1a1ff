"""Export access: active staff with ``comparisons.view_export`` or ``comparisons.export_comparisons``.

The Researchers group gets ``view_export`` from ``comparisons/roles.py``
(view on every model), which is what opens the export pages to researchers.
Curators do not get it. ``export_comparisons`` lets an administrator grant
exports to a user or a group outside that role, because the roles sync resets
the two groups' permissions after every migrate. Superusers have both.
Raters are never staff, so they can never export.
"""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied

EXPORT_PERMISSIONS = ("comparisons.view_export", "comparisons.export_comparisons")


def can_export(user):
    """Return whether ``user`` may export comparisons and taste models."""
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return False
    return any(user.has_perm(permission) for permission in EXPORT_PERMISSIONS)


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
