"""Join a cohort through its invite link, with recruitment-platform ids when present.

Query parameters read from the invite link:

- Prolific: ``PROLIFIC_PID`` (participant id, required), ``STUDY_ID`` and
  ``SESSION_ID`` (stored as ``study_id`` and ``session_id``);
- MTurk: ``workerId`` (participant id, required), ``hitId`` (stored as
  ``study_id``) and ``assignmentId`` (stored as ``session_id``). MTurk's
  preview sends ``assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE`` and no worker id.

A participant id names a person: the same id coming back from another device
or with cleared cookies is logged into the account that first used it, in
any cohort. Visitors without an account get a passwordless one, so the
participant id (or the session cookie) is their only credential.
"""

import logging
import re
import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _

from comparisons.actions.common import ActionError
from comparisons.models import Membership

logger = logging.getLogger(__name__)

MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]+$")
# Membership.participant_id, study_id and session_id store up to 128 characters.
ID_MAX_LENGTH = 128

PLATFORM_PARAMETERS = {
    Membership.Platform.PROLIFIC: {"participant_id": "PROLIFIC_PID", "study_id": "STUDY_ID", "session_id": "SESSION_ID"},
    Membership.Platform.MTURK: {"participant_id": "workerId", "study_id": "hitId", "session_id": "assignmentId"},
}


class InvalidParticipant(ValueError):
    """A participant parameter of the invite link is missing or malformed."""


@dataclass(frozen=True)
class Participant:
    """A recruitment-platform identity read from the invite link."""

    platform: str
    participant_id: str
    study_id: str = ""
    session_id: str = ""
    is_preview: bool = False


@dataclass(frozen=True)
class JoinResult:
    """The account that joined and its membership, with what was created."""

    user: object
    membership: Membership
    created_user: bool
    created_membership: bool


def participant_from_query(query):
    """Return the Participant named by the invite link's ``query`` dict, or None.

    Raise InvalidParticipant naming the parameter when one is empty, too long,
    has characters outside A-Z, a-z, 0-9, ``_`` and ``-``, or when parameters
    of both platforms are present.
    """
    platforms = [
        platform for platform, names in PLATFORM_PARAMETERS.items()
        if any(name in query for name in names.values())
    ]
    if not platforms:
        return None
    if len(platforms) > 1:
        raise InvalidParticipant(
            _("The link carries both Prolific and MTurk parameters; use the link of one platform only.")
        )
    platform = platforms[0]
    names = PLATFORM_PARAMETERS[platform]

    if platform == Membership.Platform.MTURK and query.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT:
        return Participant(platform=platform, participant_id="", is_preview=True)

    values = {}
    for field, name in names.items():
        value = query.get(name)
        if value is None:
            if field == "participant_id":
                raise InvalidParticipant(
                    _("The link is missing %(name)s, the participant id. Open the study again from %(platform)s.")
                    % {"name": name, "platform": Membership.Platform(platform).label}
                )
            values[field] = ""
            continue
        values[field] = _validate_id(name, value)
    return Participant(platform=platform, **values)


def _validate_id(name, value):
    if not value:
        raise InvalidParticipant(_("The link parameter %(name)s is empty.") % {"name": name})
    if len(value) > ID_MAX_LENGTH:
        raise InvalidParticipant(
            _("The link parameter %(name)s is %(length)d characters long; at most %(max)d are allowed.")
            % {"name": name, "length": len(value), "max": ID_MAX_LENGTH}
        )
    if not ID_PATTERN.match(value):
        raise InvalidParticipant(
            _(
                "The link parameter %(name)s has the invalid value “%(value)s”: only letters, digits, "
                "“_” and “-” are allowed. A placeholder such as {{%%PROLIFIC_PID%%}} means the study "
                "link was opened outside the platform."
            )
            % {"name": name, "value": value}
        )
    return value


def join_cohort(cohort, user, participant=None):
    """Add a member to ``cohort`` and return the JoinResult; the view logs its user in.

    ``user`` is the logged-in user or None. With a participant id already used
    by an account, that account joins: the current user is replaced unless it
    is a different account with a password, which raises ActionError (409).
    A passwordless account that carries another participant id belongs to
    someone else on a shared device, so a new account is made instead.
    Raise ActionError (409) when the cohort is closed.
    """
    if not cohort.is_open:
        raise ActionError(409, "cohort_closed", _("The cohort “%(cohort)s” is closed and takes no new members.")
                          % {"cohort": cohort.name})
    with transaction.atomic():
        account = _choose_account(user, participant)
        created_user = account is None
        if created_user:
            account = _new_passwordless_user()
        membership, created_membership = _ensure_membership(account, cohort, participant)

    logger.info(
        "User %s joined cohort %s (new user: %s, new membership: %s, platform: %s)",
        account.pk, cohort.pk, created_user, created_membership, participant.platform if participant else "none",
    )
    return JoinResult(account, membership, created_user, created_membership)


def _choose_account(user, participant):
    """Return the account that should join, or None for a new passwordless one."""
    if participant is None:
        return user
    owner_membership = (
        Membership.objects.filter(platform=participant.platform, participant_id=participant.participant_id)
        .select_related("user")
        .order_by("joined_at", "id")
        .first()
    )
    if owner_membership is not None:
        # NOTE: anyone who knows a participant id can open that participant's
        # passwordless account; the recruitment platforms offer no stronger proof.
        owner = owner_membership.user
        if user is None or user.pk == owner.pk or not user.has_usable_password():
            return owner
        raise ActionError(
            409, "participant_belongs_to_another_account",
            _(
                "This link carries the participant id %(id)s, which belongs to another account than the one "
                "you are logged in with. Log out and open the link again."
            )
            % {"id": participant.participant_id},
        )
    if user is None:
        return None
    carries_other_id = user.memberships.exclude(participant_id="").exists()
    if carries_other_id and not user.has_usable_password():
        return None
    return user


def _new_passwordless_user():
    user_model = get_user_model()
    user = user_model(username="rater-" + secrets.token_hex(8))
    user.set_unusable_password()
    user.save()
    return user


def _ensure_membership(account, cohort, participant):
    """Return ``(membership, created)`` for ``account`` in ``cohort``, storing the participant ids."""
    membership = Membership.objects.filter(user=account, cohort=cohort).first()
    if membership is None:
        fields = {}
        if participant is not None:
            fields = {
                "platform": participant.platform,
                "participant_id": participant.participant_id,
                "study_id": participant.study_id,
                "session_id": participant.session_id,
            }
        try:
            with transaction.atomic():
                return Membership.objects.create(user=account, cohort=cohort, **fields), True
        except IntegrityError:
            # A second tab joined at the same moment, or a passworded account
            # that is not the id's owner tried to take its id in this cohort.
            membership = Membership.objects.filter(user=account, cohort=cohort).first()
            if membership is None:
                raise _participant_taken(participant) from None

    if participant is None:
        return membership, False
    if not membership.participant_id:
        membership.platform = participant.platform
        membership.participant_id = participant.participant_id
    elif (membership.platform, membership.participant_id) != (participant.platform, participant.participant_id):
        raise ActionError(
            409, "other_participant_id",
            _("You already joined this cohort with another participant id (%(id)s).")
            % {"id": membership.participant_id},
        )
    # A returning participant keeps the study and session ids of the first visit.
    membership.study_id = membership.study_id or participant.study_id
    membership.session_id = membership.session_id or participant.session_id
    try:
        with transaction.atomic():
            membership.save(update_fields=["platform", "participant_id", "study_id", "session_id"])
    except IntegrityError:
        raise _participant_taken(participant) from None
    return membership, False


def _participant_taken(participant):
    return ActionError(
        409, "participant_belongs_to_another_account",
        _("The participant id %(id)s is already used by another member of this cohort.")
        % {"id": participant.participant_id if participant else ""},
    )
