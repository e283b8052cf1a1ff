"""A Celery worker killed in the middle of a refit or an export: nothing is lost and each finishes once.

For refits, the active model stays while the refit runs again.

Refit tasks acknowledge late and are rejected back to the queue when their
worker process dies, and each refit is keyed on (cohort, backbone, mark), so
the task that runs again takes over the RUNNING row its first run left. When a
whole worker host is lost, the broker may keep the message (Redis until its
visibility timeout) or lose it (the filesystem transport), so the scheduler
sends refits that stayed RUNNING too long again.

The worker loads ``tests.worker_hooks``, which stops the first refit right
after its RUNNING row is committed, or the first export while it writes its
temporary file, so the kill lands mid-run every time.
"""

import datetime
import os
import re
import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from django.db import transaction
from django.utils import timezone

from comparisons.exports.actions import request_export
from comparisons.exports.options import ExportOptions
from comparisons.models import Export, Judgment
from scoring.models import TasteModel
from scoring.refit import Outcome, run_all_judgments_refit, run_refit
from scoring.scheduling import schedule_due_refits
from taste_site.celery import app
from tests.taste_dataset import add_judgments, build_planted_cohort
from tests.worker import purge_queues, run_celery_worker
from tests.worker_hooks import EXPORT_PAUSE_ENV, PAUSE_ENV

pytestmark = [pytest.mark.broker, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REFIT_TASK = "scoring.tasks.refit.refit_cohort"
ANY_REFIT_TASK = r"scoring\.tasks\.refit\.\w+"
WAIT_SECONDS = 90


def hooked_worker(settings, log_dir, extra_env, queues=("gpu",)):
    """Run a one-child worker on ``queues`` that also imports ``tests.worker_hooks``."""
    return run_celery_worker(
        settings.MEDIA_ROOT, log_dir, queues=queues, extra_env=extra_env, include=("tests.worker_hooks",)
    )


def wait_for(check, worker, what):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"{what} did not happen within {WAIT_SECONDS} s. Worker log:\n{worker.log_tail()}")


def read_pause_file(path):
    try:
        pid, row_id = path.read_text().split()
    except (OSError, ValueError):
        return None
    return int(pid), int(row_id)


def refit_runs_logged(worker, task_pattern=re.escape(REFIT_TASK)):
    """Return how many runs of tasks matching ``task_pattern`` Celery logged as succeeded.

    Celery writes one such line per run that returned, after its last commit.
    """
    log = worker.log_tail(max_chars=1_000_000)
    return len(re.findall(rf"Task {task_pattern}\[[0-9a-f-]+\] succeeded in [0-9.]+s:", log))


def drop_unacked_redis_message(task_id):
    """Delete the killed worker's unacknowledged message of ``task_id`` from Redis, if the broker is Redis.

    Redis would hand it out again after its visibility timeout, to whatever
    worker then shares this test database number.
    """
    with app.connection_for_write() as broker:
        if broker.transport.driver_type != "redis":
            return
        channel = broker.default_channel
        for tag, payload in channel.client.hgetall(channel.unacked_key).items():
            if task_id.encode() in payload:
                channel.client.hdel(channel.unacked_key, tag)
                channel.client.zrem(channel.unacked_index_key, tag)


@pytest.fixture
def refit_setup(settings, tmp_path):
    """A cohort with an active version 1 and 20 newer judgments, and a worker environment that pauses."""
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted", "REFIT_MIN_NEW_JUDGMENTS": 10}
    data = build_planted_cohort(n_judgments=40, seed=11)
    first = run_refit(data.cohort.pk)
    assert first.status == Outcome.FINISHED
    # Version 1 ended two hours ago, so the cohort's refit interval has passed.
    TasteModel.objects.filter(pk=first.taste_model_id).update(
        finished_at=timezone.now() - datetime.timedelta(hours=2)
    )
    add_judgments(data, 20, seed=12)
    pause_file = tmp_path / "claimed"
    env = {"SALON_BACKBONE": "handcrafted", "SALON_REFIT_MIN_NEW_JUDGMENTS": "10", PAUSE_ENV: str(pause_file)}
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    return data, first, pause_file, env, log_dir


def assert_refit_finished_once(cohort, first, mark, claimed_row_id):
    rows = TasteModel.objects.filter(cohort=cohort).order_by("version")
    assert [(row.version, row.status) for row in rows] == [(1, "finished"), (2, "finished")]
    new = rows.get(version=2)
    assert new.pk == claimed_row_id
    assert new.high_water_judgment_id == mark
    assert new.is_active is True
    assert rows.get(pk=first.taste_model_id).is_active is False
    assert TasteModel.objects.filter(cohort=cohort, high_water_judgment_id=mark).count() == 1


def pause_mid_refit(worker, pause_file, cohort, first):
    """Wait until the worker's refit stopped after its claim; check the active version stayed; return (pid, row id)."""
    child_pid, row_id = wait_for(lambda: read_pause_file(pause_file), worker, "The refit claim")
    claimed = TasteModel.objects.get(pk=row_id)
    assert claimed.status == TasteModel.Status.RUNNING
    assert claimed.cohort_id == cohort.pk
    active = TasteModel.objects.get(cohort=cohort, is_active=True)
    assert active.pk == first.taste_model_id
    assert child_pid != worker.pid
    return child_pid, row_id


def test_refit_child_killed_runs_again_and_finishes_once(settings, refit_setup):
    data, first, pause_file, env, log_dir = refit_setup
    mark = Judgment.objects.filter(comparison__cohort=data.cohort).order_by("-id").values_list("id", flat=True)[0]

    with hooked_worker(settings, log_dir, env) as worker:
        app.send_task(REFIT_TASK, args=[data.cohort.pk])
        child_pid, row_id = pause_mid_refit(worker, pause_file, data.cohort, first)

        os.kill(child_pid, signal.SIGKILL)
        # Celery logs the run after the task returned, so after its last commit.
        wait_for(lambda: refit_runs_logged(worker) >= 1, worker, "The redelivered refit")
        log = worker.log_tail(max_chars=1_000_000)

        assert worker.is_alive()
        assert "WorkerLostError" in log
        assert "taken over from running state" in log
        assert refit_runs_logged(worker) == 1
        assert_refit_finished_once(data.cohort, first, mark, row_id)


def test_scheduled_refit_child_killed_finishes(settings, refit_setup):
    """The scheduler's refits carry ``if_due``; the redelivered one must still finish its own claim."""
    data, first, pause_file, env, log_dir = refit_setup
    mark = Judgment.objects.filter(comparison__cohort=data.cohort).order_by("-id").values_list("id", flat=True)[0]
    # A fresh all-judgments model is not due, so the scheduler sends only the
    # cohort's refit and the pause lands in it.
    assert run_all_judgments_refit("handcrafted:v1").status == Outcome.FINISHED

    with hooked_worker(settings, log_dir, env) as worker:
        plans = schedule_due_refits()
        assert [plan.kwargs.get("cohort_id") for plan in plans if plan.task == REFIT_TASK] == [data.cohort.pk]
        child_pid, row_id = pause_mid_refit(worker, pause_file, data.cohort, first)

        os.kill(child_pid, signal.SIGKILL)
        wait_for(lambda: refit_runs_logged(worker) >= 1, worker, "The redelivered refit")

        assert_refit_finished_once(data.cohort, first, mark, row_id)


def test_lost_worker_refit_is_resent_by_scheduler(settings, refit_setup):
    """A whole worker killed: a new worker and the scheduler's stale re-send finish the refit once."""
    data, first, pause_file, env, log_dir = refit_setup
    mark = Judgment.objects.filter(comparison__cohort=data.cohort).order_by("-id").values_list("id", flat=True)[0]

    with hooked_worker(settings, log_dir, env) as lost:
        app.send_task(REFIT_TASK, args=[data.cohort.pk])
        _child_pid, row_id = pause_mid_refit(lost, pause_file, data.cohort, first)
        os.killpg(lost.pid, signal.SIGKILL)
        lost.process.wait(timeout=30)
    drop_unacked_redis_message(TasteModel.objects.get(pk=row_id).task_id)

    # The hour after which the scheduler calls a RUNNING refit stale passes.
    stale = settings.SALON["REFIT_STALE_MINUTES"] + 1
    TasteModel.objects.filter(pk=row_id, status=TasteModel.Status.RUNNING).update(
        started_at=timezone.now() - datetime.timedelta(minutes=stale)
    )
    with hooked_worker(settings, log_dir, env) as worker:
        plans = schedule_due_refits()
        # The scheduler also sends the cohort's due refit and the all-judgments
        # refit. The test waits for every task it sent to return, so a RUNNING
        # row found below cannot be a task that has merely not ended yet.
        wait_for(
            lambda: refit_runs_logged(worker, ANY_REFIT_TASK) >= len(plans),
            worker, "The scheduled refits",
        )

        assert_refit_finished_once(data.cohort, first, mark, row_id)
        assert not TasteModel.objects.filter(status=TasteModel.Status.RUNNING).exists()


# Exports acknowledge early, so a lost child's message is gone. The worker's
# main process records the loss and queues the export again. Beat's sweep
# recovers exports whose whole worker host was lost.


@pytest.fixture
def export_setup(settings, tmp_path):
    """The export dataset, a researcher, and a worker environment that pauses in the first export."""
    from tests.export_dataset import build_dataset
    from tests.test_export_views import make_researcher

    export_dir = tmp_path / "exports"
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(export_dir)}
    build_dataset()
    pause_file = tmp_path / "writing"
    env = {"SALON_EXPORT_DIR": str(export_dir), EXPORT_PAUSE_ENV: str(pause_file)}
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()
    return make_researcher(), export_dir, pause_file, env, log_dir


def kill_mid_export(worker, pause_file, export):
    """Wait until the worker's child is writing ``export``, check its state, and kill the child."""
    child_pid, partial = wait_for(lambda: read_export_pause(pause_file), worker, "The export write")
    export.refresh_from_db()
    assert export.status == Export.Status.RUNNING
    assert Path(partial).exists()
    assert child_pid != worker.pid
    os.kill(child_pid, signal.SIGKILL)
    return Path(partial)


def read_export_pause(path):
    try:
        pid, partial = path.read_text().split(" ", 1)
    except (OSError, ValueError):
        return None
    return int(pid), partial


def request_csv_export(researcher):
    return request_export(researcher, ExportOptions(cohorts=["painters"], format="csv"))


def test_export_child_killed_is_queued_again_and_finishes(settings, export_setup):
    researcher, export_dir, pause_file, env, log_dir = export_setup

    with hooked_worker(settings, log_dir, env, queues=("default",)) as worker:
        export = request_csv_export(researcher)
        partial = kill_mid_export(worker, pause_file, export)
        export = wait_for(
            lambda: Export.objects.filter(pk=export.pk, status__in=["finished", "failed"]).first(),
            worker, "The export after the lost child",
        )
        log = worker.log_tail(max_chars=1_000_000)

    assert export.status == Export.Status.FINISHED, export.error
    assert export.attempts == 2
    assert f"Export {export.pk}: The worker process stopped while running it; queued again" in log
    assert not partial.exists()
    assert sorted(path.name for path in export_dir.iterdir()) == [
        export.file_name, export.file_name + ".card.json", export.file_name + ".card.md",
    ]
    written = pd.read_csv(export_dir / export.file_name)
    expected = Judgment.objects.filter(comparison__cohort__slug="painters", is_simulated=False)
    assert len(written) == export.row_count
    assert sorted(written["comparison_id"]) == sorted(expected.values_list("comparison_id", flat=True))


def test_export_lost_on_last_run_fails(settings, export_setup):
    from comparisons.jobs import MAX_ATTEMPTS

    researcher, export_dir, pause_file, env, log_dir = export_setup

    with hooked_worker(settings, log_dir, env, queues=("default",)) as worker:
        with transaction.atomic():
            export = request_csv_export(researcher)
            # Earlier runs were lost too: this one is the last allowed.
            Export.objects.filter(pk=export.pk).update(attempts=MAX_ATTEMPTS - 1)
        kill_mid_export(worker, pause_file, export)
        export = wait_for(
            lambda: Export.objects.filter(pk=export.pk, status__in=["finished", "failed"]).first(),
            worker, "The failure after the last lost child",
        )

    assert export.status == Export.Status.FAILED
    assert export.attempts == MAX_ATTEMPTS
    assert export.error.startswith(f"The worker process stopped while running it on each of {MAX_ATTEMPTS} runs.")
    assert "request the export again" in export.error
    assert list(export_dir.glob("*.csv")) == []


def test_sweep_recovers_exports_whose_worker_was_lost(settings, export_setup):
    from comparisons.exports.tasks import STALE_RUNNING_MINUTES, resend_queued_exports
    from comparisons.jobs import MAX_ATTEMPTS

    researcher, _export_dir, _pause_file, _env, _log_dir = export_setup
    long_ago = timezone.now() - datetime.timedelta(minutes=STALE_RUNNING_MINUTES + 1)
    recent = timezone.now() - datetime.timedelta(minutes=1)
    lost = Export.objects.create(format="csv", status="running", started_at=long_ago, attempts=1)
    lost_last = Export.objects.create(format="csv", status="running", started_at=long_ago, attempts=MAX_ATTEMPTS)
    live = Export.objects.create(format="csv", status="running", started_at=recent, attempts=1)

    assert resend_queued_exports() == 1
    assert resend_queued_exports() == 0
    purge_queues(app, ("default",))

    statuses = dict(Export.objects.values_list("pk", "status"))
    assert statuses == {lost.pk: "queued", lost_last.pk: "failed", live.pk: "running"}
    assert Export.objects.get(pk=lost.pk).started_at is None
    assert Export.objects.get(pk=lost_last.pk).error.startswith("The worker was lost while running it on each of")
