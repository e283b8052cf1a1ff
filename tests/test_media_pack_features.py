"""Features for every file of the real media pack, with both backbones.

The pack folder comes from ``SALON_MEDIA_PACK_DIR``; when it names a missing
folder these tests fail rather than skip, so a broken setting is noticed.
Clip rows point at copies of the pack files in this test's MEDIA_ROOT; the
AVI has no rendition, as before a transcode, so its original is decoded.
"""

import csv
import time
from pathlib import Path

import numpy as np
import pytest

from comparisons.models import Clip
from scoring import backbones
from scoring.backbones import get_backbone
from scoring.features import compute_features
from scoring.frames import decode_clip
from scoring.models import ClipFeatures
from taste_site.conf import salon_settings
from tests.factories import make_file_clip

pytestmark = [pytest.mark.media_pack, pytest.mark.slow, pytest.mark.django_db]

VIDEO_SUFFIXES = {".mp4", ".avi"}
UNCAPTIONED_COPY = "images/skimage_coffee.jpg"


@pytest.fixture
def pack_clips():
    """Create one ready clip per pack file with its caption, plus one uncaptioned copy of an image."""
    folder = Path(salon_settings.MEDIA_PACK_DIR)
    if not folder.is_dir():
        pytest.fail(
            f"The media pack folder {str(folder)!r} does not exist. Set SALON_MEDIA_PACK_DIR to the folder "
            "that holds CAPTIONS.csv, videos/ and images/."
        )
    with open(folder / "CAPTIONS.csv", newline="") as handle:
        captions = {row["path"]: row["caption"] for row in csv.DictReader(handle)}
    files = sorted(path for path in folder.glob("*/*") if path.suffix.lower() in VIDEO_SUFFIXES | {".jpg"})
    assert len(files) == 46

    clips = []
    for path in files:
        relative = path.relative_to(folder).as_posix()
        is_video = path.suffix.lower() in VIDEO_SUFFIXES
        clips.append(make_file_clip(
            path, kind=Clip.Kind.VIDEO if is_video else Clip.Kind.IMAGE, caption=captions[relative],
            rendition=path.suffix.lower() != ".avi",
        ))
    clips.append(make_file_clip(folder / UNCAPTIONED_COPY, kind=Clip.Kind.IMAGE, caption=""))
    return clips


@pytest.fixture(autouse=True)
def fresh_backbones():
    backbones.clear_cache()
    yield
    backbones.clear_cache()


def check_rows(clips, backbone_name, dim, has_text):
    rows = {row.clip_id: row for row in ClipFeatures.objects.filter(backbone=backbone_name)}
    assert set(rows) == {clip.pk for clip in clips}
    for clip in clips:
        row = rows[clip.pk]
        assert row.dim == dim, clip.original_name
        assert row.frames.shape == (row.n_frames, dim), clip.original_name
        assert np.isfinite(row.frames).all(), clip.original_name
        assert np.isfinite(row.embedding).all(), clip.original_name
        assert np.isfinite([row.frame_dissimilarity, row.flicker]).all(), clip.original_name
        if clip.is_video:
            assert row.n_frames == 8, clip.original_name
            assert row.frame_dissimilarity > 0.0, clip.original_name
            assert row.flicker > 0.0, clip.original_name
        else:
            assert row.n_frames == 1, clip.original_name
            assert row.frame_dissimilarity == 0.0, clip.original_name
            assert row.flicker == 0.0, clip.original_name
        if has_text and clip.caption:
            assert row.semantic is not None and 0.0 <= row.semantic <= 1.0, clip.original_name
        else:
            assert row.semantic is None, clip.original_name


def test_pack_features_handcrafted(pack_clips):
    run = compute_features([clip.pk for clip in pack_clips], backbone="handcrafted")

    assert run.failed == {}
    assert len(run.written) == 47
    check_rows(pack_clips, "handcrafted:v1", 15, has_text=False)


def test_pack_features_vit_b32_random_weights(pack_clips, settings):
    settings.SALON = {
        **settings.SALON, "BACKBONE": "clip", "CLIP_MODEL": "ViT-B-32", "CLIP_PRETRAINED": "none",
        "CLIP_CHECKPOINT": "", "CLIP_MODEL_CONFIG": "", "CLIP_DEVICE": "cpu", "TORCH_THREADS": 0,
        "FEATURE_BATCH_CLIPS": 16,
    }
    backbone = get_backbone()
    ids = [clip.pk for clip in pack_clips]

    started = time.perf_counter()
    runs = [compute_features(ids[start:start + 16]) for start in range(0, len(ids), 16)]
    pipeline_s = time.perf_counter() - started

    assert all(run.failed == {} for run in runs)
    check_rows(pack_clips, "clip:ViT-B-32:none", 512, has_text=True)

    # Raw encode_image on the same frames and batch size, for the ratio.
    frames = [frame for clip in pack_clips for frame in decode_clip(clip).frames]
    pixels = backbone.preprocess_frames(frames)
    started = time.perf_counter()
    for start in range(0, len(frames), backbone.batch_size):
        backbone.encode_batch(pixels[start:start + backbone.batch_size])
    encode_s = time.perf_counter() - started
    print(
        f"\nViT-B-32 (random weights) on {len(pack_clips)} pack clips, {len(frames)} frames, batch "
        f"{backbone.batch_size}: pipeline {pipeline_s:.2f} s ({1000 * pipeline_s / len(pack_clips):.0f} ms per clip), "
        f"raw encode_image {encode_s:.2f} s; ratio {pipeline_s / encode_s:.2f}"
    )
