"""simulate_raters: planted raters vote through the real vote path, and a refit recovers their taste."""

import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from comparisons.models import Comparison, Judgment, Membership
from scoring.models import ClipFeatures, ClipScore, TasteModel
from scoring.refit import Outcome, run_refit
from scoring.simulated_raters import plant_pool_taste
from scoring.simulation import expected_accuracy
from tests.factories import make_rater
from tests.taste_dataset import build_planted_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def handcrafted_backbone(settings):
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted", "SIMULATED_RATERS_EXEMPT": True}


def simulate(cohort, *extra, raters=4, judgments=40, alpha=0.0, beta=3.0, gamma=0.0, seed=1):
    arguments = [
        "simulate_raters", "--cohort", cohort.slug, "--raters", str(raters), "--judgments", str(judgments),
        "--alpha", str(alpha), "--beta", str(beta), "--gamma", str(gamma), "--seed", str(seed), *extra,
    ]
    call_command(*arguments)


def test_planted_taste_is_recovered_by_a_refit(capsys):
    # The default minimum view time (1500 ms) stays on: only the exemption lets the votes through.
    data = build_planted_cohort(n_clips=30, n_judgments=0, n_raters=0, min_view_ms=1500, daily_goal=50)

    simulate(data.cohort, "--dims", "3", "--direction-seed", "5", raters=10, judgments=500,
             alpha=0.5, beta=3.0, gamma=0.5)

    output = capsys.readouterr().out
    assert "alpha=0.5 beta=3 gamma=0.5" in output
    assert "Stored 500 of 500 judgments" in output
    judgments = Judgment.objects.filter(comparison__cohort=data.cohort)
    assert judgments.count() == 500
    assert judgments.filter(is_simulated=False).count() == 0
    assert Comparison.objects.filter(cohort=data.cohort).count() == 500
    memberships = Membership.objects.filter(cohort=data.cohort)
    assert memberships.count() == 10
    assert all(membership.is_simulated for membership in memberships)

    outcome = run_refit(data.cohort.pk)

    assert outcome.status == Outcome.FINISHED
    model = TasteModel.objects.get()
    assert model.n_judgments == 500
    planted = plant_pool_taste(data.cohort, alpha=0.5, beta=3.0, gamma=0.5, dims=3, direction_seed=5)
    scores = dict(ClipScore.objects.filter(taste_model=model).values_list("clip_id", "total"))
    clip_ids = sorted(planted.true_scores)
    fitted = np.array([scores[clip_id] for clip_id in clip_ids])
    truth = np.array([planted.true_scores[clip_id] for clip_id in clip_ids])
    accuracy = expected_accuracy(fitted, truth)
    assert accuracy > 0.75
    assert accuracy > planted.bayes_accuracy() - 0.05
    assert abs(float(model.w @ planted.direction)) > 0.8


def test_rerun_reuses_raters(capsys):
    data = build_planted_cohort(n_clips=12, n_judgments=0, n_raters=0)
    simulate(data.cohort, raters=3, judgments=9)
    simulate(data.cohort, raters=3, judgments=9, seed=2)

    assert "3 simulated raters (0 new)" in capsys.readouterr().out
    assert Membership.objects.filter(cohort=data.cohort).count() == 3
    assert Judgment.objects.filter(comparison__cohort=data.cohort).count() == 18


def test_daily_goal_stops_raters_and_says_so(capsys):
    data = build_planted_cohort(n_clips=16, n_judgments=0, n_raters=0, daily_goal=10)

    simulate(data.cohort, raters=2, judgments=30)

    output = capsys.readouterr().out
    assert Judgment.objects.filter(comparison__cohort=data.cohort).count() == 20
    assert "use --raters 3 or more for 30" in output
    assert "2 of 2 raters stopped: daily_goal_reached." in output
    assert "not exempt from the daily goal (10)" in output

    # The same two raters have spent today's goal, so the advice adds raters.
    simulate(data.cohort, raters=2, judgments=10)
    assert "use --raters 3 or more, or raise the goal" in capsys.readouterr().out


def test_exhausted_pool_is_reported(capsys):
    data = build_planted_cohort(n_clips=6, n_judgments=0, n_raters=0, daily_goal=0)
    kinds = list(data.cohort.pool.clips.values_list("kind", flat=True))
    pairs = sum(kinds.count(kind) * (kinds.count(kind) - 1) // 2 for kind in set(kinds))

    simulate(data.cohort, raters=1, judgments=100)

    output = capsys.readouterr().out
    assert Judgment.objects.filter(comparison__cohort=data.cohort).count() == pairs
    assert "1 of 1 raters stopped: all_judged." in output
    assert "judged every pair of the pool" in output


def test_clips_without_features_are_skipped(capsys):
    data = build_planted_cohort(n_clips=8, n_judgments=0, n_raters=0, daily_goal=0)
    ClipFeatures.objects.filter(clip__in=data.clips[:4]).delete()

    simulate(data.cohort, raters=1, judgments=200)

    skipped = Judgment.objects.filter(comparison__cohort=data.cohort, choice=Judgment.Choice.SKIP).count()
    assert skipped > 0
    assert f"{skipped} pairs had a clip without features and were skipped" in capsys.readouterr().out


def test_output_file_holds_planted_truth(tmp_path):
    data = build_planted_cohort(n_clips=10, n_judgments=0, n_raters=0)
    path = tmp_path / "planted.json"

    simulate(data.cohort, "--output", str(path), "--direction-seed", "3", raters=2, judgments=4)

    written = json.loads(path.read_text())
    planted = plant_pool_taste(data.cohort, alpha=0.0, beta=3.0, gamma=0.0, direction_seed=3)
    assert written["beta"] == 3.0
    assert written["direction_seed"] == 3
    assert np.allclose(written["direction"], planted.direction)
    assert {int(k): v for k, v in written["true_scores"].items()} == pytest.approx(planted.true_scores)


def test_unexempt_view_time_blocks_first(settings):
    settings.SALON = {**settings.SALON, "SIMULATED_RATERS_EXEMPT": False}
    data = build_planted_cohort(n_clips=8, n_judgments=0, n_raters=0, min_view_ms=1500)

    with pytest.raises(CommandError, match="SALON_SIMULATED_RATERS_EXEMPT=1"):
        simulate(data.cohort)

    assert Judgment.objects.count() == 0
    assert Membership.objects.count() == 0


def test_unexempt_votes_without_view_time(settings):
    settings.SALON = {**settings.SALON, "SIMULATED_RATERS_EXEMPT": False, "VOTE_RATE_LIMIT_PER_MINUTE": 0}
    data = build_planted_cohort(n_clips=8, n_judgments=0, n_raters=0, min_view_ms=0)

    simulate(data.cohort, raters=2, judgments=6)

    assert Judgment.objects.filter(is_simulated=True).count() == 6


@pytest.mark.parametrize(
    "override, message",
    [
        ({"raters": 0}, "--raters must be at least 1"),
        ({"judgments": 0}, "--judgments must be at least 1"),
        ({"gamma": -1.0}, "--gamma must be a finite number >= 0"),
    ],
)
def test_bad_arguments_are_rejected(override, message):
    data = build_planted_cohort(n_clips=6, n_judgments=0, n_raters=0)

    with pytest.raises(CommandError, match=message):
        simulate(data.cohort, **override)

    assert Membership.objects.count() == 0


def test_unknown_cohort_is_rejected():
    with pytest.raises(CommandError, match="No cohort with slug 'missing'"):
        call_command("simulate_raters", "--cohort", "missing", "--raters", "1", "--judgments", "1",
                     "--alpha", "0", "--beta", "1", "--gamma", "0")


def test_pool_without_features_is_rejected():
    data = build_planted_cohort(n_clips=6, n_judgments=0, n_raters=0)
    ClipFeatures.objects.all().delete()

    with pytest.raises(CommandError, match="Run manage.py extract_features --all first"):
        simulate(data.cohort)


def test_real_account_with_simulated_name_is_refused():
    data = build_planted_cohort(n_clips=6, n_judgments=0, n_raters=0)
    make_rater(data.cohort, username=f"sim-{data.cohort.slug}-1")

    with pytest.raises(CommandError, match="never reuse real accounts"):
        simulate(data.cohort)

    assert Judgment.objects.count() == 0
