"""Probe, check and convert media files with Pillow and the ffmpeg of imageio-ffmpeg.

Everything here works on local file paths and uses neither clips nor the
database: :mod:`comparisons.importer` probes files with it and
:mod:`comparisons.tasks` makes renditions and posters with it. A file that
cannot be used raises :class:`MediaError`, whose message names the file's
problem and the fix.

The ffmpeg binary shipped in the imageio-ffmpeg wheel has no ffprobe, so
videos are probed by parsing the stream summary that ``ffmpeg -i`` writes to
stderr.
"""

import hashlib
import logging
import re
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from django.utils.translation import gettext as _

logger = logging.getLogger(__name__)

IMAGE = "image"
VIDEO = "video"

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp"})
# Containers the shipped ffmpeg reads. GIF is left out on purpose: a still
# GIF would become a one-frame video, and the pack formats do not need it.
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".m2v", ".ts", ".mts", ".m2ts",
    ".ogv", ".flv", ".wmv", ".asf", ".3gp", ".3g2", ".vob", ".mxf", ".y4m",
})
PILLOW_FORMATS = ("JPEG", "PNG", "WEBP")
# Signatures read from the first bytes; each entry is (offset, bytes).
IMAGE_SIGNATURES = {
    "jpeg": [(0, b"\xff\xd8\xff")],
    "png": [(0, b"\x89PNG\r\n\x1a\n")],
    "webp": [(0, b"RIFF"), (8, b"WEBP")],
}
VIDEO_SIGNATURES = {
    "isobmff": [(4, b"ftyp")],
    "avi": [(0, b"RIFF"), (8, b"AVI ")],
    "matroska": [(0, b"\x1a\x45\xdf\xa3")],
    "mpeg-ps": [(0, b"\x00\x00\x01\xba")],
    "mpeg-ts": [(0, b"\x47"), (188, b"\x47")],
    "ogg": [(0, b"OggS")],
    "flv": [(0, b"FLV")],
    "asf": [(0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11")],
    "y4m": [(0, b"YUV4MPEG2")],
}
SNIFF_BYTES = 512
PROBE_TIMEOUT_SECONDS = 60
HASH_CHUNK_BYTES = 1024 * 1024
POSTER_QUALITY = 85


class MediaError(Exception):
    """A file that cannot be imported or converted; the message gives the reason and the fix."""


@dataclass
class MediaInfo:
    """Probe results for one media file."""

    kind: str
    width: int
    height: int
    codec: str
    duration: float | None = None
    fps: float | None = None
    pixel_format: str = ""
    container: str = ""
    has_audio: bool = False
    faststart: bool = False
    browser_playable: bool = False


# Reading the first bytes


def read_head(path, size=SNIFF_BYTES):
    """Return the first ``size`` bytes of ``path`` (raises OSError when unreadable)."""
    with open(path, "rb") as handle:
        return handle.read(size)


def _matches(head, signature):
    return all(head[offset:offset + len(magic)] == magic for offset, magic in signature)


def sniff_format(head):
    """Return ``(kind, format)`` from a file's first bytes, or None when unknown.

    Only formats with a fixed signature are known here; ffmpeg reads more.
    """
    for name, signature in IMAGE_SIGNATURES.items():
        if _matches(head, signature):
            return IMAGE, name
    for name, signature in VIDEO_SIGNATURES.items():
        if _matches(head, signature):
            return VIDEO, name
    return None


def looks_like_text(head):
    """Return True when ``head`` is non-empty UTF-8 text without control bytes."""
    if not head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        # The cut at SNIFF_BYTES may split a multi-byte character.
        try:
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    return all(character.isprintable() or character in "\t\r\n\f" for character in text)


def extension_kind(path):
    """Return IMAGE or VIDEO from the file name's extension, or None."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return IMAGE
    if suffix in VIDEO_EXTENSIONS:
        return VIDEO
    return None


def media_kind(path, head):
    """Return the kind to import ``path`` as, or None when it is not a media file.

    The content decides when it has a known signature, so ``photo.mp4``
    containing a JPEG is an image. Otherwise the extension decides, and the
    probe later rejects a ``.mp4`` that contains text instead of ignoring it.
    """
    sniffed = sniff_format(head)
    if sniffed is not None:
        return sniffed[0]
    return extension_kind(path)


def sha256_of(path):
    """Return the hex sha256 and size in bytes of ``path``, reading it in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# Declared image size, read before any decoder runs


def _png_size(handle):
    header = handle.read(24)
    if len(header) < 24 or header[12:16] != b"IHDR":
        raise MediaError(_("The PNG header is incomplete: there is no IHDR chunk."))
    return struct.unpack(">II", header[16:24])


# JPEG markers that carry the frame size (SOF0-SOF15 except DHT, JPG and DAC).
_JPEG_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE_MARKERS = frozenset(range(0xD0, 0xDA)) | {0x01}


def _jpeg_size(handle):
    handle.seek(2)
    while True:
        byte = handle.read(1)
        if not byte:
            break
        if byte != b"\xff":
            continue
        marker = handle.read(1)
        while marker == b"\xff":
            marker = handle.read(1)
        if not marker:
            break
        code = marker[0]
        if code in _JPEG_STANDALONE_MARKERS:
            continue
        length_bytes = handle.read(2)
        if len(length_bytes) < 2:
            break
        length = struct.unpack(">H", length_bytes)[0]
        if code in _JPEG_SOF_MARKERS:
            frame = handle.read(5)
            if len(frame) < 5:
                break
            height, width = struct.unpack(">HH", frame[1:5])
            return width, height
        handle.seek(length - 2, 1)
    raise MediaError(_("The JPEG has no frame header (SOF marker), so it is truncated or damaged."))


def _webp_size(handle):
    handle.seek(12)
    chunk = handle.read(8)
    kind, data = chunk[:4], handle.read(10)
    if kind == b"VP8X" and len(data) >= 10:
        width = 1 + int.from_bytes(data[4:7], "little")
        height = 1 + int.from_bytes(data[7:10], "little")
        return width, height
    if kind == b"VP8 " and len(data) >= 10 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF
    if kind == b"VP8L" and len(data) >= 5 and data[0] == 0x2F:
        bits = int.from_bytes(data[1:5], "little")
        return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
    raise MediaError(_("The WebP header is incomplete or of an unknown kind."))


def declared_image_size(path, image_format):
    """Return ``(width, height)`` as the header of ``path`` declares it, without decoding."""
    readers = {"png": _png_size, "jpeg": _jpeg_size, "webp": _webp_size}
    with open(path, "rb") as handle:
        return readers[image_format](handle)


def check_image_pixels(width, height, limit):
    """Raise MediaError when ``width`` x ``height`` exceeds ``limit`` pixels."""
    if width * height > limit:
        raise MediaError(
            _(
                "The image declares %(width)d x %(height)d = %(pixels)s pixels, over the limit of "
                "%(limit)s (MAX_IMAGE_PIXELS). Downscale it, or raise SALON_MAX_IMAGE_PIXELS."
            )
            % {"width": width, "height": height, "pixels": f"{width * height:,}", "limit": f"{limit:,}"}
        )


# Probing


def probe_image(path, head, max_pixels):
    """Return the MediaInfo of a JPEG, PNG or WebP image, checking its size first.

    The declared size is read from the header and checked against
    ``max_pixels`` before Pillow decodes a single pixel, so a PNG that
    declares 30000 x 30000 pixels is rejected without allocating its
    buffer. The image is then decoded once, to find truncated files.
    """
    from PIL import Image, UnidentifiedImageError

    sniffed = sniff_format(head)
    if sniffed is None or sniffed[0] != IMAGE:
        if not head:
            raise MediaError(_("The file is empty (0 bytes)."))
        raise MediaError(
            _("The file is not a JPEG, PNG or WebP image, although its name has an image extension. Convert it to one of those.")
        )
    image_format = sniffed[1]
    width, height = declared_image_size(path, image_format)
    if width == 0 or height == 0:
        raise MediaError(_("The image declares a size of %(width)d x %(height)d.") % {"width": width, "height": height})
    check_image_pixels(width, height, max_pixels)

    try:
        with Image.open(path, formats=PILLOW_FORMATS) as image:
            image.load()
            orientation = image.getexif().get(0x0112, 1)
            codec = image.format.lower()
            width, height = image.size
    except Image.DecompressionBombError as error:
        # Only reachable when MAX_IMAGE_PIXELS is set above Pillow's own limit.
        raise MediaError(
            _("Pillow rejected the image as a possible decompression bomb: %(error)s") % {"error": error}
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
        raise MediaError(_("The image cannot be decoded: %(error)s") % {"error": error}) from None
    # EXIF orientations 5-8 rotate by 90 degrees: browsers show it on its side.
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return MediaInfo(kind=IMAGE, width=width, height=height, codec=codec, browser_playable=True)


def ffmpeg_exe():
    """Return the path of the ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _split_top_level(text):
    """Split ``text`` on commas that are not inside parentheses or brackets."""
    parts, depth, current = [], 0, []
    for character in text:
        if character in "([":
            depth += 1
        elif character in ")]":
            depth -= 1
        if character == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
        else:
            current.append(character)
    parts.append("".join(current).strip())
    return parts


_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_INPUT = re.compile(r"^Input #0, (.+?), from ", re.MULTILINE)
_VIDEO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Video: (.*)$", re.MULTILINE)
_AUDIO_STREAM = re.compile(r"^\s*Stream #0:\d+\S*: Audio: ", re.MULTILINE)
_SIZE = re.compile(r"^(\d+)x(\d+)")
_FPS = re.compile(r"^(\d+(?:\.\d+)?)(k?) (?:fps|tbr)$")
_ROTATION = re.compile(r"rotation of (-?\d+(?:\.\d+)?) degrees")
_PROGRESS_TIME = re.compile(r"time=(\d+):(\d+):(\d+(?:\.\d+)?)")


@dataclass
class StreamSummary:
    """The first video stream of a file, as ``ffmpeg -i`` describes it."""

    container: str
    codec: str
    pixel_format: str
    width: int
    height: int
    fps: float | None
    duration: float | None
    has_audio: bool
    rotation: float = 0.0


def parse_ffmpeg_summary(stderr):
    """Return the StreamSummary parsed from ``ffmpeg -i`` stderr, or None without a video stream."""
    stream = _VIDEO_STREAM.search(stderr)
    if stream is None:
        return None

    fields = _split_top_level(stream.group(1))
    codec = fields[0].split()[0]
    pixel_format = fields[1].split("(")[0] if len(fields) > 1 else ""
    width = height = 0
    fps = None
    for field in fields[1:]:
        size = _SIZE.match(field)
        if size and not width:
            width, height = int(size.group(1)), int(size.group(2))
        rate = _FPS.match(field)
        if rate and fps is None:
            fps = float(rate.group(1)) * (1000 if rate.group(2) else 1)

    duration = None
    found = _DURATION.search(stderr)
    if found:
        hours, minutes, seconds = found.groups()
        duration = int(hours) * 3600 + int(minutes) * 60 + float(seconds)

    container = _INPUT.search(stderr)
    rotation = _ROTATION.search(stderr[stream.start():])
    return StreamSummary(
        container=container.group(1) if container else "",
        codec=codec,
        pixel_format=pixel_format,
        width=width,
        height=height,
        fps=fps,
        duration=duration,
        has_audio=bool(_AUDIO_STREAM.search(stderr)),
        rotation=float(rotation.group(1)) if rotation else 0.0,
    )


_LOG_PREFIX = re.compile(r"^(?:\[[^\]]*\]\s*)+")
# Follow-up lines that repeat an earlier error as a bare return code.
_NOISE = ("Terminating thread", "Task finished with error code", "Error number", "output file must be specified")


def _ffmpeg_error_line(stderr, max_chars=400):
    """Return the first and last distinct error messages in ffmpeg's ``stderr``, without log prefixes."""
    messages = []
    for line in stderr.splitlines():
        message = _LOG_PREFIX.sub("", line.strip()).strip()
        if message and message not in messages and not any(noise in message for noise in _NOISE):
            messages.append(message)
    if not messages:
        return _("no message")
    text = messages[0] if len(messages) == 1 else "%s ... %s" % (messages[0], messages[-1])
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def read_stream_summary(path, timeout=PROBE_TIMEOUT_SECONDS):
    """Run ``ffmpeg -i`` on ``path`` and return its StreamSummary.

    Raises MediaError when ffmpeg cannot open the file, finds no video
    stream or times out.
    """
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path)]
    try:
        # Without an output file ffmpeg exits with 1 after the summary, so
        # only the summary shows whether it could read the file.
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(_("ffmpeg took more than %(seconds)d s to open the file.") % {"seconds": timeout}) from None
    stderr = result.stderr.decode("utf-8", "replace")
    if "Error opening input" in stderr or "Input #0" not in stderr:
        raise MediaError(_("ffmpeg cannot read the file: %(error)s") % {"error": _ffmpeg_error_line(stderr)})
    summary = parse_ffmpeg_summary(stderr)
    if summary is None:
        raise MediaError(_("The file has no video stream."))
    return summary


def measure_duration(path, timeout=PROBE_TIMEOUT_SECONDS):
    """Return the duration of the first video stream by copying it to the null muxer.

    For containers whose header declares no duration (raw streams, some
    MPEG-TS files); the copy reads packets without decoding them.
    """
    command = [
        ffmpeg_exe(), "-nostdin", "-hide_banner", "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-",
    ]
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(_("ffmpeg took more than %(seconds)d s to read the file.") % {"seconds": timeout}) from None
    times = _PROGRESS_TIME.findall(result.stderr.decode("utf-8", "replace"))
    if not times:
        return None
    hours, minutes, seconds = times[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def isobmff_boxes(path):
    """Return the top-level box types of an MP4/MOV file in file order.

    Raises MediaError when a box claims more bytes than the file has, which
    is how a cut-off download looks: ``ffmpeg -i`` still reads the header
    of such a file when the ``moov`` box comes first.
    """
    file_size = Path(path).stat().st_size
    boxes = []
    offset = 0
    with open(path, "rb") as handle:
        while offset < file_size:
            handle.seek(offset)
            header = handle.read(8)
            if len(header) < 8:
                raise MediaError(
                    _("The file is truncated: %(extra)d stray bytes follow the last complete box.")
                    % {"extra": len(header)}
                )
            size, box_type = struct.unpack(">I4s", header)
            header_size = 8
            if size == 1:
                large = handle.read(8)
                if len(large) < 8:
                    raise MediaError(_("The file is truncated inside a box header."))
                size = struct.unpack(">Q", large)[0]
                header_size = 16
            elif size == 0:
                size = file_size - offset
            name = box_type.decode("latin-1")
            if size < header_size:
                raise MediaError(_("The file is damaged: box %(box)r has an invalid size.") % {"box": name})
            if offset + size > file_size:
                raise MediaError(
                    _(
                        "The file is truncated: box %(box)r needs %(needed)s bytes but the file ends after "
                        "%(available)s. Copy or download it again."
                    )
                    % {"box": name, "needed": f"{size:,}", "available": f"{file_size - offset:,}"}
                )
            boxes.append(name)
            offset += size
    return boxes


def is_faststart(boxes):
    """Return True when ``moov`` comes before ``mdat``, so playback starts before the download ends."""
    if "moov" not in boxes:
        return False
    return "mdat" not in boxes or boxes.index("moov") < boxes.index("mdat")


def probe_video(path, head, max_seconds, max_pixels):
    """Return the MediaInfo of a video, checking duration and size limits.

    Raises MediaError for text or empty files, containers ffmpeg cannot
    read, truncated MP4/MOV files and videos over the limits.
    """
    if not head:
        raise MediaError(_("The file is empty (0 bytes)."))
    sniffed = sniff_format(head)
    if sniffed is None and looks_like_text(head):
        raise MediaError(_("The file contains text, not video, although its name has a video extension. Replace it with the real video file."))

    boxes = isobmff_boxes(path) if sniffed == (VIDEO, "isobmff") else []
    summary = read_stream_summary(path)
    duration = summary.duration
    if duration is None:
        duration = measure_duration(path)
    if duration is None or duration <= 0:
        raise MediaError(_("ffmpeg finds no duration in the video, so it has no readable frames."))
    if duration > max_seconds:
        raise MediaError(
            _("The video lasts %(seconds).1f s, over the limit of %(limit).1f s (MAX_VIDEO_SECONDS). "
              "Trim it, or raise SALON_MAX_VIDEO_SECONDS.")
            % {"seconds": duration, "limit": max_seconds}
        )
    if summary.width <= 0 or summary.height <= 0:
        raise MediaError(_("ffmpeg finds no frame size in the video stream."))
    if summary.pixel_format in ("", "none"):
        # ffmpeg reports the pixel format of the first decoded frame, so
        # "none" means it could not decode even one.
        raise MediaError(
            _("ffmpeg cannot decode the %(codec)s video stream: not one frame decodes. The file is damaged.")
            % {"codec": summary.codec}
        )
    if summary.width * summary.height > max_pixels:
        raise MediaError(
            _("The video is %(width)d x %(height)d = %(pixels)s pixels per frame, over the limit of %(limit)s "
              "(MAX_VIDEO_PIXELS). Downscale it, or raise SALON_MAX_VIDEO_PIXELS.")
            % {
                "width": summary.width, "height": summary.height,
                "pixels": f"{summary.width * summary.height:,}", "limit": f"{max_pixels:,}",
            }
        )

    width, height = summary.width, summary.height
    if round(abs(summary.rotation)) % 180 == 90:
        width, height = height, width
    container = "mp4" if boxes else summary.container.split(",")[0]
    playable = (
        bool(boxes)
        and Path(path).suffix.lower() in (".mp4", ".m4v")
        and summary.codec == "h264"
        and summary.pixel_format == "yuv420p"
    )
    return MediaInfo(
        kind=VIDEO,
        width=width,
        height=height,
        codec=summary.codec,
        duration=round(duration, 3),
        fps=summary.fps,
        pixel_format=summary.pixel_format,
        container=container,
        has_audio=summary.has_audio,
        faststart=is_faststart(boxes),
        browser_playable=playable,
    )


def probe(path, kind, *, max_video_seconds, max_video_pixels, max_image_pixels):
    """Return the MediaInfo of ``path`` as ``kind``; raise MediaError when it cannot be used."""
    head = read_head(path)
    if kind == IMAGE:
        return probe_image(path, head, max_image_pixels)
    return probe_video(path, head, max_video_seconds, max_video_pixels)


# Conversion


def run_ffmpeg(arguments, timeout, what):
    """Run ffmpeg with ``arguments``; raise MediaError on failure or after ``timeout`` seconds."""
    command = [ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *map(str, arguments)]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise MediaError(
            _("ffmpeg timed out after %(seconds)d s while making the %(what)s (TRANSCODE_TIMEOUT_SECONDS).")
            % {"seconds": timeout, "what": what}
        ) from None
    if result.returncode != 0:
        raise MediaError(
            _("ffmpeg failed while making the %(what)s: %(error)s")
            % {"what": what, "error": _ffmpeg_error_line(result.stderr.decode("utf-8", "replace"))}
        )
    logger.debug("ffmpeg made the %s in %d ms", what, round((time.perf_counter() - started) * 1000))


def needs_transcode(info, max_width):
    """Return True when a browser cannot play the video as is or it is too wide."""
    return (
        not info.browser_playable
        or info.width > max_width
        or info.width % 2
        or info.height % 2
    )


def needs_remux(info):
    """Return True when a playable MP4 still has audio or its ``moov`` box after ``mdat``."""
    return info.has_audio or not info.faststart


def transcode_video(source, target, max_width, timeout):
    """Write ``source`` as H.264 yuv420p MP4 with faststart and no audio to ``target``.

    The width is at most ``max_width`` and both sides are even, which
    yuv420p needs. Non-square pixels are resampled to square ones, so the
    rendition shows the display aspect ratio in every browser.
    """
    scale = (
        "scale=w='min(%d,trunc(iw*sar/2)*2)':h=-2:flags=lanczos,setsar=1,format=yuv420p" % max_width
    )
    run_ffmpeg(
        [
            "-i", source, "-map", "0:v:0", "-an", "-sn", "-dn", "-map_metadata", "-1",
            "-vf", scale, "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4", target,
        ],
        timeout,
        _("rendition"),
    )


def remux_video(source, target, timeout):
    """Copy the video stream of ``source`` into a faststart MP4 without audio."""
    run_ffmpeg(
        [
            "-i", source, "-map", "0:v:0", "-an", "-sn", "-dn", "-c:v", "copy",
            "-movflags", "+faststart", "-f", "mp4", target,
        ],
        timeout,
        _("rendition"),
    )


def video_poster(source, target, duration, max_width, timeout):
    """Write one JPEG frame of ``source`` to ``target``, at most ``max_width`` wide.

    The frame is taken a tenth of the way in (at most 2 s), past the fade
    from black that many clips start with. If that seek yields no frame,
    the first frame is used.
    """
    scale = "scale=w='min(%d,trunc(iw*sar/2)*2)':h=-2,setsar=1" % max_width
    offsets = [min((duration or 0) * 0.1, 2.0), 0.0]
    for offset in offsets:
        run_ffmpeg(
            ["-ss", "%.3f" % offset, "-i", source, "-map", "0:v:0", "-frames:v", "1", "-vf", scale,
             "-q:v", "3", "-update", "1", "-f", "image2", target],
            timeout,
            _("poster frame"),
        )
        if Path(target).is_file() and Path(target).stat().st_size > 0:
            return
    raise MediaError(_("ffmpeg decoded no frame for the poster, so the video has no readable frames."))


def image_poster(source, target, max_width):
    """Write a JPEG poster of the image ``source`` to ``target``, at most ``max_width`` wide.

    EXIF orientation is applied and transparency is flattened onto white,
    since JPEG has no alpha channel.
    """
    from PIL import Image, ImageOps

    with Image.open(source, formats=PILLOW_FORMATS) as image:
        image = ImageOps.exif_transpose(image)
        if image.mode in ("RGBA", "LA", "P", "PA"):
            image = image.convert("RGBA")
            background = Image.new("RGB", image.size, (255, 255, 255))
            background.paste(image, mask=image.getchannel("A"))
            image = background
        else:
            image = image.convert("RGB")
        if image.width > max_width:
            height = max(1, round(image.height * max_width / image.width))
            image = image.resize((max_width, height), Image.Resampling.LANCZOS)
        image.save(target, format="JPEG", quality=POSTER_QUALITY, optimize=True)


def check_rendition(path, max_width):
    """Raise MediaError unless ``path`` is an H.264 yuv420p MP4 with faststart, no audio and even sides."""
    boxes = isobmff_boxes(path)
    summary = read_stream_summary(path)
    problems = []
    if summary.codec != "h264":
        problems.append("codec %s" % summary.codec)
    if summary.pixel_format != "yuv420p":
        problems.append("pixel format %s" % summary.pixel_format)
    if summary.has_audio:
        problems.append("an audio stream")
    if not is_faststart(boxes):
        problems.append("moov after mdat")
    if summary.width > max_width or summary.width % 2 or summary.height % 2:
        problems.append("size %dx%d" % (summary.width, summary.height))
    if problems:
        raise MediaError(
            _("The rendition ffmpeg wrote is not browser-playable: %(problems)s.") % {"problems": ", ".join(problems)}
        )
