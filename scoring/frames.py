"""Decode the frames that the feature backbones see, and measure flicker.

A video gives ``FRAMES_PER_CLIP`` evenly spaced RGB frames at native size.
Their short side is capped at :data:`MAX_SHORT_SIDE` by scaling, never by
squashing. It also gives its flicker, the mean absolute luminance change
between consecutive small grayscale frames decoded at the fixed rate
``FLICKER_FPS``. An image gives one frame and a flicker of 0.

Everything runs through the ffmpeg binary shipped with ``imageio-ffmpeg``
and Pillow; nothing here imports torch, so the web process may import it.

Two ffmpeg pitfalls shape the commands below:

- Without ``-fps_mode passthrough`` ffmpeg writes a constant-rate stream and
  repeats frames to fill it (a Cinepak AVI with 68 real frames in 29.6 s comes
  out as 449 frames), so sampled frames could be copies of each other.
- The packet count of a container is not the frame count (the same AVI holds
  444 packets for those 68 frames), so frames are picked by time, not by index.
"""

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

# Twice CLIP's 224-pixel input, so open_clip's preprocess still downsamples
# (with antialiasing) while a batch of 16 clips x 8 HD frames stays near
# 100 MB instead of 800 MB.
MAX_SHORT_SIDE = 448

# Size of the grayscale frames flicker is measured on. Downscaling averages
# out sensor noise and compression artefacts that are not visible as flicker.
FLICKER_SIZE = 64

# One ffmpeg pass that decodes the whole file picks the frames of a short
# video and measures its flicker. Above this duration, one input seek per
# frame, each with a short flicker window, is cheaper. Measured on a 2-vCPU
# machine for 8 frames of 640x480 H.264 at FLICKER_FPS 8: the single pass took
# 0.21, 0.36, 0.70, 1.09 and 9.1 s for 12, 24, 48, 77 and 612 s of video;
# the seeks took 0.64 to 1.06 s whatever the length.
SEEK_ABOVE_SECONDS = 60.0

# With seeks, flicker is measured on one window of this length at each
# sampled frame instead of over the whole file.
FLICKER_WINDOW_SECONDS = 2.0


class DecodeError(Exception):
    """A clip's file could not be decoded; the message names the file and why."""


@dataclass
class DecodedClip:
    """The frames and flicker of one clip.

    ``frames`` contains RGB ``uint8`` arrays of shape ``(height, width, 3)`` in
    time order; ``method`` says how they were read (``image``, ``select`` or
    ``seek``).
    """

    frames: list
    flicker: float = 0.0
    method: str = "image"
    duration: float = 0.0
    decode_ms: int = 0


def ffmpeg_exe():
    """Return the path of the ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def capped_size(width, height, max_short_side=MAX_SHORT_SIDE):
    """Return ``(width, height)`` scaled so the short side is at most ``max_short_side``.

    The aspect ratio is kept and images are never enlarged.
    """
    short = min(width, height)
    if short <= max_short_side:
        return width, height
    ratio = max_short_side / short
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def sample_times(duration, count):
    """Return ``count`` target times in seconds: the start of each of ``count`` equal segments.

    Each target picks the first frame at or after it. Segment starts, unlike
    segment midpoints, all lie before the last frame whenever the video has at
    least ``count`` frames at a constant rate, so such a video always yields
    ``count`` distinct frames.
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    return [duration * i / count for i in range(count)]


def flicker_from_gray(gray_frames):
    """Return the mean absolute luminance change between consecutive frames.

    Parameters
    ----------
    gray_frames : ndarray of shape (n, h, w), uint8
        Consecutive grayscale frames decoded at a fixed rate.

    Returns
    -------
    float
        Mean over the ``n - 1`` consecutive pairs of the per-pixel mean of
        ``|Y[t+1] - Y[t]|``, with luminance scaled to [0, 1]; 0 when ``n < 2``.
    """
    if len(gray_frames) < 2:
        return 0.0
    frames = np.asarray(gray_frames, dtype=np.float32) / 255.0
    return float(np.abs(np.diff(frames, axis=0)).mean())


def load_image(path, max_short_side=MAX_SHORT_SIDE):
    """Return an image file as one RGB ``uint8`` array, EXIF-transposed.

    Transparent pixels are flattened onto white, which is how browsers show
    them on the compare page.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            else:
                image = image.convert("RGB")
            size = capped_size(*image.size, max_short_side=max_short_side)
            if size != image.size:
                image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
            return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as error:
        raise DecodeError(f"Could not read the image {path}: {error}") from error


def probe_video(path, timeout):
    """Return the duration in seconds of the first video stream of ``path``.

    Only the container is read (``-c copy``), so this costs a small fraction
    of a decode.
    """
    command = [
        ffmpeg_exe(), "-hide_banner", "-nostdin", "-nostats", "-loglevel", "error",
        "-i", str(path), "-map", "0:v:0", "-c", "copy", "-f", "null", "-progress", "pipe:1", "-",
    ]
    output = _run(command, path, timeout)
    values = dict(re.findall(r"^(\w+)=(.*)$", output.stdout.decode(errors="replace"), re.MULTILINE))
    try:
        duration = int(values.get("out_time_us", "0")) / 1e6
    except ValueError:
        duration = 0.0
    return max(duration, 0.0)


def decode_video(path, count=None, flicker_fps=None, timeout=None):
    """Return ``count`` evenly spaced frames of a video and its flicker.

    Parameters
    ----------
    path : str or Path
        A video file that ffmpeg reads.
    count : int, default=salon_settings.FRAMES_PER_CLIP
        Frames to sample. A video with fewer frames gives all of them.
    flicker_fps : float, default=salon_settings.FLICKER_FPS
        Fixed rate at which flicker is measured.
    timeout : float, default=salon_settings.TRANSCODE_TIMEOUT_SECONDS
        Seconds one ffmpeg call may run.

    Returns
    -------
    DecodedClip

    Raises
    ------
    DecodeError
        When ffmpeg fails, times out or decodes no frame.
    """
    count = count or salon_settings.FRAMES_PER_CLIP
    flicker_fps = flicker_fps or salon_settings.FLICKER_FPS
    timeout = timeout or salon_settings.TRANSCODE_TIMEOUT_SECONDS
    started = time.perf_counter()

    duration = probe_video(path, timeout)
    times = sample_times(duration, count)
    if duration > SEEK_ABOVE_SECONDS:
        frames, flicker = _decode_by_seeking(path, times, flicker_fps, timeout)
        method = "seek"
    else:
        frames, flicker = _decode_in_one_pass(path, times, flicker_fps, timeout)
        method = "select"
    if not frames:
        raise DecodeError(f"ffmpeg decoded no video frame from {path}.")
    if len(frames) < count:
        logger.debug("Video %s gave %d of %d frames (%.2f s)", path, len(frames), count, duration)

    return DecodedClip(
        frames=frames, flicker=flicker, method=method, duration=duration,
        decode_ms=round((time.perf_counter() - started) * 1000),
    )


def _scale_filter():
    # Caps the short side without squashing: the long side follows the
    # aspect ratio (-2 keeps it even, which some pixel formats need).
    # NOTE: the sample aspect ratio is ignored, so anamorphic video keeps
    # its stored, horizontally squeezed shape.
    side = MAX_SHORT_SIDE
    return (
        f"scale=w='if(lte(iw,ih),min(iw,{side}),-2)':h='if(lte(iw,ih),-2,min(ih,{side}))'"
        ":flags=bicubic"
    )


def _flicker_filter(flicker_fps):
    return f"fps={flicker_fps:g},scale={FLICKER_SIZE}:{FLICKER_SIZE}:flags=area,format=gray"


def _select_expression(times):
    # For each target time T: the first frame with t >= T, unless a frame at
    # or after T was already picked. ``prev_selected_t`` is NaN before the
    # first pick and every comparison with NaN is 0. The commas are escaped
    # because the expression sits inside a filtergraph.
    terms = [f"gte(t\\,{t:.6f})*not(gte(prev_selected_t\\,{t:.6f}))" for t in times]
    return "+".join(terms)


def _decode_frames_and_gray(path, input_options, frame_filter, flicker_fps, timeout):
    """Run one ffmpeg decode with two outputs and return ``(frames, gray)``.

    The frames that ``frame_filter`` keeps come as PPM images on stdout (PPM
    carries its own size, so rotated or odd-sized video needs no probing).
    The small grayscale flicker frames go to a temporary file, returned as a
    ``(n, height, width)`` uint8 array. ``input_options`` go before ``-i``.
    """
    graph = (
        "[0:v:0]setpts=PTS-STARTPTS,split=2[sel][fl];"
        f"[sel]{frame_filter},{_scale_filter()}[frames];"
        f"[fl]{_flicker_filter(flicker_fps)}[gray]"
    )
    with tempfile.TemporaryDirectory(prefix="salon-flicker-") as folder:
        gray_path = Path(folder) / "gray.raw"
        command = [
            ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", "error", *input_options, "-i", str(path),
            "-filter_complex", graph,
            "-map", "[frames]", "-fps_mode", "passthrough", "-f", "image2pipe", "-c:v", "ppm",
            "-pix_fmt", "rgb24", "pipe:1",
            "-map", "[gray]", "-f", "rawvideo", "-pix_fmt", "gray", str(gray_path),
        ]
        output = _run(command, path, timeout)
        gray = _read_gray(gray_path)
    return parse_ppm_stream(output.stdout), gray


def _decode_in_one_pass(path, times, flicker_fps, timeout):
    # One decode of the whole file selects the sampled frames and measures flicker.
    frame_filter = f"select='{_select_expression(times)}'"
    frames, gray = _decode_frames_and_gray(path, (), frame_filter, flicker_fps, timeout)
    return frames, flicker_from_gray(gray)


def _decode_by_seeking(path, times, flicker_fps, timeout):
    # One ffmpeg per sampled time: an input seek, the first frame from there,
    # and a short window of flicker frames. Flicker is the mean over all
    # consecutive pairs inside the windows, never across two windows.
    frames = []
    changes = []
    for target in times:
        input_options = ("-ss", f"{target:.6f}", "-t", f"{FLICKER_WINDOW_SECONDS:g}")
        window_frames, gray = _decode_frames_and_gray(path, input_options, "trim=end_frame=1", flicker_fps, timeout)
        frames.extend(window_frames)
        if len(gray) >= 2:
            window = gray.astype(np.float32) / 255.0
            changes.append(np.abs(np.diff(window, axis=0)).mean(axis=(1, 2)))
    flicker = float(np.concatenate(changes).mean()) if changes else 0.0
    return frames, flicker


def _read_gray(path):
    data = np.fromfile(path, dtype=np.uint8) if path.exists() else np.zeros(0, np.uint8)
    frame_bytes = FLICKER_SIZE * FLICKER_SIZE
    usable = len(data) - len(data) % frame_bytes
    return data[:usable].reshape(-1, FLICKER_SIZE, FLICKER_SIZE)


def parse_ppm_stream(data):
    """Return the RGB frames of a concatenation of binary PPM (P6) images."""
    frames = []
    view = memoryview(data)
    offset = 0
    header = re.compile(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s")
    while offset < len(data):
        match = header.match(data, offset)
        if match is None:
            raise DecodeError(f"ffmpeg wrote an unreadable frame stream at byte {offset}.")
        width, height, maxval = (int(value) for value in match.groups())
        if maxval != 255:
            raise DecodeError(f"ffmpeg wrote {maxval + 1}-level frames; expected 8-bit RGB.")
        start = match.end()
        end = start + width * height * 3
        if end > len(data):
            raise DecodeError("ffmpeg's frame stream ended inside a frame.")
        frames.append(np.frombuffer(view[start:end], dtype=np.uint8).reshape(height, width, 3).copy())
        offset = end
    return frames


def _run(command, path, timeout):
    try:
        output = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise DecodeError(f"ffmpeg timed out after {timeout} s on {path}.") from error
    except OSError as error:
        raise DecodeError(f"Could not start ffmpeg for {path}: {error}") from error
    if output.returncode != 0:
        message = output.stderr.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else f"exit status {output.returncode}"
        raise DecodeError(f"ffmpeg failed on {path}: {reason}")
    return output


def decode_path(path, is_video, count=None, flicker_fps=None):
    """Return the :class:`DecodedClip` of a file: sampled frames for a video, one frame for an image."""
    if not is_video:
        started = time.perf_counter()
        frame = load_image(path)
        return DecodedClip(frames=[frame], decode_ms=round((time.perf_counter() - started) * 1000))
    return decode_video(path, count=count, flicker_fps=flicker_fps)


@contextlib.contextmanager
def local_media_path(field_file):
    """Yield a local filesystem path for a stored file.

    ``FileSystemStorage`` files are read in place. Storages without paths
    (object stores) are copied to a temporary file first, because ffmpeg
    reads a path, not a Python file object.
    """
    try:
        yield Path(field_file.path)
        return
    except NotImplementedError:
        pass
    suffix = os.path.splitext(field_file.name)[1]
    with tempfile.NamedTemporaryFile(prefix="salon-media-", suffix=suffix) as copy:
        with field_file.open("rb") as source:
            shutil.copyfileobj(source, copy)
        copy.flush()
        yield Path(copy.name)


def clip_media_file(clip):
    """Return the stored file features are read from: the browser rendition, else the original.

    The rendition is what raters see; the original is used for clips that
    have no rendition yet.
    """
    for field_file in (clip.rendition, clip.original):
        if field_file and field_file.name:
            return field_file
    raise DecodeError(f"Clip {clip.pk} has neither a rendition nor an original file.")


def decode_clip(clip, count=None, flicker_fps=None):
    """Return the :class:`DecodedClip` of a :class:`~comparisons.models.Clip`."""
    field_file = clip_media_file(clip)
    try:
        with local_media_path(field_file) as path:
            if not path.exists():
                raise DecodeError(f"Clip {clip.pk}: the file {field_file.name} is missing from storage.")
            return decode_path(path, clip.is_video, count=count, flicker_fps=flicker_fps)
    except FileNotFoundError as error:
        raise DecodeError(f"Clip {clip.pk}: the file {field_file.name} is missing from storage.") from error

