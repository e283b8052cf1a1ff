"""Salon's log records carry ids, never personal data.

A rater joins through an invite link with Prolific ids, logs in with a
username, e-mail and password, fetches pairs and votes (accepted, repeated,
conflicting and malformed), from a known IP address. Every record written
by Salon's own loggers (``comparisons``, ``scoring``, ``taste_site``) at any
level is then searched for those values.
"""

import json
import logging

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from comparisons.models import Membership
from tests.factories import make_cohort, make_pool

pytestmark = pytest.mark.django_db

SALON_LOGGERS = ("comparisons", "scoring", "taste_site")
USERNAME = "zzq-priv-username-5521"
EMAIL = "zzq.priv.5521@mail.example"
PASSWORD = "zzq-priv-password-5521"
PARTICIPANT_ID = "PIDZZQPRIV5521"
STUDY_ID = "STUDYZZQPRIV5521"
SESSION_ID = "SESSIONZZQPRIV5521"
IP_ADDRESS = "198.51.100.77"
FORWARDED_IP = "203.0.113.45"
PERSONAL = (USERNAME, EMAIL, PASSWORD, PARTICIPANT_ID, STUDY_ID, SESSION_ID, IP_ADDRESS, FORWARDED_IP)


def record_text(record):
    """Return everything a handler could write for ``record``: message, arguments, exception."""
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


@pytest.fixture
def salon_records(caplog):
    """Capture every record of Salon's loggers, DEBUG included."""
    for name in SALON_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    yield lambda: [record for record in caplog.records if record.name.split(".")[0] in SALON_LOGGERS]


def browser():
    return Client(REMOTE_ADDR=IP_ADDRESS, HTTP_X_FORWARDED_FOR=FORWARDED_IP, HTTP_USER_AGENT="privacy-check/1.0")


def vote(client, cohort, comparison_id, choice):
    body = json.dumps({"comparison": comparison_id, "choice": choice, "client_ms": 1900})
    return client.post(reverse("vote", args=[cohort.slug]), body, content_type="application/json")


def test_join_login_and_votes_log_no_personal_data(salon_records):
    cohort = make_cohort(pool=make_pool(n_images=5))
    query = f"?PROLIFIC_PID={PARTICIPANT_ID}&STUDY_ID={STUDY_ID}&SESSION_ID={SESSION_ID}"

    joiner = browser()
    assert joiner.post(cohort.get_join_url() + query).status_code == 302
    assert browser().post(cohort.get_join_url() + query).status_code == 302  # a returning participant
    assert browser().get(cohort.get_join_url() + "?PROLIFIC_PID=" + PARTICIPANT_ID + "!").status_code == 400

    member = Membership.objects.get(participant_id=PARTICIPANT_ID)
    user = member.user
    user.username, user.email = USERNAME, EMAIL
    user.set_password(PASSWORD)
    user.save()
    client = browser()
    assert client.post(reverse("login"), {"username": USERNAME, "password": "wrong " + PASSWORD}).status_code == 200
    assert client.post(reverse("login"), {"username": USERNAME, "password": PASSWORD}).status_code == 302

    first = client.get(reverse("next_pair", args=[cohort.slug])).json()["comparison"]["id"]
    assert vote(client, cohort, first, "left").status_code == 201
    assert vote(client, cohort, first, "left").status_code == 200
    assert vote(client, cohort, first, "right").status_code == 409
    assert vote(client, cohort, 10**9, "left").status_code == 404
    malformed = client.post(reverse("vote", args=[cohort.slug]), "{", content_type="application/json")
    assert malformed.status_code == 400

    records = salon_records()
    assert len(records) >= 3, "Salon logged too little for this check to mean anything"
    for record in records:
        text = record_text(record)
        for value in PERSONAL:
            assert value not in text, f"{record.name} logged {value!r}: {text}"


def test_user_row_is_not_logged_by_str(salon_records):
    """Log calls pass ids: the User's str() (its username) never reaches a record's arguments."""
    user = get_user_model().objects.create_user(USERNAME, email=EMAIL)
    cohort = make_cohort(pool=make_pool(n_images=4))
    Membership.objects.create(user=user, cohort=cohort, platform="prolific", participant_id=PARTICIPANT_ID)
    client = browser()
    client.force_login(user)

    comparison_id = client.get(reverse("next_pair", args=[cohort.slug])).json()["comparison"]["id"]
    vote(client, cohort, comparison_id, "tie")

    for record in salon_records():
        for argument in record.args if isinstance(record.args, tuple) else ():
            assert not isinstance(argument, (get_user_model(), Membership)), f"{record.name}: {record.msg}"
