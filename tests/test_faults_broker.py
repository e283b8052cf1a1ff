"""The Celery broker stops: votes go on, and the work queued after it returns catches up.

Each test starts a private redis-server on a free loopback port (never the
shared one), points Salon's Celery app and its worker at it, and stops and
restarts that server by PID. The vote path is one database transaction and
never talks to the broker, so raters see no difference. Refits are not lost
either: Celery beat sends the refit scheduler on its next tick once the broker
is back, and the scheduler finds from the database which cohorts are due, the
votes cast during the outage included.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse
from kombu.exceptions import OperationalError as BrokerError

from comparisons.models import Clip, Export, Judgment, Membership
from scoring.models import TasteModel
from taste_site.celery import app
from tests.factories import png_bytes
from tests.taste_dataset import build_planted_cohort
from tests.worker import REPO_ROOT, run_celery_worker, worker_environment

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

REDIS_SERVER = shutil.which("redis-server")
WAIT_SECONDS = 90
OUTAGE_VOTES = 6
BEAT_INTERVAL_SECONDS = 5


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test on one loopback port, started and stopped by PID."""

    def __init__(self, folder):
        self.port = free_port()
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self):
        assert REDIS_SERVER, "redis-server is not installed: run 'apt-get install redis-server'."
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--daemonize", "no"],
            stdout=open(self.folder / "redis.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (self.folder / "redis.log").read_text()
            with contextlib.suppress(OSError):
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return
            time.sleep(0.05)
        pytest.fail(f"redis-server on port {self.port} did not answer PING within 30 s")

    def is_running(self):
        return self.process is not None and self.process.poll() is None

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)
        self.process = None


@contextlib.contextmanager
def app_on_broker(settings, monkeypatch, url):
    """Point Salon's Celery app (and workers started from ``settings``) at ``url`` for the block."""
    saved = (app.conf.broker_url, app.conf.broker_transport_options, settings.CELERY_BROKER_URL)
    # Celery reads CELERY_BROKER_URL from the environment before its own
    # configuration, so a configuration's broker would win over the change below.
    monkeypatch.setenv("CELERY_BROKER_URL", url)

    def reset_pools():
        # Connection and producer pools are made on first use from the URL of that moment.
        app._pool = None
        app.amqp._producer_pool = None

    app.conf.broker_url = url
    app.conf.broker_transport_options = {}
    settings.CELERY_BROKER_URL = url
    reset_pools()
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.broker_transport_options, _url = saved
        reset_pools()


@pytest.fixture
def redis_broker(settings, monkeypatch, tmp_path, transactional_db):
    """Yield ``(server, start_worker)``: a private Redis that Salon uses as broker, and a worker starter.

    Workers are stopped with the broker running, because stopping one
    broadcasts a shutdown through it, and that waits for a broker that is down.
    """
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    workers = contextlib.ExitStack()
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir()

    def start_worker(queues, extra_env=None):
        return workers.enter_context(run_celery_worker(settings.MEDIA_ROOT, log_dir, queues=queues, extra_env=extra_env))

    try:
        with app_on_broker(settings, monkeypatch, server.url):
            try:
                yield server, start_worker
            finally:
                if not server.is_running():
                    server.start()
                workers.close()
    finally:
        server.stop()


def assert_broker_down(server):
    with app.connection_for_write() as broker:
        assert (broker.transport.driver_type, broker.hostname, broker.port) == ("redis", "127.0.0.1", server.port)
        with pytest.raises(BrokerError):
            broker.ensure_connection(max_retries=1, timeout=2)


def vote_times(client, cohort, count):
    """Vote ``count`` times through the views; return the status codes."""
    statuses = []
    response = client.get(reverse("next_pair", args=[cohort.slug]))
    assert response.status_code == 200, response.content
    comparison = response.json()["comparison"]
    for _ in range(count):
        body = json.dumps({"comparison": comparison["id"], "choice": "left", "client_ms": 1500})
        response = client.post(reverse("vote", args=[cohort.slug]), body, content_type="application/json")
        statuses.append(response.status_code)
        comparison = response.json()["next"]["comparison"]
    return statuses


def test_votes_and_joins_work_while_broker_is_down(redis_broker):
    server, start_worker = redis_broker
    data = build_planted_cohort(n_judgments=0, n_clips=8)
    start_worker(("default", "gpu"))
    rater = Client()
    rater.force_login(data.raters[0])

    server.stop()
    assert_broker_down(server)
    statuses = vote_times(rater, data.cohort, OUTAGE_VOTES)
    newcomer = Client()
    joined = newcomer.post(data.cohort.get_join_url() + "?PROLIFIC_PID=outage-participant-1")
    newcomer_statuses = vote_times(newcomer, data.cohort, 2)

    assert statuses == [201] * OUTAGE_VOTES
    assert joined.status_code == 302
    assert newcomer_statuses == [201, 201]
    assert Judgment.objects.filter(comparison__cohort=data.cohort).count() == OUTAGE_VOTES + 2
    assert Membership.objects.filter(cohort=data.cohort, participant_id="outage-participant-1").exists()


def start_beat(settings, tmp_path, log_path):
    env = worker_environment(settings.MEDIA_ROOT, {"SALON_SCHEDULER_INTERVAL_SECONDS": str(BEAT_INTERVAL_SECONDS)})
    command = [
        sys.executable, "-m", "celery", "-A", "taste_site", "beat", "-l", "info",
        "-s", str(tmp_path / "beat-schedule"), "--pidfile", "",
    ]
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=open(log_path, "wb"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )


def stop_process(process):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def test_refits_catch_up_after_broker_returns(settings, tmp_path, redis_broker):
    """Votes cast during the outage are in the refit that beat starts once the broker is back."""
    server, start_worker = redis_broker
    settings.SALON = {**settings.SALON, "BACKBONE": "handcrafted"}
    data = build_planted_cohort(n_judgments=20, min_judgments=20 + OUTAGE_VOTES)
    worker = start_worker(("default", "gpu"), {"SALON_BACKBONE": "handcrafted"})
    beat_log = tmp_path / "beat.log"
    beat = start_beat(settings, tmp_path, beat_log)
    try:
        server.stop()
        assert_broker_down(server)
        rater = Client()
        rater.force_login(data.raters[0])
        assert vote_times(rater, data.cohort, OUTAGE_VOTES) == [201] * OUTAGE_VOTES
        newest = Judgment.objects.filter(comparison__cohort=data.cohort).order_by("-id").first()
        # Beat keeps ticking into the outage and must survive it.
        time.sleep(BEAT_INTERVAL_SECONDS * 2)
        assert beat.poll() is None, beat_log.read_text()

        server.start()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            version = TasteModel.objects.filter(cohort=data.cohort, status=TasteModel.Status.FINISHED).first()
            if version is not None:
                break
            time.sleep(0.2)
        else:
            pytest.fail(
                f"No refit finished within {WAIT_SECONDS} s of the broker's return.\n"
                f"Beat log:\n{beat_log.read_text()[-4000:]}\nWorker log:\n{worker.log_tail()}"
            )
    finally:
        stop_process(beat)

    assert version.high_water_judgment_id == newest.pk
    assert version.n_judgments == 20 + OUTAGE_VOTES
    assert version.is_active is True


def test_import_during_outage_processed_later(settings, tmp_path, redis_broker):
    """An import while the broker is down stores its clips; they are processed once it is back."""
    from comparisons.importer import Importer

    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "still.png").write_bytes(png_bytes(40, 30))
    settings.SALON = {**settings.SALON, "IMPORT_ROOTS": [str(tmp_path)]}
    server, start_worker = redis_broker
    worker = start_worker(("default",))

    server.stop()
    assert_broker_down(server)
    report = Importer(pool_name="outage").import_path(folder)

    clip = Clip.objects.get()
    assert [outcome.status for outcome in report.outcomes] == ["imported"]
    assert clip.status == Clip.Status.PENDING

    server.start()
    # Importing the same folder again is the documented way to retry.
    Importer(pool_name="outage").import_path(folder)
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and Clip.objects.get(pk=clip.pk).status == Clip.Status.PENDING:
        time.sleep(0.2)
    clip.refresh_from_db()
    assert clip.status == Clip.Status.READY, worker.log_tail()


def test_export_request_during_outage_is_kept(settings, tmp_path, redis_broker):
    from tests.export_dataset import build_dataset
    from tests.test_export_views import make_researcher

    server, _start_worker = redis_broker
    settings.SALON = {**settings.SALON, "EXPORT_DIR": str(tmp_path / "exports")}
    build_dataset()
    client = Client()
    client.force_login(make_researcher())

    server.stop()
    assert_broker_down(server)
    response = client.post(
        reverse("exports:index"), {"cohorts": ["painters"], "format": "csv", "action": "prepare"}
    )

    assert response.status_code == 302
    assert Export.objects.get().status == Export.Status.QUEUED

    # Once the broker is back, the sweep sends the export that was never sent.
    from django.utils import timezone

    from comparisons.exports.tasks import QUEUED_RESEND_MINUTES, resend_queued_exports

    server.start()
    Export.objects.update(sent_at=timezone.now() - timezone.timedelta(minutes=QUEUED_RESEND_MINUTES + 1))
    assert resend_queued_exports() == 1
    # The next sweep waits another QUEUED_RESEND_MINUTES for the export just sent.
    assert resend_queued_exports() == 0
