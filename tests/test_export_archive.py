"""The ZIP archive of a streamed download: handed on as it is written, and readable only when complete."""

import io
import os
import time
import zipfile

import pytest

from comparisons.exports.archive import archive_chunks
from comparisons.exports.options import ExportOptions
from comparisons.exports.rows import ExportRows
from comparisons.exports.writers import csv_chunks
from tests.export_dataset import build_dataset

pytestmark = pytest.mark.django_db

CHUNK_BYTES = 64 * 1024
N_CHUNKS = 64


def export_rows():
    build_dataset()
    options = ExportOptions(cohorts=["painters"], format="csv")
    return ExportRows(options, options.validate())


def test_archive_bytes_leave_before_data_ends():
    rows = export_rows()
    consumed = []
    payload = [os.urandom(CHUNK_BYTES) for _ in range(N_CHUNKS)]

    def data_chunks():
        for index, chunk in enumerate(payload):
            consumed.append(index)
            yield chunk

    archive = archive_chunks(rows, data_chunks(), data_name="data.csv", file_format="csv", licence="")
    first = next(archive)
    consumed_at_first_yield = len(consumed)
    rest = b"".join(archive)

    # Random bytes do not compress, so each chunk leaves the compressor soon:
    # the archive is handed on while the data is still being produced.
    assert first
    assert consumed_at_first_yield < N_CHUNKS
    members = zipfile.ZipFile(io.BytesIO(first + rest))
    assert members.namelist() == ["data.csv", "data.csv.card.json", "data.csv.card.md"]
    assert members.read("data.csv") == b"".join(payload)
    for info in members.infolist():
        assert info.compress_type == zipfile.ZIP_DEFLATED, info.filename
        assert info.date_time[0] == time.localtime().tm_year, info.filename


def test_archive_cut_short_is_rejected():
    rows = export_rows()
    content = b"".join(
        archive_chunks(rows, csv_chunks(rows.columns, rows), data_name="data.csv", file_format="csv", licence="")
    )

    assert zipfile.ZipFile(io.BytesIO(content)).testzip() is None
    # Without its end, an archive has no central directory to read.
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(content[: len(content) // 2]))
