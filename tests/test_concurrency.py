"""Many raters voting at once through the real views: no lost vote, no "database is locked".

On SQLite every write transaction begins IMMEDIATE and waits on the busy
timeout, so concurrent voters queue instead of failing. These tests vote from
threads (each with its own database connection) and from separate processes
(separate interpreters, as under gunicorn), also while another process keeps
taking the write lock the way a worker writing scores would, and count what
was stored. They run on PostgreSQL too when the suite does.
"""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.urls import reverse

from comparisons.models import Judgment
from tests.factories import make_cohort, make_pool, make_rater
from tests.worker import database_url

REPO_ROOT = Path(__file__).resolve().parent.parent
THREAD_RATERS = 8
PROCESS_RATERS = 4
VOTES_PER_RATER = 12
PROCESS_TIMEOUT_SECONDS = 300

pytestmark = pytest.mark.django_db(transaction=True)


def vote_run(client, slug, votes):
    """Vote ``votes`` times as the logged-in rater of ``client``; return the status codes and any error bodies."""
    statuses = []
    errors = []
    response = client.get(reverse("next_pair", args=[slug]))
    statuses.append(response.status_code)
    comparison = response.json().get("comparison") if response.status_code == 200 else None
    for _ in range(votes):
        if comparison is None:
            errors.append("no comparison to answer")
            break
        body = json.dumps({"comparison": comparison["id"], "choice": "left", "client_ms": 1500})
        response = client.post(reverse("vote", args=[slug]), body, content_type="application/json")
        statuses.append(response.status_code)
        if response.status_code != 201:
            errors.append(response.content.decode(errors="replace")[:500])
            break
        comparison = response.json()["next"]["comparison"]
    return statuses, errors


def assert_all_stored(cohort, raters, statuses, errors, votes):
    assert errors == []
    assert statuses.count(201) == len(raters) * votes
    assert set(statuses) == {200, 201}
    assert Judgment.objects.filter(comparison__cohort=cohort).count() == len(raters) * votes
    for rater in raters:
        assert Judgment.objects.filter(comparison__rater=rater).count() == votes


def test_threads_voting_at_once_lose_no_vote():
    cohort = make_cohort(pool=make_pool(n_images=10), daily_goal=0)
    raters = [make_rater(cohort) for _ in range(THREAD_RATERS)]
    barrier = threading.Barrier(len(raters))
    statuses = []
    errors = []
    lock = threading.Lock()

    def run(rater):
        client = Client()
        client.force_login(rater)
        barrier.wait()
        try:
            rater_statuses, rater_errors = vote_run(client, cohort.slug, VOTES_PER_RATER)
        except Exception as error:  # a "database is locked" would surface here
            rater_statuses, rater_errors = [], [repr(error)]
        finally:
            connection.close()
        with lock:
            statuses.extend(rater_statuses)
            errors.extend(rater_errors)

    threads = [threading.Thread(target=run, args=(rater,)) for rater in raters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=PROCESS_TIMEOUT_SECONDS)

    assert not any(thread.is_alive() for thread in threads)
    assert_all_stored(cohort, raters, statuses, errors, VOTES_PER_RATER)


# --- separate processes ------------------------------------------------------

# Each child sets Django up on the test database, reports "ready", waits for
# "go" on stdin so that all start together, then runs its role.
CHILD = r"""
import json, sys, time, uuid
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from comparisons.models import Prompt
from tests.test_concurrency import vote_run

role, argument, slug, votes = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
print("ready", flush=True)
sys.stdin.readline()
if role == "voter":
    client = Client()
    client.force_login(get_user_model().objects.get(pk=argument))
    try:
        statuses, errors = vote_run(client, slug, votes)
    except Exception as error:
        statuses, errors = [], [repr(error)]
    print(json.dumps({"statuses": statuses, "errors": errors}), flush=True)
else:
    # Hold the write lock for a while, again and again, like a long score update.
    for round_index in range(argument):
        with transaction.atomic():
            Prompt.objects.create(text="writer %s %d" % (uuid.uuid4().hex, round_index))
            time.sleep(0.2)
    print(json.dumps({"rounds": argument}), flush=True)
"""


def start_children(roles, slug):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "taste_site.test_settings",
        "DATABASE_URL": database_url(connection.settings_dict),
        "SALON_VAR_DIR": str(settings.VAR_DIR),
        "SALON_MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    children = []
    for role, argument in roles:
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, role, str(argument), slug, str(VOTES_PER_RATER)],
                cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )
        )
    return children


def run_children(children):
    """Release the children together once all are ready; return their JSON reports."""
    try:
        for child in children:
            line = child.stdout.readline()
            assert line.strip() == "ready", child.stderr.read()
        for child in children:
            child.stdin.write("go\n")
            child.stdin.flush()
        reports = []
        for child in children:
            stdout, stderr = child.communicate(timeout=PROCESS_TIMEOUT_SECONDS)
            assert child.returncode == 0, stderr
            reports.append(json.loads(stdout.strip().splitlines()[-1]))
        return reports
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


def test_processes_voting_at_once_lose_no_vote():
    cohort = make_cohort(pool=make_pool(n_images=10), daily_goal=0)
    raters = [make_rater(cohort) for _ in range(PROCESS_RATERS)]
    connection.close()

    reports = run_children(start_children([("voter", rater.pk) for rater in raters], cohort.slug))

    statuses = [status for report in reports for status in report["statuses"]]
    errors = [error for report in reports for error in report["errors"]]
    assert_all_stored(cohort, raters, statuses, errors, VOTES_PER_RATER)


def test_votes_wait_for_a_slow_writer_process():
    """A process that keeps the write lock 0.2 s at a time delays votes but fails none."""
    cohort = make_cohort(pool=make_pool(n_images=10), daily_goal=0)
    raters = [make_rater(cohort) for _ in range(PROCESS_RATERS)]
    writer_rounds = 15
    connection.close()
    roles = [("writer", writer_rounds)] + [("voter", rater.pk) for rater in raters]

    reports = run_children(start_children(roles, cohort.slug))

    assert reports[0] == {"rounds": writer_rounds}
    statuses = [status for report in reports[1:] for status in report["statuses"]]
    errors = [error for report in reports[1:] for error in report["errors"]]
    assert_all_stored(cohort, raters, statuses, errors, VOTES_PER_RATER)
