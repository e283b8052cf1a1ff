"""Rater pages: home, the compare page, its JSON endpoints and invite links.

Each view validates its input, calls one action from ``comparisons.actions``
(the vote view calls a second one to send the next pair) and renders the
result. JSON errors have the shape ``{"error": {"code": ..., "message": ...}}``.
"""

import functools
import json
import logging

from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from comparisons.actions import (
    ActionError,
    EndState,
    InvalidParticipant,
    get_membership,
    join_cohort,
    participant_from_query,
    record_judgment,
    serve_comparison,
)
from comparisons.models import Cohort, Judgment, Membership

logger = logging.getLogger(__name__)

# Largest value that Judgment.client_ms can store on every supported database.
MAX_CLIENT_MS = 2**31 - 1
LOGIN_BACKEND = "django.contrib.auth.backends.ModelBackend"


def json_error(status, code, message, retry_after=None):
    """Return the JSON error response; its status, code and message are the ones the page shows."""
    response = JsonResponse({"error": {"code": code, "message": str(message)}}, status=status)
    if retry_after is not None:
        response["Retry-After"] = str(retry_after)
    return response


def json_login_required(view):
    """Return 401 JSON instead of redirecting an anonymous request to the login page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return json_error(401, "login_required", _("Your session has ended. Log in or open your invite link again."))
        return view(request, *args, **kwargs)

    return wrapper


@require_safe
def home(request):
    # Imported here because the rater pages must not depend on scoring for anything else.
    from scoring.leaderboard import can_view_leaderboard

    memberships = []
    leaderboard_cohorts = []
    if request.user.is_authenticated:
        memberships = Membership.objects.filter(user=request.user).select_related("cohort").order_by("cohort__name")
        if can_view_leaderboard(request.user):
            leaderboard_cohorts = Cohort.objects.order_by("name")
    context = {"memberships": memberships, "leaderboard_cohorts": leaderboard_cohorts}
    return render(request, "comparisons/home.html", context)


@login_required
@require_safe
def compare(request, slug):
    cohort = get_object_or_404(Cohort, slug=slug)
    try:
        get_membership(cohort, request.user)
    except ActionError as error:
        return render(request, "comparisons/not_member.html", {"cohort": cohort, "message": error.message},
                      status=error.status)
    return render(request, "comparisons/compare.html", {"cohort": cohort, "config": compare_page_config(request, cohort)})


def compare_page_config(request, cohort):
    """Return the URLs, CSRF token and translated strings that compare.js reads."""
    return {
        "nextUrl": reverse("next_pair", args=[cohort.slug]),
        "voteUrl": reverse("vote", args=[cohort.slug]),
        "csrfToken": get_token(request),
        "strings": {
            "loading": _("Loading the clips…"),
            "mediaError": _("A clip could not be loaded. You can skip this pair."),
            "networkError": _("Could not reach the server. Check your connection and try again."),
            "voteRejected": _("Your vote was not recorded: %(reason)s"),
            "progressGoal": _("%(today)s of %(goal)s today (skips do not count)"),
            "progressTotal": _("%(total)s judged in total (skips do not count)"),
        },
    }


@json_login_required
@require_safe
def next_pair(request, slug):
    cohort = get_object_or_404(Cohort, slug=slug)
    try:
        serving = serve_comparison(cohort, request.user)
    except ActionError as error:
        return rejected(request, cohort, error)
    return JsonResponse(serving_payload(request, serving))


def rejected(request, cohort, error):
    """Log an action's rejection and return it as a JSON error."""
    logger.info(
        "Rejected %s %s by user %s in cohort %s: %s (%d)",
        request.method, request.path, request.user.pk, cohort.pk, error.code, error.status,
    )
    return json_error(error.status, error.code, error.message, error.retry_after)


@json_login_required
@require_POST
def vote(request, slug):
    cohort = get_object_or_404(Cohort, slug=slug)
    try:
        fields = parse_vote(request.body)
    except ValueError as error:
        return rejected(request, cohort, ActionError(400, "invalid_vote", str(error)))

    try:
        result = record_judgment(cohort=cohort, rater=request.user, **fields)
    except ActionError as error:
        return rejected(request, cohort, error)
    # A second transaction: a stored vote stays stored even if serving fails.
    try:
        serving = serve_comparison(cohort, request.user)
    except ActionError as error:
        return rejected(request, cohort, error)

    judgment = result.judgment
    payload = {
        "judgment": {
            "id": judgment.pk,
            "comparison": judgment.comparison_id,
            "choice": judgment.choice,
            "client_ms": judgment.client_ms,
            "server_ms": judgment.server_ms,
            "created": result.created,
        },
        "next": serving_payload(request, serving),
    }
    return JsonResponse(payload, status=201 if result.created else 200)


def parse_vote(body):
    """Return the keyword arguments of record_judgment from a JSON vote body.

    Raise ValueError with a message for the rater when the body is malformed.
    """
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ValueError(_("The vote is not valid JSON.")) from None
    if not isinstance(data, dict):
        raise ValueError(_("The vote must be a JSON object with “comparison”, “choice” and “client_ms”."))

    comparison_id = data.get("comparison")
    if comparison_id is None:
        raise ValueError(_("The vote is missing “comparison”, the id of the comparison it answers."))
    if not _is_integer(comparison_id) or comparison_id <= 0:
        raise ValueError(_("“comparison” must be a positive integer, not %(value)s.") % {"value": json.dumps(comparison_id)})

    choice = data.get("choice")
    if choice not in Judgment.Choice.values:
        raise ValueError(
            _("“choice” must be one of %(choices)s, not %(value)s.")
            % {"choices": ", ".join(Judgment.Choice.values), "value": json.dumps(choice)}
        )

    client_ms = data.get("client_ms")
    if client_ms is not None and (not _is_integer(client_ms) or not 0 <= client_ms <= MAX_CLIENT_MS):
        raise ValueError(
            _("“client_ms” must be a whole number of milliseconds from 0 to %(max)d, not %(value)s.")
            % {"max": MAX_CLIENT_MS, "value": json.dumps(client_ms)}
        )
    return {"comparison_id": comparison_id, "choice": choice, "client_ms": client_ms}


def _is_integer(value):
    # bool is a subclass of int in Python, but true/false is no id or duration.
    return isinstance(value, int) and not isinstance(value, bool)


def serving_payload(request, serving):
    """Return the JSON-ready dict the compare page renders for a Serving."""
    cohort = serving.cohort
    payload = {
        "comparison": None,
        "upcoming": None,
        "end": None,
        "progress": {
            "judged_today": serving.judged_today,
            "daily_goal": cohort.daily_goal,
            "judged_total": serving.judged_total,
        },
        "min_view_ms": cohort.min_view_ms,
        "completion": None,
    }
    if serving.end:
        payload["end"] = {"code": serving.end, "message": str(EndState.message(serving.end))}
    if serving.comparison is not None:
        comparison = serving.comparison
        payload["comparison"] = {
            "id": comparison.pk,
            "left": clip_payload(request, cohort, comparison.left),
            "right": clip_payload(request, cohort, comparison.right),
        }
    if serving.upcoming is not None:
        left, right = serving.upcoming
        payload["upcoming"] = {"left": clip_payload(request, cohort, left), "right": clip_payload(request, cohort, right)}
    if serving.completed:
        payload["completion"] = {"code": cohort.completion_code, "return_url": cohort.return_url}
    return payload


def clip_payload(request, cohort, clip):
    """Return what the page needs to show one clip; captions only when the cohort shows them."""
    media = clip.rendition or clip.original
    return {
        "id": clip.pk,
        "kind": clip.kind,
        "src": media.url,
        "poster": clip.poster.url if clip.poster else "",
        "caption": clip.display_text if cohort.show_captions else "",
        "width": clip.width,
        "height": clip.height,
    }


@require_http_methods(["GET", "POST"])
def join(request, token):
    """Show the join confirmation (GET) or join the cohort (POST).

    Joining changes state and may log the visitor in, so it needs a POST with
    a CSRF token: a GET could be triggered by any page or link prefetcher.
    """
    cohort = get_object_or_404(Cohort, invite_token=token)
    context = {"cohort": cohort, "query": request.GET.urlencode()}
    try:
        participant = participant_from_query(request.GET)
    except InvalidParticipant as error:
        # The parameter names only: the message quotes the value, and a
        # participant id is personal data and the credential of its account.
        logger.info("Rejected invite link of cohort %s: invalid participant parameters among %s",
                    cohort.pk, ", ".join(sorted(request.GET)))
        context["message"] = str(error)
        return render(request, "comparisons/join_error.html", context, status=400)
    context["participant"] = participant
    if participant is not None and participant.is_preview:
        return render(request, "comparisons/join.html", {**context, "preview": True})
    if request.method == "GET":
        return render(request, "comparisons/join.html", context)

    user = request.user if request.user.is_authenticated else None
    try:
        result = join_cohort(cohort, user, participant)
    except ActionError as error:
        logger.info("Rejected join of cohort %s by user %s: %s", cohort.pk, user.pk if user else None, error.code)
        context["message"] = str(error.message)
        return render(request, "comparisons/join_error.html", context, status=error.status)
    if user is None or result.user.pk != user.pk:
        login(request, result.user, backend=LOGIN_BACKEND)
    return redirect("compare", slug=cohort.slug)
