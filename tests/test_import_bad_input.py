"""Bad input to ``import_clips``: one clear line per file, and nothing already stored changes.

Tests run as root, so ``chmod 000`` cannot make a file unreadable here. An
unreadable path is a path that does not exist, a folder where a file is
expected, or a broken symbolic link.
"""

import hashlib
import io
import re

import pytest
from django.conf import settings
from django.core.management import call_command

from comparisons.models import Clip, Pool, Prompt
from comparisons.tasks import process_clip
from tests.factories import png_bytes, png_declaring, video_file

pytestmark = pytest.mark.django_db

SUMMARY = re.compile(r"Summary: (\d+) imported, (\d+) duplicate, (\d+) failed, (\d+) ignored\.")


def run_import(*args, **options):
    out = io.StringIO()
    call_command("import_clips", *map(str, args), stdout=out, **options)
    text = out.getvalue()
    found = SUMMARY.search(text)
    assert found, text
    return text, dict(zip(("imported", "duplicate", "failed", "ignored"), map(int, found.groups())))


def lines_naming(text, name):
    return [line for line in text.splitlines() if name in line]


def stored_files():
    """Return ``{path relative to MEDIA_ROOT: sha256}`` of every stored file."""
    root = settings.MEDIA_ROOT
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in root.rglob("*") if path.is_file()
    }


def snapshot():
    return {
        "clips": list(Clip.objects.order_by("pk").values()),
        "pools": list(Pool.objects.order_by("pk").values()),
        "pool_clips": list(Pool.clips.through.objects.order_by("pk").values()),
        "prompts": list(Prompt.objects.order_by("pk").values()),
        "files": stored_files(),
    }


@pytest.fixture
def existing(tmp_path):
    """Two clips imported and processed before the bad input arrives, and their snapshot."""
    folder = tmp_path / "earlier"
    folder.mkdir()
    (folder / "kept.png").write_bytes(png_bytes())
    video_file(folder / "kept.avi", codec=("-c:v", "mpeg4"))
    run_import(folder, pool="main")
    for clip in Clip.objects.all():
        assert process_clip(clip.pk) == "ready"
    return snapshot()


def assert_unchanged(before, new_files_allowed=False):
    after = snapshot()
    previous_ids = {row["id"] for row in before["clips"]}
    assert [row for row in after["clips"] if row["id"] in previous_ids] == before["clips"]
    assert after["pools"] == before["pools"]
    assert after["pool_clips"] == before["pool_clips"]
    assert after["prompts"] == before["prompts"]
    for name, digest in before["files"].items():
        assert after["files"].get(name) == digest, name
    if not new_files_allowed:
        assert after["files"] == before["files"]


def truncated_mp4(path):
    content = video_file(path.with_name("whole.mp4"), frames=24).read_bytes()
    path.with_name("whole.mp4").unlink()
    path.write_bytes(content[: len(content) * 2 // 3])


def undecodable_mp4(path):
    """An MP4 with intact headers whose frame data is all zeros."""
    content = bytearray(video_file(path, frames=12).read_bytes())
    offset = 0
    while offset < len(content):
        size = int.from_bytes(content[offset:offset + 4], "big")
        if content[offset + 4:offset + 8] == b"mdat":
            content[offset + 8:offset + size] = bytes(size - 8)
        offset += size
    path.write_bytes(bytes(content))


BAD_FILES = [
    ("empty.mp4", lambda path: path.write_bytes(b""), "The file is empty (0 bytes)."),
    ("cut.mp4", truncated_mp4, "The file is truncated: box 'mdat' needs"),
    ("notes.mp4", lambda path: path.write_text("This is a text file, not a video.\n"), "contains text, not video"),
    ("huge.png", lambda path: path.write_bytes(png_declaring(30000, 30000)),
     "The image declares 30000 x 30000 = 900,000,000 pixels, over the limit"),
    ("blank.mp4", undecodable_mp4, "not one frame decodes"),
]


@pytest.mark.parametrize(("name", "build", "reason"), BAD_FILES, ids=[case[0] for case in BAD_FILES])
def test_bad_file_gets_one_line_and_failed_clip(tmp_path, existing, name, build, reason):
    folder = tmp_path / "incoming"
    folder.mkdir()
    build(folder / name)
    content = (folder / name).read_bytes()

    text, counts = run_import(folder, pool="main")

    lines = lines_naming(text, name)
    assert len(lines) == 1, text
    assert lines[0].startswith("failed: %s: " % name)
    assert reason in lines[0]
    assert counts == {"imported": 0, "duplicate": 0, "failed": 1, "ignored": 0}
    failed = Clip.objects.get(sha256=hashlib.sha256(content).hexdigest())
    assert failed.status == "failed"
    assert reason in failed.failure_reason
    assert not failed.original
    assert not failed.pools.exists()
    assert_unchanged(existing)


def test_bomb_beyond_pillow_limit_fails_cleanly(tmp_path, existing, settings):
    """With MAX_IMAGE_PIXELS above Pillow's own limit, Pillow's bomb check ends the file, not the import."""
    settings.SALON = {**settings.SALON, "MAX_IMAGE_PIXELS": 10**10}
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "huge.png").write_bytes(png_declaring(30000, 30000))
    (folder / "fine.png").write_bytes(png_bytes())

    text, counts = run_import(folder)
    assert counts == {"imported": 1, "duplicate": 0, "failed": 1, "ignored": 0}
    assert "failed: huge.png: Pillow rejected the image as a possible decompression bomb" in text
    assert_unchanged(existing, new_files_allowed=True)


def test_manifest_with_unreadable_paths(tmp_path, existing):
    """A path that does not exist and a folder in place of a file each get one line and no clip."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "a-folder.png").mkdir()
    (folder / "fine.png").write_bytes(png_bytes())
    manifest = folder / "manifest.csv"
    manifest.write_text("path,caption\nmissing.png,gone\na-folder.png,a folder\nfine.png,fine\n")

    text, counts = run_import(manifest)

    assert counts == {"imported": 1, "duplicate": 0, "failed": 2, "ignored": 0}
    missing = lines_naming(text, "missing.png")
    assert len(missing) == 1
    assert missing[0].startswith("failed: manifest.csv line 2: missing.png: not found (looked for ")
    assert "relative to the CSV's folder" in missing[0]
    as_folder = lines_naming(text, "a-folder.png")
    assert as_folder == ["failed: manifest.csv line 3: a-folder.png: is a folder, not a file; "
                         "name the files inside it instead"]
    assert Clip.objects.filter(original_name__in=["missing.png", "a-folder.png"]).count() == 0
    assert Clip.objects.get(original_name="fine.png").caption == "fine"
    assert_unchanged(existing, new_files_allowed=True)


def test_broken_link_in_folder(tmp_path, existing):
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "broken.mp4").symlink_to(tmp_path / "nowhere.mp4")
    (folder / "broken.txt").symlink_to(tmp_path / "nowhere.txt")

    text, counts = run_import(folder)

    assert counts == {"imported": 0, "duplicate": 0, "failed": 1, "ignored": 1}
    assert lines_naming(text, "broken.mp4") == [
        "failed: broken.mp4: is a broken symbolic link to %s; fix or remove the link" % (tmp_path / "nowhere.mp4")
    ]
    assert_unchanged(existing)


def test_captions_naming_missing_files(tmp_path, existing):
    """Each missing file gets a line with the CSV line, the path and the fix; the rest imports."""
    folder = tmp_path / "incoming"
    folder.mkdir()
    (folder / "here.png").write_bytes(png_bytes())
    captions = folder / "CAPTIONS.csv"
    captions.write_text(
        "path,caption\n"
        "here.png,A file that exists\n"
        "videos/gone.mp4,A file that was never copied\n"
        "gone.jpg,Another missing file\n"
    )

    text, counts = run_import(folder, captions=captions)

    assert counts == {"imported": 1, "duplicate": 0, "failed": 2, "ignored": 1}
    gone_video = lines_naming(text, "gone.mp4")
    assert len(gone_video) == 1
    assert gone_video[0].startswith("failed: CAPTIONS.csv line 3: videos/gone.mp4: not found (looked for ")
    assert str(folder / "videos" / "gone.mp4") in gone_video[0]
    assert "fix the path, which is relative to the CSV's folder, or remove the row" in gone_video[0]
    gone_image = lines_naming(text, "gone.jpg")
    assert len(gone_image) == 1
    assert gone_image[0].startswith("failed: CAPTIONS.csv line 4: gone.jpg: not found")
    assert Clip.objects.get(original_name="here.png").caption == "A file that exists"
    assert_unchanged(existing, new_files_allowed=True)


def test_bad_files_do_not_stop_good_ones(tmp_path, existing):
    folder = tmp_path / "incoming"
    folder.mkdir()
    for name, build, _reason in BAD_FILES:
        build(folder / name)
    (folder / "good.png").write_bytes(png_bytes())
    video_file(folder / "good.mp4")

    text, counts = run_import(folder, pool="main")

    assert counts == {"imported": 2, "duplicate": 0, "failed": len(BAD_FILES), "ignored": 0}
    assert len([line for line in text.splitlines() if line.startswith("failed: ")]) == len(BAD_FILES)
    assert set(Pool.objects.get(name="main").clips.values_list("original_name", flat=True)) == {
        "kept.png", "kept.avi", "good.png", "good.mp4",
    }
