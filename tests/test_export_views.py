"""The staff export pages: who may use them, streamed downloads and background exports."""

import io
import json
import zipfile

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from comparisons.exports.tasks import export_comparisons
from comparisons.models import Export, Judgment
from comparisons.roles import CURATORS, RESEARCHERS, sync_roles
from tests.export_dataset import SECRETS, build_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def export_dir(tmp_path, settings):
    folder = tmp_path / "exports"
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(folder)}
    return folder


def make_researcher(username="researcher-1"):
    """Create a staff user in the Researchers group as the roles sync defines it."""
    user = get_user_model().objects.create_user(username=username, password="x", is_staff=True)
    user.groups.add(sync_roles()[RESEARCHERS])
    return user


def form_data(**changes):
    data = {"cohorts": ["painters", "crowd"], "format": "csv", "ties": "on", "skips": "on", "action": "download"}
    data.update(changes)
    return data


def unzipped(response):
    """Return the streamed archive's members as a name-to-bytes dict, in archive order."""
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    return {name: archive.read(name) for name in archive.namelist()}


def streamed(response):
    """Return the data file of the streamed archive: its first member."""
    return next(iter(unzipped(response).values()))


@pytest.fixture
def researcher_client(client):
    client.force_login(make_researcher())
    return client


def test_anonymous_sent_to_login(client):
    response = client.get(reverse("exports:index"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_rater_gets_403_everywhere(client, export_dir):
    data = build_dataset()
    client.force_login(data.raters[0])
    export = Export.objects.create(requested_by=data.raters[0], format="csv", status="finished", file_name="x.csv")

    assert client.get(reverse("exports:index")).status_code == 403
    assert client.post(reverse("exports:index"), form_data()).status_code == 403
    assert client.get(reverse("exports:download", args=[export.pk])).status_code == 403
    assert client.get(reverse("exports:card_md", args=[export.pk])).status_code == 403
    assert client.get(reverse("exports:taste_models", args=["painters"])).status_code == 403


def test_staff_without_permission_gets_403(client):
    build_dataset()
    client.force_login(get_user_model().objects.create_user(username="staff-only", is_staff=True))

    assert client.get(reverse("exports:index")).status_code == 403


def test_curator_gets_403(client):
    build_dataset()
    curator = get_user_model().objects.create_user(username="curator", is_staff=True)
    curator.groups.add(sync_roles()[CURATORS])
    client.force_login(curator)

    assert client.get(reverse("exports:index")).status_code == 403


def test_export_permission_granted_directly(client):
    build_dataset()
    user = get_user_model().objects.create_user(username="guest-analyst", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="export_comparisons", content_type__app_label="comparisons")
    )
    client.force_login(user)

    assert client.get(reverse("exports:index")).status_code == 200


def test_researcher_permission_needs_staff(client):
    build_dataset()
    user = make_researcher("former-staff")
    user.is_staff = False
    user.save()
    client.force_login(user)

    assert client.get(reverse("exports:index")).status_code == 403


def test_researcher_sees_form(researcher_client):
    build_dataset()
    response = researcher_client.get(reverse("exports:index"))

    assert response.status_code == 200
    assert b'value="painters"' in response.content
    assert reverse("exports:taste_models", args=["crowd"]).encode() in response.content


def test_superuser_may_export(client):
    build_dataset()
    client.force_login(get_user_model().objects.create_superuser(username="root", password="x"))

    assert client.get(reverse("exports:index")).status_code == 200


def test_researcher_streams_csv_with_right_rows(researcher_client):
    build_dataset()
    response = researcher_client.post(reverse("exports:index"), form_data())

    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="salon-painters-crowd-')
    assert response["Content-Disposition"].endswith('.csv.zip"')
    frame = pd.read_csv(io.BytesIO(streamed(response)))
    expected = Judgment.objects.filter(
        comparison__cohort__slug__in=["painters", "crowd"], is_simulated=False
    ).order_by("id")
    assert frame["judgment_id"].tolist() == list(expected.values_list("id", flat=True))
    assert frame["choice"].tolist() == list(expected.values_list("choice", flat=True))
    assert set(frame["cohort"]) == {"painters", "crowd"}


def test_researcher_streams_jsonl_with_filters(researcher_client):
    build_dataset()
    response = researcher_client.post(
        reverse("exports:index"), form_data(format="jsonl", cohorts=["painters"], skips="", include_simulated="on"),
    )

    rows = [json.loads(line) for line in streamed(response).decode().splitlines()]
    expected = Judgment.objects.filter(comparison__cohort__slug="painters").exclude(choice="skip").order_by("id")
    assert [row["judgment_id"] for row in rows] == list(expected.values_list("id", flat=True))
    assert any(row["is_simulated"] for row in rows)


def test_streamed_archive_holds_data_and_card(researcher_client):
    build_dataset()
    response = researcher_client.post(reverse("exports:index"), form_data(format="jsonl", licence="CC-BY-4.0"))
    data_name = response["Content-Disposition"].split('"')[1].removesuffix(".zip")
    members = unzipped(response)

    assert list(members) == [data_name, data_name + ".card.json", data_name + ".card.md"]
    rows = [json.loads(line) for line in members[data_name].decode().splitlines()]
    card = json.loads(members[data_name + ".card.json"])
    assert card["rows"] == len(rows)
    assert card["file"] == data_name
    assert card["licence"] == "CC-BY-4.0"
    assert [entry["slug"] for entry in card["cohorts"]] == ["painters", "crowd"]
    for entry in card["cohorts"]:
        expected = Judgment.objects.filter(comparison__cohort__slug=entry["slug"], is_simulated=False)
        assert entry["counts"]["total"] == expected.count()
        for choice in ("left", "right", "tie", "skip"):
            assert entry["counts"][choice] == expected.filter(choice=choice).count(), choice
    assert members[data_name + ".card.md"].startswith(b"# Salon comparisons export")


def test_streamed_download_has_no_identifying_values(researcher_client):
    build_dataset()
    members = unzipped(researcher_client.post(reverse("exports:index"), form_data(features="on", scores="on")))

    # Every member, decompressed: the archive's raw bytes would hide any value.
    assert len(members) == 3
    for name, content in members.items():
        for secret in SECRETS["usernames"] + SECRETS["emails"] + SECRETS["participant_ids"]:
            assert secret.encode() not in content, name


def test_parquet_cannot_stream(researcher_client):
    build_dataset()
    response = researcher_client.post(reverse("exports:index"), form_data(format="parquet"))

    assert response.status_code == 200
    assert b"cannot be streamed" in response.content
    assert Export.objects.count() == 0


def test_empty_range_rejected_by_form(researcher_client):
    build_dataset()
    response = researcher_client.post(
        reverse("exports:index"), form_data(since="2026-11-05T00:00", until="2026-11-01T00:00"),
    )

    assert response.status_code == 200
    assert b"The time range is empty" in response.content


def test_prepare_queues_task_on_commit(researcher_client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    with django_capture_on_commit_callbacks() as callbacks:
        response = researcher_client.post(reverse("exports:index"), form_data(format="parquet", action="prepare"))

    assert response.status_code == 302
    export = Export.objects.get()
    assert export.status == Export.Status.QUEUED
    assert export.format == "parquet"
    assert export.parameters["cohorts"] == ["painters", "crowd"]
    assert len(callbacks) == 1
    assert not export_dir.exists() or list(export_dir.iterdir()) == []


def test_task_writes_file_and_card(researcher_client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    with django_capture_on_commit_callbacks():
        researcher_client.post(reverse("exports:index"), form_data(format="parquet", action="prepare", features="on"))
    export = Export.objects.get()

    assert export_comparisons(export.pk) == 10

    export.refresh_from_db()
    assert export.status == Export.Status.FINISHED
    assert export.row_count == 10
    assert export.counts["painters"] == {"total": 7, "left": 2, "right": 3, "tie": 1, "skip": 1}
    path = export_dir / export.file_name
    assert export.size_bytes == path.stat().st_size
    frame = pd.read_parquet(path)
    assert len(frame) == 10
    assert len(frame["left_embedding"][0]) == 8
    assert json.loads((export_dir / (export.file_name + ".card.json")).read_text())["rows"] == 10


def test_task_runs_once(researcher_client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    with django_capture_on_commit_callbacks():
        researcher_client.post(reverse("exports:index"), form_data(action="prepare"))
    export = Export.objects.get()
    export_comparisons(export.pk)
    first = (export_dir / Export.objects.get().file_name).stat().st_mtime_ns

    assert export_comparisons(export.pk) is None
    assert (export_dir / Export.objects.get().file_name).stat().st_mtime_ns == first


def test_task_records_failure(export_dir):
    data = build_dataset()
    export = Export.objects.create(
        requested_by=data.raters[0], format="csv", parameters={"cohorts": ["gone-since"]},
    )

    export_comparisons(export.pk)

    export.refresh_from_db()
    assert export.status == Export.Status.FAILED
    assert "Unknown cohort 'gone-since'" in export.error
    assert not export_dir.exists() or list(export_dir.iterdir()) == []


def test_finished_export_listed_and_downloadable(researcher_client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    with django_capture_on_commit_callbacks():
        researcher_client.post(reverse("exports:index"), form_data(format="jsonl", action="prepare"))
    export = Export.objects.get()
    export_comparisons(export.pk)
    export.refresh_from_db()

    page = researcher_client.get(reverse("exports:index"))
    download = researcher_client.get(reverse("exports:download", args=[export.pk]))
    card_md = researcher_client.get(reverse("exports:card_md", args=[export.pk]))
    card_json = researcher_client.get(reverse("exports:card_json", args=[export.pk]))

    assert reverse("exports:download", args=[export.pk]).encode() in page.content
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == (export_dir / export.file_name).read_bytes()
    assert card_md.status_code == 200
    assert b"# Salon comparisons export" in b"".join(card_md.streaming_content)
    assert json.loads(b"".join(card_json.streaming_content))["rows"] == 10


def test_other_researcher_cannot_download(client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    owner = make_researcher("owner")
    client.force_login(owner)
    with django_capture_on_commit_callbacks():
        client.post(reverse("exports:index"), form_data(action="prepare"))
    export = Export.objects.get()
    export_comparisons(export.pk)

    client.force_login(make_researcher("someone-else"))

    assert client.get(reverse("exports:download", args=[export.pk])).status_code == 404
    assert reverse("exports:download", args=[export.pk]).encode() not in client.get(reverse("exports:index")).content


def test_unfinished_export_not_downloadable(researcher_client, export_dir):
    user = get_user_model().objects.get(username="researcher-1")
    export = Export.objects.create(requested_by=user, format="csv", parameters={"cohorts": ["x"]})

    assert researcher_client.get(reverse("exports:download", args=[export.pk])).status_code == 404


def test_taste_models_download(researcher_client):
    data = build_dataset()
    response = researcher_client.get(reverse("exports:taste_models", args=["painters"]))

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="taste-models-painters.json"'
    document = json.loads(response.content)
    assert [v["version"] for v in document["cohorts"][0]["versions"]] == [3, 2]
    assert document["cohorts"][0]["versions"][0]["id"] == data.taste_model.id


def test_taste_models_unknown_cohort_404(researcher_client):
    assert researcher_client.get(reverse("exports:taste_models", args=["nope"])).status_code == 404


def test_form_times_read_as_utc(researcher_client, settings):
    build_dataset()
    settings.TIME_ZONE = "America/New_York"

    response = researcher_client.post(
        reverse("exports:index"),
        form_data(format="jsonl", cohorts=["painters"], since="2026-11-02T09:35", until="2026-11-02T09:45"),
    )

    rows = [json.loads(line) for line in streamed(response).decode().splitlines()]
    assert [row["answered_at"] for row in rows] == ["2026-11-02T09:40:00.123456Z"]


def test_admin_lists_own_exports_with_links(researcher_client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    with django_capture_on_commit_callbacks():
        researcher_client.post(reverse("exports:index"), form_data(action="prepare"))
    export = Export.objects.get()
    export_comparisons(export.pk)

    response = researcher_client.get(reverse("admin:comparisons_export_changelist"))

    assert response.status_code == 200
    assert reverse("exports:download", args=[export.pk]).encode() in response.content
    assert reverse("exports:index").encode() in response.content


def test_admin_hides_exports_from_curators(client):
    curator = get_user_model().objects.create_user(username="curator", is_staff=True)
    curator.groups.add(sync_roles()[CURATORS])
    client.force_login(curator)

    assert client.get(reverse("admin:comparisons_export_changelist")).status_code == 403


def test_admin_delete_removes_files(client, django_capture_on_commit_callbacks, export_dir):
    build_dataset()
    client.force_login(get_user_model().objects.create_superuser(username="root", password="x"))
    with django_capture_on_commit_callbacks():
        client.post(reverse("exports:index"), form_data(action="prepare"))
    export = Export.objects.get()
    export_comparisons(export.pk)
    export.refresh_from_db()
    files = [export_dir / export.file_name, export_dir / (export.file_name + ".card.md")]
    assert all(path.exists() for path in files)

    client.post(reverse("admin:comparisons_export_delete", args=[export.pk]), {"post": "yes"})

    assert not Export.objects.exists()
    assert not any(path.exists() for path in files)
