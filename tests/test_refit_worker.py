"""Features and refits run in a real Celery worker process on the embedded broker.

The tasks are sent by name, as the scheduler and the import pipeline send
them, to a ``celery worker`` process that reads the same test database. The
first test uses the tiny open_clip config with random weights, so the
backbone name the worker stores (``clip:salon-tiny-test:none``) must be the one
the refit resolves from the same settings. The second lets Celery's
scheduler task send the refits.
"""

import time

import numpy as np
import pytest

from comparisons.models import Pool
from scoring.models import ClipFeatures, ClipScore, TasteModel
from taste_site.celery import app
from tests.factories import make_clip, make_cohort, make_judgment, make_rater
from tests.openclip_tiny import TINY_DIM, TINY_MODEL, tiny_config_path, tiny_worker_env  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

FEATURES_TASK = "scoring.tasks.features.extract_features"
REFIT_TASK = "scoring.tasks.refit.refit_cohort"
SCHEDULER_TASK = "scoring.tasks.scheduler.schedule_refits"
TINY_NAME = f"clip:{TINY_MODEL}:none"
WAIT_SECONDS = 180


def wait_until(check, worker, what):
    """Poll ``check()`` until it returns a true value; fail with the worker's log if it never does."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if not worker.is_alive():
            break
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {WAIT_SECONDS} s. Worker log:\n{worker.log_tail()}")


def build_cohort(n_clips=10, n_judgments=30, **cohort_fields):
    """Create a pool of distinct images, a cohort and judgments that prefer lower clip numbers."""
    pool = Pool.objects.create(name="worker pool")
    clips = [make_clip(caption=f"picture {index}" if index % 3 else "") for index in range(n_clips)]
    pool.clips.add(*clips)
    cohort_fields.setdefault("min_judgments", 10)
    cohort = make_cohort(pool, **cohort_fields)
    rater = make_rater(cohort)
    rng = np.random.default_rng(0)
    for _ in range(n_judgments):
        first, second = rng.choice(n_clips, 2, replace=False)
        better, worse = min(first, second), max(first, second)
        make_judgment(cohort, rater, clips[better], clips[worse], choice="left")
    return cohort, clips


def test_worker_extracts_features_and_refits(celery_worker_factory, tiny_config_path):  # noqa: F811
    assert app.conf.task_always_eager is False
    cohort, clips = build_cohort()
    ids = [clip.pk for clip in clips]
    worker = celery_worker_factory(queues=("gpu",), extra_env=tiny_worker_env(tiny_config_path))

    app.send_task(FEATURES_TASK, args=[ids])
    wait_until(
        lambda: ClipFeatures.objects.filter(clip_id__in=ids, backbone=TINY_NAME).count() == len(ids),
        worker, "Feature extraction",
    )
    sent = app.send_task(REFIT_TASK, args=[cohort.pk])
    model = wait_until(
        lambda: TasteModel.objects.filter(cohort=cohort, status=TasteModel.Status.FINISHED).first(),
        worker, "The refit",
    )

    assert model.task_id == sent.id
    assert model.backbone == TINY_NAME
    assert model.head_dim == TINY_DIM
    assert model.is_active is True
    assert model.n_judgments == 30
    assert model.metrics["n_missing_semantic"] == 4
    assert 0.0 <= model.metrics["held_out_accuracy"] <= 1.0
    assert ClipScore.objects.filter(taste_model=model).count() == len(clips)
    log = worker.log_tail(max_chars=200_000)
    assert f"Features with {TINY_NAME}: wrote 10 clips" in log
    assert f"Task {REFIT_TASK}[{sent.id}] succeeded" in log


def test_scheduler_task_sends_refits_to_worker(celery_worker_factory):  # noqa: F811
    cohort, clips = build_cohort(n_judgments=24)
    env = {"SALON_BACKBONE": "handcrafted"}
    worker = celery_worker_factory(queues=("default", "gpu"), extra_env=env)
    app.send_task(FEATURES_TASK, args=[[clip.pk for clip in clips]], kwargs={"backbone": "handcrafted"})
    wait_until(
        lambda: ClipFeatures.objects.filter(backbone="handcrafted:v1").count() == len(clips),
        worker, "Feature extraction",
    )

    app.send_task(SCHEDULER_TASK)
    finished = wait_until(
        lambda: TasteModel.objects.filter(status=TasteModel.Status.FINISHED).count() == 2,
        worker, "The scheduled refits",
    )

    assert finished
    cohort_model = TasteModel.objects.get(cohort=cohort)
    crowd_model = TasteModel.objects.get(cohort__isnull=True)
    assert cohort_model.backbone == crowd_model.backbone == "handcrafted:v1"
    assert cohort_model.task_id and crowd_model.task_id
    assert crowd_model.is_active is True
    log = worker.log_tail(max_chars=200_000)
    assert f"Task {SCHEDULER_TASK}[" in log
    assert "Scheduler sent 2 refits" in log
