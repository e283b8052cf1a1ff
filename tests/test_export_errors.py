"""Bad export requests fail with a message naming the value, and leave no file behind."""

import json
from datetime import timedelta

import pandas as pd
import pytest
from django.core.management import CommandError, call_command

from comparisons.exports import writers
from comparisons.exports.options import ExportError, ExportOptions
from comparisons.exports.rows import ExportRows
from tests.export_dataset import T0, build_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def out(tmp_path):
    """An empty folder for export files (tmp_path also contains the test's MEDIA_ROOT)."""
    folder = tmp_path / "exports"
    folder.mkdir()
    return folder

FORMATS = ["csv", "jsonl", "parquet"]


def run(*args):
    call_command("export_comparisons", *args)


def test_unknown_cohort_named(out):
    build_dataset()

    with pytest.raises(CommandError) as error:
        run("--cohort", "painters", "--cohort", "no-such-cohort", "--output", str(out / "out.csv"))

    assert "'no-such-cohort'" in str(error.value)
    assert "crowd, hidden, painters" in str(error.value)
    assert list(out.iterdir()) == []


def test_empty_range_named(out):
    build_dataset()

    with pytest.raises(CommandError) as error:
        run("--cohort", "painters", "--since", "2026-11-05", "--until", "2026-11-05", "--output", str(out / "o.csv"))

    assert "time range is empty" in str(error.value)
    assert "2026-11-05T00:00:00.000000Z" in str(error.value)
    assert list(out.iterdir()) == []


def test_invalid_time_named(out):
    build_dataset()

    with pytest.raises(CommandError, match="Invalid since time '2026-13-45'"):
        run("--cohort", "painters", "--since", "2026-13-45", "--output", str(out / "o.csv"))


def test_unknown_format_named(out):
    build_dataset()

    with pytest.raises(CommandError, match="invalid choice: 'xml'"):
        run("--cohort", "painters", "--format", "xml", "--output", str(out / "o.xml"))
    with pytest.raises(CommandError, match="Cannot tell the format of .*o.xml"):
        run("--cohort", "painters", "--output", str(out / "o.xml"))
    with pytest.raises(ExportError, match="Unknown format 'xml'"):
        ExportOptions(cohorts=["painters"], format="xml").validate()
    assert list(out.iterdir()) == []


def test_unknown_backbone_named(out):
    build_dataset()

    with pytest.raises(CommandError, match="Unknown backbone 'nope:v9'.*handcrafted:v1"):
        run("--cohort", "painters", "--features", "--backbone", "nope:v9", "--output", str(out / "o.csv"))
    assert list(out.iterdir()) == []


def test_missing_folder_named(out):
    build_dataset()
    target = out / "missing" / "out.csv"

    with pytest.raises(CommandError, match="folder .*missing' does not exist"):
        run("--cohort", "painters", "--output", str(target))


def test_output_under_a_file_named(out):
    build_dataset()
    blocker = out / "plain-file"
    blocker.write_text("not a folder")

    with pytest.raises(CommandError, match="plain-file"):
        run("--cohort", "painters", "--output", str(blocker / "out.csv"))
    assert blocker.read_text() == "not a folder"


def test_output_folder_named(out):
    build_dataset()

    with pytest.raises(CommandError, match="is a folder"):
        run("--cohort", "painters", "--format", "csv", "--output", str(out))


def test_existing_file_kept_without_overwrite(out):
    build_dataset()
    target = out / "out.csv"
    target.write_text("keep me")

    with pytest.raises(CommandError, match="already exists. Pass --overwrite"):
        run("--cohort", "painters", "--output", str(target))

    assert target.read_text() == "keep me"
    run("--cohort", "painters", "--output", str(target), "--overwrite")
    assert len(pd.read_csv(target)) == 7


def fail_after(monkeypatch, folder, n_rows):
    """Make every export raise after ``n_rows`` rows, with small chunks so data reaches the disk first.

    Return a list that receives the sizes of the temporary files at the moment of failure.
    """
    original = ExportRows.__iter__
    sizes = []

    def failing(self):
        for index, row in enumerate(original(self)):
            if index == n_rows:
                sizes.extend(path.stat().st_size for path in folder.glob(".*.part"))
                raise RuntimeError("disk pulled out mid-export")
            yield row

    monkeypatch.setattr(ExportRows, "__iter__", failing)
    monkeypatch.setattr(writers, "CHUNK_BYTES", 64)
    monkeypatch.setattr(writers, "PARQUET_BATCH_ROWS", 2)
    monkeypatch.setattr(writers, "PARQUET_VECTOR_BATCH_ROWS", 2)
    return sizes


@pytest.mark.parametrize("file_format", FORMATS)
def test_failure_mid_write_leaves_no_file(out, monkeypatch, file_format):
    build_dataset()
    sizes = fail_after(monkeypatch, out, 5)

    with pytest.raises(RuntimeError, match="mid-export"):
        run("--cohort", "painters", "--output", str(out / f"out.{file_format}"))

    assert len(sizes) == 1
    assert sizes[0] > 0
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("file_format", FORMATS)
def test_failure_mid_write_keeps_previous_export(out, monkeypatch, file_format):
    build_dataset()
    target = out / f"out.{file_format}"
    run("--cohort", "painters", "--output", str(target))
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    fail_after(monkeypatch, out, 3)

    with pytest.raises(RuntimeError):
        run("--cohort", "painters", "--output", str(target), "--overwrite")

    assert {path.name: path.read_bytes() for path in out.iterdir()} == before


def test_failure_in_card_leaves_no_file(out, monkeypatch):
    build_dataset()

    def broken_card(*args, **kwargs):
        raise RuntimeError("card failed")

    monkeypatch.setattr("comparisons.exports.files.render_markdown", broken_card)

    with pytest.raises(RuntimeError, match="card failed"):
        run("--cohort", "painters", "--output", str(out / "out.csv"))
    assert list(out.iterdir()) == []


@pytest.mark.parametrize("file_format", FORMATS)
def test_range_without_judgments_gives_empty_export(out, file_format, capsys):
    build_dataset()
    since = (T0 - timedelta(days=30)).isoformat()
    until = (T0 - timedelta(days=29)).isoformat()
    target = out / f"out.{file_format}"

    run("--cohort", "painters", "--since", since, "--until", until, "--output", str(target))

    card = json.loads((out / f"out.{file_format}.card.json").read_text())
    assert card["rows"] == 0
    assert card["time_range"]["actual"] == {"first_answered": None, "last_answered": None}
    assert "no rows" in card["notes"][0]
    assert "no rows" in (out / f"out.{file_format}.card.md").read_text()
    assert "no rows" in capsys.readouterr().err
    if file_format == "csv":
        assert len(pd.read_csv(target)) == 0
        assert pd.read_csv(target).columns[1] == "judgment_id"
    elif file_format == "parquet":
        frame = pd.read_parquet(target)
        assert len(frame) == 0
        assert "left_sha256" in frame.columns
    else:
        assert target.read_bytes() == b""


def test_empty_export_points_at_left_out_simulated_judgments(out, capsys):
    from tests.factories import make_cohort, make_judgment, make_rater

    cohort = make_cohort(slug="robots")
    rater = make_rater(cohort, is_simulated=True)
    left, right = cohort.pool.clips.all()[:2]
    for _ in range(3):
        make_judgment(cohort, rater, left, right, is_simulated=True)

    run("--cohort", "robots", "--output", str(out / "robots.csv"))

    assert "3 simulated judgments were left out: add --include-simulated" in capsys.readouterr().err
