"""Small builders for test rows and media; every test makes its own data."""

import hashlib
import io
import itertools
import subprocess

import numpy as np
from django.contrib.auth import get_user_model
from django.core.files.base import ContentFile
from PIL import Image

from comparisons.models import Clip, Cohort, Membership, Pool

_counter = itertools.count(1)


def png_bytes(width=32, height=24, seed=None):
    """Return the bytes of a PNG with random pixels (distinct per call)."""
    rng = np.random.default_rng(next(_counter) if seed is None else seed)
    pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def mp4_bytes(path, width=64, height=48, frames=12, fps=12, seed=None):
    """Write a small H.264 MP4 of moving noise to ``path`` and return its bytes."""
    import imageio_ffmpeg

    rng = np.random.default_rng(next(_counter) if seed is None else seed)
    raw = rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8).tobytes()
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    ]
    subprocess.run(command, input=raw, check=True)
    return path.read_bytes()


def make_clip(kind=Clip.Kind.IMAGE, caption="", content=None, status=Clip.Status.READY, **fields):
    """Create a ready clip row with a real image file (videos reuse a PNG poster)."""
    content = content if content is not None else png_bytes()
    sha = hashlib.sha256(content + str(next(_counter)).encode()).hexdigest()
    suffix = "png" if kind == Clip.Kind.IMAGE else "mp4"
    clip = Clip(
        sha256=sha, kind=kind, original_name=f"clip-{sha[:6]}.{suffix}", caption=caption,
        status=status, width=32, height=24, **fields,
    )
    clip.original.save(f"{sha}.{suffix}", ContentFile(content), save=False)
    clip.rendition.save(f"{sha}.{suffix}", ContentFile(content), save=False)
    clip.poster.save(f"{sha}.png", ContentFile(png_bytes()), save=False)
    clip.save()
    return clip


def make_pool(n_images=4, n_videos=0, name=None, **clip_fields):
    pool = Pool.objects.create(name=name or f"pool-{next(_counter)}")
    clips = [make_clip(Clip.Kind.IMAGE, caption=f"image {i}", **clip_fields) for i in range(n_images)]
    clips += [make_clip(Clip.Kind.VIDEO, caption=f"video {i}", **clip_fields) for i in range(n_videos)]
    pool.clips.add(*clips)
    return pool


def make_cohort(pool=None, **fields):
    number = next(_counter)
    defaults = {"name": f"Cohort {number}", "slug": f"cohort-{number}", "min_view_ms": 0}
    defaults.update(fields)
    return Cohort.objects.create(pool=pool or make_pool(), **defaults)


def make_rater(cohort=None, username=None, **membership_fields):
    user = get_user_model().objects.create_user(username=username or f"rater{next(_counter)}")
    if cohort is not None:
        Membership.objects.create(user=user, cohort=cohort, **membership_fields)
    return user


def make_judgment(cohort, rater, left, right, choice="left", reason="random", served_at=None, answered_at=None,
                  server_ms=2000, **judgment_fields):
    """Create a comparison and its judgment; times default to now (auto_now_add) unless given."""
    from comparisons.models import Comparison, Judgment

    comparison = Comparison.objects.create(cohort=cohort, rater=rater, left=left, right=right, reason=reason)
    judgment = Judgment.objects.create(comparison=comparison, choice=choice, server_ms=server_ms, **judgment_fields)
    # auto_now_add ignores values passed to create(), so fixed times are set afterwards.
    if served_at is not None:
        Comparison.objects.filter(pk=comparison.pk).update(served_at=served_at)
    if answered_at is not None:
        Judgment.objects.filter(pk=judgment.pk).update(created_at=answered_at)
    judgment.refresh_from_db()
    return judgment


def make_file_clip(path, kind=None, caption="", rendition=True, **fields):
    """Create a ready clip from a real media file; its rendition is the same file unless ``rendition`` is False.

    ``kind`` defaults from the file name: .mp4, .webm, .avi, .mov and .mkv
    are videos, anything else an image.
    """
    from pathlib import Path

    path = Path(path)
    content = path.read_bytes()
    if kind is None:
        kind = Clip.Kind.VIDEO if path.suffix.lower() in {".mp4", ".webm", ".avi", ".mov", ".mkv"} else Clip.Kind.IMAGE
    sha = hashlib.sha256(content + str(next(_counter)).encode()).hexdigest()
    fields.setdefault("status", Clip.Status.READY)
    clip = Clip(sha256=sha, kind=kind, original_name=path.name, caption=caption, **fields)
    clip.original.save(path.name, ContentFile(content), save=False)
    if rendition:
        clip.rendition.save(path.name, ContentFile(content), save=False)
    clip.save()
    return clip


def make_features(clip, embedding, backbone="handcrafted:v1", semantic=None, frame_dissimilarity=0.0, flicker=0.0):
    """Store ClipFeatures for ``clip`` with the given mean ``embedding`` (normalised here) and one frame."""
    from scoring.models import ClipFeatures, array_to_bytes

    vector = np.asarray(embedding, dtype=np.float64)
    vector = vector / np.linalg.norm(vector)
    return ClipFeatures.objects.create(
        clip=clip, backbone=backbone, n_frames=1, dim=vector.size,
        frame_embeddings=array_to_bytes(vector[None, :]), mean_embedding=array_to_bytes(vector),
        semantic=semantic, frame_dissimilarity=frame_dissimilarity, flicker=flicker,
    )


def png_declaring(width, height):
    """Return a small PNG whose IHDR declares ``width`` x ``height`` pixels.

    Only the header is large: the single IDAT chunk holds one compressed
    row, so the file is a few dozen bytes and decoding it would fail.
    """
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")
    )


def video_file(path, width=64, height=48, frames=12, fps=12, codec=("-c:v", "libx264", "-pix_fmt", "yuv420p"),
               audio=False, faststart=True, seed=None):
    """Write a short video of moving noise to ``path`` with the ffmpeg ``codec`` arguments; return ``path``.

    ``audio`` adds a silent AAC (MP4) or PCM (other containers) track;
    ``faststart`` puts an MP4's ``moov`` box before ``mdat``.
    """
    import imageio_ffmpeg

    rng = np.random.default_rng(next(_counter) if seed is None else seed)
    raw = rng.integers(0, 256, size=(frames, height, width, 3), dtype=np.uint8).tobytes()
    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
    ]
    if audio:
        command += ["-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono", "-shortest"]
    command += list(codec)
    if audio:
        command += ["-c:a", "aac" if str(path).endswith((".mp4", ".mov", ".m4v")) else "pcm_s16le"]
    if faststart and str(path).endswith((".mp4", ".mov", ".m4v")):
        command += ["-movflags", "+faststart"]
    command.append(str(path))
    subprocess.run(command, input=raw, check=True)
    return path
