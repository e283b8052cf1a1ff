"""Start a real Celery worker process for tests that need tasks to run for real.

The worker is a separate ``celery -A taste_site worker`` process that reads the
same test database, MEDIA_ROOT, var folder and broker as the test process, so a
task sent with ``delay_on_commit`` in a test runs in a separate worker, as in production.
Tests that use it need ``@pytest.mark.django_db(transaction=True)``, because the
worker reads only committed rows. The fixture requests ``transactional_db`` itself.

Torch stays out of the test process: this module imports no task module, and
the worker's children import torch lazily, if at all.

The filesystem broker and the SQLite test database live under
``SALON_VAR_DIR``, so two test runs at the same time need different
``SALON_VAR_DIR`` values, or their workers take each other's messages.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_QUEUES = ("default", "gpu")
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 20.0
PING_TIMEOUT_SECONDS = 0.5
BROKER_CONNECT_SECONDS = 2.0


class WorkerStartError(RuntimeError):
    """The worker process exited, or did not reply to a ping in time."""


def database_url(settings_dict):
    """Return a ``DATABASE_URL`` that opens the database of ``settings_dict``.

    Called after pytest-django created the test database, ``NAME`` is the
    test database (a file for SQLite, ``test_<name>`` for PostgreSQL).
    """
    engine = settings_dict["ENGINE"]
    name = str(settings_dict["NAME"])
    if engine.endswith("sqlite3"):
        if name == ":memory:" or name.startswith("file:"):
            raise WorkerStartError(
                "The test database is in memory, so a worker process cannot open it. "
                "Set DATABASES['default']['TEST']['NAME'] to a file path."
            )
        return "sqlite:///" + str(Path(name).resolve())
    if "postgresql" in engine:
        user = quote(settings_dict.get("USER") or "", safe="")
        password = quote(settings_dict.get("PASSWORD") or "", safe="")
        credentials = user + (":" + password if password else "")
        host = settings_dict.get("HOST") or "localhost"
        port = settings_dict.get("PORT") or ""
        netloc = host
        if port:
            netloc += ":" + str(port)
        if credentials:
            netloc = credentials + "@" + netloc
        return "postgres://" + netloc + "/" + quote(name, safe="")
    raise WorkerStartError(
        "No DATABASE_URL form is known for the database engine %r; use SQLite or PostgreSQL." % engine
    )


def worker_environment(media_root, extra_env=None):
    """Return the environment that points a worker at this test's database and files."""
    from django.conf import settings
    from django.db import connection

    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "taste_site.test_settings"),
            "DATABASE_URL": database_url(connection.settings_dict),
            "SALON_MEDIA_ROOT": str(Path(media_root).resolve()),
            "SALON_VAR_DIR": str(settings.VAR_DIR),
            "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.CELERY_RESULT_BACKEND:
        env["CELERY_RESULT_BACKEND"] = settings.CELERY_RESULT_BACKEND
    env.update(extra_env or {})
    return env


def purge_queues(app, queues):
    """Drop messages that earlier tests left in ``queues``; return how many."""
    dropped = 0
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in queues:
            # AMQP brokers reject a purge of an undeclared queue (404), so the
            # queue is declared first, exactly as the worker declares it.
            app.amqp.queues[queue](channel).declare()
            dropped += channel.queue_purge(queue) or 0
    return dropped


@dataclass
class WorkerProcess:
    """A started worker: its process, its node name and where it logs."""

    process: subprocess.Popen
    nodename: str
    log_path: Path
    queues: tuple

    @property
    def pid(self):
        return self.process.pid

    def log_tail(self, max_chars=6000):
        """Return the end of the worker's log, for failure messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-max_chars:]

    def is_alive(self):
        return self.process.poll() is None


def _wait_until_ready(app, worker, deadline):
    last_error = None
    while time.monotonic() < deadline:
        if not worker.is_alive():
            raise WorkerStartError(
                "The Celery worker exited with code %s before it was ready. Its log ends with:\n%s"
                % (worker.process.returncode, worker.log_tail())
            )
        try:
            replies = app.control.ping(destination=[worker.nodename], timeout=PING_TIMEOUT_SECONDS)
        except ValueError as error:
            # The filesystem transport can hand the reader a reply file the
            # worker has not finished writing; the JSON decode error (a
            # ValueError) only means "try again".
            last_error = error
            continue
        if any(worker.nodename in reply for reply in replies):
            return
    raise WorkerStartError(
        "The Celery worker %s did not reply to a ping within %.0f s (last error: %s). Its log ends with:\n%s"
        % (worker.nodename, START_TIMEOUT_SECONDS, last_error, worker.log_tail())
    )


def _remote_shutdown(app, nodename):
    """Send ``nodename`` a remote-control shutdown; return False when the broker cannot take it.

    A test may have stopped its broker on purpose, and kombu would retry
    the connection for a long time, so one short attempt is made and the
    caller falls back to signals.
    """
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=BROKER_CONNECT_SECONDS)
            app.control.shutdown(destination=[nodename], connection=connection)
    except Exception:  # noqa: BLE001 - any broker failure means "use signals instead"
        return False
    return True


def stop_worker(worker, app=None, timeout=STOP_TIMEOUT_SECONDS):
    """Stop ``worker`` with a warm shutdown, then KILL its whole process group.

    With the filesystem broker, a remote-control ``shutdown`` stopped an idle
    worker in about 2 s and TERM in about 5 s. Both let a running task
    finish. The worker runs in
    its own session, so its process group contains exactly the processes this
    harness started: the main process, its prefork children and any ffmpeg
    they run.
    """
    process = worker.process
    if process.poll() is None and app is not None and _remote_shutdown(app, worker.nodename):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
    # Children outlive a killed parent; the group id is the worker's own pid.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


@contextlib.contextmanager
def run_celery_worker(media_root, log_dir, queues=DEFAULT_QUEUES, concurrency=1, extra_env=None, include=()):
    """Run a Celery worker for the duration of the ``with`` block and yield it.

    Parameters
    ----------
    media_root : path
        MEDIA_ROOT the worker writes renditions and posters to.
    log_dir : path
        Folder for the worker's log file.
    queues : tuple of str
        Queues the worker consumes. Stale messages in them and in the
        ``default`` and ``gpu`` queues are purged first.
    concurrency : int
        Number of prefork children.
    extra_env : dict, optional
        More environment variables, such as ``SALON_*`` settings for the worker.
    include : tuple of str
        More modules the worker imports, such as ``tests.worker_hooks``.
    """
    from taste_site.celery import app

    if app.conf.task_always_eager:
        raise WorkerStartError("task_always_eager is on, so tasks would never reach the worker; turn it off.")
    # Both Salon queues, even when this worker consumes one: a test that
    # checks what was sent to the other must not see earlier tests' messages.
    purge_queues(app, sorted(set(queues) | set(DEFAULT_QUEUES)))

    nodename = "salon-test-%s@%s" % (uuid.uuid4().hex[:10], os.uname().nodename)
    log_path = Path(log_dir) / ("celery-worker-%s.log" % nodename.split("@")[0])
    command = [
        sys.executable, "-m", "celery", "-A", "taste_site", "worker",
        "-Q", ",".join(queues), "-c", str(concurrency), "--pool", "prefork",
        "-n", nodename, "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    if include:
        command += ["--include", ",".join(include)]
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=worker_environment(media_root, extra_env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = WorkerProcess(process=process, nodename=nodename, log_path=log_path, queues=tuple(queues))
    try:
        _wait_until_ready(app, worker, time.monotonic() + START_TIMEOUT_SECONDS)
        yield worker
    finally:
        stop_worker(worker, app)


@pytest.fixture
def celery_worker_process(transactional_db, settings, tmp_path):
    """Yield a running worker on queues ``default`` and ``gpu`` for this test.

    The worker writes to this test's MEDIA_ROOT and reads the test database.
    """
    from taste_site.celery import app

    assert app.conf.task_always_eager is False
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir(exist_ok=True)
    with run_celery_worker(settings.MEDIA_ROOT, log_dir) as worker:
        yield worker


@pytest.fixture
def celery_worker_factory(transactional_db, settings, tmp_path):
    """Return ``start(queues=..., extra_env=...)`` that starts a worker for this test.

    Every worker started through it is stopped when the test ends.
    """
    from taste_site.celery import app

    assert app.conf.task_always_eager is False
    stack = contextlib.ExitStack()
    log_dir = tmp_path / "worker-logs"
    log_dir.mkdir(exist_ok=True)

    def start(queues=DEFAULT_QUEUES, extra_env=None, concurrency=1):
        return stack.enter_context(
            run_celery_worker(settings.MEDIA_ROOT, log_dir, queues=queues, concurrency=concurrency, extra_env=extra_env)
        )

    with stack:
        yield start
