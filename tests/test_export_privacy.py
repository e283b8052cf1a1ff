"""Exports carry pseudonyms only: no username, e-mail or platform id unless asked for."""

import json

import pyarrow.parquet as pq
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command

from comparisons.exports.pseudonyms import Pseudonymizer
from tests.export_dataset import SECRETS, build_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def out(tmp_path):
    """An empty folder for export files (tmp_path also contains the test's MEDIA_ROOT)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder

FORMATS = ["csv", "jsonl", "parquet"]
IDENTIFYING = SECRETS["usernames"] + SECRETS["emails"]
PLATFORM_IDS = SECRETS["participant_ids"] + SECRETS["study_ids"] + SECRETS["session_ids"]


def export_texts(out, file_format, *args):
    """Export and return every byte string a reader could see: data, decoded data and both cards."""
    path = out / f"out.{file_format}"
    call_command("export_comparisons", "--cohort", "painters", "--cohort", "crowd", "--output", str(path), *args)
    texts = [
        path.read_bytes(),
        (out / f"out.{file_format}.card.md").read_bytes(),
        (out / f"out.{file_format}.card.json").read_bytes(),
    ]
    if file_format == "parquet":
        # Parquet pages are compressed, so grep the decoded values as well as the raw bytes.
        texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str).encode())
    return texts


def rater_column(out, name):
    path = out / name
    call_command("export_comparisons", "--cohort", "painters", "--output", str(path), "--include-simulated")
    return [json.loads(line)["rater"] for line in path.read_text().splitlines()]


@pytest.mark.parametrize("file_format", FORMATS)
def test_no_identifying_values_by_default(out, file_format):
    build_dataset()
    texts = export_texts(out, file_format, "--include-simulated", "--features", "--scores")

    for secret in IDENTIFYING + PLATFORM_IDS:
        for text in texts:
            assert secret.encode() not in text


@pytest.mark.parametrize("file_format", FORMATS)
def test_platform_ids_only_when_asked(out, file_format):
    build_dataset()
    texts = export_texts(out, file_format, "--platform-ids")
    readable = texts[0] if file_format != "parquet" else texts[3]

    for secret in PLATFORM_IDS:
        assert secret.encode() in readable
    for secret in IDENTIFYING:
        for text in texts:
            assert secret.encode() not in text


def test_card_warns_about_platform_ids(out):
    build_dataset()
    texts = export_texts(out, "csv", "--platform-ids")

    assert b"recruitment-platform ids" in texts[1]


def test_pseudonyms_stable_across_exports(out):
    data = build_dataset()
    first = rater_column(out, "a.jsonl")
    second = rater_column(out, "b.jsonl")

    assert first == second
    alice, bob, sim = data.raters[:3]
    assert set(first) == {Pseudonymizer()(alice.id), Pseudonymizer()(bob.id), Pseudonymizer()(sim.id)}
    assert all(value.startswith("r_") and len(value) == 18 for value in first)


def test_pseudonyms_change_with_secret(out, settings):
    build_dataset()
    before = rater_column(out, "a.jsonl")
    settings.SALON = {**settings.SALON, "PSEUDONYM_SECRET": "another-deployment-secret"}

    after = rater_column(out, "b.jsonl")

    assert len(after) == len(before)
    assert set(after).isdisjoint(before)
    # The same rater still maps to one pseudonym under the new secret.
    assert len(set(after)) == len(set(before))


def test_empty_secret_raises_improperly_configured(settings):
    settings.SALON = {**settings.SALON, "PSEUDONYM_SECRET": ""}

    with pytest.raises(ImproperlyConfigured, match="SALON_PSEUDONYM_SECRET"):
        Pseudonymizer()


def test_empty_secret_fails_command_without_files(out, settings):
    build_dataset()
    settings.SALON = {**settings.SALON, "PSEUDONYM_SECRET": ""}

    with pytest.raises(CommandError, match="SALON_PSEUDONYM_SECRET"):
        call_command("export_comparisons", "--cohort", "painters", "--output", str(out / "out.csv"))
    assert list(out.iterdir()) == []
