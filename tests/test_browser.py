"""The compare page in Debian's headless Chromium, against a live test server.

Database rows are made before the browser starts and checked after it
closes: Playwright's sync API runs an event loop in this thread, and Django
refuses ORM calls while one runs.
"""

import contextlib
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from PIL import Image, ImageDraw

from comparisons.models import Clip, Judgment, Pool
from tests.factories import make_clip, make_cohort, make_rater, mp4_bytes

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
MIN_VIEW_MS = 600
ENABLED_LEFT = 'button[data-choice="left"]:not([disabled])'


@contextlib.contextmanager
def chromium():
    """Yield a headless Chromium; enter it only after the test's database work."""
    if not CHROMIUM.exists():
        pytest.skip("Chromium is not installed at /usr/bin/chromium (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def picture_bytes(index):
    """Return a 320x200 PNG with its own colour and number, easy to tell apart in a screenshot."""
    hue = (index * 67) % 256
    image = Image.new("HSV", (320, 200), (hue, 140, 200)).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((110, 50, 210, 150), fill=(250, 250, 250))
    draw.text((152, 92), str(index), fill=(20, 20, 20))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def session_cookie(user, live_server):
    client = Client()
    client.force_login(user)
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": live_server.url}


def open_compare_page(browser, live_server, cohort, cookie, viewport):
    context = browser.new_context(viewport=viewport)
    context.add_cookies([cookie])
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/c/{cohort.slug}/")
    return context, page, errors


def shown_pair(page):
    """Return the clip ids on screen as (left, right), read from the media elements."""
    return tuple(
        int(page.get_attribute(f"#clip-{side} .media-slot .media", "data-clip-id")) for side in ("left", "right")
    )


def wait_for_new_pair(page, previous):
    page.wait_for_function(
        """([left, right]) => {
            const a = document.querySelector('#clip-left .media'), b = document.querySelector('#clip-right .media');
            return a && b && !(Number(a.dataset.clipId) === left && Number(b.dataset.clipId) === right);
        }""",
        arg=list(previous),
    )
    page.wait_for_selector(ENABLED_LEFT)


def test_vote_by_key_and_click_in_chromium(live_server):
    pool = Pool.objects.create(name="pictures")
    pool.clips.add(*[make_clip(Clip.Kind.IMAGE, caption=f"picture {i}", content=picture_bytes(i)) for i in range(6)])
    pool.clips.update(width=320, height=200)
    cohort = make_cohort(pool=pool, min_view_ms=MIN_VIEW_MS, daily_goal=10,
                         question="Which picture do you prefer?", instructions="Look at both, then choose.")
    rater = make_rater(cohort)
    cookie = session_cookie(rater, live_server)

    with chromium() as browser:
        first, second, third, seen = vote_twice(browser, live_server, cohort, cookie)

    assert seen["errors"] == []
    assert len({frozenset(first), frozenset(second), frozenset(third)}) == 3
    assert seen["progress_after_one"] == "1 of 10 today (skips do not count)"
    assert seen["restart_visible"] is False
    # The pair after the first vote was preloaded, and its elements were moved into view.
    assert sorted(seen["preloaded"]) == sorted(second)
    assert seen["second_reused"] == ["yes", "yes"]
    # On a narrow screen the right clip sits below the left one.
    left_box, right_box = seen["left_box"], seen["right_box"]
    assert right_box["y"] >= left_box["y"] + left_box["height"]

    judgments = list(Judgment.objects.select_related("comparison").order_by("id"))
    assert len(judgments) == 2
    for judgment, pair, choice in zip(judgments, (first, second), ("left", "right")):
        comparison = judgment.comparison
        assert (comparison.left_id, comparison.right_id) == pair
        assert judgment.choice == choice
        assert comparison.cohort_id == cohort.pk
        assert comparison.rater_id == rater.pk
        assert judgment.client_ms >= MIN_VIEW_MS
        assert judgment.server_ms >= MIN_VIEW_MS
    assert seen["first_src"].endswith(Clip.objects.get(pk=first[0]).rendition.url)
    assert seen["first_captions"] == [Clip.objects.get(pk=clip_id).caption for clip_id in first]


def vote_twice(browser, live_server, cohort, cookie):
    """Vote with ArrowLeft, then by clicking Right; return the three pairs shown and what the page showed."""
    seen = {}
    context, page, seen["errors"] = open_compare_page(browser, live_server, cohort, cookie, {"width": 1280, "height": 800})
    page.wait_for_selector(ENABLED_LEFT)
    first = shown_pair(page)
    seen["first_captions"] = [page.inner_text(f"#clip-{side} .caption") for side in ("left", "right")]
    seen["first_src"] = page.get_attribute("#clip-left .media", "src")
    seen["restart_visible"] = page.is_visible("#restart")
    screenshot_dir = settings.VAR_DIR / "screenshots"
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_dir / "compare-desktop.png"), full_page=True)

    # Tag the hidden preloaded elements, to see whether the next pair reuses them.
    seen["preloaded"] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#preload .media')).map(node => {
            node.dataset.preloaded = 'yes';
            return Number(node.dataset.clipId);
        })"""
    )
    page.keyboard.press("ArrowLeft")
    wait_for_new_pair(page, first)
    second = shown_pair(page)
    seen["second_reused"] = [
        page.get_attribute(f"#clip-{side} .media", "data-preloaded") for side in ("left", "right")
    ]
    seen["progress_after_one"] = page.inner_text("#progress-text")

    page.click('button[data-choice="right"]')
    wait_for_new_pair(page, second)
    third = shown_pair(page)

    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshot_dir / "compare-narrow.png"), full_page=True)
    seen["left_box"] = page.locator("#clip-left").bounding_box()
    seen["right_box"] = page.locator("#clip-right").bounding_box()
    context.close()
    return first, second, third, seen


def test_videos_play_muted_in_sync_and_restart_together(live_server, tmp_path):
    pool = Pool.objects.create(name="videos")
    pool.clips.add(*[
        make_clip(Clip.Kind.VIDEO, caption=f"video {i}", content=mp4_bytes(tmp_path / f"clip{i}.mp4", frames=24, fps=12))
        for i in range(3)
    ])
    pool.clips.update(width=64, height=48)
    cohort = make_cohort(pool=pool, min_view_ms=MIN_VIEW_MS)
    rater = make_rater(cohort)
    cookie = session_cookie(rater, live_server)

    with chromium() as browser:
        pair, seen = watch_and_restart(browser, live_server, cohort, cookie)

    assert seen["errors"] == []
    assert len(seen["videos"]) == 2
    for state in seen["videos"]:
        assert state == {"muted": True, "mutedAttribute": True, "loop": True, "playsinline": True, "paused": False}
    assert seen["restart_visible"]
    assert len(seen["restarted_at"]) == 2
    assert all(position < 0.05 for position in seen["restarted_at"]), seen["restarted_at"]
    judgment = Judgment.objects.select_related("comparison").get()
    assert judgment.choice == "tie"
    assert (judgment.comparison.left_id, judgment.comparison.right_id) == pair
    assert judgment.client_ms >= MIN_VIEW_MS


def watch_and_restart(browser, live_server, cohort, cookie):
    """Check the two videos play, restart both, then vote tie with ArrowDown."""
    seen = {}
    context, page, seen["errors"] = open_compare_page(browser, live_server, cohort, cookie, {"width": 1280, "height": 800})
    page.wait_for_selector(ENABLED_LEFT)
    pair = shown_pair(page)
    seen["videos"] = page.evaluate(
        """() => Array.from(document.querySelectorAll('#pair video')).map(v => ({
            muted: v.muted, mutedAttribute: v.hasAttribute('muted'), loop: v.loop,
            playsinline: v.hasAttribute('playsinline'), paused: v.paused,
        }))"""
    )
    # Let both play for a while, so that a restart has something to undo.
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#pair video')).every(v => !v.paused && v.currentTime > 0.4)"
    )
    seen["restarted_at"] = page.evaluate(
        """() => {
            document.getElementById('restart').click();
            return Array.from(document.querySelectorAll('#pair video')).map(v => v.currentTime);
        }"""
    )
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('#pair video')).every(v => !v.paused && v.currentTime > 0)"
    )
    seen["restart_visible"] = page.is_visible("#restart")
    screenshot_dir = settings.VAR_DIR / "screenshots"
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(screenshot_dir / "compare-videos.png"))

    page.keyboard.press("ArrowDown")
    wait_for_new_pair(page, pair)
    context.close()
    return pair, seen
