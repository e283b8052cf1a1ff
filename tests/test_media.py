"""Probing and converting media files with Pillow and the shipped ffmpeg."""

import io

import pytest
from PIL import Image

from comparisons import media
from tests.factories import png_bytes, png_declaring, video_file

LIMITS = {"max_video_seconds": 120.0, "max_video_pixels": 1920 * 1080, "max_image_pixels": 50_000_000}


def image_bytes(image_format, size=(40, 30), mode="RGB", **save_options):
    buffer = io.BytesIO()
    Image.new(mode, size, (200, 100, 50) if mode == "RGB" else (200, 100, 50, 128)).save(
        buffer, format=image_format, **save_options
    )
    return buffer.getvalue()


def write(path, content):
    path.write_bytes(content)
    return path


# Recognising files


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b"\xff\xd8\xff\xe0" + b"\x00" * 20, ("image", "jpeg")),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, ("image", "png")),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", ("image", "webp")),
        (b"\x00\x00\x00\x20ftypisom", ("video", "isobmff")),
        (b"RIFF\x00\x00\x00\x00AVI LIST", ("video", "avi")),
        (b"\x1a\x45\xdf\xa3\x00", ("video", "matroska")),
        (b"OggS\x00", ("video", "ogg")),
        (b"hello world\n", None),
        (b"", None),
    ],
)
def test_sniff_format_table(head, expected):
    assert media.sniff_format(head) == expected


def test_media_kind_prefers_content_over_name(tmp_path):
    """A JPEG named .mp4 is an image; text named .mp4 stays a video for the probe to reject."""
    jpeg_named_mp4 = write(tmp_path / "photo.mp4", image_bytes("JPEG"))
    text_named_mp4 = write(tmp_path / "notes.mp4", b"just text\n")
    assert media.media_kind(jpeg_named_mp4, media.read_head(jpeg_named_mp4)) == "image"
    assert media.media_kind(text_named_mp4, media.read_head(text_named_mp4)) == "video"


@pytest.mark.parametrize("name", ["README.md", "CAPTIONS.csv", "make_pack.py", "LICENSE"])
def test_media_kind_ignores_non_media(tmp_path, name):
    path = write(tmp_path / name, b"# some text\nmore text\n")
    assert media.media_kind(path, media.read_head(path)) is None


def test_media_kind_finds_media_without_extension(tmp_path):
    path = write(tmp_path / "clip", image_bytes("PNG"))
    assert media.media_kind(path, media.read_head(path)) == "image"


def test_looks_like_text():
    assert media.looks_like_text(b"caption,path\nfoo,bar\n")
    assert media.looks_like_text("café\n".encode())
    assert not media.looks_like_text(b"\x00\x00\x00\x20ftypisom")
    assert not media.looks_like_text(b"")


# Declared image sizes


@pytest.mark.parametrize(
    ("image_format", "options", "mode"),
    [
        ("PNG", {}, "RGB"),
        ("JPEG", {}, "RGB"),
        ("JPEG", {"progressive": True}, "RGB"),
        ("WEBP", {"quality": 80}, "RGB"),
        ("WEBP", {"lossless": True}, "RGB"),
        ("WEBP", {"quality": 80}, "RGBA"),
    ],
)
def test_declared_size_matches_pillow(tmp_path, image_format, options, mode):
    path = write(tmp_path / "image", image_bytes(image_format, size=(123, 45), mode=mode, **options))
    kind, sniffed = media.sniff_format(media.read_head(path))
    assert kind == "image"
    assert media.declared_image_size(path, sniffed) == (123, 45)


def test_declared_size_of_crafted_png(tmp_path):
    path = write(tmp_path / "huge.png", png_declaring(30000, 30000))
    assert media.declared_image_size(path, "png") == (30000, 30000)


# Probing images


def test_probe_png(tmp_path):
    path = write(tmp_path / "a.png", png_bytes(width=33, height=21))
    info = media.probe(path, "image", **LIMITS)
    assert (info.kind, info.width, info.height, info.codec) == ("image", 33, 21, "png")
    assert info.browser_playable is True


def test_probe_rejects_declared_huge_png_before_decoding(tmp_path):
    """The limit check uses the header, so the message is Salon's, not a decoder's."""
    path = write(tmp_path / "huge.png", png_declaring(30000, 30000))
    with pytest.raises(media.MediaError) as caught:
        media.probe(path, "image", **LIMITS)
    message = str(caught.value)
    assert "30000 x 30000" in message
    assert "900,000,000" in message
    assert "MAX_IMAGE_PIXELS" in message


def test_probe_turns_pillow_bomb_error_into_media_error(tmp_path):
    """With a limit above Pillow's own, Pillow's bomb check rejects the file cleanly."""
    path = write(tmp_path / "huge.png", png_declaring(30000, 30000))
    with pytest.raises(media.MediaError, match="decompression bomb"):
        media.probe(path, "image", **{**LIMITS, "max_image_pixels": 10**10})


def test_probe_rejects_truncated_jpeg(tmp_path):
    content = image_bytes("JPEG", size=(300, 200), quality=95)
    path = write(tmp_path / "cut.jpg", content[: len(content) // 2])
    with pytest.raises(media.MediaError, match="cannot be decoded"):
        media.probe(path, "image", **LIMITS)


def test_probe_rejects_text_named_jpg(tmp_path):
    path = write(tmp_path / "fake.jpg", b"not an image\n")
    with pytest.raises(media.MediaError, match="not a JPEG, PNG or WebP"):
        media.probe(path, "image", **LIMITS)


def test_probe_swaps_sides_for_exif_rotation(tmp_path):
    image = Image.new("RGB", (60, 20), (10, 20, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif)
    path = write(tmp_path / "rotated.jpg", buffer.getvalue())
    info = media.probe(path, "image", **LIMITS)
    assert (info.width, info.height) == (20, 60)


# Probing videos


def test_probe_h264_mp4_is_playable(tmp_path):
    path = video_file(tmp_path / "a.mp4", width=64, height=48, frames=12, fps=12)
    info = media.probe(path, "video", **LIMITS)
    assert (info.kind, info.width, info.height, info.codec) == ("video", 64, 48, "h264")
    assert info.pixel_format == "yuv420p"
    assert info.fps == 12.0
    assert info.duration == pytest.approx(1.0, abs=0.1)
    assert info.has_audio is False
    assert info.faststart is True
    assert info.browser_playable is True


def test_probe_finds_audio_and_late_moov(tmp_path):
    path = video_file(tmp_path / "a.mp4", audio=True, faststart=False)
    info = media.probe(path, "video", **LIMITS)
    assert info.has_audio is True
    assert info.faststart is False
    assert info.browser_playable is True


def test_probe_avi_is_not_playable(tmp_path):
    path = video_file(tmp_path / "a.avi", codec=("-c:v", "mpeg4"))
    info = media.probe(path, "video", **LIMITS)
    assert info.codec == "mpeg4"
    assert info.container == "avi"
    assert info.browser_playable is False


def test_probe_rejects_long_video(tmp_path):
    path = video_file(tmp_path / "a.mp4", frames=24, fps=12)
    with pytest.raises(media.MediaError, match="MAX_VIDEO_SECONDS"):
        media.probe(path, "video", **{**LIMITS, "max_video_seconds": 1.5})


def test_probe_rejects_large_video_frame(tmp_path):
    path = video_file(tmp_path / "a.mp4", width=64, height=48)
    with pytest.raises(media.MediaError, match="64 x 48 = 3,072 pixels"):
        media.probe(path, "video", **{**LIMITS, "max_video_pixels": 3000})


def test_truncated_mp4_names_the_short_box(tmp_path):
    """ffmpeg -i still reads a cut MP4 whose moov comes first; the box walk does not."""
    content = video_file(tmp_path / "full.mp4", frames=24).read_bytes()
    path = write(tmp_path / "cut.mp4", content[: len(content) - 200])
    with pytest.raises(media.MediaError) as caught:
        media.probe(path, "video", **LIMITS)
    assert "truncated" in str(caught.value)
    assert "'mdat'" in str(caught.value)


def test_isobmff_boxes_order(tmp_path):
    fast = video_file(tmp_path / "fast.mp4", faststart=True)
    slow = video_file(tmp_path / "slow.mp4", faststart=False)
    assert media.is_faststart(media.isobmff_boxes(fast)) is True
    assert media.is_faststart(media.isobmff_boxes(slow)) is False
    assert media.isobmff_boxes(fast)[0] == "ftyp"


def test_parse_ffmpeg_summary_fields():
    stderr = """Input #0, mov,mp4,m4a,3gp,3g2,mj2, from 'x.mov':
  Duration: 00:01:02.50, start: 0.000000, bitrate: 1238 kb/s
  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(tv, bt709, progressive), 1920x1080 [SAR 1:1 DAR 16:9], 1234 kb/s, 29.97 fps, 29.97 tbr, 30k tbn (default)
      Side data:
        displaymatrix: rotation of -90.00 degrees
  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo, fltp, 128 kb/s (default)
"""
    summary = media.parse_ffmpeg_summary(stderr)
    assert summary.container == "mov,mp4,m4a,3gp,3g2,mj2"
    assert summary.codec == "h264"
    assert summary.pixel_format == "yuv420p"
    assert (summary.width, summary.height) == (1920, 1080)
    assert summary.fps == pytest.approx(29.97)
    assert summary.duration == pytest.approx(62.5)
    assert summary.has_audio is True
    assert summary.rotation == -90.0


def test_parse_ffmpeg_summary_without_video():
    stderr = "Input #0, mp3, from 'a.mp3':\n  Duration: 00:00:03.00\n  Stream #0:0: Audio: mp3, 44100 Hz\n"
    assert media.parse_ffmpeg_summary(stderr) is None


@pytest.mark.parametrize(
    ("playable", "width", "height", "has_audio", "faststart", "transcode", "remux"),
    [
        (True, 640, 480, False, True, False, False),
        (True, 640, 480, True, True, False, True),
        (True, 640, 480, False, False, False, True),
        (True, 2000, 1000, False, True, True, False),
        (True, 641, 480, False, True, True, False),
        (False, 640, 480, False, False, True, True),
    ],
)
def test_conversion_decisions(playable, width, height, has_audio, faststart, transcode, remux):
    info = media.MediaInfo(
        kind="video", width=width, height=height, codec="h264", has_audio=has_audio, faststart=faststart,
        browser_playable=playable,
    )
    assert bool(media.needs_transcode(info, max_width=1280)) is transcode
    assert media.needs_remux(info) is remux


# Converting


def test_transcode_caps_width_and_drops_audio(tmp_path):
    source = video_file(tmp_path / "in.avi", width=80, height=50, codec=("-c:v", "mpeg4"), audio=True)
    target = tmp_path / "out.mp4"
    media.transcode_video(source, target, max_width=40, timeout=60)
    media.check_rendition(target, max_width=40)
    summary = media.read_stream_summary(target)
    assert (summary.codec, summary.pixel_format) == ("h264", "yuv420p")
    assert (summary.width, summary.height) == (40, 26)
    assert summary.has_audio is False
    boxes = media.isobmff_boxes(target)
    assert boxes.index("moov") < boxes.index("mdat")


def test_remux_keeps_codec_and_drops_audio(tmp_path):
    source = video_file(tmp_path / "in.mp4", audio=True, faststart=False)
    target = tmp_path / "out.mp4"
    media.remux_video(source, target, timeout=60)
    media.check_rendition(target, max_width=1280)
    assert media.read_stream_summary(target).has_audio is False
    assert media.is_faststart(media.isobmff_boxes(target)) is True


def test_check_rendition_rejects_audio(tmp_path):
    path = video_file(tmp_path / "a.mp4", audio=True)
    with pytest.raises(media.MediaError, match="an audio stream"):
        media.check_rendition(path, max_width=1280)


def test_video_poster_is_jpeg_within_width(tmp_path):
    source = video_file(tmp_path / "in.mp4", width=64, height=48)
    target = tmp_path / "poster.jpg"
    media.video_poster(source, target, duration=1.0, max_width=32, timeout=60)
    with Image.open(target) as poster:
        assert poster.format == "JPEG"
        assert poster.size == (32, 24)


def test_image_poster_flattens_alpha_and_caps_width(tmp_path):
    source = write(tmp_path / "in.png", image_bytes("PNG", size=(200, 100), mode="RGBA"))
    target = tmp_path / "poster.jpg"
    media.image_poster(source, target, max_width=50)
    with Image.open(target) as poster:
        assert poster.format == "JPEG"
        assert poster.mode == "RGB"
        assert poster.size == (50, 25)


def test_ffmpeg_timeout_becomes_media_error(tmp_path):
    source = video_file(tmp_path / "in.avi", codec=("-c:v", "mpeg4"))
    with pytest.raises(media.MediaError, match="timed out"):
        # A timeout far below ffmpeg's start-up time stops it every time.
        media.transcode_video(source, tmp_path / "out.mp4", max_width=64, timeout=0.001)
