"""The compare page, its next-pair JSON, end states, progress and the home page."""

import datetime
import json
import zoneinfo

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from comparisons.actions import EndState, serve_comparison
from comparisons.models import Clip, Comparison, Membership, Pool, Prompt
from tests.factories import make_clip, make_cohort, make_judgment, make_pool, make_rater

pytestmark = pytest.mark.django_db


def next_json(client, cohort):
    response = client.get(reverse("next_pair", args=[cohort.slug]))
    assert response.status_code == 200, response.content
    return response.json()


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def judge(cohort, rater, count, choice="left", answered_at=None):
    """Store ``count`` judgments on distinct pairs of the cohort's clips."""
    clips = list(cohort.pool.clips.order_by("id"))
    pairs = [(a, b) for i, a in enumerate(clips) for b in clips[i + 1:]]
    for left, right in pairs[:count]:
        make_judgment(cohort, rater, left, right, choice=choice, answered_at=answered_at)


def test_compare_page_needs_login(client):
    cohort = make_cohort()

    response = client.get(reverse("compare", args=[cohort.slug]))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_compare_page_403_for_non_member():
    cohort = make_cohort(name="Quiet forms")

    response = logged_in(make_rater()).get(reverse("compare", args=[cohort.slug]))

    assert response.status_code == 403
    content = response.content.decode()
    assert "Quiet forms" in content
    assert "invite link" in content


def test_compare_page_shows_question_instructions_and_config():
    cohort = make_cohort(question="Which clip moves more gracefully?", instructions="Watch both loops.\nThen pick.")
    client = logged_in(make_rater(cohort))

    response = client.get(reverse("compare", args=[cohort.slug]))

    assert response.status_code == 200
    content = response.content.decode()
    assert "Which clip moves more gracefully?" in content
    assert "Watch both loops." in content
    assert "salon/compare.js" in content
    for choice in ("left", "right", "tie", "skip"):
        assert f'data-choice="{choice}"' in content
    config = response.context["config"]
    assert config["nextUrl"] == reverse("next_pair", args=[cohort.slug])
    assert config["voteUrl"] == reverse("vote", args=[cohort.slug])
    assert config["csrfToken"]
    assert 'id="salon-config"' in content


def test_next_pair_json_describes_both_clips():
    pool = Pool.objects.create(name="captioned")
    pool.clips.add(make_clip(caption="a red kite"), make_clip(caption="a grey gull"))
    cohort = make_cohort(pool=pool, min_view_ms=900, daily_goal=20)
    client = logged_in(make_rater(cohort))

    data = next_json(client, cohort)

    comparison = Comparison.objects.get()
    assert data["comparison"]["id"] == comparison.pk
    assert data["comparison"]["left"]["id"] == comparison.left_id
    assert data["comparison"]["right"]["id"] == comparison.right_id
    left = data["comparison"]["left"]
    clip = Clip.objects.get(pk=left["id"])
    assert left["kind"] == "image"
    assert left["src"] == clip.rendition.url
    assert left["poster"] == clip.poster.url
    assert left["caption"] == clip.caption
    assert (left["width"], left["height"]) == (32, 24)
    assert data["min_view_ms"] == 900
    assert data["progress"] == {"judged_today": 0, "daily_goal": 20, "judged_total": 0}
    assert data["end"] is None
    assert data["completion"] is None
    # Two clips make one pair, so nothing can follow it.
    assert data["upcoming"] is None


def test_next_pair_hides_captions_when_cohort_does():
    cohort = make_cohort(show_captions=False)
    client = logged_in(make_rater(cohort))

    data = next_json(client, cohort)

    assert data["comparison"]["left"]["caption"] == ""
    assert data["comparison"]["right"]["caption"] == ""
    assert data["upcoming"]["left"]["caption"] == ""


def test_next_pair_uses_prompt_when_caption_is_missing():
    pool = Pool.objects.create(name="prompted")
    prompt = Prompt.objects.create(text="a lighthouse at dusk")
    pool.clips.add(make_clip(prompt=prompt), make_clip(prompt=prompt))
    cohort = make_cohort(pool=pool)

    data = next_json(logged_in(make_rater(cohort)), cohort)

    assert data["comparison"]["left"]["caption"] == "a lighthouse at dusk"


def test_next_pair_needs_login_and_membership():
    cohort = make_cohort()

    anonymous = Client().get(reverse("next_pair", args=[cohort.slug]))
    stranger = logged_in(make_rater()).get(reverse("next_pair", args=[cohort.slug]))

    assert anonymous.status_code == 401
    assert stranger.status_code == 403
    assert stranger.json()["error"]["code"] == "not_member"
    assert not Comparison.objects.exists()


def test_unknown_cohort_is_404():
    client = logged_in(make_rater())

    assert client.get(reverse("compare", args=["nope"])).status_code == 404
    assert client.get(reverse("next_pair", args=["nope"])).status_code == 404


def clear_pool(cohort, rater):
    cohort.pool.clips.clear()


def close_cohort(cohort, rater):
    cohort.is_open = False
    cohort.save()


def flag(cohort, rater):
    Membership.objects.filter(cohort=cohort, user=rater).update(status=Membership.Status.FLAGGED)


def deactivate(cohort, rater):
    Membership.objects.filter(cohort=cohort, user=rater).update(status=Membership.Status.INACTIVE)


def judge_all_six(cohort, rater):
    judge(cohort, rater, 6)


def judge_two(cohort, rater):
    judge(cohort, rater, 2)


@pytest.mark.parametrize(
    "setup, code, daily_goal",
    [
        (clear_pool, EndState.NOT_ENOUGH_CLIPS, 0),
        (close_cohort, EndState.COHORT_CLOSED, 0),
        (flag, EndState.MEMBERSHIP_FLAGGED, 0),
        (deactivate, EndState.MEMBERSHIP_INACTIVE, 0),
        (judge_all_six, EndState.ALL_JUDGED, 0),
        (judge_two, EndState.DAILY_GOAL_REACHED, 2),
    ],
    ids=["not-enough-clips", "closed", "flagged", "inactive", "all-judged", "daily-goal"],
)
def test_end_states(setup, code, daily_goal):
    cohort = make_cohort(pool=make_pool(n_images=4), daily_goal=daily_goal)
    rater = make_rater(cohort)
    setup(cohort, rater)
    served_before = Comparison.objects.count()

    data = next_json(logged_in(rater), cohort)

    assert data["end"]["code"] == code
    assert data["end"]["message"] == str(EndState.message(code))
    assert data["comparison"] is None
    assert Comparison.objects.count() == served_before


def test_one_clip_per_kind_is_not_enough():
    cohort = make_cohort(pool=make_pool(n_images=1, n_videos=1))

    data = next_json(logged_in(make_rater(cohort)), cohort)

    assert data["end"]["code"] == EndState.NOT_ENOUGH_CLIPS


def test_daily_goal_is_not_blocked_by_skips():
    cohort = make_cohort(pool=make_pool(n_images=4), daily_goal=2)
    rater = make_rater(cohort)
    judge(cohort, rater, 3, choice="skip")

    data = next_json(logged_in(rater), cohort)

    assert data["end"] is None
    assert data["progress"]["judged_today"] == 0


LOS_ANGELES = zoneinfo.ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    "time_zone, answered_local, goal_reached",
    [
        # 23:59 the evening before in Los Angeles (PDT, UTC-7) is 06:59 UTC today, but not today there.
        ("America/Los_Angeles", datetime.datetime(2026, 3, 9, 23, 59), False),
        ("America/Los_Angeles", datetime.datetime(2026, 3, 10, 0, 1), True),
        # The same instant counts as today when the site runs on UTC.
        ("UTC", datetime.datetime(2026, 3, 9, 23, 59), True),
    ],
)
def test_daily_goal_counts_days_in_site_time_zone(time_zone, answered_local, goal_reached):
    now = datetime.datetime(2026, 3, 10, 12, 0, tzinfo=LOS_ANGELES)
    answered_at = answered_local.replace(tzinfo=LOS_ANGELES)
    cohort = make_cohort(pool=make_pool(n_images=4), daily_goal=1)
    rater = make_rater(cohort)
    judge(cohort, rater, 1, answered_at=answered_at)

    with override_settings(TIME_ZONE=time_zone):
        serving = serve_comparison(cohort, rater, now=now)

    assert serving.judged_total == 1
    assert serving.judged_today == (1 if goal_reached else 0)
    assert (serving.end == EndState.DAILY_GOAL_REACHED) is goal_reached
    assert (serving.comparison is None) is goal_reached


def test_completion_code_appears_after_enough_judgments():
    cohort = make_cohort(
        pool=make_pool(n_images=5), completion_after=2, completion_code="C0DE42",
        return_url="https://app.prolific.com/submissions/complete?cc=C0DE42",
    )
    rater = make_rater(cohort)
    client = logged_in(rater)
    judge(cohort, rater, 1)
    assert next_json(client, cohort)["completion"] is None

    judge(cohort, rater, 2)
    data = next_json(client, cohort)

    assert data["completion"] == {
        "code": "C0DE42", "return_url": "https://app.prolific.com/submissions/complete?cc=C0DE42",
    }
    # Raters may go on after the code.
    assert data["comparison"] is not None


def test_progress_counts_this_cohort_only():
    pool = make_pool(n_images=4)
    cohort, other = make_cohort(pool=pool, daily_goal=10), make_cohort(pool=pool)
    rater = make_rater(cohort)
    Membership.objects.create(user=rater, cohort=other)
    judge(cohort, rater, 2)
    judge(other, rater, 3)
    judge(cohort, rater, 1, answered_at=timezone.now() - datetime.timedelta(days=2))

    data = next_json(logged_in(rater), cohort)

    assert data["progress"] == {"judged_today": 2, "daily_goal": 10, "judged_total": 3}


def test_home_lists_cohorts_of_logged_in_user():
    mine = make_cohort(name="Slow cinema")
    make_cohort(name="Not mine")
    client = logged_in(make_rater(mine))

    content = client.get(reverse("home")).content.decode()

    assert "Slow cinema" in content
    assert reverse("compare", args=[mine.slug]) in content
    assert "Not mine" not in content


def test_home_explains_and_offers_login_to_visitors(client):
    response = client.get(reverse("home"))

    assert response.status_code == 200
    content = response.content.decode()
    assert "invite link" in content
    assert reverse("login") in content


def test_login_page_renders_and_logs_in(client):
    get_user_model().objects.create_user("curator", password="a long test password")

    page = client.get(reverse("login"))
    response = client.post(reverse("login"), {"username": "curator", "password": "a long test password"})

    assert page.status_code == 200
    assert 'name="password"' in page.content.decode()
    assert response.status_code == 302
    assert response["Location"] == reverse("home")


def test_home_lists_leaderboards_for_researchers_only(client):
    from django.contrib.auth.models import Group

    from tests.factories import make_cohort, make_rater

    cohort = make_cohort(name="Night critics")
    rater = make_rater(cohort)
    researcher = make_rater(username="researcher-home")
    researcher.is_staff = True
    researcher.save()
    researcher.groups.add(Group.objects.get_or_create(name="Researchers")[0])
    leaderboard_url = f"/scoring/cohorts/{cohort.slug}/leaderboard/"

    client.force_login(rater)
    assert leaderboard_url not in client.get("/").content.decode()

    client.force_login(researcher)
    assert leaderboard_url in client.get("/").content.decode()
