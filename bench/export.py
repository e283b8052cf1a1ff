"""Benchmark the comparisons export against a raw SELECT of the same columns.

Usage::

    .venv/bin/python bench/export.py [--rows 1000000] [--sizes 100000,1000000]
                                     [--formats csv,jsonl,parquet,download-csv] [--features]

The script fills a throwaway database with ``--rows`` judgments by bulk insert:
SQLite under ``var/bench/``, or, when ``DATABASE_URL`` names a PostgreSQL
server, a database ``salon_bench_export`` created on that server and dropped at
the end. Then, for each size, it runs in a fresh subprocess

* ``raw``: one SELECT joining judgments, comparisons, cohorts, both clips and
  their prompts, streamed with a server-side (chunked) cursor to a CSV file;
* the export of the same judgments in each format, through the same code path
  as ``manage.py export_comparisons``;
* with ``download-csv`` or ``download-jsonl`` among the formats, the ZIP
  archive (data file and card) that "Download now" on the export page streams,
  written chunk by chunk to a file.

Sizes below ``--rows`` take the oldest judgments with ``--until``, which the
raw SELECT applies too. Each subprocess reports its wall time and its peak RSS
(``ru_maxrss``), so the figures of one run do not leak into the next. Flat
memory means the peak RSS at 1M rows is about the one at 100k.
"""

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "var" / "bench"
PG_DATABASE = "salon_bench_export"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
N_CLIPS = 2000
N_RATERS = 500
INSERT_BATCH = 20_000


def _setup_django(database_url):
    sys.path.insert(0, str(REPO))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taste_site.settings")
    os.environ.setdefault("SALON_DEBUG", "1")
    os.environ.setdefault("SALON_PSEUDONYM_SECRET", "bench-pseudonym-secret")
    os.environ["SALON_VAR_DIR"] = str(BENCH_DIR)
    import django

    django.setup()


def _peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Database setup ---------------------------------------------------------------


def _insert(cursor, connection, table, columns, rows):
    """Insert rows with COPY on PostgreSQL and executemany elsewhere."""
    if connection.vendor == "postgresql":
        with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    placeholders = ", ".join(["%s"] * len(columns))
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= INSERT_BATCH:
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch)
            batch.clear()
    if batch:
        cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch)


def populate(n_rows):
    """Create the schema and ``n_rows`` judgments in one cohort; return seconds taken."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction

    from comparisons.models import Clip, Cohort, Comparison, Judgment, Membership, Pool, Prompt

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    rng = random.Random(0)
    User = get_user_model()
    with transaction.atomic():
        prompts = Prompt.objects.bulk_create([Prompt(text=f"bench prompt {i}") for i in range(N_CLIPS // 10)])
        clips = Clip.objects.bulk_create([
            Clip(
                sha256=f"{i:064x}", kind="image", original_name=f"bench-{i:05d}.png", original=f"clips/{i}.png",
                caption=f"A benchmark clip number {i}, with a comma", prompt=prompts[i % len(prompts)],
                generator={"model": "bench-gen", "seed": i}, licence="CC0-1.0", credit="Bench", status="ready",
            )
            for i in range(N_CLIPS)
        ], batch_size=1000)
        pool = Pool.objects.create(name="bench")
        pool.clips.add(*clips)
        cohort = Cohort.objects.create(name="Bench", slug="bench", pool=pool)
        users = User.objects.bulk_create([User(username=f"bench-rater-{i}") for i in range(N_RATERS)])
        Membership.objects.bulk_create([Membership(user=user, cohort=cohort) for user in users])

        clip_ids = [clip.id for clip in clips]
        user_ids = [user.id for user in users]
        adapt = connection.ops.adapt_datetimefield_value
        choices = ["left"] * 45 + ["right"] * 45 + ["tie"] * 5 + ["skip"] * 5
        reasons = ["random"] * 90 + ["active"] * 5 + ["gold"] * 3 + ["repeat"] * 2

        def comparisons():
            for i in range(1, n_rows + 1):
                left, right = rng.sample(clip_ids, 2)
                served = adapt(T0 + timedelta(seconds=i - 3))
                yield (i, cohort.id, rng.choice(user_ids), left, right, rng.choice(reasons), served)

        def judgments():
            for i in range(1, n_rows + 1):
                client_ms = None if i % 97 == 0 else rng.randint(800, 9000)
                yield (i, i, rng.choice(choices), client_ms, rng.randint(900, 9500), False, adapt(T0 + timedelta(seconds=i)))

        with connection.cursor() as cursor:
            _insert(cursor, connection, Comparison._meta.db_table,
                    ["id", "cohort_id", "rater_id", "left_id", "right_id", "reason", "served_at"], comparisons())
            _insert(cursor, connection, Judgment._meta.db_table,
                    ["id", "comparison_id", "choice", "client_ms", "server_ms", "is_simulated", "created_at"],
                    judgments())
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.monotonic() - started


def add_features():
    """Give every clip features and scores under an active taste model, for ``--features`` runs."""
    import numpy as np
    from django.db import transaction

    from comparisons.models import Clip, Cohort
    from scoring.models import ClipFeatures, ClipScore, TasteModel, array_to_bytes

    rng = np.random.default_rng(0)
    cohort = Cohort.objects.get(slug="bench")
    with transaction.atomic():
        features, scores = [], []
        model = TasteModel.objects.create(
            cohort=cohort, backbone="clip:bench", version=1, status="finished", is_active=True,
            weights_mode="learned", alpha=1, beta=1, gamma=1, margin=1, half_life_days=30, high_water_judgment_id=0,
        )
        for rank, clip_id in enumerate(Clip.objects.values_list("id", flat=True), start=1):
            vector = rng.normal(size=512).astype(np.float32)
            vector /= np.linalg.norm(vector)
            features.append(ClipFeatures(
                clip_id=clip_id, backbone="clip:bench", n_frames=1, dim=512, frame_embeddings=array_to_bytes(vector),
                mean_embedding=array_to_bytes(vector), semantic=0.3, frame_dissimilarity=0.0, flicker=0.0,
            ))
            scores.append(ClipScore(taste_model=model, clip_id=clip_id, total=0.1 * rank, semantic=0.2,
                                    aesthetic=0.3, incoherence=0.0, rank=rank))
        ClipFeatures.objects.bulk_create(features, batch_size=500)
        ClipScore.objects.bulk_create(scores, batch_size=500)


# Measurements (each in its own process) ----------------------------------------

RAW_SQL = """
SELECT j.id, c.id, h.slug, c.rater_id,
       l.id, l.sha256, l.original_name, l.kind, l.caption, lp.text, l.generator,
       r.id, r.sha256, r.original_name, r.kind, r.caption, rp.text, r.generator,
       j.choice, j.client_ms, j.server_ms, c.served_at, j.created_at, c.reason, j.is_simulated
FROM comparisons_judgment j
JOIN comparisons_comparison c ON c.id = j.comparison_id
JOIN comparisons_cohort h ON h.id = c.cohort_id
JOIN comparisons_clip l ON l.id = c.left_id
LEFT JOIN comparisons_prompt lp ON lp.id = l.prompt_id
JOIN comparisons_clip r ON r.id = c.right_id
LEFT JOIN comparisons_prompt rp ON rp.id = r.prompt_id
WHERE h.slug = %s AND j.created_at < %s AND j.is_simulated = %s
ORDER BY j.id
"""


def measure_raw(until, output):
    import csv

    from django.db import connection

    baseline = _peak_rss_mb()
    started = time.monotonic()
    rows = 0
    with open(output, "w", newline="") as stream, connection.chunked_cursor() as cursor:
        writer = csv.writer(stream)
        cursor.execute(RAW_SQL, ["bench", connection.ops.adapt_datetimefield_value(until), False])
        while True:
            batch = cursor.fetchmany(5000)
            if not batch:
                break
            writer.writerows(batch)
            rows += len(batch)
    return {"rows": rows, "seconds": time.monotonic() - started, "baseline_mb": baseline}


def measure_export(until, output, file_format, features):
    from comparisons.exports.files import export_to_path
    from comparisons.exports.options import ExportOptions

    baseline = _peak_rss_mb()
    options = ExportOptions(cohorts=["bench"], format=file_format, until=until, features=features, scores=features)
    started = time.monotonic()
    result = export_to_path(options, output, overwrite=True)
    return {"rows": result.rows, "seconds": time.monotonic() - started, "baseline_mb": baseline,
            "bytes": result.size_bytes}


def measure_download(until, output, file_format, features):
    import zipfile

    from comparisons.exports.actions import stream_export
    from comparisons.exports.options import ExportOptions

    baseline = _peak_rss_mb()
    options = ExportOptions(cohorts=["bench"], format=file_format, until=until, features=features, scores=features)
    started = time.monotonic()
    response = stream_export(options)
    with open(output, "wb") as stream:
        for chunk in response.streaming_content:
            stream.write(chunk)
    seconds = time.monotonic() - started
    with zipfile.ZipFile(output) as archive:
        card_name = next(name for name in archive.namelist() if name.endswith(".card.json"))
        rows = json.loads(archive.read(card_name))["rows"]
    return {"rows": rows, "seconds": seconds, "baseline_mb": baseline}


def child(spec):
    _setup_django(spec["database_url"])
    if spec["task"] == "populate":
        report = {"seconds": populate(spec["rows"])}
        if spec.get("features"):
            add_features()
    else:
        until = datetime.fromisoformat(spec["until"])
        output = Path(spec["output"])
        if spec["task"] == "raw":
            report = measure_raw(until, output)
        elif spec["task"].startswith("download-"):
            report = measure_download(until, output, spec["task"].removeprefix("download-"), spec.get("features", False))
        else:
            report = measure_export(until, output, spec["task"], spec.get("features", False))
        report["bytes"] = output.stat().st_size
    report["peak_mb"] = _peak_rss_mb()
    print(json.dumps(report))


# Driver -------------------------------------------------------------------------


def run_child(spec):
    completed = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True, cwd=REPO,
    )
    if completed.returncode != 0:
        sys.exit(f"Benchmark step {spec['task']} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def database_urls():
    """Return (name, URL) of each database to benchmark, creating the throwaway ones."""
    urls = []
    sqlite_path = BENCH_DIR / "bench-export.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(sqlite_path) + suffix).unlink(missing_ok=True)
    urls.append(("sqlite", f"sqlite:///{sqlite_path}"))

    server_url = os.environ.get("DATABASE_URL", "")
    if server_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        base, _sep, _name = server_url.rpartition("/")
        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE}")
            connection.execute(f"CREATE DATABASE {PG_DATABASE}")
        urls.append(("postgresql", f"{base}/{PG_DATABASE}"))
    return urls


def drop_postgres():
    server_url = os.environ.get("DATABASE_URL", "")
    if server_url.startswith(("postgres://", "postgresql://")):
        import psycopg

        with psycopg.connect(server_url, autocommit=True) as connection:
            connection.execute(f"DROP DATABASE IF EXISTS {PG_DATABASE}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="Judgments to create (default 1000000).")
    parser.add_argument("--sizes", default="100000,1000000", help="Comma-separated export sizes in rows.")
    parser.add_argument("--formats", default="csv,jsonl,parquet,download-csv",
                        help="Comma-separated export formats; download-csv and download-jsonl stream the ZIP archive.")
    parser.add_argument("--features", action="store_true",
                        help="Also give clips 512-d features and scores and export with --features --scores.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(json.loads(args.child))
        return

    sizes = [int(size) for size in args.sizes.split(",")]
    formats = [name.strip() for name in args.formats.split(",")]
    if max(sizes) > args.rows:
        sys.exit(f"--sizes up to {max(sizes)} need --rows of at least that many, not {args.rows}.")
    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    out_dir = BENCH_DIR / "out"
    out_dir.mkdir(exist_ok=True)

    print(f"# bench/export.py --rows {args.rows} --sizes {args.sizes} --formats {args.formats}"
          + (" --features" if args.features else ""))
    print(f"# {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    try:
        for database, url in database_urls():
            created = run_child({"task": "populate", "database_url": url, "rows": args.rows,
                                 "features": args.features})
            print(f"\n## {database}: {args.rows} judgments inserted in {created['seconds']:.1f} s")
            print("| rows | what | seconds | rows/s | vs raw SELECT | peak RSS MB | RSS after setup MB | file MB |")
            print("|---:|---|---:|---:|---:|---:|---:|---:|")
            for size in sizes:
                until = (T0 + timedelta(seconds=size + 0.5)).isoformat()
                raw = run_child({"task": "raw", "database_url": url, "until": until,
                                 "output": str(out_dir / "raw.csv")})
                raw_rate = raw["rows"] / raw["seconds"]
                results = [("raw SELECT to CSV", raw)]
                for file_format in formats:
                    output = out_dir / f"export.{file_format}"
                    what = f"export {file_format}" if "download" not in file_format else f"{file_format} (ZIP)"
                    results.append((what + (" +features +scores" if args.features else ""),
                                    run_child({"task": file_format, "database_url": url, "until": until,
                                               "output": str(output), "features": args.features})))
                for what, report in results:
                    rate = report["rows"] / report["seconds"]
                    print(f"| {report['rows']} | {what} | {report['seconds']:.2f} | {rate:,.0f} | "
                          f"{rate / raw_rate:.2f} | {report['peak_mb']:.0f} | {report['baseline_mb']:.0f} | "
                          f"{report['bytes'] / 1e6:.0f} |")
                for path in out_dir.iterdir():
                    path.unlink()
    finally:
        drop_postgres()
        shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
