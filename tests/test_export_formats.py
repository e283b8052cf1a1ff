"""Each export format, read back with pandas or json, matches the database field by field."""

import hashlib
import hmac
import json
import math
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from django.core.management import call_command

from comparisons.exports.schema import SCHEMA_VERSION, columns_for
from comparisons.models import Judgment, Membership
from scoring.models import ClipFeatures, ClipScore
from tests.export_dataset import BACKBONE, OTHER_BACKBONE, T0, build_dataset

pytestmark = pytest.mark.django_db

SECRET = "test-pseudonym-secret"
FORMATS = ["csv", "jsonl", "parquet"]


def pseudonym(user_id, secret=SECRET):
    return "r_" + hmac.new(secret.encode(), str(user_id).encode(), hashlib.sha256).hexdigest()[:16]


def export(tmp_path, file_format, *args, name="out"):
    path = tmp_path / f"{name}.{file_format}"
    call_command("export_comparisons", "--output", str(path), *args)
    return path


def _clean(value):
    """Turn pandas and numpy values into plain Python values (None for missing)."""
    if isinstance(value, np.ndarray):
        return [float(item) for item in value]
    if isinstance(value, (list, dict)):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_back(path, file_format):
    """Read an export into dicts of Python values, decoding each text encoding by column kind."""
    if file_format == "jsonl":
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    elif file_format == "csv":
        records = pd.read_csv(path, dtype=str, keep_default_na=False).to_dict("records")
    else:
        frame = pd.read_parquet(path)
        records = [{key: _clean(value) for key, value in record.items()} for record in frame.to_dict("records")]
        for record in records:
            for key, value in record.items():
                if key.endswith("_generator"):
                    record[key] = json.loads(value)
        return records

    all_columns = columns_for(platform_ids=True, features=True, scores=True)
    kinds = {column.name: column.kind for column in all_columns}
    nullable = {column.name for column in all_columns if column.nullable}
    decoded = []
    for record in records:
        row = {}
        for key, value in record.items():
            kind = kinds[key]
            if file_format == "csv":
                # CSV has no null: an empty cell is null in a nullable column.
                value = None if value == "" and key in nullable else _decode_csv(kind, value)
            elif kind == "timestamp":
                assert value.endswith("Z"), value
                value = datetime.fromisoformat(value)
            row[key] = value
        decoded.append(row)
    return decoded


def _decode_csv(kind, text):
    if kind == "str":
        return text
    if text == "":
        return None
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "bool":
        assert text in ("true", "false"), text
        return text == "true"
    if kind == "timestamp":
        assert text.endswith("Z"), text
        return datetime.fromisoformat(text)
    return json.loads(text)


def expected_row(judgment, *, platform=False, features=False, scores=False, backbone=BACKBONE):
    """Build the row an export should contain, straight from the models."""
    comparison = judgment.comparison
    row = {
        "comparison_id": comparison.id,
        "judgment_id": judgment.id,
        "cohort": comparison.cohort.slug,
        "rater": pseudonym(comparison.rater_id),
        "choice": judgment.choice,
        "winner_clip_id": judgment.winner_id,
        "client_ms": judgment.client_ms,
        "server_ms": judgment.server_ms,
        "served_at": comparison.served_at,
        "answered_at": judgment.created_at,
        "reason": comparison.reason,
        "is_gold": comparison.reason == "gold",
        "is_repeat": comparison.reason == "repeat",
        "is_simulated": judgment.is_simulated,
    }
    for side, clip in (("left", comparison.left), ("right", comparison.right)):
        row.update({
            f"{side}_clip_id": clip.id,
            f"{side}_sha256": clip.sha256,
            f"{side}_file_name": clip.original_name,
            f"{side}_kind": clip.kind,
            f"{side}_caption": clip.caption,
            f"{side}_prompt": clip.prompt.text if clip.prompt_id else "",
            f"{side}_generator": clip.generator,
        })
    if platform:
        membership = Membership.objects.filter(user=comparison.rater, cohort=comparison.cohort).first()
        row.update({
            "rater_platform": membership.platform if membership else "",
            "rater_participant_id": membership.participant_id if membership else "",
            "rater_study_id": membership.study_id if membership else "",
            "rater_session_id": membership.session_id if membership else "",
        })
    if features:
        for side, clip in (("left", comparison.left), ("right", comparison.right)):
            feature = ClipFeatures.objects.filter(clip=clip, backbone=backbone).first()
            row.update({
                f"{side}_backbone": feature.backbone if feature else None,
                f"{side}_semantic": feature.semantic if feature else None,
                f"{side}_frame_dissimilarity": feature.frame_dissimilarity if feature else None,
                f"{side}_flicker": feature.flicker if feature else None,
                f"{side}_embedding": feature.embedding.tolist() if feature else None,
            })
    if scores:
        model = comparison.cohort.taste_models.filter(is_active=True, backbone=backbone).first()
        row.update({
            "taste_model_id": model.id if model else None,
            "taste_model_version": model.version if model else None,
            "taste_model_backbone": model.backbone if model else None,
        })
        for side, clip in (("left", comparison.left), ("right", comparison.right)):
            score = ClipScore.objects.filter(taste_model=model, clip=clip).first() if model else None
            row.update({
                f"{side}_score_total": score.total if score else None,
                f"{side}_score_semantic": score.semantic if score else None,
                f"{side}_score_aesthetic": score.aesthetic if score else None,
                f"{side}_score_incoherence": score.incoherence if score else None,
            })
    return row


def assert_rows_match(actual, expected):
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert set(got) == set(want)
        for key, value in want.items():
            if key.endswith("_embedding") and value is not None:
                np.testing.assert_array_equal(np.asarray(got[key], dtype=np.float32), np.asarray(value, np.float32))
            else:
                assert got[key] == value, (got["judgment_id"], key, got[key], value)


def exported_judgments(data, *slugs, simulated=False):
    judgments = Judgment.objects.filter(comparison__cohort__slug__in=slugs).select_related(
        "comparison__cohort", "comparison__left__prompt", "comparison__right__prompt"
    ).order_by("id")
    if not simulated:
        judgments = judgments.filter(is_simulated=False)
    return list(judgments)


@pytest.mark.parametrize("file_format", FORMATS)
def test_core_columns_match_database(tmp_path, file_format):
    data = build_dataset()
    path = export(tmp_path, file_format, "--cohort", "painters", "--cohort", "crowd")

    rows = read_back(path, file_format)

    expected = [expected_row(j) for j in exported_judgments(data, "painters", "crowd")]
    assert len(rows) == 10
    assert_rows_match(rows, expected)


@pytest.mark.parametrize("file_format", FORMATS)
def test_all_column_groups_match_database(tmp_path, file_format):
    data = build_dataset()
    path = export(
        tmp_path, file_format, "--cohort", "painters", "--cohort", "crowd",
        "--features", "--scores", "--platform-ids", "--include-simulated",
    )

    rows = read_back(path, file_format)

    judgments = exported_judgments(data, "painters", "crowd", simulated=True)
    expected = [expected_row(j, platform=True, features=True, scores=True) for j in judgments]
    assert len(rows) == 12
    assert_rows_match(rows, expected)


def test_column_order_follows_schema(tmp_path):
    build_dataset()
    path = export(tmp_path, "csv", "--cohort", "painters", "--features", "--scores", "--platform-ids")

    header = path.read_text(encoding="utf-8").splitlines()[0].split(",")

    assert header == [c.name for c in columns_for(platform_ids=True, features=True, scores=True)]


def test_csv_default_pandas_types(tmp_path):
    build_dataset()
    path = export(tmp_path, "csv", "--cohort", "painters")

    frame = pd.read_csv(path)

    assert frame["is_gold"].dtype == bool
    assert frame["judgment_id"].dtype == np.int64
    assert frame["left_caption"].tolist()[0] == 'Fox, "quoted", with a comma'
    assert pd.to_datetime(frame["answered_at"]).dt.tz is not None


def test_parquet_types_and_metadata(tmp_path):
    build_dataset()
    path = export(tmp_path, "parquet", "--cohort", "painters", "--features")

    schema = pq.read_schema(path)

    assert str(schema.field("left_embedding").type) == "list<element: float>"
    assert str(schema.field("answered_at").type) == "timestamp[us, tz=UTC]"
    assert str(schema.field("winner_clip_id").type) == "int64"
    assert schema.metadata[b"salon.schema_version"] == SCHEMA_VERSION.encode()
    assert b"Pseudonymous" in schema.field("rater").metadata[b"description"]


@pytest.mark.parametrize("file_format", FORMATS)
def test_default_export_leaves_out_optional_columns(tmp_path, file_format):
    build_dataset()
    path = export(tmp_path, file_format, "--cohort", "painters")

    rows = read_back(path, file_format)

    assert list(rows[0]) == [c.name for c in columns_for()] or file_format == "jsonl"
    assert set(rows[0]) == {c.name for c in columns_for()}


def test_simulated_left_out_by_default(tmp_path):
    build_dataset()
    default = read_back(export(tmp_path, "jsonl", "--cohort", "painters", name="a"), "jsonl")
    included = read_back(export(tmp_path, "jsonl", "--cohort", "painters", "--include-simulated", name="b"), "jsonl")

    assert [row["is_simulated"] for row in default] == [False] * 7
    assert sum(row["is_simulated"] for row in included) == 1
    assert len(included) == 8


def test_no_ties_and_no_skips_leave_them_out(tmp_path):
    build_dataset()
    rows = read_back(export(tmp_path, "jsonl", "--cohort", "painters", "--no-ties", "--no-skips"), "jsonl")

    assert sorted(row["choice"] for row in rows) == ["left", "left", "right", "right", "right"]


def test_since_is_inclusive_and_until_exclusive(tmp_path):
    data = build_dataset()
    since = (T0 + timedelta(minutes=10)).isoformat()
    until = (T0 + timedelta(minutes=30)).isoformat()

    rows = read_back(
        export(tmp_path, "jsonl", "--cohort", "painters", "--since", since, "--until", until), "jsonl"
    )

    assert [row["judgment_id"] for row in rows] == [data.judgments[1].id, data.judgments[2].id]


def test_naive_times_are_utc(tmp_path):
    build_dataset()
    rows = read_back(
        export(tmp_path, "jsonl", "--cohort", "painters", "--since", "2026-11-03", "--until", "2026-11-04T00:00"),
        "jsonl",
    )

    assert len(rows) == 2
    assert all(row["answered_at"].date().isoformat() == "2026-11-03" for row in rows)


def test_backbone_defaults_to_active_taste_model(tmp_path):
    build_dataset()
    rows = read_back(export(tmp_path, "jsonl", "--cohort", "crowd", "--features"), "jsonl")

    # The crowd cohort has no taste model, so the backbone covering most clips wins.
    assert {row["left_backbone"] for row in rows} == {BACKBONE}


@pytest.mark.parametrize("file_format", FORMATS)
def test_explicit_backbone_with_partial_features(tmp_path, file_format):
    data = build_dataset()
    path = export(tmp_path, file_format, "--cohort", "painters", "--features", "--scores", "--backbone", OTHER_BACKBONE)

    rows = read_back(path, file_format)

    expected = [
        expected_row(j, features=True, scores=True, backbone=OTHER_BACKBONE)
        for j in exported_judgments(data, "painters")
    ]
    assert_rows_match(rows, expected)
    assert {row["taste_model_id"] for row in rows} == {None}
    assert {row["left_backbone"] for row in rows} == {OTHER_BACKBONE, None}


def test_scores_empty_for_cohort_without_active_model(tmp_path):
    data = build_dataset()
    rows = read_back(export(tmp_path, "jsonl", "--cohort", "painters", "--cohort", "crowd", "--scores"), "jsonl")

    by_cohort = {}
    for row in rows:
        by_cohort.setdefault(row["cohort"], set()).add(row["taste_model_id"])
    assert by_cohort == {"painters": {data.taste_model.id}, "crowd": {None}}


def test_csv_vector_cells_parse_like_csv_module():
    """Embeddings spliced into CSV rows read back exactly as csv.writer's own output would."""
    import csv
    import io

    from comparisons.exports.schema import Column
    from comparisons.exports.writers import Vector, csv_chunks

    columns = [
        Column("first", "vector", ""), Column("caption", "str", ""), Column("second", "vector", ""),
        Column("third", "vector", ""), Column("n", "int", ""), Column("last", "vector", ""),
    ]
    vector = Vector.from_array([0.1, -2.5, 3e-7])
    rows = [
        (vector, 'a "quoted", multi\nline caption', None, vector, 7, None),
        (None, "", vector, None, None, vector),
    ]

    written = b"".join(csv_chunks(columns, rows)).decode()

    reference = io.StringIO()
    csv.writer(reference, lineterminator="\n").writerows(
        [[c.name for c in columns]]
        + [[cell.json if isinstance(cell, Vector) else cell for cell in row] for row in rows]
    )
    assert list(csv.reader(io.StringIO(written))) == list(csv.reader(io.StringIO(reference.getvalue())))
    assert json.loads(list(csv.reader(io.StringIO(written)))[1][0]) == [0.1, -2.5, 3e-7]
