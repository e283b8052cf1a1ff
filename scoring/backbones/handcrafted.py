"""The ``handcrafted`` backbone: named image statistics that need no weights.

Each frame becomes a fixed vector of :data:`FEATURE_NAMES`: exposure,
contrast, colourfulness, saturation, sharpness, edge density, motion and a
saturation-weighted hue histogram, each standardised with fixed constants so
that one clip's vector never depends on the other clips. There is no text
tower, so clips scored with this backbone have no semantic term.

Statistics are computed on frames scaled to a short side of
:data:`ANALYSIS_SHORT_SIDE` pixels, because sharpness and edge density
change with resolution: a picture then scores about the same at any size
above that. Smaller frames are enlarged, which softens their edges, so they
score as less sharp.
"""

import numpy as np
from PIL import Image

from scoring.backbones import Backbone

NAME = "handcrafted:v1"

ANALYSIS_SHORT_SIDE = 224

# Frames are compared for motion at this size, which ignores grain and
# compression noise.
MOTION_SIZE = 64

HUE_BINS = 8

# A pixel is on an edge when its Sobel gradient, scaled so that a step of
# height h gives h, exceeds a tenth of the luminance range.
EDGE_THRESHOLD = 0.1

# BT.601 luma weights, the ones ffmpeg uses for its gray conversion.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

SCALAR_NAMES = (
    "exposure", "contrast", "colourfulness", "saturation", "sharpness", "edge_density", "motion",
)
FEATURE_NAMES = SCALAR_NAMES + tuple(f"hue_{index}" for index in range(HUE_BINS))

# (centre, scale) of each statistic: the rounded mean and standard deviation
# over the 123 sampled frames (8 per video, 1 per image) of the 35 photographs
# and 11 videos in Salon's real-media test pack. Sharpness enters as log10 of
# the variance of the Laplacian, because the raw variance spans several orders
# of magnitude. The hue bins share one pair.
STANDARDISATION = {
    "exposure": (0.53, 0.14),
    "contrast": (0.21, 0.04),
    "colourfulness": (43.0, 25.0),
    "saturation": (0.32, 0.19),
    "sharpness": (-2.2, 0.5),
    "edge_density": (0.18, 0.13),
    "motion": (0.03, 0.035),
    "hue": (0.04, 0.1),
}


def _resize_short_side(frame, short_side):
    height, width = frame.shape[:2]
    ratio = short_side / min(height, width)
    if abs(ratio - 1.0) < 1e-6:
        return frame
    size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))


def luminance(rgb):
    """Return the BT.601 luma of an RGB image as float32 in [0, 1]."""
    return (np.asarray(rgb, dtype=np.float32) @ LUMA_WEIGHTS) / 255.0


def colourfulness(rgb):
    """Return the colourfulness metric of Hasler and Süsstrunk (2003) of an RGB uint8 image.

    ``M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2)``
    with ``rg = R - G`` and ``yb = (R + G) / 2 - B`` on the 0-255 scale. A gray
    image scores 0; the paper calls about 33 "moderately" and 59 "quite"
    colourful.
    """
    rgb = np.asarray(rgb, dtype=np.float32)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    spread = np.sqrt(rg.std() ** 2 + yb.std() ** 2)
    centre = np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(spread + 0.3 * centre)


def laplacian_variance(gray):
    """Return the variance of the 4-neighbour Laplacian of a [0, 1] grayscale image.

    A common focus measure (Pech-Pacheco et al., 2000): blur removes high
    frequencies and lowers it.
    """
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    laplacian = (
        gray[:-2, 1:-1] + gray[2:, 1:-1] + gray[1:-1, :-2] + gray[1:-1, 2:] - 4.0 * gray[1:-1, 1:-1]
    )
    return float(laplacian.var())


def edge_density(gray, threshold=EDGE_THRESHOLD):
    """Return the fraction of pixels whose Sobel gradient magnitude exceeds ``threshold``."""
    if gray.shape[0] < 3 or gray.shape[1] < 3:
        return 0.0
    padded = np.pad(gray, 1, mode="edge")
    gx = (
        (padded[:-2, 2:] + 2 * padded[1:-1, 2:] + padded[2:, 2:])
        - (padded[:-2, :-2] + 2 * padded[1:-1, :-2] + padded[2:, :-2])
    ) / 4.0
    gy = (
        (padded[2:, :-2] + 2 * padded[2:, 1:-1] + padded[2:, 2:])
        - (padded[:-2, :-2] + 2 * padded[:-2, 1:-1] + padded[:-2, 2:])
    ) / 4.0
    return float((np.hypot(gx, gy) > threshold).mean())


def hue_saturation(rgb):
    """Return the HSV hue in [0, 1) and saturation in [0, 1] of an RGB image."""
    rgb = np.asarray(rgb, dtype=np.float32) / 255.0
    maximum = rgb.max(axis=-1)
    minimum = rgb.min(axis=-1)
    chroma = maximum - minimum
    saturation = np.divide(chroma, maximum, out=np.zeros_like(chroma), where=maximum > 0)

    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(
        maximum == red, ((green - blue) / safe) % 6.0,
        np.where(maximum == green, (blue - red) / safe + 2.0, (red - green) / safe + 4.0),
    )
    hue = np.where(chroma > 0, hue / 6.0, 0.0)
    return hue, saturation


def image_statistics(frame):
    """Return the raw statistics of one RGB uint8 frame (all but motion).

    Returns
    -------
    dict
        - ``exposure``: mean luma, 0-1.
        - ``contrast``: RMS contrast, the standard deviation of luma.
        - ``colourfulness``: Hasler-Süsstrunk, on the 0-255 scale.
        - ``saturation``: mean HSV saturation.
        - ``sharpness``: variance of the Laplacian of luma.
        - ``edge_density``: fraction of edge pixels.
        - ``hue``: :data:`HUE_BINS` saturation-weighted hue fractions. They
          sum to the mean saturation, so a gray frame gives all zeros.
    """
    frame = _resize_short_side(np.asarray(frame, dtype=np.uint8), ANALYSIS_SHORT_SIDE)
    gray = luminance(frame)
    hue, saturation = hue_saturation(frame)
    bins = np.minimum((hue * HUE_BINS).astype(np.int64), HUE_BINS - 1)
    histogram = np.bincount(bins.ravel(), weights=saturation.ravel(), minlength=HUE_BINS) / saturation.size
    return {
        "exposure": float(gray.mean()),
        "contrast": float(gray.std()),
        "colourfulness": colourfulness(frame),
        "saturation": float(saturation.mean()),
        "sharpness": laplacian_variance(gray),
        "edge_density": edge_density(gray),
        "hue": histogram.astype(np.float32),
    }


def _motion_thumbnail(frame):
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8)).resize(
        (MOTION_SIZE, MOTION_SIZE), Image.Resampling.BILINEAR, reducing_gap=2.0
    )
    gray = luminance(np.asarray(image))
    # Mean removed, so a global brightness change (flicker) is not motion.
    return gray - gray.mean()


def motion_per_frame(frames):
    """Return each frame's mean absolute structural change to its neighbour in ``frames``.

    Frame ``t`` is compared with frame ``t - 1`` on mean-removed 64 x 64
    luma. The first frame is compared with the second, so that every frame
    of a clip carries a value. A single frame gives 0.
    """
    if len(frames) < 2:
        return np.zeros(len(frames), dtype=np.float32)
    thumbnails = np.stack([_motion_thumbnail(frame) for frame in frames])
    changes = np.abs(np.diff(thumbnails, axis=0)).mean(axis=(1, 2))
    return np.concatenate([changes[:1], changes]).astype(np.float32)


def standardise(statistics, motion):
    """Return the fixed-length standardised vector of one frame's statistics."""
    values = []
    for name in SCALAR_NAMES:
        if name == "motion":
            raw = motion
        elif name == "sharpness":
            raw = np.log10(statistics["sharpness"] + 1e-6)
        else:
            raw = statistics[name]
        centre, scale = STANDARDISATION[name]
        values.append((raw - centre) / scale)
    centre, scale = STANDARDISATION["hue"]
    values.extend((statistics["hue"] - centre) / scale)
    return np.asarray(values, dtype=np.float32)


class HandcraftedBackbone(Backbone):
    """Image statistics as embeddings; no weights and no text tower."""

    name = NAME
    dim = len(FEATURE_NAMES)
    has_text = False

    def embed_frames(self, frames, segments=None):
        segments = [len(frames)] if segments is None else list(segments)
        if sum(segments) != len(frames):
            raise ValueError(f"segments sum to {sum(segments)} but {len(frames)} frames were given")
        vectors = np.zeros((len(frames), self.dim), dtype=np.float32)
        start = 0
        for size in segments:
            clip_frames = frames[start:start + size]
            motion = motion_per_frame(clip_frames)
            for offset, frame in enumerate(clip_frames):
                vectors[start + offset] = standardise(image_statistics(frame), motion[offset])
            start += size
        return vectors
