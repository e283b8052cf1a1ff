"""Encoders of export rows: CSV and JSON Lines as byte chunks, Parquet as a file.

Rows are tuples in the order of their columns (see ``schema.py``). Cells of kind
``json`` arrive as JSON text and cells of kind ``vector`` as :class:`Vector`, so
the text of each clip's metadata and embedding is encoded once per clip rather
than once per row.
"""

import csv
import io
import json

import numpy as np

from comparisons.exports.options import format_time

# Bytes gathered before a chunk is handed on: large enough that the per-chunk
# overhead vanishes, small enough that memory stays flat.
CHUNK_BYTES = 256 * 1024
PARQUET_BATCH_ROWS = 16_384
# Rows per batch when rows carry embeddings: two 512-float vectors make a row
# about 4 KB in Arrow (and several times that as Python objects before), so
# smaller batches keep the peak memory near that of plain rows.
PARQUET_VECTOR_BATCH_ROWS = 2_048


class Vector:
    """A float32 vector shared by every row that uses it, with its JSON text made once on first use."""

    __slots__ = ("values", "_json")

    def __init__(self, values):
        self.values = values
        self._json = None

    @classmethod
    def from_array(cls, array):
        return cls(np.ascontiguousarray(array, dtype=np.float32))

    @property
    def json(self):
        if self._json is None:
            # str() of a numpy float32 is the shortest text that reads back to the same float32.
            self._json = "[" + ",".join(str(value) for value in self.values) + "]"
        return self._json


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
    vector_indexes = [index for index, column in enumerate(columns) if column.kind == "vector"]
    write_row = _vector_row_writer(buffer, len(columns), vector_indexes) if vector_indexes else writer.writerow

    for row in rows:
        if converters:
            row = list(row)
            for index, convert in converters:
                row[index] = convert(row[index])
        write_row(row)
        if buffer.tell() >= chunk_bytes:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _vector_row_writer(buffer, n_columns, vector_indexes):
    """Return a function that writes one CSV row whose ``vector_indexes`` cells are :class:`Vector`.

    csv.writer scans every character of a field, so long embeddings would
    dominate the time. Their JSON text contains no quote, so it is wrapped in
    quotes as it is and spliced between the other fields, which csv.writer
    encodes as usual.
    """
    segment_buffer = io.StringIO()
    # The line terminator must stay "\n": csv.writer quotes fields that contain
    # its characters, so an empty terminator would leave newlines in captions bare.
    segment_writer = csv.writer(segment_buffer, lineterminator="\n")
    bounds = list(zip([-1, *vector_indexes], [*vector_indexes, n_columns]))

    def encode(segment):
        segment_buffer.seek(0)
        segment_buffer.truncate()
        segment_writer.writerow(segment)
        return segment_buffer.getvalue()[:-1]

    def write_row(row):
        pieces = []
        for start, stop in bounds:
            if stop - start > 1:
                pieces.append(encode(row[start + 1:stop]))
            if stop < n_columns:
                vector = row[stop]
                pieces.append("" if vector is None else '"' + vector.json + '"')
        buffer.write(",".join(pieces))
        buffer.write("\n")

    return write_row


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
        # Chunks are already large, so flushing each costs little and keeps at
        # most one chunk in the process.
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
            arrays.append(_arrow_vectors(values))
        else:
            arrays.append(pa.array(values, type=schema.field(index).type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _arrow_vectors(values):
    """Return a list<float32> array built from one concatenated buffer, not one Python list per row."""
    import pyarrow as pa

    lengths = [0 if value is None else len(value.values) for value in values]
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    present = [value.values for value in values if value is not None]
    flat = np.concatenate(present) if present else np.empty(0, dtype=np.float32)
    mask = pa.array([value is None for value in values]) if len(present) < len(values) else None
    return pa.ListArray.from_arrays(
        pa.array(offsets), pa.array(flat, type=pa.float32()), type=pa.list_(pa.float32()), mask=mask
    )


def write_parquet(columns, rows, path, metadata=None, batch_rows=None):
    """Write rows to a Parquet file at ``path`` in record batches of ``batch_rows``.

    Memory stays at about one batch, because each batch is written and dropped
    before the next is read. Each batch becomes one Parquet row group.
    """
    import pyarrow.parquet as pq

    if not batch_rows:
        has_vectors = any(column.kind == "vector" for column in columns)
        batch_rows = PARQUET_VECTOR_BATCH_ROWS if has_vectors else PARQUET_BATCH_ROWS
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
