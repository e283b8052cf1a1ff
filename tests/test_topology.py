"""The suite runs on the database and broker its configuration names, and both work for real.

``bin/test --config NAME`` sets ``SALON_EXPECT_DATABASE`` (sqlite or
postgresql) and ``SALON_EXPECT_BROKER`` (filesystem, redis or amqp). Without
them, the expectation follows ``DATABASE_URL`` and ``CELERY_BROKER_URL``, whose
defaults are the embedded SQLite and filesystem broker. A service that is
missing makes these tests fail, never skip: a configuration that silently fell
back to the embedded defaults would otherwise pass as PostgreSQL or Redis.

Also here: the production settings that come from the environment, checked in
a fresh interpreter with Django's deployment checks.
"""

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.urls import Resolver404, resolve, reverse

from comparisons.models import Export
from scoring.models import ClipFeatures
from taste_site.celery import app
from tests.factories import make_clip

REPO_ROOT = Path(__file__).resolve().parent.parent
WAIT_SECONDS = 90
BROKER_SCHEMES = {"filesystem": "filesystem", "redis": "redis", "rediss": "redis", "amqp": "amqp", "pyamqp": "amqp"}


def expected_database():
    explicit = os.environ.get("SALON_EXPECT_DATABASE")
    if explicit:
        return explicit
    scheme = urlsplit(os.environ.get("DATABASE_URL", "")).scheme
    return "postgresql" if scheme.startswith("postgres") else "sqlite"


def expected_broker():
    explicit = os.environ.get("SALON_EXPECT_BROKER")
    if explicit:
        return explicit
    scheme = urlsplit(os.environ.get("CELERY_BROKER_URL", "filesystem://")).scheme
    return BROKER_SCHEMES.get(scheme, scheme)


# --- database ---------------------------------------------------------------


@pytest.mark.broker
@pytest.mark.django_db
def test_database_is_the_configured_one():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone()[0] == 1

    assert connection.vendor == expected_database()


@pytest.mark.broker
@pytest.mark.django_db
def test_sqlite_runs_in_wal_mode_with_busy_timeout():
    if connection.vendor != "sqlite":
        pytest.skip("WAL and busy timeout are SQLite settings; this run is on %s" % connection.vendor)

    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_mode")
        journal_mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA busy_timeout")
        busy_timeout_ms = cursor.fetchone()[0]

    assert journal_mode == "wal"
    assert busy_timeout_ms == round(settings.DATABASES["default"]["OPTIONS"]["timeout"] * 1000)
    assert busy_timeout_ms > 0


@pytest.mark.broker
@pytest.mark.django_db(transaction=True)
def test_sqlite_transactions_take_the_write_lock_at_begin():
    """With IMMEDIATE, an atomic block holds the write lock before it writes anything.

    So two writers queue on the busy timeout at BEGIN, instead of one failing
    with "database is locked" when it upgrades a read lock mid-transaction.
    """
    if connection.vendor != "sqlite":
        pytest.skip("transaction_mode is an SQLite setting; this run is on %s" % connection.vendor)
    other = sqlite3.connect(connection.settings_dict["NAME"], timeout=0, isolation_level=None)
    try:
        with transaction.atomic():
            # Nothing written yet: a DEFERRED transaction would hold no lock here.
            Export.objects.exists()
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")

        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
    finally:
        other.close()


# --- broker -----------------------------------------------------------------


@pytest.mark.broker
def test_broker_is_the_configured_one():
    with app.connection_for_write() as broker:
        broker.ensure_connection(max_retries=1, timeout=10)
        driver = broker.transport.driver_type

    assert driver == expected_broker()


def wait_until(check, worker, what):
    """Poll ``check()`` until it is true; fail with the worker's log after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        if not worker.is_alive():
            break
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {WAIT_SECONDS} s. Worker log:\n{worker.log_tail()}")


@pytest.mark.broker
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_default_queue_round_trip_through_worker(client, settings, tmp_path, celery_worker_factory):
    """A web request queues an export on commit; a worker on ``default`` writes it."""
    from tests.export_dataset import build_dataset
    from tests.test_export_views import make_researcher

    export_dir = tmp_path / "exports"
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(export_dir)}
    worker = celery_worker_factory(queues=("default",), extra_env={"SALON_EXPORT_DIR": str(export_dir)})
    build_dataset()
    client.force_login(make_researcher())

    response = client.post(
        reverse("exports:index"),
        {"cohorts": ["painters"], "format": "csv", "ties": "on", "skips": "on", "action": "prepare"},
    )
    assert response.status_code == 302
    export = Export.objects.get()
    wait_until(lambda: Export.objects.get(pk=export.pk).is_done, worker, "The export task")

    export.refresh_from_db()
    assert export.status == Export.Status.FINISHED, export.error
    assert (export_dir / export.file_name).stat().st_size > 0


@pytest.mark.broker
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_gpu_queue_round_trip_through_worker(celery_worker_factory):
    """A task sent by name to ``gpu`` reaches a worker on that queue and writes features."""
    clip = make_clip(caption="topology check")
    worker = celery_worker_factory(queues=("gpu",))

    app.send_task("scoring.tasks.features.extract_features", args=[[clip.pk], "handcrafted"])
    wait_until(lambda: ClipFeatures.objects.filter(clip=clip).exists(), worker, "The feature task")

    features = ClipFeatures.objects.get(clip=clip)
    assert features.backbone.startswith("handcrafted")
    assert features.n_frames == 1


# --- production settings -----------------------------------------------------

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "taste_site.settings",
    "SALON_SECRET_KEY": "x" * 60 + "-production-test-key-not-used-anywhere",
    "SALON_ALLOWED_HOSTS": "salon.example.org",
    "SALON_SECURE_COOKIES": "1",
    "SALON_BEHIND_TLS_PROXY": "1",
    "SALON_SSL_REDIRECT": "1",
    "DATABASE_URL": "postgres://salon@127.0.0.1:5432/salon",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/3",
}
SETTINGS_PROBE = """
import json
import django
django.setup()
from django.conf import settings
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": db["NAME"], "conn_max_age": db["CONN_MAX_AGE"],
    "conn_health_checks": db["CONN_HEALTH_CHECKS"], "debug": settings.DEBUG,
    "allowed_hosts": settings.ALLOWED_HOSTS, "session_secure": settings.SESSION_COOKIE_SECURE,
    "csrf_secure": settings.CSRF_COOKIE_SECURE, "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT, "hsts": settings.SECURE_HSTS_SECONDS,
    "broker": settings.CELERY_BROKER_URL, "media_root": str(settings.MEDIA_ROOT),
}))
"""


def run_with_env(args, env, tmp_path):
    """Run ``python args`` from the repository with only ``env`` and the basics set."""
    base = {key: value for key, value in os.environ.items() if not key.startswith(("SALON_", "DATABASE_", "CELERY_"))}
    base.pop("DJANGO_SETTINGS_MODULE", None)
    base["SALON_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120,
    )


def test_production_settings_come_from_environment(tmp_path):
    env = {**PRODUCTION_ENV, "SALON_MEDIA_ROOT": str(tmp_path / "shared-media")}

    result = run_with_env(["-c", SETTINGS_PROBE], env, tmp_path)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.postgresql"
    assert values["name"] == "salon"
    assert values["conn_max_age"] == 60
    assert values["conn_health_checks"] is True
    assert values["debug"] is False
    assert values["allowed_hosts"] == ["salon.example.org"]
    assert values["session_secure"] is True
    assert values["csrf_secure"] is True
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["ssl_redirect"] is True
    assert values["hsts"] == 365 * 24 * 3600
    assert values["broker"] == "redis://127.0.0.1:6379/3"
    assert values["media_root"] == str((tmp_path / "shared-media").resolve())


def test_proxy_header_is_not_trusted_by_default(tmp_path):
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "SALON_BEHIND_TLS_PROXY"}
    env["SALON_SECURE_COOKIES"] = "0"
    env["SALON_SSL_REDIRECT"] = "0"

    result = run_with_env(["-c", SETTINGS_PROBE], env, tmp_path)

    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout)
    assert values["proxy_header"] is None
    assert values["hsts"] == 0
    assert values["session_secure"] is False


def test_production_settings_pass_deployment_checks(tmp_path):
    result = run_with_env(["manage.py", "check", "--deploy", "--fail-level", "ERROR"], PRODUCTION_ENV, tmp_path)

    assert result.returncode == 0, result.stderr
    reported = {line.split()[1] for line in result.stderr.splitlines() if line.startswith("?: (")}
    # HSTS for subdomains and the preload list are left to the operator:
    # subdomains may be other sites, and preloading is hard to undo.
    assert reported == {"(security.W005)", "(security.W021)"}, result.stderr


def test_missing_secret_key_is_a_clear_error(tmp_path):
    env = {key: value for key, value in PRODUCTION_ENV.items() if key != "SALON_SECRET_KEY"}

    result = run_with_env(["-c", SETTINGS_PROBE], env, tmp_path)

    assert result.returncode != 0
    assert "SALON_SECRET_KEY is not set" in result.stderr


def test_bench_floor_is_not_mounted_in_salon_urls():
    with pytest.raises(Resolver404):
        resolve("/bench/floor/")
    assert settings.ROOT_URLCONF == "taste_site.urls"
