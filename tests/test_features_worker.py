"""Feature extraction in a real Celery worker process on the embedded broker.

The worker gets the tiny open_clip config through the same environment
variables a deployment would use, receives the task by name as the import
pipeline sends it, and writes ClipFeatures rows that this test then reads.
"""

import time

import numpy as np
import pytest

from comparisons.models import Clip
from scoring.models import ClipFeatures
from taste_site.celery import app
from tests.factories import make_clip, make_file_clip, mp4_bytes
from tests.openclip_tiny import TINY_DIM, TINY_MODEL, tiny_config_path, tiny_worker_env  # noqa: F401

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TASK_NAME = "scoring.tasks.features.extract_features"
TINY_NAME = f"clip:{TINY_MODEL}:none"
WAIT_SECONDS = 180


def wait_for_features(clip_ids, backbone, worker):
    """Poll the database until every clip has features for ``backbone``; fail with the worker log if not."""
    deadline = time.monotonic() + WAIT_SECONDS
    done = set()
    while time.monotonic() < deadline:
        done = set(ClipFeatures.objects.filter(clip_id__in=clip_ids, backbone=backbone).values_list("clip_id", flat=True))
        if done == set(clip_ids):
            return
        if not worker.is_alive():
            break
        time.sleep(0.2)
    pytest.fail(
        f"Features for {sorted(set(clip_ids) - done)} were not written within {WAIT_SECONDS} s. "
        f"Worker log:\n{worker.log_tail()}"
    )


def wait_for_log(worker, text):
    """Poll the worker's log until it contains ``text``; return whether it did."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and worker.is_alive():
        if text in worker.log_tail(max_chars=200_000):
            return True
        time.sleep(0.2)
    return text in worker.log_tail(max_chars=200_000)


def test_worker_writes_features_sent_by_name(celery_worker_factory, tiny_config_path, tmp_path):
    assert app.conf.task_always_eager is False
    video_path = tmp_path / "noise.mp4"
    mp4_bytes(video_path, frames=24, fps=12)
    clips = [make_clip(caption="a still"), make_file_clip(video_path, caption="moving noise"), make_clip()]
    ids = [clip.pk for clip in clips]
    env = {**tiny_worker_env(tiny_config_path), "SALON_FEATURE_BATCH_CLIPS": "2"}
    worker = celery_worker_factory(queues=("gpu",), extra_env=env)

    app.send_task(TASK_NAME, args=[ids])
    wait_for_features(ids, TINY_NAME, worker)

    rows = {row.clip_id: row for row in ClipFeatures.objects.filter(clip_id__in=ids)}
    assert {row.backbone for row in rows.values()} == {TINY_NAME}
    assert [rows[clip_id].n_frames for clip_id in ids] == [1, 8, 1]
    for row in rows.values():
        assert row.dim == TINY_DIM
        assert np.isfinite(row.frames).all()
    assert rows[ids[0]].semantic is not None
    assert rows[ids[2]].semantic is None
    assert rows[ids[1]].flicker > 0.0
    log = worker.log_tail(max_chars=200_000)
    # Three clips with a batch size of 2: one task splits them into two.
    assert "Split 3 clips into 2 feature tasks" in log
    assert f"Loaded backbone {TINY_NAME}" in log


def test_worker_skips_clips_that_have_features(celery_worker_factory, tiny_config_path):
    assert app.conf.task_always_eager is False
    clip = make_clip(caption="twice")
    worker = celery_worker_factory(queues=("gpu",), extra_env=tiny_worker_env(tiny_config_path))

    app.send_task(TASK_NAME, args=[[clip.pk]])
    wait_for_features([clip.pk], TINY_NAME, worker)
    first = ClipFeatures.objects.get(clip=clip)
    pending = make_clip(status=Clip.Status.PENDING)
    app.send_task(TASK_NAME, args=[[clip.pk, pending.pk]])

    assert wait_for_log(worker, "skipped 1 with features, 1 missing or not ready"), worker.log_tail()
    again = ClipFeatures.objects.get(clip=clip)
    assert again.pk == first.pk
    assert again.created_at == first.created_at
    assert not ClipFeatures.objects.filter(clip=pending).exists()


def test_worker_children_share_the_cores(celery_worker_factory, tiny_config_path):
    """With TORCH_THREADS=0 each of 2 prefork children gets half the cores (at least 1 thread)."""
    from scoring.backbones import available_cores

    clip = make_clip()
    env = {**tiny_worker_env(tiny_config_path), "SALON_TORCH_THREADS": "0"}
    worker = celery_worker_factory(queues=("gpu",), extra_env=env, concurrency=2)

    app.send_task(TASK_NAME, args=[[clip.pk]])
    wait_for_features([clip.pk], TINY_NAME, worker)

    expected = max(1, available_cores() // 2)
    assert f"Loaded backbone {TINY_NAME} on cpu with {expected} torch threads" in worker.log_tail(max_chars=200_000)
