"""The taste-model JSON export: every version with weights, head, standardisation and metrics."""

import io
import json

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from scoring.models import TasteModel
from tests.export_dataset import BACKBONE, build_dataset

pytestmark = pytest.mark.django_db


def run_to_stdout(*args):
    stdout = io.StringIO()
    call_command("export_taste_models", *args, stdout=stdout)
    return json.loads(stdout.getvalue())


def test_versions_match_database():
    build_dataset()
    document = run_to_stdout("--cohort", "painters")

    (cohort,) = document["cohorts"]
    assert cohort["cohort"] == "painters"
    assert cohort["declared_weights"] == {"alpha": 0.5, "beta": 2.0, "gamma": 1.5}
    assert [entry["version"] for entry in cohort["versions"]] == [3, 2]
    for entry in cohort["versions"]:
        model = TasteModel.objects.get(pk=entry["id"])
        assert entry["backbone"] == model.backbone == BACKBONE
        assert entry["status"] == model.status
        assert entry["is_active"] is model.is_active
        assert entry["weights"] == {"alpha": model.alpha, "beta": model.beta, "gamma": model.gamma}
        assert entry["standardisation"] == model.standardisation
        assert entry["margin"] == model.margin
        assert entry["half_life_days"] == model.half_life_days
        assert entry["metrics"] == model.metrics
        assert entry["window"]["judgments"] == model.n_judgments
        assert entry["window"]["high_water_judgment_id"] == model.high_water_judgment_id
        assert entry["head"]["dim"] == model.head_dim


def test_head_round_trips_as_float32():
    data = build_dataset()
    document = run_to_stdout("--cohort", "painters")

    active, older = document["cohorts"][0]["versions"]
    assert active["is_active"] is True
    np.testing.assert_array_equal(np.asarray(active["head"]["w"], dtype=np.float32), data.taste_model.w)
    assert older["head"] == {"dim": 0, "w": None}
    assert active["window"]["start"] == "2026-11-02T09:30:00.123456Z"


def test_cohort_without_models_has_no_versions():
    build_dataset()
    document = run_to_stdout("--cohort", "crowd", "--cohort", "painters")

    assert [c["cohort"] for c in document["cohorts"]] == ["crowd", "painters"]
    assert document["cohorts"][0]["versions"] == []
    assert document["cohorts"][0]["declared_weights"] is None


def test_writes_output_file(tmp_path):
    build_dataset()
    target = tmp_path / "models.json"

    call_command("export_taste_models", "--cohort", "painters", "--output", str(target), stdout=io.StringIO())

    assert json.loads(target.read_text())["cohorts"][0]["versions"][0]["version"] == 3
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_unknown_cohort_named():
    build_dataset()

    with pytest.raises(CommandError, match="Unknown cohort 'nobody'"):
        run_to_stdout("--cohort", "nobody")


def test_existing_output_kept(tmp_path):
    build_dataset()
    target = tmp_path / "models.json"
    target.write_text("old")

    with pytest.raises(CommandError, match="already exists"):
        call_command("export_taste_models", "--cohort", "painters", "--output", str(target))
    assert target.read_text() == "old"
