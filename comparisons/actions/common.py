"""Errors, end states and the membership lookup shared by the rater actions."""

from django.utils.translation import gettext_lazy as _

from comparisons.models import Membership


class ActionError(Exception):
    """A request the action rejects, with the HTTP status the view should send.

    ``code`` is a stable machine-readable name, ``message`` a translated
    sentence for the rater, and ``retry_after`` the seconds to wait, if any.
    """

    def __init__(self, status, code, message, retry_after=None):
        super().__init__(str(message))
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class EndState:
    """End-state codes that stop a rater from getting a pair, and their messages."""

    COHORT_CLOSED = "cohort_closed"
    MEMBERSHIP_INACTIVE = "membership_inactive"
    MEMBERSHIP_FLAGGED = "membership_flagged"
    DAILY_GOAL_REACHED = "daily_goal_reached"
    NOT_ENOUGH_CLIPS = "not_enough_clips"
    ALL_JUDGED = "all_judged"

    MESSAGES = {
        COHORT_CLOSED: _("This cohort is closed for voting. Thank you for taking part."),
        MEMBERSHIP_INACTIVE: _("Your membership in this cohort is inactive, so you cannot vote here."),
        MEMBERSHIP_FLAGGED: _(
            "Your membership in this cohort is on hold while a curator reviews it, so you cannot vote here."
        ),
        DAILY_GOAL_REACHED: _("You have reached today's goal. Thank you! Come back tomorrow for more pairs."),
        NOT_ENOUGH_CLIPS: _("There are not enough clips to compare yet. Please come back later."),
        ALL_JUDGED: _("You have judged every pair in this cohort. Thank you!"),
    }

    @classmethod
    def message(cls, code):
        return cls.MESSAGES[code]


def membership_end_state(membership):
    """Return the end-state code that stops this member from voting, or None."""
    if membership.status == Membership.Status.FLAGGED:
        return EndState.MEMBERSHIP_FLAGGED
    if membership.status != Membership.Status.ACTIVE:
        return EndState.MEMBERSHIP_INACTIVE
    return None


def get_membership(cohort, user, lock=False):
    """Return ``user``'s membership in ``cohort`` or raise a 403 ActionError.

    With ``lock``, the row is locked until the surrounding transaction ends
    (on databases with row locks), which queues one rater's concurrent
    requests in this cohort behind each other.
    """
    queryset = Membership.objects.filter(cohort=cohort, user=user)
    if lock:
        queryset = queryset.select_for_update()
    membership = queryset.first()
    if membership is None:
        raise ActionError(
            403,
            "not_member",
            _("You are not a member of the cohort “%(cohort)s”. Open the invite link you were given to join it.")
            % {"cohort": cohort.name},
        )
    return membership
