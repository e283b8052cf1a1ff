"""The refit scheduler: which refits are due, stale RUNNING rows, and the tasks' own due check."""

import datetime

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from scoring.models import ClipFeatures, TasteModel
from scoring.refit import Outcome, run_refit
from scoring.scheduling import REFIT_ALL_TASK, REFIT_COHORT_TASK, cohort_due, plan_refits, schedule_due_refits
from scoring.tasks.refit import refit_all_judgments, refit_cohort
from tests.taste_dataset import BACKBONE, add_judgments, build_planted_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def handcrafted_backbone(settings):
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted", "REFIT_MIN_NEW_JUDGMENTS": 10}


def planned_cohorts(plans):
    return sorted(plan.kwargs["cohort_id"] for plan in plans if plan.task == REFIT_COHORT_TASK)


def finish_refit(data, minutes_ago):
    """Refit ``data``'s cohort now and date the version ``minutes_ago`` back."""
    outcome = run_refit(data.cohort.pk)
    assert outcome.status == Outcome.FINISHED
    TasteModel.objects.filter(pk=outcome.taste_model_id).update(
        finished_at=timezone.now() - datetime.timedelta(minutes=minutes_ago)
    )
    return outcome


def test_only_due_cohorts_are_sent():
    fresh = build_planted_cohort(n_judgments=30, seed=1)
    too_few = build_planted_cohort(n_judgments=10, seed=2, min_judgments=50)
    recent = build_planted_cohort(n_judgments=30, seed=3, refit_interval_minutes=60)
    finish_refit(recent, minutes_ago=5)
    add_judgments(recent, 20, seed=30)
    quiet = build_planted_cohort(n_judgments=30, seed=4, refit_interval_minutes=60)
    finish_refit(quiet, minutes_ago=120)
    add_judgments(quiet, 9, seed=40)
    busy = build_planted_cohort(n_judgments=30, seed=5, refit_interval_minutes=60)
    finish_refit(busy, minutes_ago=120)
    add_judgments(busy, 10, seed=50)

    sent = []
    plans = schedule_due_refits(send=sent.append)

    assert sent == plans
    assert planned_cohorts(plans) == sorted([fresh.cohort.pk, busy.cohort.pk])
    for plan in plans:
        if plan.task == REFIT_COHORT_TASK:
            assert plan.kwargs["backbone"] == BACKBONE
            assert plan.kwargs["if_due"] is True
    assert not any(plan.kwargs.get("cohort_id") == too_few.cohort.pk for plan in plans)


def test_all_judgments_model_sent_per_backbone():
    build_planted_cohort(n_judgments=30, seed=1)
    build_planted_cohort(n_judgments=30, seed=2)

    plans = plan_refits()

    crowd = [plan for plan in plans if plan.task == REFIT_ALL_TASK]
    assert [plan.kwargs for plan in crowd] == [{"backbone": BACKBONE, "if_due": True}]


def test_cohort_without_features_is_not_sent():
    data = build_planted_cohort(n_judgments=30)
    ClipFeatures.objects.all().delete()

    assert plan_refits() == []
    assert data.cohort.comparisons.count() == 30


def test_running_refit_is_not_sent_again_until_stale(settings):
    data = build_planted_cohort(n_judgments=30)
    row = TasteModel.objects.create(
        cohort=data.cohort, backbone=BACKBONE, version=1, weights_mode="learned", margin=1, half_life_days=30,
        high_water_judgment_id=17, task_id="lost",
    )
    now = timezone.now()

    assert planned_cohorts(plan_refits(now)) == []

    later = now + datetime.timedelta(minutes=settings.SALON["REFIT_STALE_MINUTES"] + 1)
    plans = [plan for plan in plan_refits(later) if plan.task == REFIT_COHORT_TASK]
    assert len(plans) == 2
    stale, due = plans
    assert stale.kwargs == {"cohort_id": data.cohort.pk, "backbone": BACKBONE, "high_water_judgment_id": 17}
    assert stale.reason.startswith("stale RUNNING v1")
    assert due.kwargs["if_due"] is True
    row.refresh_from_db()
    assert row.status == TasteModel.Status.RUNNING


def test_own_running_row_does_not_block_redelivered_task():
    data = build_planted_cohort(n_judgments=30)
    TasteModel.objects.create(
        cohort=data.cohort, backbone=BACKBONE, version=1, weights_mode="learned", margin=1, half_life_days=30,
        high_water_judgment_id=30, task_id="task-1",
    )
    now = timezone.now()

    assert cohort_due(data.cohort, BACKBONE, now, task_id="task-2") == "a refit is running"
    assert cohort_due(data.cohort, BACKBONE, now, task_id="task-1") is None


def test_stale_refit_sent_again_finishes_its_row(settings):
    data = build_planted_cohort(n_judgments=30)
    mark = data.cohort.comparisons.order_by("-id").values_list("judgment__id", flat=True)[0]
    row = TasteModel.objects.create(
        cohort=data.cohort, backbone=BACKBONE, version=1, weights_mode="learned", margin=1, half_life_days=30,
        high_water_judgment_id=mark, task_id="lost",
    )
    TasteModel.objects.filter(pk=row.pk).update(
        started_at=timezone.now() - datetime.timedelta(minutes=settings.SALON["REFIT_STALE_MINUTES"] + 5)
    )
    stale = plan_refits()[0]

    result = refit_cohort(**stale.kwargs)

    assert result["status"] == Outcome.FINISHED
    row.refresh_from_db()
    assert row.status == TasteModel.Status.FINISHED
    assert TasteModel.objects.filter(cohort=data.cohort).count() == 1


def test_failed_refit_waits_for_the_interval():
    data = build_planted_cohort(n_judgments=30, half_life_days=1e-11, refit_interval_minutes=60)
    assert run_refit(data.cohort.pk).status == Outcome.FAILED

    assert planned_cohorts(plan_refits()) == []
    later = timezone.now() + datetime.timedelta(minutes=61)
    assert planned_cohorts(plan_refits(later)) == [data.cohort.pk]


def test_planned_refits_run_then_nothing_is_due():
    first = build_planted_cohort(n_judgments=30, seed=1)
    second = build_planted_cohort(n_judgments=30, seed=2)

    for plan in schedule_due_refits(send=lambda plan: None):
        task = refit_cohort if plan.task == REFIT_COHORT_TASK else refit_all_judgments
        assert task(**plan.kwargs)["status"] == Outcome.FINISHED

    assert TasteModel.objects.filter(cohort=first.cohort, is_active=True).count() == 1
    assert TasteModel.objects.filter(cohort=second.cohort, is_active=True).count() == 1
    assert TasteModel.objects.filter(cohort__isnull=True, is_active=True).count() == 1
    assert plan_refits() == []


def test_task_due_check_stops_queued_copies():
    data = build_planted_cohort(n_judgments=30, refit_interval_minutes=60)
    assert refit_cohort(data.cohort.pk, BACKBONE, if_due=True)["status"] == Outcome.FINISHED
    add_judgments(data, 15, seed=9)

    copy = refit_cohort(data.cohort.pk, BACKBONE, if_due=True)
    manual = refit_cohort(data.cohort.pk)

    assert copy["status"] == "not_due"
    assert copy["message"] == "refit interval not passed"
    assert manual["status"] == Outcome.FINISHED
    assert TasteModel.objects.filter(cohort=data.cohort).count() == 2


def test_tasks_reject_bad_arguments():
    with pytest.raises(ValueError, match="cohort_id must be a non-negative integer id"):
        refit_cohort("3")
    with pytest.raises(ValueError, match="stored backbone name"):
        refit_all_judgments("handcrafted")


def routed_queue(task):
    from taste_site.celery import app

    return app.amqp.router.route({}, task.name, args=(), kwargs={})["queue"].name


def test_refit_tasks_are_bounded_and_survive_worker_loss():
    for task in (refit_cohort, refit_all_judgments):
        assert routed_queue(task) == "gpu"
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True
        assert 0 < task.soft_time_limit < task.time_limit
        assert task.max_retries == 3
        # A stale refit is handed to another worker; the hard limit must
        # end the first one before that happens.
        assert task.time_limit < django_settings.SALON["REFIT_STALE_MINUTES"] * 60


def test_beat_runs_scheduler_every_interval():
    from scoring.tasks.scheduler import schedule_refits

    entry = django_settings.CELERY_BEAT_SCHEDULE["schedule-refits"]
    assert entry["task"] == schedule_refits.name
    assert entry["schedule"] == django_settings.SALON["SCHEDULER_INTERVAL_SECONDS"]
    assert entry["options"]["queue"] == "default"
    assert routed_queue(schedule_refits) == "default"
