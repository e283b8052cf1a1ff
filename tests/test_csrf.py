"""CSRF protection on every form and JSON POST.

Django's CSRF middleware checks every POST unless a view is exempt. These
tests check that no route is exempt (in the URL configuration and by
sending a token-less POST to every route), and that the real forms and the
vote endpoint work once the token that the page carries is sent back. They
use ``Client(enforce_csrf_checks=True)``; the default test client skips the
check.
"""

import json
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from comparisons.models import Cohort, Export, Judgment, Membership
from scoring.models import TasteModel
from tests.factories import make_cohort, make_pool, make_rater
from tests.test_permissions_matrix import MATRIX, admin_paths, all_routes, build_world

pytestmark = pytest.mark.django_db

CSRF_FAILED = b"CSRF verification failed"
FORM_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def browser(user=None):
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


def form_token(response):
    match = FORM_TOKEN.search(response.content.decode())
    assert match, "the page has no CSRF token field"
    return match.group(1)


def assert_csrf_rejected(response, where):
    assert response.status_code == 403, f"{where}: {response.status_code}"
    assert CSRF_FAILED in response.content, f"{where}: 403 for another reason"


def test_no_route_is_csrf_exempt():
    exempt = [name or route for route, name, pattern in all_routes() if getattr(pattern.callback, "csrf_exempt", False)]

    assert exempt == []


@pytest.mark.parametrize("role", ["anonymous", "rater_a", "superuser"])
def test_post_without_token_is_rejected_everywhere(role, tmp_path, settings):
    """A token-less POST to any route is a CSRF 403, or 405 where the route takes no POST."""
    world = build_world(tmp_path, settings)
    client = browser(world.users[role])
    paths = [(name, row.url(world)) for name, row in MATRIX.items() if not name.startswith("admin:")]
    paths += list(admin_paths())
    judgments_before = Judgment.objects.count()

    for name, path in paths:
        response = client.post(path, {"anything": "1"})
        if response.status_code == 405:
            continue
        assert_csrf_rejected(response, f"POST {path} ({name}) as {role}")

    assert Judgment.objects.count() == judgments_before
    assert len(paths) > 60


def test_vote_json_needs_the_page_token():
    cohort = make_cohort(pool=make_pool(n_images=4))
    client = browser(make_rater(cohort))
    token = client.get(reverse("compare", args=[cohort.slug])).context["config"]["csrfToken"]
    comparison_id = client.get(reverse("next_pair", args=[cohort.slug])).json()["comparison"]["id"]
    body = json.dumps({"comparison": comparison_id, "choice": "right", "client_ms": 2100})
    url = reverse("vote", args=[cohort.slug])

    without = client.post(url, body, content_type="application/json")
    wrong = client.post(url, body, content_type="application/json", headers={"X-CSRFToken": "x" * 64})
    with_token = client.post(url, body, content_type="application/json", headers={"X-CSRFToken": token})

    assert_csrf_rejected(without, "vote without token")
    assert_csrf_rejected(wrong, "vote with a wrong token")
    assert with_token.status_code == 201
    assert Judgment.objects.count() == 1


def test_join_form_needs_its_token():
    cohort = make_cohort(pool=make_pool(n_images=4))
    client = browser()
    url = cohort.get_join_url() + "?PROLIFIC_PID=csrf-check-1"
    page = client.get(url)

    without = client.post(url)
    members_after_rejection = Membership.objects.filter(cohort=cohort).count()
    with_token = client.post(url, {"csrfmiddlewaretoken": form_token(page)})

    assert_csrf_rejected(without, "join without token")
    assert members_after_rejection == 0
    assert with_token.status_code == 302
    assert Membership.objects.filter(cohort=cohort, participant_id="csrf-check-1").count() == 1


def test_login_and_logout_forms_need_their_tokens():
    get_user_model().objects.create_user("csrf-user", password="a long enough password 1")
    client = browser()
    page = client.get(reverse("login"))
    credentials = {"username": "csrf-user", "password": "a long enough password 1"}

    without = client.post(reverse("login"), credentials)
    logged_in = client.post(reverse("login"), {**credentials, "csrfmiddlewaretoken": form_token(page)})
    home = client.get(reverse("home"))
    logout_without = client.post(reverse("logout"))
    # Logging in rotates the token; the new one is in the cookie.
    logout = client.post(reverse("logout"), {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})

    assert_csrf_rejected(without, "login without token")
    assert logged_in.status_code == 302
    assert home.context["user"].username == "csrf-user"
    assert_csrf_rejected(logout_without, "logout without token")
    assert logout.status_code == 302
    assert client.get(reverse("home")).context["user"].is_authenticated is False


def test_export_form_needs_its_token(tmp_path, settings):
    world = build_world(tmp_path, settings)
    client = browser(world.users["researcher"])
    page = client.get(reverse("exports:index"))
    data = {"cohorts": [world.cohort_a.slug], "format": "csv", "action": "prepare"}
    before = Export.objects.count()

    without = client.post(reverse("exports:index"), data)
    count_after_rejection = Export.objects.count()
    with_token = client.post(reverse("exports:index"), {**data, "csrfmiddlewaretoken": form_token(page)})

    assert_csrf_rejected(without, "export without token")
    assert count_after_rejection == before
    assert with_token.status_code == 302
    assert Export.objects.count() == before + 1


def test_admin_forms_need_their_tokens(tmp_path, settings):
    world = build_world(tmp_path, settings)
    client = browser(world.users["superuser"])
    add_url = reverse("admin:comparisons_cohort_add")
    page = client.get(add_url)
    cohorts_before = Cohort.objects.count()

    without = client.post(add_url, {"name": "Via admin", "slug": "via-admin"})
    with_token = client.post(add_url, {"name": "Via admin", "slug": "via-admin", "csrfmiddlewaretoken": form_token(page)})

    assert_csrf_rejected(without, "admin add without token")
    # The token passed, so the form was validated: it lacks a pool, among others.
    assert with_token.status_code == 200
    assert "pool" in with_token.context["adminform"].form.errors
    assert Cohort.objects.count() == cohorts_before


def test_admin_activate_needs_a_token(tmp_path, settings):
    world = build_world(tmp_path, settings)
    version = TasteModel.objects.create(
        cohort=world.cohort_a, backbone="handcrafted:v1", version=1, status=TasteModel.Status.FINISHED,
        weights_mode="learned", margin=1.0, half_life_days=30.0, high_water_judgment_id=0,
    )
    client = browser(world.users["superuser"])
    page = client.get(reverse("admin:scoring_tastemodel_change", args=[version.pk]))
    url = reverse("admin:scoring_tastemodel_activate", args=[version.pk])

    without = client.post(url)
    active_after_rejection = TasteModel.objects.get(pk=version.pk).is_active
    with_token = client.post(url, {"csrfmiddlewaretoken": form_token(page)})

    assert_csrf_rejected(without, "activate without token")
    assert active_after_rejection is False
    assert with_token.status_code == 302
    assert TasteModel.objects.get(pk=version.pk).is_active is True
