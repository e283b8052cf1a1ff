"""Celery task that extracts clip features on the ``gpu`` queue."""

import logging

from scoring.tasks.base import salon_task
from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)


def chunked(items, size):
    """Return ``items`` split into lists of at most ``size``."""
    return [items[start:start + size] for start in range(0, len(items), size)]


def clean_clip_ids(clip_ids):
    """Return ``clip_ids`` as a list of distinct ints in their first order.

    Raises
    ------
    ValueError
        When ``clip_ids`` is not a list of integers.
    """
    if isinstance(clip_ids, (str, bytes)) or not hasattr(clip_ids, "__iter__"):
        raise ValueError(f"clip_ids must be a list of clip ids, got {clip_ids!r}")
    ids = []
    for clip_id in clip_ids:
        if isinstance(clip_id, bool) or not isinstance(clip_id, int):
            raise ValueError(f"clip_ids must contain integers, got {clip_id!r}")
        ids.append(clip_id)
    return list(dict.fromkeys(ids))


# The 46 media-pack clips took 12 s with ViT-B-32 on one CPU thread
# (bench/features.py), so a batch of 16 takes seconds, plus up to about 10 s
# for the first model load. Ten minutes leaves room for long videos, slow
# storage and busy machines.
@salon_task(
    name="scoring.tasks.features.extract_features", queue="gpu", gpu=True,
    soft_time_limit=600, time_limit=660,
)
def extract_features(self, clip_ids, backbone=None, force=False):
    """Compute and store the features of ``clip_ids`` with ``backbone`` (default: the setting).

    A list longer than ``FEATURE_BATCH_CLIPS`` is split into tasks of that
    size and nothing else is done here, so that each task, and any retry of
    it, covers one bounded batch. Clips that already have features for the
    backbone are skipped unless ``force``. Returns a summary dict.

    No expiry is set: features are needed however late a worker gets to
    them, and a duplicate task writes nothing.
    """
    from scoring.features import compute_features

    ids = clean_clip_ids(clip_ids)
    size = salon_settings.FEATURE_BATCH_CLIPS
    if len(ids) > size:
        chunks = chunked(ids, size)
        for chunk in chunks:
            extract_features.apply_async(args=[chunk, backbone], kwargs={"force": force})
        logger.info("Split %d clips into %d feature tasks of at most %d", len(ids), len(chunks), size)
        return {"split": len(chunks)}
    return compute_features(ids, backbone=backbone, force=force).as_dict()
