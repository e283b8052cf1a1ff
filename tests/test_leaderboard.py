"""The leaderboard page: who may see it, the values it shows and its options."""

import re
from html.parser import HTMLParser

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.template.defaultfilters import floatformat
from django.urls import reverse

from scoring.leaderboard import DEFAULT_BOOTSTRAP, MAX_BOOTSTRAP, MIN_BOOTSTRAP, bootstrap_budget, parse_options
from scoring.models import ClipScore, TasteModel
from scoring.refit import run_refit
from tests.factories import make_rater
from tests.taste_dataset import add_judgments, build_planted_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def handcrafted_backbone(settings):
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted"}


@pytest.fixture(autouse=True)
def empty_cache():
    # Rolled-back tests reuse row ids, so a cached ranking could match another test's rows.
    cache.clear()


def make_staff(group=None, username=None, **fields):
    user = get_user_model().objects.create_user(username=username or f"staff-{group or 'none'}", is_staff=True,
                                                **fields)
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


def url_of(cohort, **query):
    url = reverse("scoring:leaderboard", args=[cohort.slug])
    if query:
        url += "?" + "&".join(f"{key}={value}" for key, value in query.items())
    return url


class RowCells(HTMLParser):
    """Collect the text of each ``<td class=...>`` per ``<tr data-clip-id>``, per table."""

    def __init__(self):
        super().__init__()
        self.tables = []
        self.row = None
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and "data-clip-id" in attrs:
            self.row = {"clip_id": int(attrs["data-clip-id"])}
            self.tables[-1].append(self.row)
        elif tag == "td" and self.row is not None and attrs.get("class"):
            self.cell = attrs["class"]
            self.row[self.cell] = ""

    def handle_endtag(self, tag):
        if tag == "td":
            self.cell = None
        elif tag == "tr":
            self.row = None

    def handle_data(self, data):
        if self.cell and self.row is not None:
            self.row[self.cell] += data.strip()


def parse_tables(response):
    parser = RowCells()
    parser.feed(response.content.decode())
    return parser.tables


@pytest.fixture
def fitted():
    data = build_planted_cohort(n_clips=20, n_judgments=150)
    run_refit(data.cohort.pk)
    return data


def test_anonymous_sent_to_login(client, fitted):
    response = client.get(url_of(fitted.cohort))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_rater_gets_403(client, fitted):
    client.force_login(fitted.raters[0])

    response = client.get(url_of(fitted.cohort))

    assert response.status_code == 403
    assert b"Total" not in response.content


def test_rater_gets_403_for_unknown_cohort_too(client, fitted):
    client.force_login(fitted.raters[0])

    assert client.get(reverse("scoring:leaderboard", args=["no-such-cohort"])).status_code == 403


def test_staff_outside_groups_gets_403(client, fitted):
    client.force_login(make_staff())

    assert client.get(url_of(fitted.cohort)).status_code == 403


def test_non_staff_in_researchers_group_gets_403(client, fitted):
    user = make_rater()
    user.groups.add(Group.objects.get_or_create(name="Researchers")[0])
    client.force_login(user)

    assert client.get(url_of(fitted.cohort)).status_code == 403


@pytest.mark.parametrize("group", ["Researchers", "Curators"])
def test_curators_and_researchers_see_it(client, fitted, group):
    client.force_login(make_staff(group))

    assert client.get(url_of(fitted.cohort, b=0)).status_code == 200


def test_superuser_sees_it(client, fitted):
    client.force_login(make_staff(is_superuser=True, username="root"))

    assert client.get(url_of(fitted.cohort, b=0)).status_code == 200


def test_values_match_clip_scores(client, fitted):
    client.force_login(make_staff("Researchers"))
    model = TasteModel.objects.get()

    response = client.get(url_of(fitted.cohort, top=20, b=0))

    taste_rows = parse_tables(response)[0]
    stored = list(ClipScore.objects.filter(taste_model=model).order_by("rank"))
    assert [row["clip_id"] for row in taste_rows] == [score.clip_id for score in stored]
    for row, score in zip(taste_rows, stored):
        assert row["total"] == floatformat(score.total, 3)
        assert row["aesthetic"] == floatformat(score.aesthetic, 3)
        assert row["incoherence"] == floatformat(score.incoherence, 3)
        assert row["semantic"] == ("–" if score.semantic is None else floatformat(score.semantic, 3))
    page = response.content.decode()
    assert model.backbone in page
    assert f"Version {model.version}" in page
    assert floatformat(model.metrics["held_out_accuracy"], 3) in page


def test_top_limits_rows(client, fitted):
    client.force_login(make_staff("Researchers"))

    taste_rows, bt_rows = parse_tables(client.get(url_of(fitted.cohort, top=5, b=0)))

    assert len(taste_rows) == 5
    assert len(bt_rows) == 5


def test_bradley_terry_uses_the_versions_judgments(client, fitted):
    client.force_login(make_staff("Researchers"))
    model = TasteModel.objects.get()
    add_judgments(fitted, 10, seed=77, choice="tie")
    add_judgments(fitted, 12, seed=78)

    response = client.get(url_of(fitted.cohort, b=50))

    ranking = response.context["bradley_terry"]
    assert ranking.n_judgments == model.n_judgments
    assert ranking.n_boot == 50
    strengths = [row.strength for row in ranking.rows]
    assert strengths == sorted(strengths, reverse=True)
    for row in ranking.rows:
        assert row.lower <= row.strength <= row.upper
    assert ranking.agreement > 0.3


def test_version_picker_shows_older_version(client, fitted):
    client.force_login(make_staff("Curators"))
    add_judgments(fitted, 40, seed=12)
    run_refit(fitted.cohort.pk)
    first = TasteModel.objects.get(version=1)

    response = client.get(url_of(fitted.cohort, version=first.pk, b=0))

    assert response.context["selected"] == first
    assert response.context["active"].version == 2
    expected = list(ClipScore.objects.filter(taste_model=first).order_by("rank").values_list("clip_id", flat=True))
    assert [row["clip_id"] for row in parse_tables(response)[0]] == expected
    assert response.context["bradley_terry"].n_judgments == first.n_judgments


def test_version_of_other_cohort_is_404(client, fitted):
    other = build_planted_cohort(n_judgments=40, seed=5)
    run_refit(other.cohort.pk)
    client.force_login(make_staff("Curators"))

    response = client.get(url_of(fitted.cohort, version=TasteModel.objects.get(cohort=other.cohort).pk))

    assert response.status_code == 404


def test_bad_bootstrap_value_is_400_naming_it(client, fitted):
    client.force_login(make_staff("Researchers"))

    response = client.get(url_of(fitted.cohort, b="many"))

    assert response.status_code == 400
    assert "The parameter b must be a whole number" in response.content.decode()


def test_bootstrap_out_of_range_is_clamped_with_note(client, fitted):
    client.force_login(make_staff("Researchers"))

    response = client.get(url_of(fitted.cohort, b=5, top=5))

    assert response.context["bradley_terry"].n_boot == 10
    assert "5 bootstrap replicates are outside 10 to 500 (or 0 for none); 10 were used." in response.content.decode()


def test_large_bootstrap_request_is_capped():
    assert parse_options({"b": "100000"}).n_boot == MAX_BOOTSTRAP
    assert parse_options({"top": "0"}).top == 1
    assert parse_options({}).n_boot == DEFAULT_BOOTSTRAP


def test_bootstrap_cut_for_many_judgments():
    assert bootstrap_budget(200, 150) == 200
    assert bootstrap_budget(200, 100_000) == 20
    assert bootstrap_budget(200, 10_000_000) == MIN_BOOTSTRAP
    assert bootstrap_budget(0, 150) == 0


def test_zero_bootstrap_gives_no_intervals(client, fitted):
    client.force_login(make_staff("Researchers"))

    response = client.get(url_of(fitted.cohort, b=0))

    assert all(row.lower is None for row in response.context["bradley_terry"].rows)
    assert all(row["interval"] == "–" for row in parse_tables(response)[1])


def test_no_fit_reason_shown(client):
    data = build_planted_cohort(n_judgments=12, min_judgments=50)
    run_refit(data.cohort.pk)
    client.force_login(make_staff("Curators"))

    response = client.get(url_of(data.cohort, b=0))

    page = response.content.decode()
    assert response.status_code == 200
    assert "12 of 50 judgments needed to fit." in page
    assert "No taste model version yet." in page
    assert response.context["bradley_terry"].n_judgments == 12


def test_failure_reason_shown_with_active_version(client, fitted):
    fitted.cohort.half_life_days = 1e-11
    fitted.cohort.save()
    add_judgments(fitted, 20, seed=13)
    run_refit(fitted.cohort.pk)
    client.force_login(make_staff("Curators"))

    page = client.get(url_of(fitted.cohort, b=0)).content.decode()

    assert re.search(r"Refit v2 failed: ValueError: .*All pair weights are 0", page)
    assert "Version 1" in page
