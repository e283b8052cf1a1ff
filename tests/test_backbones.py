"""The feature backbones: handcrafted statistics, the real clip code path on a tiny model, and auto."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured

from scoring import backbones
from scoring.backbones import BackboneUnavailable, get_backbone
from scoring.backbones import handcrafted as hc
from scoring.backbones.clip import find_cached_weights
from tests.openclip_tiny import TINY_DIM, TINY_MODEL, tiny_clip, tiny_config_path, tiny_salon_settings  # noqa: F401

ATOL = 1e-5


def checkerboard(size=128, square=4):
    index = (np.arange(size) // square) % 2
    board = (index[:, None] ^ index[None, :]).astype(np.uint8) * 255
    return np.repeat(board[:, :, None], 3, axis=2)


def box_blur(image, radius=3):
    """Blur each channel with a (2 * radius + 1) box, using edge padding."""
    padded = np.pad(image.astype(np.float32), ((radius, radius), (radius, radius), (0, 0)), mode="edge")
    out = np.zeros(image.shape, dtype=np.float32)
    width = 2 * radius + 1
    for dy in range(width):
        for dx in range(width):
            out += padded[dy:dy + image.shape[0], dx:dx + image.shape[1]]
    return (out / width**2).astype(np.uint8)


def flat(colour, size=(64, 96)):
    return np.full(size + (3,), colour, dtype=np.uint8)


@pytest.fixture(autouse=True)
def fresh_backbones():
    backbones.clear_cache()
    yield
    backbones.clear_cache()
    backbones.set_worker_concurrency(None)


# Handcrafted statistics on constructed images.

def test_gray_image_has_no_colour():
    stats = hc.image_statistics(flat(128))

    assert stats["colourfulness"] == 0.0
    assert stats["saturation"] == 0.0
    assert not stats["hue"].any()


def test_red_image_colourfulness_matches_formula():
    # rg = 255, yb = 127.5, no spread: M = 0.3 * sqrt(255^2 + 127.5^2).
    stats = hc.image_statistics(flat((255, 0, 0)))

    assert stats["colourfulness"] == pytest.approx(0.3 * np.hypot(255.0, 127.5), rel=1e-4)
    assert stats["saturation"] == pytest.approx(1.0)
    assert stats["hue"][0] == pytest.approx(1.0)
    assert stats["hue"][1:].sum() == pytest.approx(0.0)


def test_exposure_and_contrast_of_black_white_halves():
    image = flat(0, size=(64, 64))
    image[:, 32:] = 255

    stats = hc.image_statistics(image)

    assert stats["exposure"] == pytest.approx(0.5, abs=0.01)
    assert stats["contrast"] == pytest.approx(0.5, abs=0.01)


def test_checkerboard_sharper_than_its_blur():
    board = checkerboard()

    sharp = hc.image_statistics(board)
    blurred = hc.image_statistics(box_blur(board))

    assert sharp["sharpness"] > 10 * blurred["sharpness"]
    assert sharp["edge_density"] > blurred["edge_density"]


def test_flat_image_has_no_edges_or_sharpness():
    stats = hc.image_statistics(flat(90))

    assert stats["edge_density"] == 0.0
    assert stats["sharpness"] == 0.0


def test_statistics_do_not_depend_on_resolution():
    """Frames larger than the analysis size are scaled down to it first."""
    board = checkerboard(size=448, square=16)
    doubled = np.repeat(np.repeat(board, 2, axis=0), 2, axis=1)

    small = hc.image_statistics(board)
    large = hc.image_statistics(doubled)

    assert large["edge_density"] == pytest.approx(small["edge_density"], rel=0.05)
    assert large["exposure"] == pytest.approx(small["exposure"], abs=0.01)


def test_motion_ignores_brightness_but_not_movement():
    base = checkerboard(size=64, square=8)
    brighter = np.clip(base.astype(int) // 2 + 100, 0, 255).astype(np.uint8)
    darker = (base // 2).astype(np.uint8)
    shifted = np.roll(base, 8, axis=1)

    assert hc.motion_per_frame([darker, brighter]).tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    assert hc.motion_per_frame([base, shifted]).min() > 0.1
    assert hc.motion_per_frame([base]).tolist() == [0.0]


def test_handcrafted_embeddings_fixed_length_and_finite():
    backbone = get_backbone("handcrafted")
    frames = [flat(0), flat(255), checkerboard(), flat((0, 0, 255))]

    vectors = backbone.embed_frames(frames, segments=[1, 3])

    assert backbone.name == "handcrafted:v1"
    assert backbone.dim == len(hc.FEATURE_NAMES) == 15
    assert vectors.shape == (4, 15)
    assert vectors.dtype == np.float32
    assert np.isfinite(vectors).all()
    assert backbone.embed_texts(["a caption"]) is None
    assert backbone.has_text is False


def test_handcrafted_motion_stays_inside_each_clip():
    """The first clip is one still, so its motion term is the standardised zero."""
    backbone = get_backbone("handcrafted")
    motion = hc.SCALAR_NAMES.index("motion")
    centre, scale = hc.STANDARDISATION["motion"]

    vectors = backbone.embed_frames([flat(0), flat(255), checkerboard()], segments=[1, 2])

    assert vectors[0, motion] == pytest.approx((0.0 - centre) / scale)


def test_handcrafted_rejects_segments_that_do_not_add_up():
    with pytest.raises(ValueError, match="segments sum to 3 but 2 frames"):
        get_backbone("handcrafted").embed_frames([flat(0), flat(1)], segments=[1, 2])


# The real clip backbone on the tiny config with random weights.

def test_tiny_clip_embeds_frames_and_texts(tiny_clip):
    backbone = get_backbone()
    frames = [checkerboard(), flat((200, 30, 30)), flat(0, size=(300, 500))]

    images = backbone.embed_frames(frames)
    texts = backbone.embed_texts(["a red square", "a checkerboard"])

    assert backbone.name == f"clip:{TINY_MODEL}:none"
    assert backbone.dim == TINY_DIM
    assert images.shape == (3, TINY_DIM)
    assert texts.shape == (2, TINY_DIM)
    assert images.dtype == np.float32
    assert np.isfinite(images).all()
    assert np.isfinite(texts).all()
    assert not np.allclose(images[0], images[1])


def test_tiny_clip_batch_size_independent(settings, tiny_config_path):
    frames = [checkerboard(square=s) for s in (2, 4, 8, 16, 32)] + [flat(50), flat((0, 90, 200))]
    settings.SALON = tiny_salon_settings(tiny_config_path, ENCODER_BATCH_FRAMES=32)
    whole = get_backbone("clip").embed_frames(frames)
    settings.SALON = tiny_salon_settings(tiny_config_path, ENCODER_BATCH_FRAMES=3)
    batched = get_backbone("clip").embed_frames(frames)

    assert np.allclose(whole, batched, atol=ATOL)


def test_tiny_clip_loaded_once_per_process(tiny_clip):
    assert get_backbone("clip") is get_backbone("clip")


def test_backbone_reloaded_in_forked_child(tiny_clip, monkeypatch):
    """A model loaded before a fork is never reused by the child (libgomp deadlock)."""
    parent_copy = get_backbone("clip")
    monkeypatch.setattr(backbones, "_loaded_pid", -1)

    assert get_backbone("clip") is not parent_copy


def test_checkpoint_file_loads_the_saved_weights(settings, tiny_config_path, tmp_path):
    import torch

    settings.SALON = tiny_salon_settings(tiny_config_path)
    random_model = get_backbone("clip")
    checkpoint = tmp_path / "tiny-weights.pt"
    torch.save(random_model.model.state_dict(), checkpoint)
    frames = [checkerboard(), flat((10, 200, 10))]
    expected = random_model.embed_frames(frames)

    settings.SALON = tiny_salon_settings(tiny_config_path, CLIP_CHECKPOINT=str(checkpoint))
    loaded = get_backbone("clip")

    assert loaded.name == f"clip:{TINY_MODEL}:tiny-weights.pt"
    assert np.allclose(loaded.embed_frames(frames), expected, atol=ATOL)


def test_missing_checkpoint_file_named_in_error(settings, tiny_config_path, tmp_path):
    missing = tmp_path / "nowhere.pt"
    settings.SALON = tiny_salon_settings(tiny_config_path, CLIP_CHECKPOINT=str(missing))

    with pytest.raises(BackboneUnavailable, match="nowhere.pt"):
        get_backbone("clip")


def test_missing_model_config_file_is_a_configuration_error(settings, tiny_config_path, tmp_path):
    settings.SALON = tiny_salon_settings(tiny_config_path, CLIP_MODEL_CONFIG=str(tmp_path / "absent.json"))

    with pytest.raises(ImproperlyConfigured, match="absent.json"):
        get_backbone("clip")


def test_unknown_model_is_a_configuration_error(settings, tiny_config_path):
    settings.SALON = tiny_salon_settings(tiny_config_path, CLIP_MODEL="ViT-Nonexistent-1")

    with pytest.raises(ImproperlyConfigured, match="ViT-Nonexistent-1"):
        get_backbone("auto")


def test_unknown_tag_lists_the_known_tags(settings, tiny_config_path):
    settings.SALON = tiny_salon_settings(tiny_config_path, CLIP_MODEL="ViT-B-32", CLIP_PRETRAINED="imaginary")

    with pytest.raises(ImproperlyConfigured, match="Known tags: .*openai"):
        get_backbone("clip")


def test_unknown_backbone_name_rejected():
    with pytest.raises(ImproperlyConfigured, match="Unknown backbone 'resnet'"):
        get_backbone("resnet")


# Weights that are not on disk.

def offline_vit_settings(tiny_config_path, cache_dir, **overrides):
    return tiny_salon_settings(
        tiny_config_path, BACKBONE="auto", CLIP_MODEL="ViT-B-32", CLIP_PRETRAINED="openai",
        CLIP_CACHE_DIR=str(cache_dir), CLIP_ALLOW_DOWNLOAD=False, **overrides,
    )


def test_auto_falls_back_to_handcrafted_and_warns_once(settings, tiny_config_path, tmp_path, caplog):
    settings.SALON = offline_vit_settings(tiny_config_path, tmp_path / "empty-cache")

    with caplog.at_level(logging.WARNING, logger="scoring.backbones"):
        first = get_backbone()
        second = get_backbone("auto")

    assert first.name == "handcrafted:v1"
    assert second is first
    warnings = [record for record in caplog.records if record.name == "scoring.backbones"]
    assert len(warnings) == 1
    assert "SALON_CLIP_ALLOW_DOWNLOAD" in warnings[0].getMessage()


def test_explicit_clip_without_weights_raises(settings, tiny_config_path, tmp_path):
    settings.SALON = offline_vit_settings(tiny_config_path, tmp_path / "empty-cache")

    with pytest.raises(BackboneUnavailable, match="ViT-B-32/openai are not in the local cache"):
        get_backbone("clip")


def test_cached_hub_weights_found_without_network(tmp_path):
    """The lookup reads the Hugging Face cache layout: refs/main names the snapshot."""
    repo = tmp_path / "models--example--tiny-clip"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    weights = snapshot / "open_clip_model.safetensors"
    weights.write_bytes(b"weights")

    assert find_cached_weights({"hf_hub": "example/tiny-clip/"}, str(tmp_path)) == str(weights)
    assert find_cached_weights({"hf_hub": "example/other/"}, str(tmp_path)) is None


def test_cached_url_weights_found_in_cache_dir(tmp_path):
    (tmp_path / "ViT-B-32.pt").write_bytes(b"weights")

    found = find_cached_weights({"url": "https://example.invalid/clip/models/abc/ViT-B-32.pt"}, str(tmp_path))

    assert found == str(tmp_path / "ViT-B-32.pt")


# Threads and imports.

def test_thread_count_from_setting(settings):
    settings.SALON = {**settings.SALON, "TORCH_THREADS": 3}

    assert backbones.torch_thread_count() == 3


def test_thread_count_divides_cores_between_workers(settings):
    settings.SALON = {**settings.SALON, "TORCH_THREADS": 0}
    cores = backbones.available_cores()

    backbones.set_worker_concurrency(cores)
    assert backbones.torch_thread_count() == 1
    backbones.set_worker_concurrency(None)
    assert backbones.torch_thread_count() == cores


def test_scoring_imports_leave_torch_out():
    """Web processes import these modules; torch must load only when a model does."""
    code = (
        "import django, sys; django.setup();"
        "import scoring.backbones, scoring.frames, scoring.features, scoring.tasks, scoring.admin;"
        "import scoring.backbones.handcrafted, scoring.backbones.clip;"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "taste_site.test_settings"},
        cwd=Path(__file__).resolve().parent.parent,
    )

    assert result.stdout.strip() == "False"
