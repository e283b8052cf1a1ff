"""Which taste model version of a cohort is active, and switching it (activation and rollback).

Versions are immutable: activating one changes only which row carries
``is_active``. A partial unique constraint allows one active version per
cohort and backbone. Activating a version deactivates the previous one in
the same transaction, so readers never see two active versions or none.
"""

import logging

from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from scoring.models import TasteModel

logger = logging.getLogger(__name__)


class ActivationError(Exception):
    """A version that cannot be activated, with a translated message saying why."""


def same_owner(taste_model):
    """Return the filter for the versions of ``taste_model``'s cohort (or the all-judgments model) and backbone."""
    owner = Q(cohort_id=taste_model.cohort_id) if taste_model.cohort_id else Q(cohort__isnull=True)
    return owner & Q(backbone=taste_model.backbone)


def activate_version(taste_model, user=None):
    """Make ``taste_model`` the active version of its cohort and backbone; return the one it replaced.

    Activating an older version is a rollback. The row is re-read inside the
    transaction, so a version that failed or was deleted meanwhile is rejected.

    Raises
    ------
    ActivationError
        When the version is not finished.
    """
    with transaction.atomic():
        current = TasteModel.objects.select_for_update().filter(pk=taste_model.pk).first()
        if current is None:
            raise ActivationError(_("This taste model version no longer exists."))
        if current.status != TasteModel.Status.FINISHED:
            raise ActivationError(
                _("Version %(version)d is %(status)s; only a finished version can be activated.")
                % {"version": current.version, "status": current.get_status_display()}
            )
        previous = TasteModel.objects.filter(same_owner(current), is_active=True).exclude(pk=current.pk).first()
        if previous is not None:
            TasteModel.objects.filter(pk=previous.pk).update(is_active=False)
        TasteModel.objects.filter(pk=current.pk).update(is_active=True)
    logger.info(
        "Activated taste model %s v%d (%s) for cohort %s, replacing %s, by user %s",
        current.pk, current.version, current.backbone, current.cohort_id,
        f"v{previous.version}" if previous else "none", getattr(user, "pk", None),
    )
    taste_model.is_active = True
    return previous


def active_version(cohort, backbone=None):
    """Return ``cohort``'s active finished version, or None.

    With ``backbone``, the active version of that backbone. Without it, the
    active version with the most recent finish, because a cohort whose
    backbone changed keeps one active version per backbone.
    """
    versions = TasteModel.objects.filter(cohort=cohort, is_active=True, status=TasteModel.Status.FINISHED)
    if backbone:
        versions = versions.filter(backbone=backbone)
    return versions.order_by("-finished_at", "-pk").first()


def finished_versions(cohort):
    """Return ``cohort``'s finished versions, newest first per backbone."""
    return TasteModel.objects.filter(cohort=cohort, status=TasteModel.Status.FINISHED).order_by("backbone", "-version")


def latest_failure(cohort):
    """Return ``cohort``'s newest version if it failed after the newest finished one, else None."""
    newest = TasteModel.objects.filter(cohort=cohort).exclude(status=TasteModel.Status.RUNNING).order_by("-pk").first()
    if newest is not None and newest.status == TasteModel.Status.FAILED:
        return newest
    return None
