"""Encoders of export rows: CSV and JSON Lines as byte chunks, Parquet as a file.

Rows are tuples in the order of their columns (see ``schema.py``). Cells of kind
``json`` arrive as JSON text and cells of kind ``vector`` as :class:`Vector`, so
the text of each clip's metadata and embedding is encoded once per clip rather
than once per row.
"""

import csv
import io
import json
from typing import NamedTuple

import numpy as np

from comparisons.exports.options import format_time

# Bytes gathered before a chunk is handed on: large enough that the per-chunk
# overhead vanishes, small enough that memory stays flat.
CHUNK_BYTES = 256 * 1024
PARQUET_BATCH_ROWS = 16_384


class Vector(NamedTuple):
    """A float32 vector with its JSON text, encoded once and shared by every row that uses it."""

    json: str
    values: np.ndarray

    @classmethod
    def from_array(cls, array):
        values = np.ascontiguousarray(array, dtype=np.float32)
        # str() of a numpy float32 is the shortest text that reads back to the same float32.
        return cls("[" + ",".join(str(value) for value in values) + "]", values)


def _bool_text(value):
    if value is None:
        return ""
    return "true" if value else "false"


def csv_chunks(columns, rows, chunk_bytes=None):
    """Yield a UTF-8 CSV file (header first) as byte chunks of about ``chunk_bytes``."""
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([column.name for column in columns])
    converters = []
    for index, column in enumerate(columns):
        if column.kind == "timestamp":
            converters.append((index, format_time))
        elif column.kind == "bool":
            converters.append((index, _bool_text))
        elif column.kind == "vector":
            converters.append((index, lambda vector: vector.json if vector is not None else None))

    for row in rows:
        if converters:
            row = list(row)
            for index, convert in converters:
                row[index] = convert(row[index])
        writer.writerow(row)
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def jsonl_chunks(columns, rows, chunk_bytes=None):
    """Yield a UTF-8 JSON Lines file, one object per row, as byte chunks of about ``chunk_bytes``.

    Scalar cells go through one ``json.dumps`` per row. ``json`` and ``vector``
    cells are already JSON text and are appended to the object as they are, so
    they come after the scalar keys.
    """
    chunk_bytes = chunk_bytes or CHUNK_BYTES
    scalar = [(index, column.name) for index, column in enumerate(columns) if column.kind not in ("json", "vector")]
    timestamps = {column.name for column in columns if column.kind == "timestamp"}
    raw = [(index, json.dumps(column.name), column.kind) for index, column in enumerate(columns)
           if column.kind in ("json", "vector")]
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

    parts = []
    size = 0
    for row in rows:
        obj = {name: row[index] for index, name in scalar}
        for name in timestamps:
            obj[name] = format_time(obj[name])
        line = encode(obj)
        if raw:
            extra = []
            for index, key, kind in raw:
                value = row[index]
                if value is None:
                    text = "null"
                else:
                    text = value.json if kind == "vector" else value
                extra.append(key + ":" + text)
            line = line[:-1] + ("," if len(line) > 2 else "") + ",".join(extra) + "}"
        line += "\n"
        parts.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield "".join(parts).encode()
            parts.clear()
            size = 0
    if parts:
        yield "".join(parts).encode()


def write_chunks(chunks, stream):
    """Write byte chunks to a binary stream and return the number of bytes written."""
    written = 0
    for chunk in chunks:
        stream.write(chunk)
        # Chunks are already large, so flushing each costs nothing and keeps
        # no more than one chunk in the process.
        stream.flush()
        written += len(chunk)
    return written


def arrow_schema(columns, metadata=None):
    """Return the Arrow schema of ``columns``; pyarrow is imported only when Parquet is written."""
    import pyarrow as pa

    types = {
        "int": pa.int64(),
        "float": pa.float64(),
        "str": pa.string(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "json": pa.string(),
        "vector": pa.list_(pa.float32()),
    }
    fields = [
        pa.field(column.name, types[column.kind], nullable=column.nullable,
                 metadata={"description": column.description, "kind": column.kind})
        for column in columns
    ]
    return pa.schema(fields, metadata=metadata)


def _arrow_batch(schema, columns, rows):
    import pyarrow as pa

    arrays = []
    for index, (column, values) in enumerate(zip(columns, zip(*rows))):
        if column.kind == "vector":
            values = [None if value is None else value.values for value in values]
        arrays.append(pa.array(values, type=schema.field(index).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_parquet(columns, rows, path, metadata=None, batch_rows=None):
    """Write rows to a Parquet file at ``path`` in record batches of ``batch_rows``.

    Memory stays at about one batch, because each batch is written and dropped
    before the next is read.
    """
    import pyarrow.parquet as pq

    batch_rows = batch_rows or PARQUET_BATCH_ROWS
    schema = arrow_schema(columns, metadata)
    with pq.ParquetWriter(str(path), schema, compression="zstd") as writer:
        batch = []
        for row in rows:
            batch.append(row)
            if len(batch) >= batch_rows:
                writer.write_batch(_arrow_batch(schema, columns, batch))
                batch.clear()
        if batch:
            writer.write_batch(_arrow_batch(schema, columns, batch))
    return path
