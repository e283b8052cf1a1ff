"""The README's run command brings up a working app on the demo pool.

Starts ``bin/run-demo`` exactly as a user would (in its own var folder and on
a free port), opens every URL it prints, logs in with the printed password and
votes once through the same JSON endpoints as the rater page.
"""

import http.cookiejar
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT_SECONDS = 900
PRINTED = {
    "rater": r"Rater page:\s+(\S+)",
    "invite": r"Invite link:\s+(\S+)",
    "admin": r"Admin:\s+(\S+)",
    "username": r"Admin username:\s+(\S+)",
    "password": r"Admin password:\s+(\S+)",
}

pytestmark = [pytest.mark.slow, pytest.mark.worker]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def running_demo(tmp_path):
    """Start bin/run-demo, wait for its "running" line, and stop it afterwards."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_URL", "CELERY_", "SALON_"))}
    env.update(SALON_VAR_DIR=str(tmp_path / "var"), SALON_PORT=str(port))
    log_path = tmp_path / "run-demo.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            ["bash", "bin/run-demo"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while "Salon is running" not in log_path.read_text():
            assert process.poll() is None, f"bin/run-demo exited early:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"bin/run-demo did not start:\n{log_path.read_text()}"
            time.sleep(0.5)
        yield log_path.read_text(), tmp_path / "var"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


class Browser:
    """A cookie-keeping HTTP client that does not follow redirects."""

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    def __init__(self):
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies), self._NoRedirect)

    def request(self, url, data=None, headers=None):
        request = urllib.request.Request(url, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.headers, error.read()

    def cookie(self, name):
        return next(cookie.value for cookie in self.cookies if cookie.name == name)


def test_run_demo_urls_and_vote(running_demo):
    output, var_dir = running_demo
    printed = {key: re.search(pattern, output).group(1) for key, pattern in PRINTED.items()}
    browser = Browser()

    status, headers, _ = browser.request(printed["rater"])
    assert status == 302
    assert "/accounts/login/" in headers["Location"]
    status, _, body = browser.request(printed["invite"])
    assert status == 200
    assert b"Demo critics" in body
    status, headers, _ = browser.request(printed["admin"])
    assert status == 302
    assert "/admin/login/" in headers["Location"]

    login_url = urllib.parse.urljoin(printed["rater"], "/accounts/login/")
    status, _, _ = browser.request(login_url)
    assert status == 200
    form = urllib.parse.urlencode(
        {"username": printed["username"], "password": printed["password"], "csrfmiddlewaretoken": browser.cookie("csrftoken")}
    ).encode()
    status, _, _ = browser.request(login_url, data=form, headers={"Referer": login_url})
    assert status == 302, "the printed password was not accepted"

    status, _, body = browser.request(printed["admin"])
    assert status == 200
    assert b"Comparisons" in body
    status, _, body = browser.request(printed["rater"])
    assert status == 200
    assert b"Which clip do you prefer?" in body

    status, _, body = browser.request(printed["rater"] + "next/")
    assert status == 200
    pair = json.loads(body)
    assert pair["end"] is None
    comparison = pair["comparison"]
    for side in ("left", "right"):
        status, _, media = browser.request(urllib.parse.urljoin(printed["rater"], comparison[side]["src"]))
        assert status == 200
        assert len(media) > 0

    time.sleep(pair["min_view_ms"] / 1000 + 0.2)
    vote = json.dumps({"comparison": comparison["id"], "choice": "left", "client_ms": pair["min_view_ms"] + 200}).encode()
    status, _, body = browser.request(
        printed["rater"] + "vote/",
        data=vote,
        headers={"Content-Type": "application/json", "X-CSRFToken": browser.cookie("csrftoken"), "Referer": printed["rater"]},
    )
    assert status == 201, body
    assert json.loads(body)["judgment"]["choice"] == "left"

    with sqlite3.connect(var_dir / "salon.sqlite3") as database:
        rows = database.execute(
            "SELECT j.choice, c.left_id, c.id FROM comparisons_judgment j "
            "JOIN comparisons_comparison c ON c.id = j.comparison_id"
        ).fetchall()
    assert rows == [("left", comparison["left"]["id"], comparison["id"])]
