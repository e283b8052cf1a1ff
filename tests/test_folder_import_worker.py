"""Folder imports from admin run in a real Celery worker; beat's sweep recovers lost ones."""

import datetime
import time

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from comparisons.models import Clip, FolderImport
from comparisons.roles import CURATORS, sync_roles
from comparisons.tasks import STALE_IMPORT_MINUTES, resend_folder_imports
from taste_site.celery import app
from tests.factories import png_bytes, video_file
from tests.worker import purge_queues

pytestmark = pytest.mark.django_db(transaction=True)

WAIT_SECONDS = 60


@pytest.fixture
def curator_client(client):
    user = get_user_model().objects.create_user(username="cora", password="pw", is_staff=True)
    user.groups.add(sync_roles()[CURATORS])
    client.force_login(user)
    return client


@pytest.mark.worker
def test_worker_runs_admin_folder_import(curator_client, import_root, celery_worker_factory):
    celery_worker_factory(queues=("default",), extra_env={"SALON_IMPORT_ROOTS": str(import_root)})
    folder = import_root / "batch"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    video_file(folder / "b.mp4")

    response = curator_client.post(reverse("admin:comparisons_clip_import"), {"folder": "batch", "pool": "batch"})
    assert response.status_code == 302

    deadline = time.monotonic() + WAIT_SECONDS
    job = FolderImport.objects.get()
    while time.monotonic() < deadline and not (
        job.is_done and not Clip.objects.filter(status=Clip.Status.PENDING).exists()
    ):
        time.sleep(0.2)
        job.refresh_from_db()

    assert job.status == FolderImport.Status.FINISHED, job.error
    assert job.counts == {"imported": 2, "duplicate": 0, "failed": 0, "ignored": 0}
    assert sorted(Clip.objects.values_list("original_name", "status")) == [("a.png", "ready"), ("b.mp4", "ready")]


def test_sweep_recovers_lost_folder_imports(import_root):
    from comparisons.jobs import MAX_ATTEMPTS

    long_ago = timezone.now() - datetime.timedelta(minutes=STALE_IMPORT_MINUTES + 1)
    recent = timezone.now() - datetime.timedelta(minutes=1)
    folder = str(import_root)
    lost = FolderImport.objects.create(folder=folder, status="running", started_at=long_ago, attempts=1)
    lost_last = FolderImport.objects.create(folder=folder, status="running", started_at=long_ago, attempts=MAX_ATTEMPTS)
    live = FolderImport.objects.create(folder=folder, status="running", started_at=recent, attempts=1)
    never_sent = FolderImport.objects.create(folder=folder)
    FolderImport.objects.filter(pk=never_sent.pk).update(sent_at=long_ago)

    # The never-sent import and the lost one are sent. Both are queued now, but
    # were just sent, so a second sweep sends nothing.
    assert resend_folder_imports() == 2
    assert resend_folder_imports() == 0
    purge_queues(app, ("default",))

    statuses = dict(FolderImport.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: "queued", lost_last.pk: "failed", live.pk: "running", never_sent.pk: "queued"}
    assert FolderImport.objects.get(pk=lost.pk).started_at is None
    assert FolderImport.objects.get(pk=lost_last.pk).error.startswith("The worker was lost while running it on each of")


def test_lost_duplicate_leaves_live_run_alone(import_root):
    from billiard.exceptions import WorkerLostError
    from celery.signals import task_failure

    from comparisons.tasks import import_folder

    job = FolderImport.objects.create(folder=str(import_root), status="running", started_at=timezone.now(),
                                      attempts=1, task_id="live-run")

    # A duplicate delivery of the same job was handled by a child that died.
    task_failure.send(sender=import_folder, task_id="duplicate", args=(job.pk,), exception=WorkerLostError("gone"))
    job.refresh_from_db()
    assert (job.status, job.task_id, job.attempts) == ("running", "live-run", 1)

    # The child running the claimed job died.
    task_failure.send(sender=import_folder, task_id="live-run", args=(job.pk,), exception=WorkerLostError("gone"))
    purge_queues(app, ("default",))
    job.refresh_from_db()
    assert (job.status, job.task_id, job.attempts) == ("queued", "", 1)


def test_unrecorded_task_error_fails_the_job(import_root):
    from celery.signals import task_failure

    from comparisons.tasks import import_folder

    job = FolderImport.objects.create(folder=str(import_root), status="running", started_at=timezone.now(),
                                      attempts=1, task_id="run-1")

    # An error the task could not record itself, such as a failed final save.
    task_failure.send(sender=import_folder, task_id="run-1", args=(job.pk,), exception=ValueError("database gone"))

    job.refresh_from_db()
    assert job.status == "failed"
    assert job.error.startswith("The run failed with ValueError: database gone.")
    assert job.finished_at is not None
