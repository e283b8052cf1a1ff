"""A background export runs in a real Celery worker process and its file appears."""

import time

import pandas as pd
import pytest
from django.urls import reverse

pytest.importorskip("tests.worker", reason="the Celery worker harness tests/worker.py is missing")

from comparisons.models import Export  # noqa: E402
from tests.export_dataset import build_dataset  # noqa: E402
from tests.test_export_views import make_researcher  # noqa: E402
from tests.worker import celery_worker_factory  # noqa: E402,F401

WAIT_SECONDS = 60


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_writes_queued_export(client, settings, tmp_path, celery_worker_factory):  # noqa: F811
    export_dir = tmp_path / "exports"
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(export_dir)}
    celery_worker_factory(queues=("default",), extra_env={"SALON_EXPORT_DIR": str(export_dir)})
    build_dataset()
    client.force_login(make_researcher())

    response = client.post(
        reverse("exports:index"),
        {"cohorts": ["painters"], "format": "parquet", "ties": "on", "skips": "on", "action": "prepare"},
    )
    assert response.status_code == 302

    deadline = time.monotonic() + WAIT_SECONDS
    export = Export.objects.get()
    while not export.is_done and time.monotonic() < deadline:
        time.sleep(0.2)
        export.refresh_from_db()

    assert export.status == Export.Status.FINISHED, export.error
    assert len(pd.read_parquet(export_dir / export.file_name)) == 7
    assert (export_dir / (export.file_name + ".card.md")).exists()
