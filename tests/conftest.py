"""Fixtures shared by the whole suite."""

import shutil

import pytest

# A real Celery worker process, for tests that run tasks for real.
from tests.worker import celery_worker_factory, celery_worker_process  # noqa: F401


@pytest.fixture(autouse=True)
def isolated_media_root(settings, tmp_path):
    """Give every test its own MEDIA_ROOT so files never leak between tests."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()
    yield settings.MEDIA_ROOT
    shutil.rmtree(settings.MEDIA_ROOT, ignore_errors=True)


@pytest.fixture
def import_root(tmp_path, settings):
    """An empty folder that is the only entry of ``SALON_IMPORT_ROOTS``."""
    root = tmp_path / "incoming"
    root.mkdir()
    settings.SALON = {**settings.SALON, "IMPORT_ROOTS": [str(root)]}
    return root
