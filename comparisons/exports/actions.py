"""Export page actions: queue a background export, or stream one into a response."""

import logging
from functools import partial

from django.db import transaction
from django.http import StreamingHttpResponse
from django.utils import timezone

from comparisons.exports.options import STREAMABLE_FORMATS, ExportError
from comparisons.exports.pseudonyms import pseudonym_secret
from comparisons.exports.rows import ExportRows
from comparisons.exports.writers import csv_chunks, jsonl_chunks
from comparisons.models import Export

logger = logging.getLogger(__name__)

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


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
    """Return a response that encodes the export's rows as they are read from the database.

    Memory stays flat however many rows there are. There is no dataset card:
    the card needs the finished row counts, so it comes with background exports.
    """
    cohorts = options.validate()
    if options.format not in STREAMABLE_FORMATS:
        raise ExportError(
            f"Format {options.format!r} cannot be streamed: prepare it in the background, or use "
            f"{' or '.join(STREAMABLE_FORMATS)}."
        )
    rows = ExportRows(options, cohorts)
    encode = csv_chunks if options.format == "csv" else jsonl_chunks
    response = StreamingHttpResponse(encode(rows.columns, rows), content_type=CONTENT_TYPES[options.format])
    name = f"salon-{'-'.join(options.cohorts)}-{timezone.now():%Y%m%dT%H%M%SZ}.{options.format}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    response["X-Salon-High-Water-Judgment-Id"] = str(rows.high_water_judgment_id)
    logger.info("Streaming export of %s as %s up to judgment %d", ",".join(options.cohorts), options.format,
                rows.high_water_judgment_id)
    return response
