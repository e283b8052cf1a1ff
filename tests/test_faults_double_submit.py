"""Double submits and retried vote requests: one judgment per comparison, whatever arrives twice.

A rater's browser may send a vote twice: a double click, a retry after a
timeout whose first request did reach the server, or two tabs. The same answer
again returns the stored judgment (200 after the first 201) and stores
nothing; a different answer is a 409 and leaves the first one stored. These
tests send the requests through the real view, from threads with their own
database connections where the requests overlap.
"""

import json
import threading

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse

from comparisons.models import Comparison, Judgment
from tests.factories import make_cohort, make_pool, make_rater

SUBMITTERS = 6


def rater_client(rater):
    client = Client()
    client.force_login(rater)
    return client


def open_comparison(client, cohort):
    response = client.get(reverse("next_pair", args=[cohort.slug]))
    assert response.status_code == 200, response.content
    return response.json()["comparison"]["id"]


def send_vote(client, cohort, comparison_id, choice):
    body = json.dumps({"comparison": comparison_id, "choice": choice, "client_ms": 1700})
    return client.post(reverse("vote", args=[cohort.slug]), body, content_type="application/json")


def submit_at_once(rater, cohort, comparison_id, choices):
    """Send one vote per entry of ``choices`` from parallel threads released together.

    Return ``(status, body)`` pairs in the order of ``choices``.
    """
    barrier = threading.Barrier(len(choices))
    results = [None] * len(choices)

    def submit(index):
        client = rater_client(rater)
        barrier.wait()
        try:
            response = send_vote(client, cohort, comparison_id, choices[index])
            results[index] = (response.status_code, response.json())
        finally:
            connection.close()

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(len(choices))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert all(result is not None for result in results), results
    return results


@pytest.fixture
def cohort():
    return make_cohort(pool=make_pool(n_images=6))


@pytest.mark.django_db
def test_sequential_resend_returns_stored_judgment(cohort):
    rater = make_rater(cohort)
    client = rater_client(rater)
    comparison_id = open_comparison(client, cohort)

    first = send_vote(client, cohort, comparison_id, "left")
    again = send_vote(client, cohort, comparison_id, "left")

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["judgment"]["id"] == first.json()["judgment"]["id"]
    assert again.json()["judgment"]["created"] is False
    assert Judgment.objects.filter(comparison_id=comparison_id).count() == 1


@pytest.mark.django_db
def test_retry_after_next_pair_served_changes_nothing(cohort):
    """A retry that arrives after the first response served the next pair neither stores nor serves more."""
    rater = make_rater(cohort)
    client = rater_client(rater)
    comparison_id = open_comparison(client, cohort)
    first = send_vote(client, cohort, comparison_id, "right")
    served_next = first.json()["next"]["comparison"]["id"]

    retry = send_vote(client, cohort, comparison_id, "right")

    assert retry.status_code == 200
    assert retry.json()["judgment"]["id"] == first.json()["judgment"]["id"]
    assert retry.json()["next"]["comparison"]["id"] == served_next
    assert Judgment.objects.count() == 1
    assert Comparison.objects.filter(rater=rater).count() == 2


@pytest.mark.django_db
def test_sequential_different_answer_is_409(cohort):
    rater = make_rater(cohort)
    client = rater_client(rater)
    comparison_id = open_comparison(client, cohort)

    first = send_vote(client, cohort, comparison_id, "left")
    changed = send_vote(client, cohort, comparison_id, "tie")

    assert first.status_code == 201
    assert changed.status_code == 409
    assert changed.json()["error"]["code"] == "already_answered"
    assert Judgment.objects.get(comparison_id=comparison_id).choice == "left"


@pytest.mark.django_db(transaction=True)
def test_concurrent_same_vote_stores_one_judgment(cohort):
    rater = make_rater(cohort)
    comparison_id = open_comparison(rater_client(rater), cohort)

    results = submit_at_once(rater, cohort, comparison_id, ["left"] * SUBMITTERS)

    statuses = sorted(status for status, _body in results)
    assert statuses == [200] * (SUBMITTERS - 1) + [201]
    judgment_ids = {body["judgment"]["id"] for _status, body in results}
    assert len(judgment_ids) == 1
    assert Judgment.objects.filter(comparison_id=comparison_id).count() == 1
    assert Judgment.objects.get(comparison_id=comparison_id).pk == judgment_ids.pop()


@pytest.mark.django_db(transaction=True)
def test_concurrent_different_answers_keep_one(cohort):
    rater = make_rater(cohort)
    comparison_id = open_comparison(rater_client(rater), cohort)
    choices = ["left", "right"] * (SUBMITTERS // 2)

    results = submit_at_once(rater, cohort, comparison_id, choices)

    stored = Judgment.objects.get(comparison_id=comparison_id)
    created = [choice for choice, (status, _body) in zip(choices, results) if status == 201]
    assert created == [stored.choice]
    for choice, (status, body) in zip(choices, results):
        if status == 201:
            continue
        if choice == stored.choice:
            assert status == 200
            assert body["judgment"]["id"] == stored.pk
        else:
            assert status == 409
            assert body["error"]["code"] == "already_answered"
    assert Judgment.objects.count() == 1
