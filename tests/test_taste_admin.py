"""Taste model admin: metrics in the list, activation and rollback, immutability, fit status."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from scoring.models import TasteModel
from scoring.refit import run_refit
from scoring.versions import active_version
from tests.taste_dataset import add_judgments, build_planted_cohort

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:scoring_tastemodel_changelist"


@pytest.fixture(autouse=True)
def handcrafted_backbone(settings):
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted"}


@pytest.fixture
def two_versions():
    data = build_planted_cohort(n_judgments=60)
    run_refit(data.cohort.pk)
    add_judgments(data, 20, seed=4)
    run_refit(data.cohort.pk)
    return data


def staff_in(group_name, *codenames):
    group, _ = Group.objects.get_or_create(name=group_name)
    group.permissions.add(*Permission.objects.filter(content_type__app_label="scoring", codename__in=codenames))
    user = get_user_model().objects.create_user(username=group_name.lower(), is_staff=True)
    user.groups.add(group)
    return user


def post_action(client, *versions):
    return client.post(
        reverse(CHANGELIST),
        {"action": "activate_selected", "_selected_action": [version.pk for version in versions]},
        follow=True,
    )


def messages_of(response):
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_list_shows_versions_with_metrics(admin_client, two_versions):
    response = admin_client.get(reverse(CHANGELIST))

    page = response.content.decode()
    assert response.status_code == 200
    second = TasteModel.objects.get(version=2)
    assert "handcrafted:v1" in page
    assert f"{second.metrics['held_out_accuracy']:.3f}" in page
    assert f"{second.metrics['drift_kendall_tau']:.3f}" in page
    assert f"{second.metrics['top10_diversity']:.3f}" in page
    assert reverse("scoring:leaderboard", args=[two_versions.cohort.slug]) + f"?version={second.pk}" in page


def test_status_box_shows_why_cohort_has_no_fit(admin_client, two_versions):
    waiting = build_planted_cohort(n_judgments=12, seed=3, min_judgments=50)

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert waiting.cohort.name in page
    assert "12 of 50 judgments needed to fit." in page
    assert "v2 (handcrafted:v1)" in page


def test_status_box_shows_failed_refit(admin_client, two_versions):
    two_versions.cohort.half_life_days = 1e-11
    two_versions.cohort.save()
    add_judgments(two_versions, 20, seed=8)
    run_refit(two_versions.cohort.pk)

    page = admin_client.get(reverse(CHANGELIST)).content.decode()

    assert "Refit v3 failed: ValueError" in page
    assert "All pair weights are 0" in page


def test_action_rolls_back_to_older_version(admin_client, two_versions):
    first = TasteModel.objects.get(version=1)

    response = post_action(admin_client, first)

    assert active_version(two_versions.cohort).version == 1
    assert TasteModel.objects.filter(is_active=True).count() == 1
    texts = messages_of(response)
    assert any("now active, replacing version 2" in text for text in texts)
    assert any("next refit will replace this one" in text for text in texts)
    assert LogEntry.objects.filter(object_id=str(first.pk), action_flag=CHANGE).exists()


def test_action_needs_exactly_one_version(admin_client, two_versions):
    response = post_action(admin_client, *TasteModel.objects.all())

    assert active_version(two_versions.cohort).version == 2
    assert any("Select exactly one version" in text for text in messages_of(response))


def test_action_refuses_failed_version(admin_client, two_versions):
    two_versions.cohort.half_life_days = 1e-11
    two_versions.cohort.save()
    add_judgments(two_versions, 20, seed=8)
    run_refit(two_versions.cohort.pk)

    response = post_action(admin_client, TasteModel.objects.get(version=3))

    assert active_version(two_versions.cohort).version == 2
    assert any("only a finished version can be activated" in text for text in messages_of(response))


def test_curator_with_change_permission_can_activate(client, two_versions):
    client.force_login(staff_in("Curators", "view_tastemodel", "change_tastemodel"))

    post_action(client, TasteModel.objects.get(version=1))

    assert active_version(two_versions.cohort).version == 1


def test_viewer_without_change_permission_cannot_activate(client, two_versions):
    client.force_login(staff_in("Researchers", "view_tastemodel"))
    first = TasteModel.objects.get(version=1)

    listing = client.get(reverse(CHANGELIST))
    post_action(client, first)
    direct = client.post(reverse("admin:scoring_tastemodel_activate", args=[first.pk]))

    assert listing.status_code == 200
    assert "Activate this version" not in listing.content.decode()
    assert direct.status_code == 403
    assert active_version(two_versions.cohort).version == 2


def test_detail_page_is_read_only_with_activate_button(admin_client, two_versions):
    first = TasteModel.objects.get(version=1)
    url = reverse("admin:scoring_tastemodel_change", args=[first.pk])

    page = admin_client.get(url).content.decode()

    assert 'name="_save"' not in page
    assert "Activate this version" in page
    assert admin_client.post(url, {"alpha": 9}).status_code == 403
    first.refresh_from_db()
    assert first.alpha != 9


def test_detail_button_activates(admin_client, two_versions):
    first = TasteModel.objects.get(version=1)
    activate = reverse("admin:scoring_tastemodel_activate", args=[first.pk])

    assert admin_client.get(activate).status_code == 405
    response = admin_client.post(activate)

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:scoring_tastemodel_change", args=[first.pk])
    assert active_version(two_versions.cohort).version == 1


def test_versions_cannot_be_added_or_deleted(admin_client, two_versions):
    first = TasteModel.objects.get(version=1)

    assert admin_client.get(reverse("admin:scoring_tastemodel_add")).status_code == 403
    assert admin_client.post(reverse("admin:scoring_tastemodel_delete", args=[first.pk]), {"post": "yes"}).status_code == 403
    assert TasteModel.objects.count() == 2


def test_clip_scores_listed_read_only(admin_client, two_versions):
    response = admin_client.get(reverse("admin:scoring_clipscore_changelist"))

    assert response.status_code == 200
    assert admin_client.get(reverse("admin:scoring_clipscore_add")).status_code == 403


def test_cohort_page_shows_active_version_and_reason(admin_client, two_versions):
    waiting = build_planted_cohort(n_judgments=12, seed=3, min_judgments=50)

    fitted_page = admin_client.get(reverse("admin:comparisons_cohort_change", args=[two_versions.cohort.pk]))
    waiting_page = admin_client.get(reverse("admin:comparisons_cohort_change", args=[waiting.cohort.pk]))

    assert "Active: version 2 (handcrafted:v1)" in fitted_page.content.decode()
    assert "No active version." in waiting_page.content.decode()
    assert "12 of 50 judgments needed to fit." in waiting_page.content.decode()
    assert reverse("scoring:leaderboard", args=[waiting.cohort.slug]) in waiting_page.content.decode()
