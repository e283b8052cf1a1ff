"""Refits from the database: versions, metrics, idempotence, readiness, failures and activation."""

import datetime

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max
from django.utils import timezone

from comparisons.models import Judgment, Membership
from scoring.metrics import kendall_tau
from scoring.models import ClipFeatures, ClipScore, TasteModel
from scoring.refit import Outcome, claim_version, fit_pool, run_all_judgments_refit, run_refit, store_version
from scoring.refit_inputs import (
    clip_backbone_name,
    configured_backbone_names,
    fit_readiness,
    gather_judgments,
    load_pool_features,
    resolve_backbone,
)
from scoring.simulation import expected_accuracy
from scoring.versions import ActivationError, activate_version, active_version
from tests.factories import make_clip, make_features, make_judgment, make_rater
from tests.taste_dataset import BACKBONE, add_judgments, build_planted_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def handcrafted_backbone(settings):
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted"}


def newest_judgment_id(cohort):
    return Judgment.objects.filter(comparison__cohort=cohort).aggregate(mark=Max("id"))["mark"]


def scores_by_clip(taste_model):
    return {score.clip_id: score for score in ClipScore.objects.filter(taste_model=taste_model)}


def test_refit_stores_version_with_metrics():
    data = build_planted_cohort(n_judgments=120)
    add_judgments(data, 5, seed=50, choice="tie")
    add_judgments(data, 3, seed=51, choice="skip")

    outcome = run_refit(data.cohort.pk)

    assert outcome.status == Outcome.FINISHED
    model = TasteModel.objects.get()
    assert model.status == TasteModel.Status.FINISHED
    assert model.version == 1
    assert model.is_active is True
    assert model.backbone == BACKBONE
    assert model.high_water_judgment_id == newest_judgment_id(data.cohort)
    assert model.n_judgments == 120
    assert model.head_dim == 8
    assert np.linalg.norm(model.w) == pytest.approx(1.0, abs=1e-5)
    assert model.window_start < model.window_end
    assert model.finished_at is not None
    metrics = model.metrics
    assert 0.5 < metrics["held_out_accuracy"] <= 1.0
    assert metrics["n_train"] == 96
    assert metrics["n_held_out"] == 24
    assert 0.5 < metrics["train_accuracy"] <= 1.0
    assert metrics["objective"] > 0
    assert metrics["drift_kendall_tau"] is None
    assert 0 < metrics["top10_diversity"] < 2
    assert metrics["n_missing_semantic"] == int(np.isnan(data.planted.inputs.semantic).sum())
    assert metrics["judgments"]["ties"] == 5
    assert metrics["judgments"]["skips"] == 3
    assert metrics["judgments"]["total"] == 128
    assert metrics["n_pairs"] == 120
    assert metrics["lambda_w"] == 0.0
    assert metrics["pulled_towards"] is None


def test_refit_scores_every_clip_with_ranks():
    data = build_planted_cohort(n_judgments=150)
    run_refit(data.cohort.pk)

    model = TasteModel.objects.get()
    scores = scores_by_clip(model)
    assert set(scores) == {clip.pk for clip in data.clips}
    ordered = sorted(scores.values(), key=lambda score: score.rank)
    assert [score.rank for score in ordered] == list(range(1, len(data.clips) + 1))
    totals = [score.total for score in ordered]
    assert totals == sorted(totals, reverse=True)
    for score in ordered:
        semantic = score.semantic or 0.0
        expected = model.alpha * semantic + model.beta * score.aesthetic - model.gamma * score.incoherence
        assert score.total == pytest.approx(expected, abs=1e-9)
    missing = {clip.pk for clip, value in zip(data.clips, data.planted.inputs.semantic) if np.isnan(value)}
    assert {clip_id for clip_id, score in scores.items() if score.semantic is None} == missing


def test_refit_recovers_planted_taste():
    data = build_planted_cohort(n_clips=40, n_judgments=600, seed=3)
    run_refit(data.cohort.pk)

    scores = scores_by_clip(TasteModel.objects.get())
    fitted = np.array([scores[clip.pk].total for clip in data.clips])
    assert expected_accuracy(fitted, data.true_scores) > 0.75
    assert kendall_tau(fitted, data.true_scores) > 0.6


def test_duplicate_refit_of_same_mark_adds_nothing():
    data = build_planted_cohort()
    first = run_refit(data.cohort.pk)
    before = (TasteModel.objects.count(), ClipScore.objects.count())

    second = run_refit(data.cohort.pk)
    third = run_refit(data.cohort.pk, BACKBONE, first.mark)

    assert second.status == Outcome.EXISTS
    assert third.status == Outcome.EXISTS
    assert second.taste_model_id == first.taste_model_id
    assert (TasteModel.objects.count(), ClipScore.objects.count()) == before


def test_new_judgments_make_next_version_with_drift():
    data = build_planted_cohort(n_judgments=100)
    run_refit(data.cohort.pk)
    add_judgments(data, 60, seed=9)

    outcome = run_refit(data.cohort.pk)

    assert outcome.version == 2
    first, second = TasteModel.objects.order_by("version")
    assert second.high_water_judgment_id > first.high_water_judgment_id
    assert second.is_active is True
    assert first.is_active is False
    assert second.metrics["drift_against_version"] == 1
    old, new = scores_by_clip(first), scores_by_clip(second)
    expected = kendall_tau([old[c.pk].total for c in data.clips], [new[c.pk].total for c in data.clips])
    assert second.metrics["drift_kendall_tau"] == pytest.approx(expected)
    assert second.n_judgments == 160


def test_refit_uses_only_judgments_up_to_mark():
    data = build_planted_cohort(n_judgments=100)
    judgments = add_judgments(data, 30, seed=4)
    mark = judgments[9].pk

    run_refit(data.cohort.pk, BACKBONE, mark)

    model = TasteModel.objects.get()
    assert model.high_water_judgment_id == mark
    assert model.n_judgments == 110


def test_below_minimum_no_version_and_reason():
    data = build_planted_cohort(n_judgments=12, min_judgments=50)
    add_judgments(data, 4, seed=7, choice="skip")

    outcome = run_refit(data.cohort.pk)

    assert outcome.status == Outcome.NOT_READY
    assert outcome.message == "12 of 50 judgments needed to fit."
    assert TasteModel.objects.count() == 0
    readiness = fit_readiness(data.cohort)
    assert readiness.ready is False
    assert readiness.usable == 12
    assert readiness.reason == "12 of 50 judgments needed to fit."
    assert readiness.left_out == "Not counted: 4 ties and skips."


def test_no_features_reason_names_backbones(settings):
    data = build_planted_cohort(n_judgments=30)
    ClipFeatures.objects.all().delete()
    settings.SALON = {**settings.SALON, "BACKBONE": "auto", "CLIP_MODEL": "ViT-B-32", "CLIP_PRETRAINED": "openai"}

    outcome = run_refit(data.cohort.pk)

    assert outcome.status == Outcome.NOT_READY
    assert "clip:ViT-B-32:openai or handcrafted:v1" in outcome.message
    assert TasteModel.objects.count() == 0


def test_declared_weights_are_kept():
    data = build_planted_cohort(weights_mode="declared", alpha=0.0, beta=1.5, gamma=0.25)
    data.cohort.alpha, data.cohort.beta, data.cohort.gamma = 0.0, 1.5, 0.25
    data.cohort.save()

    run_refit(data.cohort.pk)

    model = TasteModel.objects.get()
    assert model.weights_mode == "declared"
    assert (model.alpha, model.beta, model.gamma) == (0.0, 1.5, 0.25)
    for score in ClipScore.objects.filter(taste_model=model):
        assert score.total == pytest.approx(1.5 * score.aesthetic - 0.25 * score.incoherence, abs=1e-9)


def test_learned_weights_differ_from_declared():
    data = build_planted_cohort()
    run_refit(data.cohort.pk)

    model = TasteModel.objects.get()
    assert model.weights_mode == "learned"
    assert model.beta > model.alpha >= 0
    assert (model.alpha, model.beta, model.gamma) != (1.0, 1.0, 1.0)


def test_failed_refit_keeps_active_version_and_reason():
    data = build_planted_cohort(n_judgments=60)
    run_refit(data.cohort.pk)
    # With a half-life of a microsecond every judgment but the newest weighs
    # 0, so the held-out fit on the older 80% has no weight to fit.
    data.cohort.half_life_days = 1e-11
    data.cohort.save()
    add_judgments(data, 20, seed=5)

    outcome = run_refit(data.cohort.pk)

    assert outcome.status == Outcome.FAILED
    failed = TasteModel.objects.get(version=2)
    assert failed.status == TasteModel.Status.FAILED
    assert "All pair weights are 0" in failed.failure_reason
    assert failed.is_active is False
    assert ClipScore.objects.filter(taste_model=failed).count() == 0
    assert active_version(data.cohort).version == 1


def test_failed_refit_is_retried_on_same_row():
    data = build_planted_cohort(n_judgments=60, half_life_days=1e-11)
    failed = run_refit(data.cohort.pk)
    assert failed.status == Outcome.FAILED
    data.cohort.half_life_days = 30
    data.cohort.save()

    retried = run_refit(data.cohort.pk, BACKBONE, failed.mark)

    assert retried.status == Outcome.FINISHED
    assert retried.taste_model_id == failed.taste_model_id
    model = TasteModel.objects.get()
    assert model.failure_reason == ""
    assert model.half_life_days == 30


def test_stale_running_row_taken_over(settings):
    data = build_planted_cohort(n_judgments=60)
    now = timezone.now()
    mark = newest_judgment_id(data.cohort)
    row = TasteModel.objects.create(
        cohort=data.cohort, backbone=BACKBONE, version=1, weights_mode="learned", margin=1, half_life_days=30,
        high_water_judgment_id=mark, task_id="other-task",
    )

    blocked = run_refit(data.cohort.pk, BACKBONE, mark, task_id="mine", now=now)
    assert blocked.status == Outcome.RUNNING_ELSEWHERE
    assert TasteModel.objects.get().status == TasteModel.Status.RUNNING

    later = now + datetime.timedelta(minutes=settings.SALON["REFIT_STALE_MINUTES"] + 1)
    taken = run_refit(data.cohort.pk, BACKBONE, mark, task_id="mine", now=later)

    assert taken.status == Outcome.FINISHED
    row.refresh_from_db()
    assert row.status == TasteModel.Status.FINISHED
    assert row.task_id == "mine"
    assert TasteModel.objects.count() == 1


def test_redelivered_task_takes_over_its_own_row():
    data = build_planted_cohort(n_judgments=40)
    mark = newest_judgment_id(data.cohort)
    TasteModel.objects.create(
        cohort=data.cohort, backbone=BACKBONE, version=1, weights_mode="learned", margin=1, half_life_days=30,
        high_water_judgment_id=mark, task_id="task-1",
    )

    outcome = run_refit(data.cohort.pk, BACKBONE, mark, task_id="task-1")

    assert outcome.status == Outcome.FINISHED


def test_simulated_judgments_count_only_in_simulation_cohort():
    data = build_planted_cohort(n_judgments=40)
    bot = make_rater(data.cohort, is_simulated=True)
    add_judgments(data, 25, seed=8, raters=[bot], is_simulated=True)

    run_refit(data.cohort.pk)
    mixed = TasteModel.objects.get()
    assert mixed.n_judgments == 40
    assert mixed.metrics["judgments"]["simulated"] == 25

    simulation = build_planted_cohort(n_judgments=0, n_raters=0)
    bots = [make_rater(simulation.cohort, is_simulated=True) for _ in range(2)]
    add_judgments(simulation, 30, seed=8, raters=bots, is_simulated=True)
    run_refit(simulation.cohort.pk)
    assert TasteModel.objects.get(cohort=simulation.cohort).n_judgments == 30


def test_rater_weight_zero_and_flagged_raters_left_out():
    data = build_planted_cohort(n_judgments=30)
    muted = make_rater(data.cohort, rater_weight=0.0)
    flagged = make_rater(data.cohort, status=Membership.Status.FLAGGED)
    outsider = make_rater()
    add_judgments(data, 6, seed=10, raters=[muted])
    add_judgments(data, 4, seed=11, raters=[flagged])
    add_judgments(data, 2, seed=12, raters=[outsider])

    run_refit(data.cohort.pk)

    counts = TasteModel.objects.get().metrics["judgments"]
    assert counts["zero_weight"] == 6
    assert counts["flagged"] == 4
    assert counts["no_membership"] == 2
    assert TasteModel.objects.get().n_judgments == 30


def test_rater_weight_scales_judgments():
    data = build_planted_cohort(n_judgments=40)
    Membership.objects.filter(user=data.raters[0]).update(rater_weight=0.5)

    run_refit(data.cohort.pk)

    assert TasteModel.objects.get().n_judgments == 40


def test_clips_without_features_are_dropped_and_counted():
    data = build_planted_cohort(n_judgments=60)
    bare = make_clip(caption="no features")
    data.cohort.pool.clips.add(bare)
    for index in range(5):
        make_judgment(data.cohort, data.raters[0], bare, data.clips[index], choice="left")

    run_refit(data.cohort.pk)

    model = TasteModel.objects.get()
    assert model.metrics["judgments"]["unscored_clip"] == 5
    assert model.metrics["n_clips_missing_features"] == 1
    assert model.n_judgments == 60
    assert not ClipScore.objects.filter(clip=bare).exists()


def test_invalid_features_are_left_out():
    data = build_planted_cohort(n_judgments=60)
    ClipFeatures.objects.filter(clip=data.clips[0]).update(flicker=float("inf"))

    run_refit(data.cohort.pk)

    model = TasteModel.objects.get()
    assert model.metrics["n_clips_invalid_features"] == 1
    assert ClipScore.objects.filter(taste_model=model).count() == len(data.clips) - 1


def test_all_judgments_model_pulls_cohorts():
    first = build_planted_cohort(n_judgments=80, seed=1)
    second = build_planted_cohort(n_judgments=80, seed=2)

    crowd = run_all_judgments_refit(BACKBONE)
    assert crowd.status == Outcome.FINISHED
    crowd_model = TasteModel.objects.get(cohort__isnull=True)
    assert crowd_model.is_active is True
    assert crowd_model.n_judgments == 160
    assert ClipScore.objects.filter(taste_model=crowd_model).count() == len(first.clips) + len(second.clips)

    run_refit(first.cohort.pk)
    cohort_model = TasteModel.objects.get(cohort=first.cohort)
    assert cohort_model.metrics["pulled_towards"] == crowd_model.pk
    assert cohort_model.metrics["lambda_w"] > 0


def test_all_judgments_model_leaves_out_simulated_judgments():
    data = build_planted_cohort(n_judgments=30)
    bot = make_rater(data.cohort, is_simulated=True)
    add_judgments(data, 10, seed=3, raters=[bot], is_simulated=True)

    run_all_judgments_refit(BACKBONE)

    crowd = TasteModel.objects.get(cohort__isnull=True)
    assert crowd.n_judgments == 30
    assert crowd.metrics["judgments"]["simulated"] == 10


def test_auto_activate_off_keeps_previous_active():
    data = build_planted_cohort(n_judgments=60)
    run_refit(data.cohort.pk)
    data.cohort.auto_activate = False
    data.cohort.save()
    add_judgments(data, 20, seed=6)

    run_refit(data.cohort.pk)

    assert active_version(data.cohort).version == 1
    assert TasteModel.objects.get(version=2).is_active is False


def test_rollback_activates_older_version():
    data = build_planted_cohort(n_judgments=60)
    run_refit(data.cohort.pk)
    add_judgments(data, 20, seed=6)
    run_refit(data.cohort.pk)
    first = TasteModel.objects.get(version=1)

    replaced = activate_version(first)

    assert replaced.version == 2
    assert active_version(data.cohort).version == 1
    assert TasteModel.objects.filter(is_active=True).count() == 1


def test_failed_version_cannot_be_activated():
    data = build_planted_cohort(n_judgments=60, half_life_days=1e-11)
    run_refit(data.cohort.pk)

    with pytest.raises(ActivationError, match="only a finished version can be activated"):
        activate_version(TasteModel.objects.get())


def test_backbone_resolution(settings):
    data = build_planted_cohort(n_judgments=0)
    assert resolve_backbone(data.cohort) == BACKBONE
    assert resolve_backbone(data.cohort, "clip") is None
    assert resolve_backbone(data.cohort, "handcrafted:v9") == "handcrafted:v9"

    settings.SALON = {**settings.SALON, "BACKBONE": "auto", "CLIP_MODEL": "tiny", "CLIP_PRETRAINED": "none"}
    assert configured_backbone_names() == ["clip:tiny:none", BACKBONE]
    for clip in data.clips[:3]:
        make_features(clip, np.ones(4), backbone="clip:tiny:none")
    assert resolve_backbone(data.cohort) == BACKBONE
    for clip in data.clips[3:]:
        make_features(clip, np.ones(4), backbone="clip:tiny:none")
    assert resolve_backbone(data.cohort) == "clip:tiny:none"


def test_clip_backbone_name_follows_checkpoint(settings):
    settings.SALON = {**settings.SALON, "CLIP_MODEL": "ViT-B-32", "CLIP_PRETRAINED": "openai",
                      "CLIP_CHECKPOINT": "/weights/vit-b-32.safetensors"}
    assert clip_backbone_name() == "clip:ViT-B-32:vit-b-32.safetensors"
    settings.SALON = {**settings.SALON, "CLIP_CHECKPOINT": "", "CLIP_PRETRAINED": "None"}
    assert clip_backbone_name() == "clip:ViT-B-32:none"


def test_refit_command_runs_and_reports(capsys):
    data = build_planted_cohort(n_judgments=60)

    call_command("refit", "--cohort", data.cohort.slug)

    output = capsys.readouterr().out
    model = TasteModel.objects.get()
    assert f"version {model.version}" in output
    assert "held-out accuracy" in output
    call_command("refit", "--cohort", data.cohort.slug)
    assert "already fitted" in capsys.readouterr().out
    assert TasteModel.objects.count() == 1


def test_refit_command_rejects_unknown_cohort():
    with pytest.raises(CommandError, match="No cohort with slug 'nope'"):
        call_command("refit", "--cohort", "nope")


def test_refit_command_fails_loudly_below_minimum():
    data = build_planted_cohort(n_judgments=5, min_judgments=50)
    with pytest.raises(CommandError, match="5 of 50 judgments needed"):
        call_command("refit", "--cohort", data.cohort.slug)


def test_taken_over_refit_stores_nothing():
    data = build_planted_cohort(n_judgments=40)
    mark = newest_judgment_id(data.cohort)
    fields = {"weights_mode": "learned", "alpha": None, "beta": None, "gamma": None, "margin": 1.0,
              "half_life_days": 30.0}
    claim = claim_version(data.cohort.pk, BACKBONE, mark, task_id="slow", fields=fields, now=timezone.now())
    pool = load_pool_features(data.cohort.pool.clips.values_list("id", "kind"), BACKBONE)
    result = fit_pool(pool, gather_judgments([data.cohort], mark), weights_mode="learned", margin=1.0)
    # Another worker took the stale row over while this one was fitting.
    TasteModel.objects.filter(pk=claim.row.pk).update(task_id="fast", started_at=timezone.now())

    stored = store_version(claim.row, result, activate=True)

    assert stored is False
    row = TasteModel.objects.get()
    assert row.status == TasteModel.Status.RUNNING
    assert row.task_id == "fast"
    assert row.is_active is False
    assert ClipScore.objects.count() == 0
