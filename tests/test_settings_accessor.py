"""The settings accessor reads ``settings.SALON`` lazily, with defaults."""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from taste_site.conf import DEFAULTS, salon_settings
from taste_site.env import env_bool, env_int, env_secret


def test_accessor_follows_override_settings():
    with override_settings(SALON={"FRAMES_PER_CLIP": 3}):
        assert salon_settings.FRAMES_PER_CLIP == 3
        assert salon_settings.FLICKER_FPS == DEFAULTS["FLICKER_FPS"]
    assert salon_settings.FRAMES_PER_CLIP == 8


def test_accessor_rejects_unknown_name():
    with pytest.raises(ImproperlyConfigured, match="NO_SUCH_SETTING"):
        salon_settings.NO_SUCH_SETTING


def test_env_bool_rejects_garbage(monkeypatch):
    monkeypatch.setenv("SALON_SOMETHING", "perhaps")
    with pytest.raises(ImproperlyConfigured, match="SALON_SOMETHING='perhaps'"):
        env_bool("SALON_SOMETHING", False)


def test_env_int_enforces_minimum(monkeypatch):
    monkeypatch.setenv("SALON_COUNT", "0")
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 1"):
        env_int("SALON_COUNT", 5, minimum=1)
    monkeypatch.setenv("SALON_COUNT", "7")
    assert env_int("SALON_COUNT", 5, minimum=1) == 7


def test_env_secret_prefers_variable_then_file(monkeypatch, tmp_path):
    secret_file = tmp_path / "secret-key"
    monkeypatch.delenv("SALON_TEST_SECRET", raising=False)
    assert env_secret("SALON_TEST_SECRET", secret_file) == ""

    secret_file.write_text("from-file\n")
    assert env_secret("SALON_TEST_SECRET", secret_file) == "from-file"

    monkeypatch.setenv("SALON_TEST_SECRET", "from-env")
    assert env_secret("SALON_TEST_SECRET", secret_file) == "from-env"
