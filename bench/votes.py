"""Load benchmark of the vote path: N simulated raters voting through a real gunicorn server.

The benchmark makes everything it measures and removes it afterwards:

1. a var folder and a database of its own (an SQLite file in that folder, or
   a PostgreSQL database ``salon_bench_<run>`` that it creates and drops);
2. migrations, static files, a pool of small images and a cohort;
3. gunicorn on a free loopback port, started with ``taste_site.bench_settings``,
   which adds the floor endpoint ``POST /bench/floor/`` (one INSERT in one
   transaction, behind the same middleware and server);
4. for each N: N threads hit the floor endpoint, then N simulated raters (rater
   memberships with ``is_simulated``, so ``SIMULATED_RATERS_EXEMPT`` lifts the
   rate limit and the minimum view time) log in, fetch a pair and vote. Each
   vote response carries the next pair.

Every request goes to 127.0.0.1 only. Each phase is capped both in requests
(``--votes-per-rater`` per thread) and in time (``--max-seconds``), and the run
stops by itself.

Each run has an id, carried by the raters' usernames (``bench-<run>-<N>-<i>``)
and by the floor rows, so that votes are counted in the database per run and
per N: "stored" is that count. Results are printed as a Markdown table with the
vote figures as ratios of the floor's on the same server and machine.

Example::

    .venv/bin/python bench/votes.py --database sqlite --raters 1 16 64
    .venv/bin/python bench/votes.py --database postgresql --raters 1 16 64
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode, urlsplit

REPO_ROOT = Path(__file__).resolve().parent.parent
# Loopback only, on purpose: there is no option to point the load elsewhere.
HOST = "127.0.0.1"
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
SERVER_START_SECONDS = 90.0
LOGIN_TIMEOUT_SECONDS = 300.0
RATER_PASSWORD = "bench-" + secrets.token_hex(8)
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
CHOICES = ("left", "right", "tie")


class BenchError(RuntimeError):
    """The benchmark could not set up or run; the message names the cause and the fix."""


# --- HTTP client ----------------------------------------------------------


class Browser:
    """One keep-alive connection with a cookie jar, like one rater's browser tab."""

    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.cookies = {}
        self.connection = None

    def _connect(self):
        self.connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)

    def set_timeout(self, timeout):
        self.timeout = timeout
        if self.connection is not None and self.connection.sock is not None:
            self.connection.sock.settimeout(timeout)

    def close(self):
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method, path, body=None, headers=None):
        """Send one request; return ``(status, body bytes)``. Timeouts raise TimeoutError."""
        if self.connection is None:
            self._connect()
        headers = dict(headers or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        try:
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except TimeoutError:
            self.close()
            raise
        except (ConnectionError, http.client.HTTPException):
            # The server closed an idle keep-alive connection: retry once on a new one.
            self.close()
            self._connect()
            self.connection.request(method, path, body=body, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        for header in response.headers.get_all("Set-Cookie") or []:
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                self.cookies[name] = morsel.value
        if response.headers.get("Connection", "").lower() == "close":
            self.close()
        return response.status, data


# --- statistics -------------------------------------------------------------


def percentile(values, fraction):
    """Return the nearest-rank percentile of ``values`` (``fraction`` in 0..1), or None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, round(fraction * len(ordered) + 0.5))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Tally:
    """Counts and latencies of one load phase, merged over its threads."""

    sent: int = 0
    acknowledged: int = 0
    non_2xx: int = 0
    too_many: int = 0
    timeouts: int = 0
    statuses: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, status, latency):
        with self.lock:
            self.latencies.append(latency)
            self.statuses[status] = self.statuses.get(status, 0) + 1
            if 200 <= status < 300:
                self.acknowledged += 1
            else:
                self.non_2xx += 1
                if status == 429:
                    self.too_many += 1

    def count_sent(self):
        with self.lock:
            self.sent += 1

    def count_timeout(self):
        with self.lock:
            self.timeouts += 1

    @property
    def throughput(self):
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50(self):
        return percentile(self.latencies, 0.50)

    @property
    def p95(self):
        return percentile(self.latencies, 0.95)


def run_threads(count, target):
    """Run ``target(index, ready, start)`` in ``count`` threads; return the seconds from start to the last one's end.

    Each thread does its setup (logging in), waits on the ``ready`` barrier,
    then on the ``start`` event, so that the clock starts when all are set up.
    """
    ready = threading.Barrier(count + 1)
    start = threading.Event()
    errors = []

    def body(index):
        try:
            target(index, ready, start)
        except Exception as error:  # reported after the phase, not swallowed
            errors.append(error)
            ready.abort()

    threads = [threading.Thread(target=body, args=(index,), daemon=True) for index in range(count)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    started = time.perf_counter()
    start.set()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"{len(errors)} of {count} threads failed; the first: {errors[0]!r}")
    return time.perf_counter() - started


# --- the two load phases ----------------------------------------------------


def floor_phase(port, run_tag, threads, requests_per_thread, max_seconds, timeout):
    """Send ``requests_per_thread`` floor POSTs from each of ``threads`` threads; return the Tally."""
    tally = Tally()

    def worker(index, ready, start):
        browser = Browser(port, timeout)
        ready.wait()
        start.wait()
        deadline = time.monotonic() + max_seconds
        try:
            for _ in range(requests_per_thread):
                if time.monotonic() > deadline:
                    break
                tally.count_sent()
                began = time.perf_counter()
                try:
                    status, _body = browser.request("POST", "/bench/floor/", b"", {"X-Bench-Run": run_tag})
                except TimeoutError:
                    tally.count_timeout()
                    continue
                tally.record(status, time.perf_counter() - began)
        finally:
            browser.close()

    tally.seconds = run_threads(threads, worker)
    return tally


def log_in(browser, username):
    status, page = browser.request("GET", "/accounts/login/")
    if status != 200:
        raise BenchError(f"GET /accounts/login/ returned HTTP {status}; see the server log.")
    match = CSRF_INPUT.search(page.decode("utf-8", "replace"))
    if not match:
        raise BenchError("The login page has no CSRF token field.")
    body = urlencode({"csrfmiddlewaretoken": match.group(1), "username": username, "password": RATER_PASSWORD})
    status, _page = browser.request(
        "POST", "/accounts/login/", body.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
    )
    if status != 302 or "sessionid" not in browser.cookies:
        raise BenchError(f"Logging in {username} returned HTTP {status} without a session; see the server log.")


def fetch_open_comparison(browser, slug):
    status, data = browser.request("GET", f"/c/{slug}/next/")
    if status != 200:
        raise BenchError(f"GET /c/{slug}/next/ returned HTTP {status}: {data[:300]!r}")
    comparison = json.loads(data)["comparison"]
    return comparison["id"] if comparison else None


def vote_phase(port, slug, usernames, votes_per_rater, max_seconds, timeout, seed):
    """Log each rater in, then let all of them vote at once; return the Tally."""
    tally = Tally()

    def worker(index, ready, start):
        rng = random.Random(seed * 100_003 + index)
        # Logging in hashes a password on purpose slowly (about half a second of
        # CPU), so N raters logging in at once get a longer timeout than votes.
        browser = Browser(port, max(timeout, LOGIN_TIMEOUT_SECONDS))
        try:
            log_in(browser, usernames[index])
            comparison_id = fetch_open_comparison(browser, slug)
            browser.set_timeout(timeout)
            ready.wait()
            start.wait()
            deadline = time.monotonic() + max_seconds
            headers = {"Content-Type": "application/json", "X-CSRFToken": browser.cookies["csrftoken"]}
            for _ in range(votes_per_rater):
                if comparison_id is None or time.monotonic() > deadline:
                    break
                body = json.dumps({"comparison": comparison_id, "choice": rng.choice(CHOICES), "client_ms": 1800})
                tally.count_sent()
                began = time.perf_counter()
                try:
                    status, data = browser.request("POST", f"/c/{slug}/vote/", body.encode(), headers)
                except TimeoutError:
                    tally.count_timeout()
                    comparison_id = fetch_open_comparison(browser, slug)
                    continue
                tally.record(status, time.perf_counter() - began)
                if 200 <= status < 300:
                    following = json.loads(data)["next"]["comparison"]
                    comparison_id = following["id"] if following else None
                else:
                    comparison_id = fetch_open_comparison(browser, slug)
        finally:
            browser.close()

    tally.seconds = run_threads(len(usernames), worker)
    return tally


# --- the server and its database ------------------------------------------


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def check_loopback(url):
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS:
        raise BenchError(f"{url!r} is not on this machine: the benchmark only uses 127.0.0.1, localhost or ::1.")


class PostgresDatabase:
    """A database created for one run on a local PostgreSQL server, dropped afterwards."""

    def __init__(self, server_url, name):
        check_loopback(server_url)
        self.server_url = server_url.rstrip("/")
        self.name = name

    def url(self):
        return f"{self.server_url}/{self.name}"

    def _admin(self):
        import psycopg

        parts = urlsplit(self.server_url)
        return psycopg.connect(
            host=parts.hostname, port=parts.port or 5432, user=parts.username or "postgres",
            password=parts.password, dbname="postgres", autocommit=True,
        )

    def create(self):
        with self._admin() as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')

    def drop(self):
        with self._admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def configure_django(env):
    os.environ.update(env)
    sys.path.insert(0, str(REPO_ROOT))
    import django

    django.setup()


def prepare_database(clips):
    """Migrate, collect static files, create the floor table, a pool of ``clips`` images and a cohort."""
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)

    import io

    import numpy as np
    from django.core.files.base import ContentFile
    from PIL import Image

    from comparisons.models import Clip, Cohort, Pool
    from taste_site.bench_urls import create_floor_table

    create_floor_table()
    rng = np.random.default_rng(7)
    pool = Pool.objects.create(name="Benchmark pool")
    for index in range(clips):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)).save(buffer, format="PNG")
        content = buffer.getvalue()
        clip = Clip(
            sha256=f"{index:064x}", kind=Clip.Kind.IMAGE, original_name=f"bench-{index}.png",
            caption=f"benchmark image {index}", status=Clip.Status.READY, width=64, height=48,
        )
        clip.original.save(f"bench-{index}.png", ContentFile(content), save=False)
        clip.rendition.save(f"bench-{index}.png", ContentFile(content), save=False)
        clip.save()
        pool.clips.add(clip)
    # No daily goal, so the goal never ends a rater's run early.
    cohort = Cohort.objects.create(name="Benchmark", slug="bench", pool=pool, daily_goal=0, min_view_ms=1500)
    return cohort.slug


def create_raters(slug, run, n):
    """Create ``n`` simulated raters named ``bench-<run>-<n>-<i>``; return their usernames."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.db import connection

    from comparisons.models import Cohort, Membership

    cohort = Cohort.objects.get(slug=slug)
    # One hash for all: the hasher costs about half a second per call by design.
    password = make_password(RATER_PASSWORD)
    user_model = get_user_model()
    usernames = [f"bench-{run}-{n}-{index}" for index in range(n)]
    users = user_model.objects.bulk_create(user_model(username=name, password=password) for name in usernames)
    Membership.objects.bulk_create(Membership(user=user, cohort=cohort, is_simulated=True) for user in users)
    connection.close()
    return usernames


def count_stored(run, n):
    """Return ``(judgments, floor rows)`` stored by raters and floor requests of this run and N."""
    from django.db import connection

    from comparisons.models import Judgment
    from taste_site.bench_urls import FLOOR_TABLE

    judgments = Judgment.objects.filter(comparison__rater__username__startswith=f"bench-{run}-{n}-").count()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COUNT(*) FROM {FLOOR_TABLE} WHERE run = %s", [f"{run}-{n}"])
        floor_rows = cursor.fetchone()[0]
    connection.close()
    return judgments, floor_rows


class Server:
    """gunicorn serving Salon with the benchmark settings on a free loopback port."""

    def __init__(self, env, var_dir, workers, threads):
        self.env = env
        self.port = free_port()
        self.log_path = var_dir / "gunicorn.log"
        self.command = [
            sys.executable, "-m", "gunicorn", "taste_site.wsgi",
            "--bind", f"{HOST}:{self.port}", "--workers", str(workers), "--threads", str(threads),
            "--timeout", "60", "--graceful-timeout", "10", "--error-logfile", str(self.log_path),
        ]
        self.process = None

    def start(self):
        self.process = subprocess.Popen(
            self.command, cwd=REPO_ROOT, env={**os.environ, **self.env}, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
        )
        deadline = time.monotonic() + SERVER_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"gunicorn exited with code {self.process.returncode}:\n{self.log_tail()}")
            try:
                status, _body = Browser(self.port, 5).request("GET", "/accounts/login/")
                if status == 200:
                    return
                raise BenchError(f"gunicorn returned HTTP {status} to the login page:\n{self.log_tail()}")
            except OSError:
                time.sleep(0.2)
        raise BenchError(f"gunicorn did not respond within {SERVER_START_SECONDS:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars=4000):
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


# --- report -----------------------------------------------------------------


def ratio(value, floor):
    if value is None or not floor:
        return None
    return value / floor


def fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def ms(value):
    return "–" if value is None else f"{value * 1000:.1f}"


def row(n, floor, votes, stored, floor_stored):
    return {
        "raters": n,
        "throughput_ratio": ratio(votes.throughput, floor.throughput),
        "p50_ratio": ratio(votes.p50, floor.p50),
        "p95_ratio": ratio(votes.p95, floor.p95),
        "votes_per_second": votes.throughput,
        "vote_p50_ms": None if votes.p50 is None else votes.p50 * 1000,
        "vote_p95_ms": None if votes.p95 is None else votes.p95 * 1000,
        "floor_per_second": floor.throughput,
        "floor_p50_ms": None if floor.p50 is None else floor.p50 * 1000,
        "floor_p95_ms": None if floor.p95 is None else floor.p95 * 1000,
        "sent": votes.sent,
        "acknowledged": votes.acknowledged,
        "stored": stored,
        "non_2xx": votes.non_2xx,
        "status_429": votes.too_many,
        "timeouts": votes.timeouts,
        "statuses": {str(k): v for k, v in sorted(votes.statuses.items())},
        "floor_sent": floor.sent,
        "floor_acknowledged": floor.acknowledged,
        "floor_stored": floor_stored,
        "floor_timeouts": floor.timeouts,
    }


def print_table(database, rows):
    print()
    print(f"Vote path on {database}, as ratios of the floor endpoint (one INSERT in one transaction):")
    print()
    print("| N raters | throughput ratio | p50 ratio | p95 ratio | sent | acknowledged (2xx) | stored | non-2xx | 429 | timeouts |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['raters']} | {fmt(r['throughput_ratio'])} | {fmt(r['p50_ratio'])} | {fmt(r['p95_ratio'])} "
            f"| {r['sent']} | {r['acknowledged']} | {r['stored']} | {r['non_2xx']} | {r['status_429']} | {r['timeouts']} |"
        )
    print()
    print("Absolute figures on this machine (for reference; compare the ratios across machines):")
    print()
    print("| N raters | votes/s | vote p50 ms | vote p95 ms | floor req/s | floor p50 ms | floor p95 ms | floor sent / stored |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['raters']} | {fmt(r['votes_per_second'], 1)} | {fmt(r['vote_p50_ms'], 1)} | {fmt(r['vote_p95_ms'], 1)} "
            f"| {fmt(r['floor_per_second'], 1)} | {fmt(r['floor_p50_ms'], 1)} | {fmt(r['floor_p95_ms'], 1)} "
            f"| {r['floor_sent']} / {r['floor_stored']} |"
        )


# --- main -------------------------------------------------------------------


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-server", default="postgres://postgres@127.0.0.1:5432",
                        help="local PostgreSQL server on which the run creates and drops its database")
    parser.add_argument("--raters", type=int, nargs="+", default=[1, 16, 64], help="values of N, one phase each")
    parser.add_argument("--votes-per-rater", type=int, default=50, help="cap on votes (and floor requests) per thread")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="cap on the duration of each phase")
    parser.add_argument("--clips", type=int, default=40, help="images in the pool (pairs = clips * (clips - 1) / 2)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before a request counts as a timeout")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the var folder (logs, SQLite file) afterwards")
    parser.add_argument("--without-exemption", action="store_true",
                        help="run with SALON_SIMULATED_RATERS_EXEMPT=0, so the minimum view time and the rate "
                             "limit apply to the simulated raters too (expect 422 and 429 answers)")
    args = parser.parse_args(argv)
    if any(n < 1 or n > 256 for n in args.raters):
        parser.error(f"--raters must be between 1 and 256, got {args.raters}")
    if not 1 <= args.votes_per_rater <= 1000:
        parser.error(f"--votes-per-rater must be between 1 and 1000, got {args.votes_per_rater}")
    if not 1 <= args.max_seconds <= 600:
        parser.error(f"--max-seconds must be between 1 and 600, got {args.max_seconds}")
    if args.votes_per_rater > args.clips * (args.clips - 1) // 2:
        parser.error(f"--votes-per-rater {args.votes_per_rater} exceeds the {args.clips * (args.clips - 1) // 2} "
                     f"pairs of {args.clips} clips; raise --clips")
    return args


def main(argv=None):
    args = parse_args(argv)
    run = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d%H%M%S") + secrets.token_hex(2)
    var_dir = Path(tempfile.mkdtemp(prefix=f"salon-bench-{run}-"))
    database = None
    server = None
    env = {
        "DJANGO_SETTINGS_MODULE": "taste_site.bench_settings",
        "SALON_VAR_DIR": str(var_dir),
        "SALON_SECRET_KEY": secrets.token_urlsafe(50),
        "SALON_DEBUG": "0",
        "SALON_ALLOWED_HOSTS": HOST,
        "SALON_SIMULATED_RATERS_EXEMPT": "0" if args.without_exemption else "1",
        "SALON_LOG_LEVEL": "WARNING",
        "CELERY_BROKER_URL": "filesystem://",
    }
    if args.database == "postgresql":
        database = PostgresDatabase(args.postgres_server, f"salon_bench_{run}")
        database.create()
        env["DATABASE_URL"] = database.url()
    else:
        env["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"

    rows = []
    try:
        configure_django(env)
        slug = prepare_database(args.clips)
        server = Server(env, var_dir, args.workers, args.threads)
        server.start()
        print(f"Run {run}: {args.database}, gunicorn {args.workers} workers x {args.threads} threads on "
              f"{HOST}:{server.port}, {args.votes_per_rater} requests per thread, at most {args.max_seconds:.0f} s "
              f"per phase; {platform.node()} with {os.cpu_count()} CPUs", flush=True)
        for seed, n in enumerate(args.raters, start=1):
            floor = floor_phase(server.port, f"{run}-{n}", n, args.votes_per_rater, args.max_seconds, args.timeout)
            usernames = create_raters(slug, run, n)
            votes = vote_phase(server.port, slug, usernames, args.votes_per_rater, args.max_seconds,
                               args.timeout, seed)
            stored, floor_stored = count_stored(run, n)
            rows.append(row(n, floor, votes, stored, floor_stored))
            r = rows[-1]
            print(f"N={n}: {r['acknowledged']}/{r['sent']} votes acknowledged, {stored} stored, "
                  f"{fmt(r['votes_per_second'], 1)} votes/s vs floor {fmt(r['floor_per_second'], 1)} req/s, "
                  f"HTTP statuses {r['statuses']}",
                  flush=True)
    finally:
        if server is not None:
            server.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        if database is not None:
            database.drop()
        if args.keep:
            print(f"Kept {var_dir}")
        else:
            shutil.rmtree(var_dir, ignore_errors=True)

    print_table(args.database, rows)
    if args.json:
        args.json.write_text(json.dumps({"run": run, "database": args.database, "rows": rows}, indent=2))
    lost = [r["raters"] for r in rows if not r["sent"] == r["acknowledged"] == r["stored"]]
    if lost:
        print(f"\nSent, acknowledged and stored differ at N = {lost}.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as error:
        print(f"bench/votes.py: {error}", file=sys.stderr)
        sys.exit(2)
