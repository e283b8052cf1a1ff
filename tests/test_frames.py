"""Frame sampling and flicker, on small videos and images made by each test."""

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from scoring import frames
from scoring.frames import DecodeError, decode_path, flicker_from_gray, parse_ppm_stream, sample_times
from tests.factories import mp4_bytes


def write_video(path, pixels, fps):
    """Encode ``pixels`` (n, h, w, 3) uint8 as a lossless H.264 MP4 at ``fps``."""
    count, height, width, _ = pixels.shape
    command = [
        frames.ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-qp", "0", "-pix_fmt", "yuv444p", str(path),
    ]
    subprocess.run(command, input=np.ascontiguousarray(pixels, dtype=np.uint8).tobytes(), check=True)
    return path


def numbered_video(path, count, fps=12, width=64, height=48):
    """Write a video whose frame ``i`` is a flat gray of level ``20 * i``, to identify frames after decoding."""
    levels = (np.arange(count) * 20).astype(np.uint8)
    pixels = np.broadcast_to(levels[:, None, None, None], (count, height, width, 3))
    return write_video(path, pixels, fps)


def frame_number(frame):
    return int(round(float(frame.mean()) / 20))


def flashing_video(path, seconds=3, fps=24, period_frames=3):
    """Write a video that switches between black and white every ``period_frames`` frames."""
    count = seconds * fps
    on = (np.arange(count) // period_frames) % 2 == 1
    pixels = np.zeros((count, 48, 64, 3), dtype=np.uint8)
    pixels[on] = 255
    return write_video(path, pixels, fps)


def still_video(path, seconds=3, fps=24):
    pixels = np.full((seconds * fps, 48, 64, 3), 120, dtype=np.uint8)
    pixels[:, 10:30, 20:40] = (200, 40, 40)
    return write_video(path, pixels, fps)


def test_video_gives_requested_frame_count_and_shape(tmp_path):
    path = tmp_path / "noise.mp4"
    mp4_bytes(path, width=64, height=48, frames=24, fps=12)

    decoded = decode_path(path, is_video=True, count=8)

    assert len(decoded.frames) == 8
    for frame in decoded.frames:
        assert frame.shape == (48, 64, 3)
        assert frame.dtype == np.uint8
    assert decoded.method == "select"


def test_twelve_frames_sampled_to_eight_distinct(tmp_path):
    """The duplication pitfall: 8 of 12 frames must be 8 different source frames, in order."""
    path = numbered_video(tmp_path / "numbered.mp4", count=12)

    decoded = decode_path(path, is_video=True, count=8)
    numbers = [frame_number(frame) for frame in decoded.frames]

    assert len(numbers) == 8
    assert len(set(numbers)) == 8
    assert numbers == sorted(numbers)
    assert numbers[0] == 0
    assert max(np.diff(numbers)) <= 2


def test_short_video_gives_each_frame_once(tmp_path):
    path = numbered_video(tmp_path / "five.mp4", count=5)

    decoded = decode_path(path, is_video=True, count=8)

    assert [frame_number(frame) for frame in decoded.frames] == [0, 1, 2, 3, 4]


def test_sparse_frames_in_fast_timebase_are_not_repeated(tmp_path):
    """Few real frames in a 15 fps timebase (like a webcam AVI) are not padded with copies."""
    path = numbered_video(tmp_path / "sparse.mp4", count=6, fps=2)
    remuxed = tmp_path / "sparse-15.mp4"
    subprocess.run(
        [frames.ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(path), "-c", "copy",
         "-video_track_timescale", "15", str(remuxed)],
        check=True,
    )

    decoded = decode_path(remuxed, is_video=True, count=8)

    assert [frame_number(frame) for frame in decoded.frames] == [0, 1, 2, 3, 4, 5]


def test_seeking_picks_the_same_frames_as_one_pass(tmp_path, monkeypatch):
    path = numbered_video(tmp_path / "numbered.mp4", count=12, fps=4)
    one_pass = decode_path(path, is_video=True, count=4)

    monkeypatch.setattr(frames, "SEEK_ABOVE_SECONDS", 1.0)
    seeking = decode_path(path, is_video=True, count=4)

    assert seeking.method == "seek"
    assert one_pass.method == "select"
    assert [frame_number(f) for f in seeking.frames] == [frame_number(f) for f in one_pass.frames]
    assert [frame_number(f) for f in seeking.frames] == [0, 3, 6, 9]


def test_large_video_short_side_capped_without_squashing(tmp_path):
    path = tmp_path / "wide.mp4"
    mp4_bytes(path, width=1000, height=500, frames=4, fps=4)

    decoded = decode_path(path, is_video=True, count=2)

    assert decoded.frames[0].shape == (frames.MAX_SHORT_SIDE, 2 * frames.MAX_SHORT_SIDE, 3)


def test_flicker_zero_for_a_still_image(tmp_path):
    path = tmp_path / "still.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(path)

    decoded = decode_path(path, is_video=False)

    assert decoded.flicker == 0.0
    assert len(decoded.frames) == 1


def test_flicker_zero_for_a_static_video(tmp_path):
    decoded = decode_path(still_video(tmp_path / "static.mp4"), is_video=True)

    assert decoded.flicker == pytest.approx(0.0, abs=1e-3)


def test_flicker_high_for_a_flashing_video(tmp_path):
    """Black and white every 3 frames at 24 fps alternate at each 8 fps sample."""
    decoded = decode_path(flashing_video(tmp_path / "flash.mp4"), is_video=True)

    assert decoded.flicker > 0.9


def test_flicker_measured_in_seek_windows(tmp_path, monkeypatch):
    monkeypatch.setattr(frames, "SEEK_ABOVE_SECONDS", 1.0)

    decoded = decode_path(flashing_video(tmp_path / "flash.mp4"), is_video=True, count=4)

    assert decoded.method == "seek"
    assert decoded.flicker > 0.9


def test_flicker_from_gray_values():
    black = np.zeros((2, 2), np.uint8)
    white = np.full((2, 2), 255, np.uint8)

    assert flicker_from_gray(np.stack([black, white, black])) == pytest.approx(1.0)
    assert flicker_from_gray(np.stack([black, black])) == 0.0
    assert flicker_from_gray(np.stack([black])) == 0.0


def test_sample_times_start_each_segment():
    assert sample_times(2.0, 4) == [0.0, 0.5, 1.0, 1.5]
    with pytest.raises(ValueError, match="at least 1"):
        sample_times(2.0, 0)


def test_image_exif_orientation_applied(tmp_path):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display.
    Image.new("RGB", (40, 20), (200, 100, 50)).save(path, exif=exif)

    frame = decode_path(path, is_video=False).frames[0]

    assert frame.shape == (40, 20, 3)


def test_transparent_image_flattened_on_white(tmp_path):
    path = tmp_path / "clear.png"
    Image.new("RGBA", (8, 8), (0, 0, 0, 0)).save(path)

    frame = decode_path(path, is_video=False).frames[0]

    assert frame.shape == (8, 8, 3)
    assert (frame == 255).all()


def test_large_image_short_side_capped(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGB", (900, 600), (1, 2, 3)).save(path)

    frame = decode_path(path, is_video=False).frames[0]

    assert frame.shape == (448, 672, 3)


def test_unreadable_video_raises_decode_error(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"not a video at all" * 100)

    with pytest.raises(DecodeError, match="broken.mp4"):
        decode_path(path, is_video=True)


def test_unreadable_image_raises_decode_error(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8 truncated")

    with pytest.raises(DecodeError, match="broken.jpg"):
        decode_path(path, is_video=False)


def test_ppm_stream_parsed_and_truncation_detected():
    first = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    second = np.full((1, 2, 3), 7, dtype=np.uint8)
    stream = io.BytesIO()
    for frame in (first, second):
        height, width = frame.shape[:2]
        stream.write(f"P6\n{width} {height}\n255\n".encode() + frame.tobytes())
    data = stream.getvalue()

    parsed = parse_ppm_stream(data)

    assert len(parsed) == 2
    assert np.array_equal(parsed[0], first)
    assert np.array_equal(parsed[1], second)
    with pytest.raises(DecodeError, match="ended inside a frame"):
        parse_ppm_stream(data[:-1])
