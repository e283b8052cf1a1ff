"""Export page actions: queue a background export, or stream one as a ZIP archive into a response."""

import logging
from functools import partial

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from comparisons.exports.archive import archive_chunks
from comparisons.exports.options import STREAMABLE_FORMATS, ExportError
from comparisons.exports.pseudonyms import pseudonym_secret
from comparisons.exports.rows import ExportRows
from comparisons.exports.writers import csv_chunks, jsonl_chunks
from comparisons.models import Export

logger = logging.getLogger(__name__)


def request_export(user, options):
    """Record an export for ``user`` and queue the task that writes it once the row is committed.

    Raises
    ------
    ExportError
        For invalid options, before anything is stored.
    django.core.exceptions.ImproperlyConfigured
        When ``SALON_PSEUDONYM_SECRET`` is empty.
    """
    from comparisons.exports.tasks import send_export

    options.validate()
    pseudonym_secret()
    parameters = options.to_json()
    parameters.pop("format")
    with transaction.atomic():
        export = Export.objects.create(requested_by=user, format=options.format, parameters=parameters)
        transaction.on_commit(partial(send_export, export.pk))
    logger.info("Export %s queued by user %s (%s)", export.pk, user.pk, options.format)
    return export


def stream_export(options):
    """Return a response with a ZIP archive of the export, encoded as rows are read from the database.

    The archive holds the data file (CSV or JSON Lines) and its dataset card,
    which comes last because it needs the final counts. Memory stays flat
    however many rows there are.
    """
    cohorts = options.validate()
    if options.format not in STREAMABLE_FORMATS:
        raise ExportError(
            f"Format {options.format!r} cannot be streamed: prepare it in the background, or use "
            f"{' or '.join(STREAMABLE_FORMATS)}."
        )
    rows = ExportRows(options, cohorts)
    encode = csv_chunks if options.format == "csv" else jsonl_chunks
    data_name = f"salon-{'-'.join(options.cohorts)}-{timezone.now():%Y%m%dT%H%M%SZ}.{options.format}"
    chunks = archive_chunks(
        rows, encode(rows.columns, rows), data_name=data_name, file_format=options.format,
        licence=options.card_licence(),
    )
    response = StreamingHttpResponse(chunks, content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{data_name}.zip"'
    response["X-Salon-High-Water-Judgment-Id"] = str(rows.high_water_judgment_id)
    logger.info("Streaming export of %s as %s up to judgment %d", ",".join(options.cohorts), options.format,
                rows.high_water_judgment_id)
    return response
