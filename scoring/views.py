"""Staff pages of the scoring app: a cohort's leaderboard.

Views check access, parse the query and call one function from
``scoring.leaderboard``; the rules live there.
"""

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from comparisons.models import Cohort
from scoring.leaderboard import InvalidOption, VersionNotFound, can_view_leaderboard, leaderboard_context, parse_options


@require_safe
def leaderboard(request, slug):
    """Show ``slug``'s top clips under one taste model version beside a Bradley-Terry ranking."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    # Checked before the cohort lookup, so raters cannot probe which slugs exist.
    if not can_view_leaderboard(request.user):
        raise PermissionDenied
    cohort = get_object_or_404(Cohort.objects.select_related("pool"), slug=slug)
    try:
        options = parse_options(request.GET)
    except InvalidOption as error:
        return render(request, "scoring/leaderboard_error.html", {"cohort": cohort, "message": str(error)}, status=400)
    try:
        context = leaderboard_context(cohort, options)
    except VersionNotFound as error:
        raise Http404(
            _("Version id %(id)s is not a finished taste model version of %(cohort)s.")
            % {"id": error.args[0], "cohort": cohort.name}
        ) from None
    return render(request, "scoring/leaderboard.html", context)
