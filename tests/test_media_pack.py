"""Acceptance: import the real media pack with a real worker, then import it again.

The pack folder comes from the MEDIA_PACK_DIR setting (``SALON_MEDIA_PACK_DIR``,
by default ``../shared/media``). A missing folder fails these tests instead
of skipping them, so an acceptance run cannot pass without the pack.
"""

import csv
import io
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from PIL import Image

from comparisons import media
from comparisons.models import Clip, Pool
from comparisons.tasks import FEATURES_TASK
from taste_site.conf import salon_settings
from taste_site.celery import app as celery_app
from tests.test_import import drain_queue
from tests.worker import REPO_ROOT, stop_worker, worker_environment

pytestmark = [pytest.mark.media_pack, pytest.mark.worker, pytest.mark.slow]

SUMMARY = re.compile(r"Summary: (\d+) imported, (\d+) duplicate, (\d+) failed, (\d+) ignored\.")
PACK_FILES = 46
TRANSCODED = "videos/opencv_tree_original.avi"


def pack_dir():
    folder = Path(salon_settings.MEDIA_PACK_DIR)
    if not (folder / "CAPTIONS.csv").is_file():
        pytest.fail(
            "The media pack is missing: %s has no CAPTIONS.csv. Set SALON_MEDIA_PACK_DIR to the pack folder."
            % folder
        )
    return folder


def summary_counts(text):
    found = SUMMARY.search(text)
    assert found, text
    return dict(zip(("imported", "duplicate", "failed", "ignored"), map(int, found.groups())))


def pack_captions(folder):
    with open(folder / "CAPTIONS.csv", newline="", encoding="utf-8") as handle:
        return {Path(row["path"]).name: row["caption"] for row in csv.DictReader(handle)}


def drain_feature_requests(expected):
    """Return the clip ids of the feature requests in the gpu queue, waiting up to 30 s for ``expected``."""
    return [args[0][0] for name, args in drain_queue("gpu", expected) if name == FEATURES_TASK]


@pytest.mark.django_db(transaction=True)
def test_media_pack_imports_and_reimports(celery_worker_factory, settings, capsys):
    folder = pack_dir()
    # Only the default queue: feature extraction has its own acceptance test,
    # and here the gpu queue is read back to check what was requested.
    worker = celery_worker_factory(queues=("default",))

    out = io.StringIO()
    started = time.perf_counter()
    call_command(
        "import_clips", str(folder), "--captions", str(folder / "CAPTIONS.csv"), "--pool", "pack",
        "--wait", "--timeout", "300", stdout=out,
    )
    first_seconds = time.perf_counter() - started
    text = out.getvalue()
    counts = summary_counts(text)
    assert (counts["imported"], counts["duplicate"], counts["failed"]) == (PACK_FILES, 0, 0), text
    assert "After processing: 46 ready, 0 failed, 0 pending." in text, worker.log_tail()

    captions = pack_captions(folder)
    clips = list(Clip.objects.all())
    assert len(clips) == PACK_FILES
    assert Pool.objects.get(name="pack").clips.count() == PACK_FILES
    for clip in clips:
        assert clip.status == "ready", (clip.original_name, clip.failure_reason)
        assert clip.caption == captions[clip.original_name]
        with Image.open(clip.poster.path) as poster:
            assert poster.format == "JPEG", clip.original_name
        assert Path(clip.rendition.path).is_file()
    # The filesystem broker hands out half-written message files, so the
    # worker stops (finishing its tasks) before the gpu queue is read.
    stop_worker(worker, celery_app)
    assert sorted(drain_feature_requests(len(clips))) == sorted(clip.pk for clip in clips)

    avi = Clip.objects.get(source_path=str(folder / TRANSCODED))
    assert avi.codec == "cinepak"
    summary = media.read_stream_summary(avi.rendition.path)
    assert (summary.codec, summary.pixel_format, summary.has_audio) == ("h264", "yuv420p", False)
    boxes = media.isobmff_boxes(avi.rendition.path)
    assert boxes.index("moov") < boxes.index("mdat")

    # The second run goes through the real command line in a new process.
    started = time.perf_counter()
    second = subprocess.run(
        [sys.executable, "manage.py", "import_clips", str(folder), "--captions", str(folder / "CAPTIONS.csv")],
        cwd=REPO_ROOT, env=worker_environment(settings.MEDIA_ROOT), capture_output=True, text=True, timeout=300,
    )
    second_seconds = time.perf_counter() - started
    assert second.returncode == 0, second.stderr
    counts = summary_counts(second.stdout)
    assert (counts["imported"], counts["duplicate"], counts["failed"]) == (0, PACK_FILES, 0), second.stdout
    assert Clip.objects.count() == PACK_FILES

    with capsys.disabled():
        print("\nmedia pack: first import with --wait %.1f s, second import %.1f s" % (first_seconds, second_seconds))


def test_missing_pack_fails_not_skips(settings, tmp_path):
    settings.SALON = {**settings.SALON, "MEDIA_PACK_DIR": str(tmp_path / "absent")}
    with pytest.raises(pytest.fail.Exception, match="The media pack is missing"):
        pack_dir()
