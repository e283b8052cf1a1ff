"""Invite links: confirming, joining, passwordless accounts and returning participants."""

from urllib.parse import urlencode

import pytest
from django.contrib.auth import SESSION_KEY, get_user_model
from django.test import Client
from django.urls import reverse

from comparisons.models import Membership
from tests.factories import make_cohort, make_rater

pytestmark = pytest.mark.django_db

User = get_user_model()

PROLIFIC = {"PROLIFIC_PID": "5f2a9c0e1b2c3d4e5f6a7b8c", "STUDY_ID": "64aa00bb11cc22dd33ee44ff", "SESSION_ID": "sess_01"}
MTURK = {"workerId": "A1B2C3D4E5F6G7", "assignmentId": "3ABCDEF0123456789XYZ", "hitId": "3HITID0123456789"}


def join_url(cohort):
    return reverse("join", args=[cohort.invite_token])


def logged_in_user(client):
    user_id = client.session.get(SESSION_KEY)
    return User.objects.get(pk=user_id) if user_id else None


def join(client, cohort, params=None):
    return client.post(join_url(cohort) + _query(params), follow=False)


def _query(params):
    return "?" + urlencode(params) if params else ""


@pytest.fixture
def cohort():
    return make_cohort(name="Evening light")


def test_get_shows_confirmation_and_changes_nothing(client, cohort):
    response = client.get(join_url(cohort) + _query(PROLIFIC))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Evening light" in content
    assert 'method="post"' in content
    # The form posts back with the participant ids.
    assert "PROLIFIC_PID=5f2a9c0e1b2c3d4e5f6a7b8c" in content
    assert not Membership.objects.exists()
    assert logged_in_user(client) is None


def test_anonymous_join_creates_passwordless_account_and_logs_in(client, cohort):
    response = join(client, cohort)

    assert response.status_code == 302
    assert response["Location"] == reverse("compare", args=[cohort.slug])
    membership = Membership.objects.get()
    user = logged_in_user(client)
    assert membership.user == user
    assert membership.cohort == cohort
    assert membership.status == Membership.Status.ACTIVE
    assert membership.platform == ""
    assert user.has_usable_password() is False
    assert user.username.startswith("rater-")
    assert client.get(reverse("compare", args=[cohort.slug])).status_code == 200


def test_logged_in_user_joins_with_own_account(client, cohort):
    user = make_rater()
    user.set_password("a long test password")
    user.save()
    client.force_login(user)

    join(client, cohort)

    assert Membership.objects.get().user == user
    assert User.objects.count() == 1
    assert logged_in_user(client) == user


def test_joining_twice_keeps_one_membership(client, cohort):
    join(client, cohort)
    join(client, cohort)

    assert Membership.objects.count() == 1
    assert User.objects.count() == 1


def test_prolific_ids_are_stored(client, cohort):
    join(client, cohort, PROLIFIC)

    membership = Membership.objects.get()
    assert membership.platform == Membership.Platform.PROLIFIC
    assert membership.participant_id == PROLIFIC["PROLIFIC_PID"]
    assert membership.study_id == PROLIFIC["STUDY_ID"]
    assert membership.session_id == PROLIFIC["SESSION_ID"]


def test_mturk_ids_are_stored(client, cohort):
    join(client, cohort, MTURK)

    membership = Membership.objects.get()
    assert membership.platform == Membership.Platform.MTURK
    assert membership.participant_id == MTURK["workerId"]
    assert membership.study_id == MTURK["hitId"]
    assert membership.session_id == MTURK["assignmentId"]


@pytest.mark.parametrize("params", [PROLIFIC, MTURK], ids=["prolific", "mturk"])
def test_returning_participant_gets_same_account(cohort, params):
    first_device = Client()
    join(first_device, cohort, params)
    first_user = logged_in_user(first_device)

    second_device = Client()
    response = join(second_device, cohort, params)

    assert response.status_code == 302
    assert logged_in_user(second_device) == first_user
    assert Membership.objects.count() == 1
    assert User.objects.count() == 1


def test_returning_participant_keeps_first_session_id(cohort):
    join(Client(), cohort, PROLIFIC)

    join(Client(), cohort, {**PROLIFIC, "SESSION_ID": "sess_02"})

    assert Membership.objects.get().session_id == "sess_01"


def test_participant_id_brings_same_account_into_another_cohort(cohort):
    join(Client(), cohort, PROLIFIC)
    first_user = Membership.objects.get().user
    second_cohort = make_cohort()

    device = Client()
    join(device, second_cohort, {**PROLIFIC, "STUDY_ID": "another_study"})

    assert logged_in_user(device) == first_user
    membership = Membership.objects.get(cohort=second_cohort)
    assert membership.user == first_user
    assert membership.participant_id == PROLIFIC["PROLIFIC_PID"]
    assert membership.study_id == "another_study"


def test_new_participant_on_shared_device_gets_new_account(client, cohort):
    join(client, cohort, PROLIFIC)
    first_user = logged_in_user(client)

    join(client, cohort, {**PROLIFIC, "PROLIFIC_PID": "aaaaaaaaaaaaaaaaaaaaaaaa"})

    second_user = logged_in_user(client)
    assert second_user != first_user
    assert Membership.objects.get(user=second_user).participant_id == "aaaaaaaaaaaaaaaaaaaaaaaa"
    assert Membership.objects.get(user=first_user).participant_id == PROLIFIC["PROLIFIC_PID"]


def test_passwordless_account_switches_to_participant_owner(client, cohort):
    join(Client(), cohort, PROLIFIC)
    owner = Membership.objects.get().user
    join(client, cohort)
    assert logged_in_user(client) != owner

    join(client, cohort, PROLIFIC)

    assert logged_in_user(client) == owner


def test_password_account_cannot_take_another_participants_id(client, cohort):
    join(Client(), cohort, PROLIFIC)
    staff = User.objects.create_user("curator", password="a long test password", is_staff=True)
    client.force_login(staff)

    response = join(client, cohort, PROLIFIC)

    assert response.status_code == 409
    assert "Log out" in response.content.decode()
    assert logged_in_user(client) == staff
    assert not Membership.objects.filter(user=staff).exists()


def test_join_ids_fill_an_existing_membership_without_ids(client, cohort):
    user = make_rater(cohort)
    client.force_login(user)

    join(client, cohort, MTURK)

    membership = Membership.objects.get()
    assert membership.user == user
    assert membership.participant_id == MTURK["workerId"]


@pytest.mark.parametrize(
    "params, mentions",
    [
        ({"PROLIFIC_PID": ""}, "PROLIFIC_PID is empty"),
        ({"PROLIFIC_PID": "x" * 129}, "129 characters"),
        ({"PROLIFIC_PID": "abc def"}, "abc def"),
        ({"PROLIFIC_PID": "{{%PROLIFIC_PID%}}"}, "placeholder"),
        ({"PROLIFIC_PID": "abc", "STUDY_ID": "s/../1"}, "STUDY_ID"),
        ({"STUDY_ID": "study1"}, "missing PROLIFIC_PID"),
        ({"hitId": "HIT1", "assignmentId": "A1"}, "missing workerId"),
        ({"workerId": "W1<script>"}, "workerId"),
        ({"PROLIFIC_PID": "abc", "workerId": "W1"}, "both Prolific and MTurk"),
    ],
)
def test_invalid_participant_parameters_are_400(client, cohort, params, mentions):
    for method in (client.get, client.post):
        response = method(join_url(cohort) + _query(params))

        assert response.status_code == 400
        assert mentions in response.content.decode()
    assert not Membership.objects.exists()
    assert not User.objects.exists()
    assert logged_in_user(client) is None


def test_mturk_preview_shows_no_join_button(client, cohort):
    params = {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "HIT1"}

    page = client.get(join_url(cohort) + _query(params))
    posted = client.post(join_url(cohort) + _query(params))

    assert page.status_code == 200
    assert "Accept the task on MTurk" in page.content.decode()
    assert 'method="post"' not in page.content.decode().split("<main", 1)[1]
    assert posted.status_code == 200
    assert not Membership.objects.exists()


def test_unknown_token_is_404(client):
    assert client.get(reverse("join", args=["no-such-token"])).status_code == 404
    assert client.post(reverse("join", args=["no-such-token"])).status_code == 404


def test_closed_cohort_takes_no_members(client, cohort):
    cohort.is_open = False
    cohort.save()

    page = client.get(join_url(cohort))
    response = join(client, cohort)

    assert "closed" in page.content.decode()
    assert response.status_code == 409
    assert not Membership.objects.exists()
    assert not User.objects.exists()


def test_join_does_not_reactivate_flagged_member(client, cohort):
    user = make_rater(cohort, status=Membership.Status.FLAGGED)
    client.force_login(user)

    join(client, cohort)

    assert Membership.objects.get().status == Membership.Status.FLAGGED


def test_join_post_needs_csrf_token(cohort):
    browser = Client(enforce_csrf_checks=True)

    rejected = browser.post(join_url(cohort))
    page = browser.get(join_url(cohort))
    token = page.context["csrf_token"]
    accepted = browser.post(join_url(cohort), {"csrfmiddlewaretoken": str(token)})

    assert rejected.status_code == 403
    assert accepted.status_code == 302
    assert Membership.objects.count() == 1
