"""Staff roles as Django groups: "Curators" and "Researchers", kept in sync after each migrate.

A curator is a staff user in "Curators": clips, pools, prompts, cohorts and
memberships, read access to folder imports, comparisons and judgments, and taste model
versions (view and change, to approve or roll back one). A researcher is a
staff user in "Researchers": read access to every model of the comparisons
and scoring apps. Superusers need neither group.
"""

import logging

from django.apps import apps as global_apps
from django.contrib.auth.management import create_permissions
from django.db import DEFAULT_DB_ALIAS

logger = logging.getLogger(__name__)

CURATORS = "Curators"
RESEARCHERS = "Researchers"

# (app label, model name, actions)
CURATOR_PERMISSIONS = [
    ("comparisons", "clip", ("add", "change", "view", "delete")),
    ("comparisons", "folderimport", ("view",)),
    ("comparisons", "pool", ("add", "change", "view", "delete")),
    ("comparisons", "prompt", ("add", "change", "view", "delete")),
    ("comparisons", "cohort", ("add", "change", "view", "delete")),
    ("comparisons", "membership", ("add", "change", "view", "delete")),
    ("comparisons", "comparison", ("view",)),
    ("comparisons", "judgment", ("view",)),
    ("scoring", "tastemodel", ("view", "change")),
    ("scoring", "clipfeatures", ("view",)),
]
RESEARCHER_APPS = ("comparisons", "scoring")


def curator_codenames():
    """Return the ``(app_label, codename)`` pairs of the Curators group."""
    return [
        (app_label, "%s_%s" % (action, model))
        for app_label, model, actions in CURATOR_PERMISSIONS
        for action in actions
    ]


def researcher_codenames(apps=global_apps):
    """Return the ``(app_label, codename)`` pairs of the Researchers group: view on every model."""
    pairs = []
    for app_label in RESEARCHER_APPS:
        for model in apps.get_app_config(app_label).get_models():
            pairs.append((app_label, "view_%s" % model._meta.model_name))
    return pairs


def _permissions(permission_model, pairs, using):
    wanted = set(pairs)
    found = permission_model.objects.using(using).filter(
        content_type__app_label__in={app_label for app_label, _codename in wanted},
        codename__in={codename for _app_label, codename in wanted},
    ).select_related("content_type")
    permissions = [p for p in found if (p.content_type.app_label, p.codename) in wanted]
    missing = wanted - {(p.content_type.app_label, p.codename) for p in permissions}
    if missing:
        raise LookupError(
            "Permissions %s do not exist; run migrate for the comparisons and scoring apps first."
            % ", ".join(sorted("%s.%s" % pair for pair in missing))
        )
    return permissions


def sync_roles(using=DEFAULT_DB_ALIAS, apps=global_apps):
    """Create or update the Curators and Researchers groups; return them.

    Each group ends with exactly its listed permissions, so running this
    again changes nothing and a permission removed from the lists here is
    taken away from the group too.
    """
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    groups = {}
    for name, pairs in ((CURATORS, curator_codenames()), (RESEARCHERS, researcher_codenames(apps))):
        group, _created = group_model.objects.using(using).get_or_create(name=name)
        group.permissions.set(_permissions(permission_model, pairs, using))
        groups[name] = group
    return groups


def sync_roles_after_migrate(sender, app_config=None, using=DEFAULT_DB_ALIAS, apps=global_apps, **kwargs):
    """post_migrate handler: sync the roles once the scoring app's permissions exist.

    Django sends post_migrate once per app, in INSTALLED_APPS order. Each
    app's permissions are created by a handler of that app's signal, and
    scoring comes after comparisons, so the roles are built on the scoring
    signal. The explicit ``create_permissions`` calls make this independent
    of that order.
    """
    if app_config is None or app_config.label != "scoring":
        return
    try:
        for app_label in RESEARCHER_APPS:
            create_permissions(global_apps.get_app_config(app_label), verbosity=0, using=using, apps=apps)
        sync_roles(using=using, apps=apps)
    except LookupError as error:
        # A partial migrate: the historical models lack a model or permission.
        logger.info("Staff roles not synced yet: %s", error)
        return
    logger.debug("Synced the %s and %s groups", CURATORS, RESEARCHERS)
