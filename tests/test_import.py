"""``import_clips``: probing, storage, captions, duplicates, retries and the processing task."""

import csv
import hashlib
import io
import re
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from comparisons import media
from comparisons.models import Clip, Pool, Prompt
from comparisons.tasks import FEATURES_TASK, process_clip
from taste_site.celery import app as celery_app
from tests.factories import png_bytes, video_file
from tests.worker import stop_worker

SUMMARY = re.compile(r"Summary: (\d+) imported, (\d+) duplicate, (\d+) failed, (\d+) ignored\.")


def run_import(*args, **options):
    """Run ``import_clips`` in-process; return its output and the summary counts."""
    out = io.StringIO()
    call_command("import_clips", *map(str, args), stdout=out, **options)
    text = out.getvalue()
    found = SUMMARY.search(text)
    assert found, text
    counts = dict(zip(("imported", "duplicate", "failed", "ignored"), map(int, found.groups())))
    return text, counts


def write_csv(path, rows, columns=("path", "caption")):
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def jpeg_bytes(size=(48, 32)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def webp_bytes(size=(30, 20)):
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 10, 30)).save(buffer, format="WEBP")
    return buffer.getvalue()


@pytest.fixture
def media_folder(tmp_path):
    """A folder with one file of each supported kind and files that are not media."""
    folder = tmp_path / "incoming"
    (folder / "images").mkdir(parents=True)
    (folder / "videos").mkdir()
    (folder / "images" / "a.png").write_bytes(png_bytes(width=32, height=24))
    (folder / "images" / "b.jpg").write_bytes(jpeg_bytes())
    (folder / "images" / "c.webp").write_bytes(webp_bytes())
    video_file(folder / "videos" / "d.mp4", width=64, height=48)
    video_file(folder / "videos" / "e.avi", width=64, height=48, codec=("-c:v", "mpeg4"))
    (folder / "README.md").write_text("# Clips\n")
    (folder / "notes.csv").write_text("a,b\n1,2\n")
    (folder / "make.py").write_text("print('hi')\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    return folder


def drain_queue(queue, expected, wait_seconds=30.0):
    """Remove messages from ``queue`` until ``expected`` arrived or ``wait_seconds`` passed; return them.

    Each message is ``(task name, args)``. With Redis, the first read after
    the worker's remote shutdown was seen to return nothing while LLEN
    showed the messages waiting, so one empty read is not the end.
    """
    from kombu.utils.json import loads

    from taste_site.celery import app

    messages = []
    deadline = time.monotonic() + wait_seconds
    with app.connection_for_read() as connection:
        channel = connection.default_channel
        while len(messages) < expected and time.monotonic() < deadline:
            message = channel.basic_get(queue, no_ack=True)
            if message is None:
                time.sleep(0.1)
                continue
            body = loads(message.body) if isinstance(message.body, (str, bytes)) else message.body
            messages.append((message.headers.get("task"), body[0]))
    return messages


# Importing without a worker


@pytest.mark.django_db
def test_folder_import_counts_and_rows(media_folder, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        text, counts = run_import(media_folder)
    assert counts == {"imported": 5, "duplicate": 0, "failed": 0, "ignored": 4}
    assert len(callbacks) == 5
    assert set(Clip.objects.values_list("status", flat=True)) == {"pending"}

    by_name = {clip.original_name: clip for clip in Clip.objects.all()}
    assert set(by_name) == {"a.png", "b.jpg", "c.webp", "d.mp4", "e.avi"}
    assert (by_name["a.png"].kind, by_name["a.png"].width, by_name["a.png"].height) == ("image", 32, 24)
    assert by_name["c.webp"].codec == "webp"
    assert (by_name["d.mp4"].kind, by_name["d.mp4"].codec, by_name["d.mp4"].fps) == ("video", "h264", 12.0)
    assert by_name["d.mp4"].duration == pytest.approx(1.0, abs=0.1)
    assert by_name["e.avi"].codec == "mpeg4"
    assert by_name["d.mp4"].source_path == str(media_folder / "videos" / "d.mp4")


@pytest.mark.django_db
def test_originals_stored_by_sha256(media_folder):
    run_import(media_folder)
    for clip in Clip.objects.all():
        source = Path(clip.source_path).read_bytes()
        assert clip.sha256 == hashlib.sha256(source).hexdigest()
        assert clip.original.name.startswith("clips/original/%s/%s." % (clip.sha256[:2], clip.sha256))
        assert Path(clip.original.path).read_bytes() == source


@pytest.mark.django_db
def test_jpeg_named_mp4_stored_as_jpg(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "photo.mp4").write_bytes(jpeg_bytes())
    _text, counts = run_import(folder)
    clip = Clip.objects.get()
    assert counts["imported"] == 1
    assert clip.kind == "image"
    assert clip.original.name.endswith(".jpg")


@pytest.mark.django_db
def test_captions_csv_fills_metadata(media_folder):
    captions = write_csv(
        media_folder / "CAPTIONS.csv",
        [
            {"path": "images/a.png", "caption": "A noisy square", "prompt": "noise, 4k",
             "generator": '{"model": "noise-gen", "seed": 7}', "licence": "CC0-1.0", "credit": "Salon tests",
             "source": "https://example.org/a"},
            {"path": "images/b.jpg", "caption": "A green card", "prompt": "noise, 4k",
             "generator": "painter v2", "licence": "", "credit": "", "source": ""},
        ],
        columns=("path", "caption", "prompt", "generator", "licence", "credit", "source"),
    )
    _text, counts = run_import(media_folder, captions=captions)
    assert counts["imported"] == 5
    a = Clip.objects.get(original_name="a.png")
    b = Clip.objects.get(original_name="b.jpg")
    assert a.caption == "A noisy square"
    assert a.generator == {"model": "noise-gen", "seed": 7}
    assert (a.licence, a.credit, a.source) == ("CC0-1.0", "Salon tests", "https://example.org/a")
    assert b.generator == {"model": "painter v2"}
    assert a.prompt_id == b.prompt_id
    assert Prompt.objects.get().text == "noise, 4k"
    assert Clip.objects.get(original_name="d.mp4").caption == ""


@pytest.mark.django_db
def test_invalid_generator_rejects_the_row(media_folder):
    captions = write_csv(
        media_folder / "CAPTIONS.csv",
        [{"path": "images/a.png", "caption": "x", "generator": "{not json"}],
        columns=("path", "caption", "generator"),
    )
    text, counts = run_import(media_folder, captions=captions)
    assert "failed: CAPTIONS.csv line 2: images/a.png: the generator cell is not valid JSON" in text
    # CAPTIONS.csv itself is one of the ignored files.
    assert counts == {"imported": 4, "duplicate": 0, "failed": 1, "ignored": 5}
    assert not Clip.objects.filter(original_name="a.png").exists()


@pytest.mark.django_db
def test_csv_without_path_column_stops(media_folder):
    captions = write_csv(media_folder / "CAPTIONS.csv", [{"file": "a.png", "caption": "x"}], columns=("file", "caption"))
    with pytest.raises(CommandError, match="has no 'path' column"):
        run_import(media_folder, captions=captions)
    assert Clip.objects.count() == 0


@pytest.mark.django_db
def test_missing_path_stops(tmp_path):
    with pytest.raises(CommandError, match="does-not-exist does not exist"):
        run_import(tmp_path / "does-not-exist")


@pytest.mark.django_db
def test_second_run_finds_duplicates_and_joins_pool(media_folder):
    run_import(media_folder)
    _text, counts = run_import(media_folder, pool="second")
    assert counts == {"imported": 0, "duplicate": 5, "failed": 0, "ignored": 4}
    assert Clip.objects.count() == 5
    assert Pool.objects.get(name="second").clips.count() == 5


@pytest.mark.django_db
def test_same_content_twice_in_one_run(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    content = png_bytes()
    (folder / "one.png").write_bytes(content)
    (folder / "two.png").write_bytes(content)
    text, counts = run_import(folder, pool="p", verbosity=2)
    assert counts == {"imported": 1, "duplicate": 1, "failed": 0, "ignored": 0}
    assert "duplicate: two.png: same content as clip #" in text
    assert Pool.objects.get(name="p").clips.count() == 1


@pytest.mark.django_db
def test_failed_clip_is_retried_and_reset(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    content = png_bytes()
    (folder / "good.png").write_bytes(content)
    sha = hashlib.sha256(content).hexdigest()
    Clip.objects.create(sha256=sha, kind="image", original_name="good.png", status="failed", failure_reason="old")

    _text, counts = run_import(folder)
    clip = Clip.objects.get(sha256=sha)
    assert counts["imported"] == 1
    assert clip.status == "pending"
    assert clip.failure_reason == ""
    assert Path(clip.original.path).read_bytes() == content
    assert Clip.objects.count() == 1


@pytest.mark.django_db
def test_failed_clip_failing_again_gets_new_reason(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "empty.png").write_bytes(b"")
    run_import(folder)
    Clip.objects.update(failure_reason="an older reason")

    _text, counts = run_import(folder)
    clip = Clip.objects.get()
    assert counts["failed"] == 1
    assert clip.status == "failed"
    assert clip.failure_reason == "The file is empty (0 bytes)."


@pytest.mark.django_db
def test_manifest_imports_exactly_its_rows(media_folder):
    manifest = write_csv(
        media_folder / "manifest.csv",
        [{"path": "images/a.png", "caption": "first"}, {"path": "videos/d.mp4", "caption": "second"},
         {"path": "README.md", "caption": "not media"}],
    )
    text, counts = run_import(manifest)
    assert counts == {"imported": 2, "duplicate": 0, "failed": 1, "ignored": 0}
    assert "failed: manifest.csv line 4: README.md: not a media file" in text
    assert sorted(Clip.objects.values_list("caption", flat=True)) == ["first", "second"]


@pytest.mark.django_db
def test_manifest_with_captions_fills_empty_cells(media_folder):
    """Licences from a manifest and captions from a separate CSV both reach the clip."""
    manifest = write_csv(
        media_folder / "manifest.csv",
        [{"path": "images/a.png", "caption": "", "licence": "CC0-1.0", "credit": "Ada"},
         {"path": "videos/d.mp4", "caption": "kept from the manifest", "licence": "GPL-2+", "credit": ""}],
        columns=("path", "caption", "licence", "credit"),
    )
    captions = write_csv(
        media_folder / "captions.csv",
        [{"path": "images/a.png", "caption": "a caption from the second file"},
         {"path": "videos/d.mp4", "caption": "ignored: the manifest has one"},
         {"path": "images/b.jpg", "caption": "not in the manifest"}],
    )

    _text, counts = run_import(manifest, captions=captions)

    assert counts == {"imported": 2, "duplicate": 0, "failed": 0, "ignored": 0}
    image = Clip.objects.get(original_name="a.png")
    assert (image.caption, image.licence, image.credit) == ("a caption from the second file", "CC0-1.0", "Ada")
    video = Clip.objects.get(original_name="d.mp4")
    assert (video.caption, video.licence, video.credit) == ("kept from the manifest", "GPL-2+", "")


@pytest.mark.django_db
def test_wait_without_worker_says_so(media_folder):
    """No worker consumes this test's broker folder, so the ping gets no reply."""
    with pytest.raises(CommandError, match="No Celery worker replied to a ping, so 5 clips stay pending"):
        run_import(media_folder, wait=True)
    assert Clip.objects.filter(status="pending").count() == 5


# The processing task, run in this process


@pytest.mark.django_db
def test_task_makes_poster_and_marks_ready(tmp_path, django_capture_on_commit_callbacks):
    folder = tmp_path / "in"
    folder.mkdir()
    video_file(folder / "a.avi", width=64, height=48, codec=("-c:v", "mpeg4"), audio=True)
    run_import(folder)
    clip = Clip.objects.get()

    with django_capture_on_commit_callbacks() as callbacks:
        assert process_clip(clip.pk) == "ready"
    clip.refresh_from_db()
    assert clip.status == "ready"
    assert len(callbacks) == 1
    media.check_rendition(clip.rendition.path, max_width=1280)
    with Image.open(clip.poster.path) as poster:
        assert poster.format == "JPEG"


@pytest.mark.django_db
def test_task_second_run_changes_nothing(tmp_path, django_capture_on_commit_callbacks):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    run_import(folder)
    clip = Clip.objects.get()
    process_clip(clip.pk)
    clip.refresh_from_db()
    poster_stat = Path(clip.poster.path).stat()

    with django_capture_on_commit_callbacks() as callbacks:
        assert process_clip(clip.pk) == "ready"
    again = Clip.objects.get()
    assert len(callbacks) == 0
    assert again.updated_at == clip.updated_at
    assert Path(again.poster.path).stat().st_mtime_ns == poster_stat.st_mtime_ns
    assert again.rendition.name == again.original.name


@pytest.mark.django_db
def test_task_fails_when_original_vanished(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes())
    run_import(folder)
    clip = Clip.objects.get()
    Path(clip.original.path).unlink()

    assert process_clip(clip.pk) == "failed"
    clip.refresh_from_db()
    assert clip.status == "failed"
    assert "missing from storage" in clip.failure_reason


@pytest.mark.django_db
def test_task_ignores_deleted_clip():
    assert process_clip(987654) == "missing"


# With a real worker


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_worker_processes_import(tmp_path, celery_worker_factory):
    """The worker transcodes the AVI and the wide MP4, remuxes the MP4 with audio and keeps the rest."""
    worker = celery_worker_factory(queues=("default",), extra_env={"SALON_RENDITION_MAX_WIDTH": "48"})
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.png").write_bytes(png_bytes(width=64, height=40))
    video_file(folder / "narrow.mp4", width=32, height=24)
    video_file(folder / "narrow-audio.mp4", width=32, height=24, audio=True, faststart=False)
    video_file(folder / "wide.mp4", width=64, height=48)
    video_file(folder / "old.avi", width=40, height=30, codec=("-c:v", "mpeg4"), audio=True)

    text, counts = run_import(folder, wait=True, timeout=120)
    assert counts == {"imported": 5, "duplicate": 0, "failed": 0, "ignored": 0}, worker.log_tail()
    assert "After processing: 5 ready, 0 failed, 0 pending." in text, worker.log_tail()

    clips = {clip.original_name: clip for clip in Clip.objects.all()}
    for name, clip in clips.items():
        assert clip.status == "ready", (name, clip.failure_reason)
        with Image.open(clip.poster.path) as poster:
            assert poster.format == "JPEG"
            assert poster.width <= 48
    assert clips["a.png"].rendition.name == clips["a.png"].original.name
    assert clips["narrow.mp4"].rendition.name == clips["narrow.mp4"].original.name
    for name in ("narrow-audio.mp4", "wide.mp4", "old.avi"):
        rendition = clips[name].rendition
        assert rendition.name.startswith("clips/rendition/")
        media.check_rendition(rendition.path, max_width=48)
    assert media.read_stream_summary(clips["wide.mp4"].rendition.path).width == 48

    # A running task may be writing its feature request right now, and the
    # filesystem broker hands out half-written files, so stop the worker first.
    stop_worker(worker, celery_app)
    requested = drain_queue("gpu", expected=len(clips))
    assert sorted(args[0][0] for name, args in requested if name == FEATURES_TASK) == sorted(
        clip.pk for clip in clips.values()
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_wait_reports_failures_found_by_task(tmp_path, celery_worker_factory):
    """A clip whose stored original vanished passes the import but fails in the worker.

    The first run has no worker; the second finds both clips pending, sends
    them again and waits for the worker started in between.
    """
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes(png_bytes())
    (folder / "lost.png").write_bytes(png_bytes())
    run_import(folder)
    lost = Clip.objects.get(original_name="lost.png")
    Path(lost.original.path).unlink()
    worker = celery_worker_factory(queues=("default",))

    text, counts = run_import(folder, wait=True, timeout=120)
    assert counts == {"imported": 0, "duplicate": 2, "failed": 0, "ignored": 0}
    assert "failed: lost.png: The stored original" in text, worker.log_tail()
    assert "After processing: 1 ready, 1 failed, 0 pending." in text
    lost.refresh_from_db()
    assert lost.status == "failed"
    assert "missing from storage" in lost.failure_reason
    assert Clip.objects.get(original_name="good.png").status == "ready"


def test_import_modules_leave_torch_out():
    """The importer, the task module and the admin run in web processes, which never load torch."""
    import subprocess
    import sys

    from tests.worker import REPO_ROOT

    script = (
        "import sys, django; django.setup();"
        "import comparisons.admin, comparisons.importer, comparisons.tasks;"
        "from django.core.management import load_command_class;"
        "load_command_class('comparisons', 'import_clips');"
        "print(sorted(name for name in ('torch', 'open_clip') if name in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "[]"


@pytest.mark.django_db
def test_sweep_resends_only_stale_pending_clips(media_folder):
    """Clips left pending (say by a broker outage) are sent again; fresh and ready ones are not."""
    from django.utils import timezone

    from comparisons.tasks import PENDING_RESEND_MINUTES, resend_pending_clips

    run_import(media_folder)
    stale, fresh, done = Clip.objects.order_by("pk")[:3]
    old = timezone.now() - timezone.timedelta(minutes=PENDING_RESEND_MINUTES + 1)
    Clip.objects.filter(pk__in=[stale.pk, done.pk]).update(updated_at=old)
    Clip.objects.filter(pk=done.pk).update(status=Clip.Status.READY)
    Clip.objects.exclude(pk__in=[stale.pk, fresh.pk, done.pk]).delete()

    assert resend_pending_clips() == 1
    # Sent again only after another full interval.
    assert resend_pending_clips() == 0
    stale.refresh_from_db()
    assert stale.updated_at > old
