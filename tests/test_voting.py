"""The vote endpoint and record_judgment: who may vote, what is stored, what is rejected."""

import datetime
import json
import threading

import pytest
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from comparisons.actions import ActionError, record_judgment
from comparisons.actions.voting import store_judgment
from comparisons.models import Comparison, Judgment, Membership
from tests.factories import make_cohort, make_pool, make_rater

pytestmark = pytest.mark.django_db


def next_pair(client, cohort):
    response = client.get(reverse("next_pair", args=[cohort.slug]))
    assert response.status_code == 200, response.content
    return response.json()


def post_vote(client, cohort, body):
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    return client.post(reverse("vote", args=[cohort.slug]), body, content_type="application/json")


def vote(client, cohort, comparison_id, choice="left", client_ms=1800):
    return post_vote(client, cohort, {"comparison": comparison_id, "choice": choice, "client_ms": client_ms})


def age_comparison(comparison_id, seconds):
    Comparison.objects.filter(pk=comparison_id).update(served_at=timezone.now() - datetime.timedelta(seconds=seconds))


@pytest.fixture
def cohort():
    return make_cohort(pool=make_pool(n_images=6))


@pytest.fixture
def rater(cohort):
    return make_rater(cohort)


@pytest.fixture
def rater_client(client, rater):
    client.force_login(rater)
    return client


def test_vote_stores_judgment_and_returns_next_pair(rater_client, cohort, rater):
    served = next_pair(rater_client, cohort)["comparison"]

    response = vote(rater_client, cohort, served["id"], "right", client_ms=2345)

    assert response.status_code == 201
    body = response.json()
    judgment = Judgment.objects.get()
    assert body["judgment"]["id"] == judgment.pk
    assert body["judgment"]["created"] is True
    assert judgment.comparison_id == served["id"]
    assert judgment.comparison.rater == rater
    assert judgment.comparison.cohort == cohort
    assert judgment.choice == "right"
    assert judgment.client_ms == 2345
    assert judgment.server_ms >= 0
    assert judgment.is_simulated is False
    following = body["next"]["comparison"]
    assert following["id"] != served["id"]
    assert {following["left"]["id"], following["right"]["id"]} != {served["left"]["id"], served["right"]["id"]}
    assert body["next"]["progress"]["judged_total"] == 1


def test_vote_without_client_ms_stores_null(rater_client, cohort):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]

    response = post_vote(rater_client, cohort, {"comparison": comparison_id, "choice": "tie"})

    assert response.status_code == 201
    assert Judgment.objects.get().client_ms is None


def test_vote_on_others_comparison_is_403(client, cohort, rater):
    client.force_login(rater)
    comparison_id = next_pair(client, cohort)["comparison"]["id"]
    intruder = Client()
    intruder.force_login(make_rater(cohort))

    response = vote(intruder, cohort, comparison_id)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_your_comparison"
    assert not Judgment.objects.exists()


def test_vote_as_non_member_is_403(rater_client, cohort):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    other = make_cohort(pool=cohort.pool)

    response = vote(rater_client, other, comparison_id)

    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "not_member"
    assert "invite link" in error["message"]
    assert not Judgment.objects.exists()


def test_vote_for_comparison_of_another_cohort_is_400(rater_client, cohort, rater):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    other = make_cohort(pool=cohort.pool)
    Membership.objects.create(user=rater, cohort=other)

    response = vote(rater_client, other, comparison_id)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "wrong_cohort"
    assert not Judgment.objects.exists()


def test_vote_for_unknown_comparison_is_404(rater_client, cohort):
    response = vote(rater_client, cohort, 987654)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "comparison_not_found"


@pytest.mark.parametrize(
    "status, code",
    [(Membership.Status.FLAGGED, "membership_flagged"), (Membership.Status.INACTIVE, "membership_inactive")],
)
def test_vote_by_blocked_member_is_403_with_reason(rater_client, cohort, rater, status, code):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    Membership.objects.filter(user=rater, cohort=cohort).update(status=status)

    response = vote(rater_client, cohort, comparison_id)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert not Judgment.objects.exists()


def test_vote_in_closed_cohort_is_403(rater_client, cohort):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    cohort.is_open = False
    cohort.save()

    response = vote(rater_client, cohort, comparison_id)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "cohort_closed"
    assert not Judgment.objects.exists()


@pytest.mark.parametrize(
    "body, mentions",
    [
        (b"{not json", "JSON"),
        (b"\xff\xfe", "JSON"),
        ("[1, 2]", "JSON object"),
        ({"choice": "left", "client_ms": 100}, "comparison"),
        ({"comparison": "COMPARISON", "choice": "left"}, "comparison"),
        ({"comparison": True, "choice": "left"}, "comparison"),
        ({"comparison": -3, "choice": "left"}, "comparison"),
        ({"comparison": 1.5, "choice": "left"}, "comparison"),
        ({"comparison": "COMPARISON"}, "comparison"),
        ({"comparison": "ID", "choice": "up"}, "choice"),
        ({"comparison": "ID", "choice": None}, "choice"),
        ({"comparison": "ID", "choice": "left", "client_ms": -1}, "client_ms"),
        ({"comparison": "ID", "choice": "left", "client_ms": 12.5}, "client_ms"),
        ({"comparison": "ID", "choice": "left", "client_ms": "900"}, "client_ms"),
        ({"comparison": "ID", "choice": "left", "client_ms": True}, "client_ms"),
        ({"comparison": "ID", "choice": "left", "client_ms": 2**31}, "client_ms"),
    ],
)
def test_malformed_vote_is_400_with_reason(rater_client, cohort, body, mentions):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    if isinstance(body, dict):
        body = {key: comparison_id if value == "ID" else value for key, value in body.items()}

    response = post_vote(rater_client, cohort, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_vote"
    assert mentions in error["message"]
    assert not Judgment.objects.exists()


def test_same_answer_again_returns_stored_judgment(rater_client, cohort):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    first = vote(rater_client, cohort, comparison_id, "left")

    again = vote(rater_client, cohort, comparison_id, "left", client_ms=99999)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["judgment"]["id"] == first.json()["judgment"]["id"]
    assert again.json()["judgment"]["created"] is False
    assert Judgment.objects.count() == 1
    assert Judgment.objects.get().client_ms == 1800
    # The replay shows the same next pair as the first answer did.
    assert again.json()["next"]["comparison"]["id"] == first.json()["next"]["comparison"]["id"]


def test_different_answer_is_409_and_keeps_the_first(rater_client, cohort):
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    vote(rater_client, cohort, comparison_id, "left")

    response = vote(rater_client, cohort, comparison_id, "right")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "already_answered"
    assert Judgment.objects.get().choice == "left"


def test_answer_faster_than_min_view_time_is_422(rater_client, cohort):
    cohort.min_view_ms = 60_000
    cohort.save()
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]

    response = vote(rater_client, cohort, comparison_id)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_fast"
    assert "60000" in response.json()["error"]["message"]
    assert 1 <= int(response["Retry-After"]) <= 60
    assert not Judgment.objects.exists()


def test_slow_answer_stores_server_ms(rater_client, cohort):
    cohort.min_view_ms = 60_000
    cohort.save()
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]
    age_comparison(comparison_id, 61)

    response = vote(rater_client, cohort, comparison_id, client_ms=60500)

    assert response.status_code == 201
    judgment = Judgment.objects.get()
    assert judgment.server_ms >= 61_000
    assert judgment.client_ms == 60500


def test_reload_returns_the_same_open_comparison(rater_client, cohort):
    first = next_pair(rater_client, cohort)["comparison"]

    second = next_pair(rater_client, cohort)["comparison"]

    assert second == first
    assert Comparison.objects.count() == 1
    stored = Comparison.objects.get()
    assert (stored.left_id, stored.right_id) == (first["left"]["id"], first["right"]["id"])


def test_upcoming_pair_is_served_after_the_vote(rater_client, cohort):
    served = next_pair(rater_client, cohort)
    upcoming = served["upcoming"]
    # Reloading does not draw a different upcoming pair.
    assert next_pair(rater_client, cohort)["upcoming"] == upcoming

    following = vote(rater_client, cohort, served["comparison"]["id"]).json()["next"]["comparison"]

    assert following["left"] == upcoming["left"]
    assert following["right"] == upcoming["right"]


def test_left_right_order_is_randomised_and_stored(rater_client, cohort):
    orders = []
    served = next_pair(rater_client, cohort)
    while served["comparison"]:
        comparison = served["comparison"]
        orders.append(comparison["left"]["id"] < comparison["right"]["id"])
        served = vote(rater_client, cohort, comparison["id"], "skip").json()["next"]

    # Six clips: 15 pairs, all served once.
    assert len(orders) == 15
    assert served["end"]["code"] == "all_judged"
    assert any(orders)
    assert not all(orders)
    stored = Comparison.objects.order_by("id")
    assert [c.left_id < c.right_id for c in stored] == orders


@pytest.fixture
def rate_limit_two(settings):
    settings.SALON = {**settings.SALON, "VOTE_RATE_LIMIT_PER_MINUTE": 2, "SIMULATED_RATERS_EXEMPT": True}


def vote_three_times(client, cohort):
    comparison_id = next_pair(client, cohort)["comparison"]["id"]
    statuses = []
    for _ in range(3):
        response = vote(client, cohort, comparison_id)
        statuses.append(response.status_code)
        if response.status_code == 201:
            comparison_id = response.json()["next"]["comparison"]["id"]
    return statuses, response


def test_rate_limit_answers_429_with_retry_after(rate_limit_two, rater_client, cohort):
    statuses, response = vote_three_times(rater_client, cohort)

    assert statuses == [201, 201, 429]
    assert response.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Judgment.objects.count() == 2


def test_rate_limit_counts_votes_in_all_cohorts(rate_limit_two, rater_client, cohort, rater):
    other = make_cohort(pool=cohort.pool)
    Membership.objects.create(user=rater, cohort=other)
    for target in (cohort, other):
        comparison_id = next_pair(rater_client, target)["comparison"]["id"]
        assert vote(rater_client, target, comparison_id).status_code == 201

    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]

    assert vote(rater_client, cohort, comparison_id).status_code == 429


def test_rate_limit_ignores_votes_older_than_a_minute(rate_limit_two, rater_client, cohort):
    statuses, _ = vote_three_times(rater_client, cohort)
    assert statuses[-1] == 429
    Judgment.objects.update(created_at=timezone.now() - datetime.timedelta(seconds=61))
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]

    assert vote(rater_client, cohort, comparison_id).status_code == 201


def test_rate_limit_zero_is_off(settings, rater_client, cohort):
    settings.SALON = {**settings.SALON, "VOTE_RATE_LIMIT_PER_MINUTE": 0}

    statuses, _ = vote_three_times(rater_client, cohort)

    assert statuses == [201, 201, 201]


def test_simulated_rater_is_exempt_from_limits_when_enabled(rate_limit_two, client, cohort):
    cohort.min_view_ms = 60_000
    cohort.save()
    simulated = make_rater(cohort, is_simulated=True)
    client.force_login(simulated)

    statuses, _ = vote_three_times(client, cohort)

    assert statuses == [201, 201, 201]
    assert all(judgment.is_simulated for judgment in Judgment.objects.all())


def test_simulated_rater_is_limited_when_exemption_is_off(settings, client, cohort):
    settings.SALON = {**settings.SALON, "VOTE_RATE_LIMIT_PER_MINUTE": 2, "SIMULATED_RATERS_EXEMPT": False}
    simulated = make_rater(cohort, is_simulated=True)
    client.force_login(simulated)

    statuses, _ = vote_three_times(client, cohort)

    assert statuses == [201, 201, 429]


def test_simulated_min_view_without_exemption(settings, client, cohort):
    settings.SALON = {**settings.SALON, "SIMULATED_RATERS_EXEMPT": False}
    cohort.min_view_ms = 60_000
    cohort.save()
    client.force_login(make_rater(cohort, is_simulated=True))
    comparison_id = next_pair(client, cohort)["comparison"]["id"]

    assert vote(client, cohort, comparison_id).status_code == 422


def test_human_rater_is_not_exempt(rate_limit_two, rater_client, cohort):
    cohort.min_view_ms = 60_000
    cohort.save()
    comparison_id = next_pair(rater_client, cohort)["comparison"]["id"]

    assert vote(rater_client, cohort, comparison_id).status_code == 422


def test_vote_needs_login_and_post(client, rater_client, cohort):
    url = reverse("vote", args=[cohort.slug])

    assert rater_client.get(url).status_code == 405
    anonymous = Client()
    response = anonymous.post(url, "{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "login_required"


def test_vote_needs_csrf_token(cohort, rater):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(rater)
    page = browser.get(reverse("compare", args=[cohort.slug]))
    token = page.context["config"]["csrfToken"]
    comparison_id = next_pair(browser, cohort)["comparison"]["id"]
    body = json.dumps({"comparison": comparison_id, "choice": "left", "client_ms": 1})
    url = reverse("vote", args=[cohort.slug])

    without = browser.post(url, body, content_type="application/json")
    with_token = browser.post(url, body, content_type="application/json", headers={"X-CSRFToken": token})

    assert without.status_code == 403
    assert with_token.status_code == 201


def test_store_judgment_returns_concurrent_winner(cohort, rater):
    """The insert that loses the one-to-one race returns the winner's row."""
    left, right = cohort.pool.clips.all()[:2]
    comparison = Comparison.objects.create(cohort=cohort, rater=rater, left=left, right=right)
    winner = Judgment.objects.create(comparison=comparison, choice="left", server_ms=1000)

    with transaction.atomic():
        judgment, created = store_judgment(comparison, choice="left", client_ms=5, server_ms=1100)
        # The savepoint rolled back only the failed insert: the transaction still works.
        assert Judgment.objects.filter(comparison=comparison).count() == 1

    assert created is False
    assert judgment.pk == winner.pk
    assert judgment.server_ms == 1000


def test_record_judgment_raises_for_non_member(cohort, rater):
    left, right = cohort.pool.clips.all()[:2]
    comparison = Comparison.objects.create(cohort=cohort, rater=rater, left=left, right=right)

    with pytest.raises(ActionError) as raised:
        record_judgment(cohort=cohort, rater=make_rater(), comparison_id=comparison.pk, choice="left")

    assert raised.value.status == 403
    assert raised.value.code == "not_member"


@pytest.mark.django_db(transaction=True)
def test_double_submit_at_once_stores_one_judgment():
    cohort = make_cohort(pool=make_pool(n_images=4))
    rater = make_rater(cohort)
    opener = Client()
    opener.force_login(rater)
    comparison_id = next_pair(opener, cohort)["comparison"]["id"]
    barrier = threading.Barrier(2)
    results = []

    def submit():
        client = Client()
        client.force_login(rater)
        barrier.wait()
        try:
            response = vote(client, cohort, comparison_id)
            results.append((response.status_code, response.json()["judgment"]["id"]))
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(status for status, _ in results) == [200, 201]
    assert len({judgment_id for _, judgment_id in results}) == 1
    assert Judgment.objects.filter(comparison_id=comparison_id).count() == 1
