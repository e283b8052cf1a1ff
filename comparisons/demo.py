"""Draw the demo pool: short animations and stills whose captions come from the drawing code.

The demo needs no download: each scene is drawn with numpy, encoded with the
ffmpeg shipped by imageio-ffmpeg, and described by the same parameters that
drew it, so every caption is true of its clip by construction.
"""

import csv
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

WIDTH, HEIGHT = 320, 240
FPS = 12
SECONDS = 3

COLOURS = {
    "red": (220, 40, 40),
    "orange": (240, 140, 20),
    "yellow": (240, 210, 40),
    "green": (40, 170, 70),
    "blue": (40, 90, 220),
    "purple": (140, 60, 190),
    "white": (240, 240, 240),
    "black": (15, 15, 20),
    "navy": (20, 30, 70),
    "grey": (120, 120, 125),
}


@dataclass(frozen=True)
class Scene:
    """One demo clip: a file name, its caption, and how to draw it."""

    name: str
    caption: str
    kind: str
    draw: object
    prompt: str = ""


def _grid():
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH]
    return xs.astype(np.float32), ys.astype(np.float32)


def _fill(colour):
    return np.broadcast_to(np.array(COLOURS[colour], np.uint8), (HEIGHT, WIDTH, 3)).copy()


def _disc(frame, cx, cy, radius, colour):
    xs, ys = _grid()
    frame[(xs - cx) ** 2 + (ys - cy) ** 2 <= radius**2] = COLOURS[colour]
    return frame


def moving_disc(colour, background, direction):
    def draw(t):
        progress = t / (SECONDS * FPS - 1)
        frame = _fill(background)
        if direction == "right":
            cx, cy = 30 + progress * (WIDTH - 60), HEIGHT / 2
        else:
            cx, cy = WIDTH / 2, 30 + progress * (HEIGHT - 60)
        return _disc(frame, cx, cy, 28, colour)

    return draw


def bouncing_square(colour, background):
    def draw(t):
        frame = _fill(background)
        size = 50
        x = int(abs((t * 9) % (2 * (WIDTH - size)) - (WIDTH - size)))
        y = int(abs((t * 6) % (2 * (HEIGHT - size)) - (HEIGHT - size)))
        frame[y : y + size, x : x + size] = COLOURS[colour]
        return frame

    return draw


def hue_sweep():
    xs, _ = _grid()

    def draw(t):
        phase = xs / WIDTH * 2 * np.pi + t * 0.25
        channels = [np.sin(phase + shift) * 0.5 + 0.5 for shift in (0, 2.09, 4.19)]
        return (np.stack(channels, axis=-1) * 255).astype(np.uint8)

    return draw


def flashing_noise(seed):
    rng = np.random.default_rng(seed)

    def draw(t):
        level = 230 if t % 2 == 0 else 25
        noise = rng.integers(-25, 25, size=(HEIGHT, WIDTH, 1))
        return np.clip(level + noise, 0, 255).repeat(3, axis=2).astype(np.uint8)

    return draw


def rotating_bar(colour, background):
    xs, ys = _grid()

    def draw(t):
        angle = t / (SECONDS * FPS) * np.pi
        frame = _fill(background)
        distance = np.abs((xs - WIDTH / 2) * np.sin(angle) - (ys - HEIGHT / 2) * np.cos(angle))
        along = np.hypot(xs - WIDTH / 2, ys - HEIGHT / 2)
        frame[(distance < 8) & (along < 100)] = COLOURS[colour]
        return frame

    return draw


def still(draw_frame):
    return lambda t: draw_frame()


def vertical_gradient(top, bottom):
    def draw():
        weights = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None, None]
        top_rgb = np.array(COLOURS[top], np.float32)
        bottom_rgb = np.array(COLOURS[bottom], np.float32)
        column = top_rgb * (1 - weights) + bottom_rgb * weights
        return np.broadcast_to(column, (HEIGHT, WIDTH, 3)).astype(np.uint8)

    return draw


def checkerboard(first, second, cells):
    def draw():
        xs, ys = _grid()
        cell = WIDTH / cells
        mask = ((xs // cell).astype(int) + (ys // cell).astype(int)) % 2 == 0
        frame = _fill(second)
        frame[mask] = COLOURS[first]
        return frame

    return draw


def sunset():
    def draw():
        frame = vertical_gradient("orange", "purple")()
        frame = _disc(frame, WIDTH / 2, HEIGHT * 0.62, 40, "yellow")
        frame[int(HEIGHT * 0.7) :] = COLOURS["navy"]
        return frame

    return draw


def concentric_rings(first, second):
    def draw():
        xs, ys = _grid()
        radius = np.hypot(xs - WIDTH / 2, ys - HEIGHT / 2)
        frame = _fill(second)
        frame[(radius // 14).astype(int) % 2 == 0] = COLOURS[first]
        return frame

    return draw


def blurred_noise(seed):
    def draw():
        rng = np.random.default_rng(seed)
        small = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
        return np.asarray(Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BICUBIC))

    return draw


def demo_scenes():
    """Return the demo scenes: eight animations and eight stills."""
    return [
        Scene("red-disc-right.mp4", "A red disc slides from left to right across a navy background.",
              "video", moving_disc("red", "navy", "right"), prompt="a ball moving across the screen"),
        Scene("yellow-disc-down.mp4", "A yellow disc drifts from the top to the bottom of a black background.",
              "video", moving_disc("yellow", "black", "down"), prompt="a ball moving across the screen"),
        Scene("green-disc-right.mp4", "A green disc slides from left to right across a white background.",
              "video", moving_disc("green", "white", "right"), prompt="a ball moving across the screen"),
        Scene("orange-square.mp4", "An orange square bounces around a grey background.",
              "video", bouncing_square("orange", "grey"), prompt="a bouncing shape"),
        Scene("blue-square.mp4", "A blue square bounces around a white background.",
              "video", bouncing_square("blue", "white"), prompt="a bouncing shape"),
        Scene("hue-sweep.mp4", "Bands of rainbow colours sweep slowly sideways.", "video", hue_sweep()),
        Scene("flashing-noise.mp4", "A grainy grey frame flashes between bright and dark on every frame.",
              "video", flashing_noise(7)),
        Scene("white-bar.mp4", "A white bar rotates half a turn around the centre of a purple background.",
              "video", rotating_bar("white", "purple")),
        Scene("sky-gradient.png", "A smooth gradient from blue at the top to white at the bottom.",
              "image", still(vertical_gradient("blue", "white"))),
        Scene("dusk-gradient.png", "A smooth gradient from orange at the top to purple at the bottom.",
              "image", still(vertical_gradient("orange", "purple"))),
        Scene("checkerboard.png", "A black and white checkerboard, eight squares across and six down.",
              "image", still(checkerboard("black", "white", 8))),
        Scene("coarse-checkerboard.png", "A red and green checkerboard, four squares across and three down.",
              "image", still(checkerboard("red", "green", 4))),
        Scene("sunset.png", "A yellow sun sets over a navy sea under an orange and purple sky.",
              "image", still(sunset())),
        Scene("rings.png", "Concentric blue and white rings around the centre.",
              "image", still(concentric_rings("blue", "white"))),
        Scene("colour-blur.png", "Soft blurred patches of many colours.", "image", still(blurred_noise(3))),
        Scene("grey-field.png", "A plain, flat grey field with nothing in it.", "image", still(lambda: _fill("grey"))),
    ]


def encode_video(path, frames):
    """Encode RGB frames to an H.264 MP4 with the ffmpeg from imageio-ffmpeg."""
    import imageio_ffmpeg

    command = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{WIDTH}x{HEIGHT}", "-r", str(FPS), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path),
    ]
    raw = b"".join(np.ascontiguousarray(frame, dtype=np.uint8).tobytes() for frame in frames)
    subprocess.run(command, input=raw, check=True, timeout=120)


def write_demo_media(folder):
    """Draw every demo scene into ``folder`` with a CAPTIONS.csv; return the CSV path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for scene in demo_scenes():
        target = folder / scene.name
        if scene.kind == "video":
            encode_video(target, [scene.draw(t) for t in range(SECONDS * FPS)])
        else:
            Image.fromarray(scene.draw(0)).save(target)

    captions = folder / "CAPTIONS.csv"
    with captions.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "caption", "prompt", "licence", "credit", "source"])
        for scene in demo_scenes():
            writer.writerow([scene.name, scene.caption, scene.prompt, "CC0-1.0", "Salon demo", "drawn by comparisons.demo"])
    return captions
