"""Write an export and its dataset card so that they appear complete or not at all.

Each file is first written to a hidden temporary file in the destination
folder. Only when the data and both cards are complete and flushed to disk are
they moved into place with ``os.replace``, which is atomic within one file
system. Any error removes the temporary files, so an interrupted export never
leaves a file that looks finished.
"""

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from django.utils import timezone

from comparisons.exports.card import build_card, render_markdown
from comparisons.exports.options import ExportError
from comparisons.exports.pseudonyms import Pseudonymizer
from comparisons.exports.rows import ExportRows
from comparisons.exports.schema import SCHEMA_VERSION
from comparisons.exports.writers import csv_chunks, jsonl_chunks, write_chunks, write_parquet

logger = logging.getLogger(__name__)


@dataclass
class ExportResult:
    """Paths, row count, size and card of one finished export."""

    path: Path
    card_markdown_path: Path
    card_json_path: Path
    rows: int
    size_bytes: int
    card: dict


def card_paths(path):
    """Return the Markdown and JSON card paths that belong beside the export at ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".card.md"), path.with_name(path.name + ".card.json")


def check_output_path(path, overwrite=False, companions=()):
    """Raise ExportError unless a file can be written at ``path``.

    Without ``overwrite``, ``path`` and each of ``companions`` (such as the
    cards) must not exist yet.
    """
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"Output path {str(path)!r} is a folder: give a file path such as {str(path / 'export.csv')!r}.")
    folder = path.parent
    if not folder.is_dir():
        raise ExportError(f"Cannot write {str(path)!r}: folder {str(folder)!r} does not exist. Create it first.")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"Cannot write {str(path)!r}: folder {str(folder)!r} is not writable.")
    if not overwrite:
        for existing in (path, *companions):
            if existing.exists():
                raise ExportError(f"Output file {str(existing)!r} already exists. Pass --overwrite to replace it.")


def _temporary_file(final_path):
    try:
        handle, name = tempfile.mkstemp(dir=final_path.parent, prefix=f".{final_path.name}.", suffix=".part")
    except OSError as error:
        raise ExportError(f"Cannot write {str(final_path)!r}: {error.strerror or error}.") from error
    os.close(handle)
    return Path(name)


def _fsync(path):
    with open(path, "rb+") as stream:
        os.fsync(stream.fileno())


def _write_data(rows, file_format, path):
    if file_format == "parquet":
        metadata = {"salon.schema_version": SCHEMA_VERSION}
        write_parquet(rows.columns, rows, path, metadata=metadata)
        return path.stat().st_size
    chunks = csv_chunks(rows.columns, rows) if file_format == "csv" else jsonl_chunks(rows.columns, rows)
    with open(path, "wb") as stream:
        return write_chunks(chunks, stream)


def export_to_path(options, output, *, overwrite=False, pseudonymizer=None):
    """Write the export described by ``options`` to ``output`` with its two cards.

    Parameters
    ----------
    options : ExportOptions
        Validated here; an invalid value raises before any file is created.
    output : str or Path
        The data file. The cards go to ``output + ".card.md"`` and ``".card.json"``.
    overwrite : bool, default=False
        Replace existing files instead of raising ExportError.

    Raises
    ------
    ExportError
        For an invalid option or an output path that cannot be written.
    django.core.exceptions.ImproperlyConfigured
        When ``SALON_PSEUDONYM_SECRET`` is empty.
    """
    started = time.monotonic()
    cohorts = options.validate()
    output = Path(output).expanduser().absolute()
    check_output_path(output, overwrite, companions=card_paths(output))
    pseudonymizer = pseudonymizer or Pseudonymizer()
    rows = ExportRows(options, cohorts, pseudonymizer)
    licence = options.card_licence()

    markdown_path, json_path = card_paths(output)
    temporary = []
    placed = []
    try:
        data_tmp = _temporary_file(output)
        temporary.append(data_tmp)
        size = _write_data(rows, options.format, data_tmp)
        _fsync(data_tmp)

        card = build_card(
            rows, file_name=output.name, file_format=options.format, licence=licence, generated_at=timezone.now()
        )
        json_tmp = _temporary_file(json_path)
        temporary.append(json_tmp)
        json_tmp.write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        markdown_tmp = _temporary_file(markdown_path)
        temporary.append(markdown_tmp)
        markdown_tmp.write_text(render_markdown(card), encoding="utf-8")
        _fsync(json_tmp)
        _fsync(markdown_tmp)

        # Cards first and data last, so a reader who finds the data file also finds its cards.
        for source, target in ((json_tmp, json_path), (markdown_tmp, markdown_path), (data_tmp, output)):
            os.replace(source, target)
            temporary.remove(source)
            placed.append(target)
    except BaseException:
        for path in temporary:
            path.unlink(missing_ok=True)
        if output not in placed:
            for path in placed:
                path.unlink(missing_ok=True)
        raise

    logger.info(
        "Exported %d rows of %s to %s as %s (%d bytes, %d ms)",
        rows.stats.rows, ",".join(options.cohorts), output, options.format, size,
        (time.monotonic() - started) * 1000,
    )
    return ExportResult(output, markdown_path, json_path, rows.stats.rows, size, card)
