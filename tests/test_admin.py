"""Admin pages for curators, the admin import, and the Curators and Researchers roles."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from comparisons.folder_imports import run_folder_import
from comparisons.models import Clip, Comparison, FolderImport, Judgment, Membership, Pool
from comparisons.roles import CURATORS, RESEARCHERS, curator_codenames, researcher_codenames, sync_roles
from tests.factories import make_clip, make_cohort, make_judgment, make_pool, make_rater, png_bytes, video_file

pytestmark = pytest.mark.django_db

IMPORT_URL = "admin:comparisons_clip_import"


def staff_user(username, group=None, **fields):
    user = get_user_model().objects.create_user(username=username, password="pw", is_staff=True, **fields)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def curator_client(client):
    client.force_login(staff_user("cora", CURATORS))
    return client


@pytest.fixture
def researcher_client(client):
    client.force_login(staff_user("rex", RESEARCHERS))
    return client


def group_permissions(name):
    group = Group.objects.get(name=name)
    return {(p.content_type.app_label, p.codename) for p in group.permissions.select_related("content_type")}


# Roles


def test_roles_exist_after_migrate():
    assert group_permissions(CURATORS) == set(curator_codenames())
    assert group_permissions(RESEARCHERS) == set(researcher_codenames())
    assert ("comparisons", "add_clip") in group_permissions(CURATORS)
    assert ("scoring", "change_tastemodel") in group_permissions(CURATORS)
    assert ("comparisons", "change_judgment") not in group_permissions(CURATORS)
    assert all(codename.startswith("view_") for _app, codename in group_permissions(RESEARCHERS))
    assert ("scoring", "view_clipscore") in group_permissions(RESEARCHERS)


def test_sync_roles_is_idempotent():
    Group.objects.get(name=CURATORS).permissions.clear()
    sync_roles()
    sync_roles()
    assert Group.objects.filter(name__in=[CURATORS, RESEARCHERS]).count() == 2
    assert group_permissions(CURATORS) == set(curator_codenames())


# Who reaches what


def test_curator_reaches_clips_and_import(curator_client):
    make_clip(caption="a red kite")
    assert curator_client.get(reverse("admin:comparisons_clip_changelist")).status_code == 200
    assert curator_client.get(reverse(IMPORT_URL)).status_code == 200


def test_curator_add_clip_leads_to_import(curator_client):
    response = curator_client.get(reverse("admin:comparisons_clip_add"))
    assert response.status_code == 302
    assert response["Location"] == reverse(IMPORT_URL)


def test_researcher_cannot_add_clip(researcher_client):
    assert researcher_client.get(reverse("admin:comparisons_clip_changelist")).status_code == 200
    assert researcher_client.get(reverse("admin:comparisons_clip_add")).status_code == 403
    assert researcher_client.get(reverse(IMPORT_URL)).status_code == 403


def test_researcher_import_post_is_rejected(researcher_client, import_root):
    (import_root / "a.png").write_bytes(png_bytes())
    response = researcher_client.post(reverse(IMPORT_URL), {"folder": str(import_root)})
    assert response.status_code == 403
    assert Clip.objects.count() == 0


def test_rater_is_sent_to_login(client):
    client.force_login(make_rater())
    for url in (reverse("admin:comparisons_clip_changelist"), reverse(IMPORT_URL)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("admin:login"))


# Clip pages


def test_clip_list_shows_poster_status_and_reason(curator_client):
    ready = make_clip(caption="a red kite")
    failed = make_clip(status=Clip.Status.FAILED, failure_reason="The file is empty (0 bytes).")
    page = curator_client.get(reverse("admin:comparisons_clip_changelist")).content.decode()
    assert '<img src="%s"' % ready.poster.url in page
    assert "The file is empty (0 bytes)." in page
    assert failed.original_name in page
    assert reverse(IMPORT_URL) in page


@pytest.mark.parametrize(("query", "expected"), [("kite", 1), ("clip-", 2), ("nothing-like-this", 0)])
def test_clip_search(curator_client, query, expected):
    make_clip(caption="a red kite")
    make_clip(caption="a blue boat")
    response = curator_client.get(reverse("admin:comparisons_clip_changelist"), {"q": query})
    assert response.context["cl"].result_count == expected


def test_clip_search_by_sha_prefix(curator_client):
    clip = make_clip()
    make_clip()
    response = curator_client.get(reverse("admin:comparisons_clip_changelist"), {"q": clip.sha256[:10]})
    assert list(response.context["cl"].result_list) == [clip]


def test_clip_filters_by_status_kind_and_pool(curator_client):
    pool = make_pool(n_images=2, n_videos=1)
    make_clip(status=Clip.Status.FAILED)
    url = reverse("admin:comparisons_clip_changelist")
    assert curator_client.get(url, {"status__exact": "failed"}).context["cl"].result_count == 1
    assert curator_client.get(url, {"kind__exact": "video"}).context["cl"].result_count == 1
    assert curator_client.get(url, {"pools__id__exact": pool.pk}).context["cl"].result_count == 3


def test_video_change_page_previews_looping_muted(curator_client):
    clip = make_clip(kind=Clip.Kind.VIDEO)
    page = curator_client.get(reverse("admin:comparisons_clip_change", args=[clip.pk])).content.decode()
    video = re.search(r"<video [^>]*>", page).group(0)
    assert 'src="%s"' % clip.rendition.url in video
    assert " loop" in video
    assert " muted" in video


def test_image_change_page_previews_img(curator_client):
    clip = make_clip(caption="a red kite")
    page = curator_client.get(reverse("admin:comparisons_clip_change", args=[clip.pk])).content.decode()
    assert '<img src="%s" alt="a red kite"' % clip.rendition.url in page


def test_process_again_action_requeues_failed(curator_client, django_capture_on_commit_callbacks):
    failed = make_clip(status=Clip.Status.FAILED, failure_reason="ffmpeg timed out")
    without_file = Clip.objects.create(
        sha256="f" * 64, kind="image", original_name="x.png", status="failed", failure_reason="empty"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        response = curator_client.post(
            reverse("admin:comparisons_clip_changelist"),
            {"action": "process_again", "_selected_action": [failed.pk, without_file.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert len(callbacks) == 1
    failed.refresh_from_db()
    without_file.refresh_from_db()
    assert (failed.status, failed.failure_reason) == ("pending", "")
    assert without_file.status == "failed"
    assert "import the file again" in response.content.decode()


# Pools, cohorts, members


def test_pool_list_counts_clips(curator_client):
    pool = make_pool(n_images=3, name="three")
    pool.clips.add(make_clip(status=Clip.Status.FAILED))
    response = curator_client.get(reverse("admin:comparisons_pool_changelist"))
    row = next(p for p in response.context["cl"].result_list if p.pk == pool.pk)
    assert (row.clip_total, row.ready_total) == (4, 3)


def add_activity(cohort, members=2, judged=2, unjudged=1):
    raters = [make_rater(cohort) for _ in range(members)]
    left, right = list(cohort.pool.clips.all()[:2])
    for _ in range(judged):
        make_judgment(cohort, raters[0], left, right)
    for _ in range(unjudged):
        Comparison.objects.create(cohort=cohort, rater=raters[0], left=left, right=right)


def test_cohort_list_counts_without_extra_queries(curator_client):
    url = reverse("admin:comparisons_cohort_changelist")
    cohort = make_cohort(name="Critics")
    add_activity(cohort, members=2, judged=2, unjudged=1)
    with CaptureQueriesContext(connection) as one_cohort:
        response = curator_client.get(url)
    row = next(c for c in response.context["cl"].result_list if c.pk == cohort.pk)
    assert (row.member_total, row.comparison_total, row.judgment_total) == (2, 3, 2)

    for _ in range(4):
        add_activity(make_cohort())
    with CaptureQueriesContext(connection) as five_cohorts:
        curator_client.get(url)
    assert len(five_cohorts.captured_queries) == len(one_cohort.captured_queries)


def test_cohort_page_shows_full_invite_link(curator_client):
    cohort = make_cohort()
    add_activity(cohort, members=3, judged=1, unjudged=0)
    response = curator_client.get(reverse("admin:comparisons_cohort_change", args=[cohort.pk]))
    page = response.content.decode()
    assert '<a href="http://testserver/join/%s/">' % cohort.invite_token in page
    assert response.context["inline_admin_formsets"][0].formset.total_form_count() == 3
    assert response.context["original"].member_total == 3


def test_new_invite_links_action(curator_client):
    cohort = make_cohort()
    old = cohort.invite_token
    curator_client.post(
        reverse("admin:comparisons_cohort_changelist"),
        {"action": "new_invite_links", "_selected_action": [cohort.pk]},
    )
    cohort.refresh_from_db()
    assert cohort.invite_token != old


@pytest.mark.parametrize(
    ("action", "start", "end"),
    [("flag", "active", "flagged"), ("unflag", "flagged", "active"), ("unflag", "inactive", "inactive"),
     ("deactivate", "active", "inactive")],
)
def test_membership_actions(curator_client, action, start, end):
    cohort = make_cohort()
    make_rater(cohort, status=start)
    membership = Membership.objects.get()
    curator_client.post(
        reverse("admin:comparisons_membership_changelist"),
        {"action": action, "_selected_action": [membership.pk]},
    )
    membership.refresh_from_db()
    assert membership.status == end


@pytest.mark.parametrize("model", ["comparison", "judgment"])
def test_raters_record_is_read_only(client, curator_client, model):
    cohort = make_cohort()
    rater = make_rater(cohort)
    left, right = list(cohort.pool.clips.all()[:2])
    judgment = make_judgment(cohort, rater, left, right)
    pk = judgment.pk if model == "judgment" else judgment.comparison_id
    assert curator_client.get(reverse("admin:comparisons_%s_changelist" % model)).status_code == 200
    assert curator_client.get(reverse("admin:comparisons_%s_add" % model)).status_code == 403
    page = curator_client.get(reverse("admin:comparisons_%s_change" % model, args=[pk])).content.decode()
    assert 'name="_save"' not in page

    superuser = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(superuser)
    assert client.get(reverse("admin:comparisons_%s_add" % model)).status_code == 403
    assert client.post(reverse("admin:comparisons_%s_delete" % model, args=[pk]), {"post": "yes"}).status_code == 403
    assert Judgment.objects.count() == 1


# The admin import


def queued_import(response):
    """Return the FolderImport that a folder POST created, after checking the redirect to its page."""
    job = FolderImport.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:comparisons_folderimport_change", args=[job.pk])
    assert job.status == FolderImport.Status.QUEUED
    return job


def test_admin_import_from_folder(curator_client, import_root):
    folder = import_root / "batch"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    video_file(folder / "b.mp4")
    (folder / "README.md").write_text("notes")
    captions = SimpleUploadedFile("CAPTIONS.csv", b"path,caption\na.png,A noisy square\n", "text/csv")

    response = curator_client.post(
        reverse(IMPORT_URL), {"folder": "batch", "pool": "from admin", "captions": captions}
    )
    job = queued_import(response)
    assert job.folder == str(folder.resolve())
    assert job.pool_name == "from admin"
    assert Clip.objects.count() == 0
    running_page = curator_client.get(response["Location"]).content.decode()
    assert "this page refreshes every 3 seconds" in running_page

    # What the worker runs for the queued task.
    assert run_folder_import(job.pk) == {"imported": 2, "duplicate": 0, "failed": 0, "ignored": 1}

    job.refresh_from_db()
    assert job.status == FolderImport.Status.FINISHED
    assert job.attempts == 1
    assert sorted((outcome["display"], outcome["status"]) for outcome in job.outcomes) == [
        ("README.md", "ignored"), ("a.png", "imported"), ("b.mp4", "imported"),
    ]
    assert job.notices == ["Created the pool from admin."]
    assert Pool.objects.get(name="from admin").clips.count() == 2
    assert Clip.objects.get(original_name="a.png").caption == "A noisy square"
    page = curator_client.get(response["Location"]).content.decode()
    assert "2 imported, 0 duplicate, 0 failed, 1 ignored" in page
    assert "Created the pool from admin." in page
    assert '<link rel="icon" href="data:,">' in page
    assert reverse("admin:comparisons_clip_change", args=[Clip.objects.get(original_name="a.png").pk]) in page
    assert "this page refreshes every 3 seconds" not in page
    # A second delivery of the same task finds the import done.
    assert run_folder_import(job.pk) is None
    assert Clip.objects.count() == 2


def test_folder_import_rechecks_roots_on_worker(curator_client, import_root, settings, tmp_path):
    folder = import_root / "batch"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    job = queued_import(curator_client.post(reverse(IMPORT_URL), {"folder": "batch"}))

    # The worker's settings name other roots: the folder is no longer allowed.
    other_root = tmp_path / "elsewhere"
    other_root.mkdir()
    settings.SALON = {**settings.SALON, "IMPORT_ROOTS": [str(other_root)]}
    assert run_folder_import(job.pk) is None

    job.refresh_from_db()
    assert job.status == FolderImport.Status.FAILED
    assert "is not an existing folder inside the import roots" in job.error
    assert Clip.objects.count() == 0


def test_folder_import_rejects_non_utf8_captions(curator_client, import_root):
    (import_root / "batch").mkdir()
    captions = SimpleUploadedFile("CAPTIONS.csv", "path,caption\na.png,Caf\u00e9\n".encode("latin-1"), "text/csv")
    response = curator_client.post(reverse(IMPORT_URL), {"folder": "batch", "captions": captions})

    assert response.status_code == 200
    assert "CAPTIONS.csv is not UTF-8 text" in str(response.context["form"].non_field_errors())
    assert FolderImport.objects.count() == 0


@pytest.mark.parametrize("folder", ["../outside", "batch/../../outside"])
def test_admin_import_rejects_dotdot(curator_client, import_root, folder):
    outside = import_root.parent / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(png_bytes())
    (import_root / "batch").mkdir()
    response = curator_client.post(reverse(IMPORT_URL), {"folder": folder})
    assert response.status_code == 200
    assert "is not an existing folder inside the import roots" in str(response.context["form"].errors["folder"])
    assert Clip.objects.count() == 0


def test_admin_import_rejects_symlinked_folder(curator_client, import_root):
    outside = import_root.parent / "outside"
    outside.mkdir()
    (outside / "a.png").write_bytes(png_bytes())
    (import_root / "link").symlink_to(outside, target_is_directory=True)
    response = curator_client.post(reverse(IMPORT_URL), {"folder": "link"})
    assert "folder" in response.context["form"].errors
    assert Clip.objects.count() == 0


def test_admin_import_rejects_symlinked_file(curator_client, import_root):
    outside = import_root.parent / "secret.png"
    outside.write_bytes(png_bytes())
    folder = import_root / "batch"
    folder.mkdir()
    (folder / "linked.png").symlink_to(outside)
    (folder / "real.png").write_bytes(png_bytes())
    response = curator_client.post(reverse(IMPORT_URL), {"folder": "batch"})
    job = queued_import(response)
    run_folder_import(job.pk)
    job.refresh_from_db()
    assert job.counts["failed"] == 1
    assert "outside the import roots" in curator_client.get(response["Location"]).content.decode()
    assert list(Clip.objects.values_list("original_name", flat=True)) == ["real.png"]


def test_admin_import_upload_with_captions(curator_client):
    files = [
        SimpleUploadedFile("kite.png", png_bytes(), "image/png"),
        SimpleUploadedFile("boat.png", png_bytes(), "image/png"),
    ]
    captions = SimpleUploadedFile("captions.csv", b"path,caption\nkite.png,A kite\nboat.png,A boat\n", "text/csv")
    response = curator_client.post(reverse(IMPORT_URL), {"files": files, "captions": captions, "pool": "uploads"})
    assert response.context["report"].counts == {"imported": 2, "duplicate": 0, "failed": 0, "ignored": 0}
    assert dict(Clip.objects.values_list("original_name", "caption")) == {"kite.png": "A kite", "boat.png": "A boat"}
    assert Pool.objects.get(name="uploads").clips.count() == 2
    for clip in Clip.objects.all():
        assert clip.status == "pending"
        assert clip.original.name.startswith("clips/original/")


def test_admin_import_upload_over_limit(curator_client, settings):
    settings.SALON = {**settings.SALON, "MAX_UPLOAD_BYTES": 1000}
    content = png_bytes(width=64, height=64)
    assert len(content) > 1000
    response = curator_client.post(
        reverse(IMPORT_URL), {"files": [SimpleUploadedFile("big.png", content, "image/png")]}
    )
    assert "over the limit of 0.0 MB (MAX_UPLOAD_BYTES)" in response.content.decode()
    assert Clip.objects.count() == 0


def test_admin_import_request_over_limit_is_not_parsed(curator_client, settings):
    """A body far over the limit is rejected on Content-Length alone."""
    settings.SALON = {**settings.SALON, "MAX_UPLOAD_BYTES": 1000}
    content = b"\x89PNG" + bytes(200_000)
    response = curator_client.post(
        reverse(IMPORT_URL), {"files": [SimpleUploadedFile("big.png", content, "image/png")]}
    )
    assert response.context["too_large"]
    assert "MAX_UPLOAD_BYTES" in response.context["too_large"]
    assert not response.context["form"].is_bound
    assert Clip.objects.count() == 0


def test_admin_import_upload_pixels_bounded(curator_client):
    from tests.factories import png_declaring

    response = curator_client.post(
        reverse(IMPORT_URL), {"files": [SimpleUploadedFile("huge.png", png_declaring(30000, 30000), "image/png")]}
    )
    assert response.context["report"].counts["failed"] == 1
    assert "30000 x 30000" in response.content.decode()


def test_admin_import_needs_folder_or_files(curator_client):
    response = curator_client.post(reverse(IMPORT_URL), {"pool": "x"})
    assert "Give either a folder or files to upload" in str(response.context["form"].non_field_errors())
    assert not Pool.objects.filter(name="x").exists()


def test_import_page_lists_roots(curator_client, import_root):
    page = curator_client.get(reverse(IMPORT_URL)).content.decode()
    assert str(import_root) in page
    assert 'enctype="multipart/form-data"' in page



def test_folder_import_saves_progress_between_files(curator_client, import_root, monkeypatch):
    from comparisons import folder_imports
    from comparisons.importer import Importer

    folder = import_root / "batch"
    folder.mkdir()
    for name, size in (("a.png", 16), ("b.png", 24), ("c.png", 32)):
        (folder / name).write_bytes(png_bytes(width=size, height=size))
    job = queued_import(curator_client.post(reverse(IMPORT_URL), {"folder": "batch"}))
    monkeypatch.setattr(folder_imports, "PROGRESS_SECONDS", 0.0)

    # Read the row as the admin page would, just before each file is imported.
    seen = []
    import_file = Importer.import_file

    def observe_then_import(importer, *args, **kwargs):
        row = FolderImport.objects.get(pk=job.pk)
        seen.append((row.status, row.counts.get("imported", 0), len(row.outcomes)))
        return import_file(importer, *args, **kwargs)

    monkeypatch.setattr(Importer, "import_file", observe_then_import)
    run_folder_import(job.pk)

    assert seen == [("running", 0, 0), ("running", 1, 1), ("running", 2, 2)]
    assert FolderImport.objects.get(pk=job.pk).counts["imported"] == 3
