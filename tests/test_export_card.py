"""The dataset card beside each export describes its cohorts, counts, range, columns and clips."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command

from comparisons.exports.schema import SCHEMA_VERSION, columns_for
from comparisons.models import Judgment
from tests.export_dataset import BACKBONE, T0, build_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def out(tmp_path):
    """An empty folder for export files (tmp_path also contains the test's MEDIA_ROOT)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder


def export_card(out, *args, name="out.csv"):
    call_command("export_comparisons", "--output", str(out / name), *args)
    card = json.loads((out / f"{name}.card.json").read_text(encoding="utf-8"))
    markdown = (out / f"{name}.card.md").read_text(encoding="utf-8")
    return card, markdown


def test_card_cohort_definitions(out):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "painters", "--cohort", "crowd")

    painters, crowd = card["cohorts"]
    assert painters["slug"] == "painters"
    assert painters["question"] == "Which clip is more beautiful?"
    assert painters["instructions"] == "Look at both clips fully."
    assert painters["pairing"] == {
        "rule": "Two clips of the same media kind made from the same prompt.",
        "same_media_kind": True, "same_prompt": True,
    }
    assert painters["sampler"] == "uniform"
    assert painters["weights_mode"] == "declared"
    assert painters["declared_weights"] == {"alpha": 0.5, "beta": 2.0, "gamma": 1.5}
    assert painters["margin"] == 0.8
    assert painters["half_life_days"] == 14.0
    assert crowd["weights_mode"] == "learned"
    assert crowd["declared_weights"] is None
    assert crowd["pairing"]["same_prompt"] is False
    assert "Which clip is more beautiful?" in markdown
    assert "declared (alpha 0.5, beta 2.0, gamma 1.5)" in markdown


def test_card_counts_match_database(out):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "painters", "--cohort", "crowd")

    for entry in card["cohorts"]:
        judgments = Judgment.objects.filter(comparison__cohort__slug=entry["slug"], is_simulated=False)
        for choice in ("left", "right", "tie", "skip"):
            assert entry["counts"][choice] == judgments.filter(choice=choice).count()
        assert entry["counts"]["total"] == judgments.count()
        assert entry["raters"] == judgments.values("comparison__rater").distinct().count()
    assert card["rows"] == card["counts"]["total"] == 10
    assert card["counts"] == {"total": 10, "left": 3, "right": 3, "tie": 2, "skip": 2}
    assert "| painters | 7 | 2 | 3 | 1 | 1 | 2 |" in markdown


def test_card_time_range(out):
    build_dataset()
    since = T0 + timedelta(minutes=5)
    until = T0 + timedelta(days=2)
    card, markdown = export_card(out, "--cohort", "painters", "--since", since.isoformat(), "--until", until.isoformat())

    assert card["time_range"]["requested"] == {
        "since": "2026-11-02T09:35:00.123456Z", "until": "2026-11-04T09:30:00.123456Z",
    }
    assert card["time_range"]["actual"] == {
        "first_answered": "2026-11-02T09:40:00.123456Z", "last_answered": "2026-11-03T09:35:00.123456Z",
    }
    assert "2026-11-02T09:40:00.123456Z to 2026-11-03T09:35:00.123456Z" in markdown


def test_card_schema_and_columns(out):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "painters", "--features")

    assert card["schema_version"] == SCHEMA_VERSION
    assert [column["name"] for column in card["columns"]] == [c.name for c in columns_for(features=True)]
    embedding = next(column for column in card["columns"] if column["name"] == "left_embedding")
    assert embedding["type"] == "vector"
    assert "| left_embedding | vector | yes |" in markdown


def test_card_filters_and_generation(out):
    data = build_dataset()
    card, _markdown = export_card(out, "--cohort", "painters", "--no-ties", "--include-simulated")

    assert card["filters"]["cohorts"] == ["painters"]
    assert card["filters"]["ties"] is False
    assert card["filters"]["skips"] is True
    assert card["filters"]["include_simulated"] is True
    assert card["filters"]["high_water_judgment_id"] == data.judgments[10].id
    assert card["format"] == "csv"
    assert card["file"] == "out.csv"
    assert card["generated_at"].endswith("Z")


def test_card_backbones_and_taste_models(out):
    data = build_dataset()
    card, markdown = export_card(out, "--cohort", "painters", "--cohort", "crowd", "--scores", "--features")

    assert card["backbones"] == [BACKBONE]
    assert card["taste_models"] == [{
        "cohort": "painters", "id": data.taste_model.id, "version": 3, "backbone": BACKBONE,
        "weights_mode": "declared", "judgments_fitted": 5,
        "window_start": "2026-11-02T09:30:00.123456Z", "window_end": "2026-11-02T10:20:00.123456Z",
        "finished_at": "2026-11-02T11:30:00.123456Z",
    }]
    assert card["cohorts"][1]["taste_model"] is None
    assert "Taste model: id %d, version 3" % data.taste_model.id in markdown
    assert "Taste model: none active" in markdown


def test_card_without_features_names_no_backbone(out):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "painters")

    assert card["backbones"] == []
    assert "backbone" not in card["cohorts"][0]
    assert "Feature backbones" not in markdown


def test_card_licence_from_option_and_setting(out, settings):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "painters", "--licence", "CC-BY-NC-4.0", name="a.csv")
    assert card["licence"] == "CC-BY-NC-4.0"
    assert "Licence: CC-BY-NC-4.0" in markdown

    settings.SALON = {**settings.SALON, "EXPORT_LICENCE": "ODbL-1.0"}
    card, _markdown = export_card(out, "--cohort", "painters", name="b.csv")
    assert card["licence"] == "ODbL-1.0"

    settings.SALON = {**settings.SALON, "EXPORT_LICENCE": ""}
    card, markdown = export_card(out, "--cohort", "painters", name="c.csv")
    assert card["licence"] == ""
    assert "Licence: not stated" in markdown


def test_card_clip_licences_and_credits(out):
    build_dataset()
    card, markdown = export_card(out, "--cohort", "crowd")

    # The crowd cohort's judgments show all four clips.
    assert card["clips"]["count"] == 4
    assert card["clips"]["licences"] == [
        {"licence": "CC-BY-4.0", "clips": 2}, {"licence": "", "clips": 1}, {"licence": "CC0-1.0", "clips": 1},
    ]
    assert card["clips"]["credits"] == [
        {"credit": "Ana Example", "clips": 2}, {"credit": "", "clips": 1}, {"credit": "Bo Sample", "clips": 1},
    ]
    assert "| CC0-1.0 | 1 |" in markdown
    assert "| Ana Example | 2 |" in markdown


def test_card_notes_csv_null_convention(out):
    build_dataset()
    csv_card, csv_markdown = export_card(out, "--cohort", "painters", name="a.csv")
    jsonl_card, _markdown = export_card(out, "--cohort", "painters", "--format", "jsonl", name="a.jsonl")

    note = "In CSV, a null value and an empty text are both written as an empty field."
    assert any(entry.startswith(note) for entry in csv_card["notes"])
    assert note in csv_markdown
    assert not any(entry.startswith(note) for entry in jsonl_card["notes"])
