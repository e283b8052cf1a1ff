"""A tiny open_clip model config for tests, run through the real ``clip`` backbone.

The config (32-dimensional embeddings, 2-layer vision and text towers of
width 64, 64-pixel images in 16-pixel patches) builds with random weights in
a fraction of a second. It reaches the backbone the way a production custom
config would: a JSON file named by ``SALON_CLIP_MODEL_CONFIG`` that the
backbone registers with ``open_clip.add_model_config`` before creating the
model, so a Celery worker process started by a test can load it too.
"""

import json
from pathlib import Path

import pytest

TINY_MODEL = "salon-tiny-test"
TINY_DIM = 32

TINY_CONFIG = {
    "embed_dim": TINY_DIM,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def write_tiny_config(folder):
    """Write the tiny config as ``<folder>/salon-tiny-test.json`` and return its path.

    open_clip names a registered config after its file, so the file name is
    the model name.
    """
    path = Path(folder) / f"{TINY_MODEL}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(TINY_CONFIG, indent=2))
    return path


def tiny_salon_settings(config_path, **overrides):
    """Return the ``SALON`` settings dict that selects the tiny model with random weights."""
    from django.conf import settings

    values = dict(settings.SALON)
    values.update(
        BACKBONE="clip", CLIP_MODEL=TINY_MODEL, CLIP_PRETRAINED="none", CLIP_CHECKPOINT="",
        CLIP_MODEL_CONFIG=str(config_path), CLIP_DEVICE="cpu", TORCH_THREADS=1,
    )
    values.update(overrides)
    return values


def tiny_worker_env(config_path):
    """Return the environment variables that give a worker process the tiny model."""
    return {
        "SALON_BACKBONE": "clip",
        "SALON_CLIP_MODEL": TINY_MODEL,
        "SALON_CLIP_PRETRAINED": "none",
        "SALON_CLIP_MODEL_CONFIG": str(config_path),
        "SALON_CLIP_DEVICE": "cpu",
        "SALON_TORCH_THREADS": "1",
    }


@pytest.fixture(scope="session")
def tiny_config_path(tmp_path_factory):
    """Path of the tiny model's JSON config, written once per test session."""
    return write_tiny_config(tmp_path_factory.mktemp("openclip-config"))


@pytest.fixture
def tiny_clip(settings, tiny_config_path):
    """Select the tiny open_clip model with random weights for this test; return its settings."""
    settings.SALON = tiny_salon_settings(tiny_config_path)
    return settings.SALON
