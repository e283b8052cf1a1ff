"""Feature backbones: what turns decoded frames (and captions) into vectors.

Two backbones exist. ``clip`` (open_clip) embeds frames and texts;
``handcrafted`` computes named image statistics and has no text tower.
``auto``, the default, is ``clip`` when its weights load and ``handcrafted``
otherwise, with one warning saying why.

A backbone is loaded lazily, at most once per process, and never reused in a
forked child: a torch model that ran in a Celery prefork parent deadlocks
libgomp in the children. Torch is imported only by ``clip`` and only when it
loads, so web processes that import this package stay free of torch.
"""

import logging
import os
import sys
import threading

import numpy as np
from django.core.exceptions import ImproperlyConfigured

from taste_site.conf import salon_settings

logger = logging.getLogger(__name__)

BACKBONE_CHOICES = ("auto", "clip", "handcrafted")


class BackboneUnavailable(Exception):
    """A backbone cannot load here, for example because its weights are missing."""


class Backbone:
    """Common interface of the feature backbones.

    Attributes
    ----------
    name : str
        Stored in ``ClipFeatures.backbone``; it names the backbone and the
        exact weights, such as ``clip:ViT-B-32:openai`` or ``handcrafted:v1``.
    dim : int
        Length of one frame embedding.
    has_text : bool
        Whether :meth:`embed_texts` returns embeddings.
    """

    name = ""
    dim = 0
    has_text = False

    def embed_frames(self, frames, segments=None):
        """Return the ``(n, dim)`` float32 embeddings of ``n`` RGB uint8 frames.

        ``segments`` lists how many consecutive frames belong to each clip
        (it sums to ``n``); backbones that compare neighbouring frames use it
        so that the last frame of one clip is never compared with the first
        of the next. ``None`` means all frames come from one clip.
        """
        raise NotImplementedError  # pragma: no cover

    def embed_texts(self, texts):
        """Return the ``(m, dim)`` float32 embeddings of ``m`` texts, or None without a text tower."""
        return None


_lock = threading.Lock()
_loaded = {}
_loaded_pid = os.getpid()
_worker_concurrency = None


def _settings_key():
    return (
        salon_settings.CLIP_MODEL, salon_settings.CLIP_PRETRAINED, salon_settings.CLIP_CHECKPOINT,
        salon_settings.CLIP_MODEL_CONFIG, salon_settings.CLIP_CACHE_DIR, salon_settings.CLIP_ALLOW_DOWNLOAD,
        salon_settings.CLIP_DEVICE, salon_settings.ENCODER_BATCH_FRAMES,
    )


def _forget_after_fork():
    global _loaded_pid
    if os.getpid() != _loaded_pid:
        _loaded.clear()
        _loaded_pid = os.getpid()


def clear_cache():
    """Forget every loaded backbone, so the next :func:`get_backbone` loads afresh."""
    with _lock:
        _loaded.clear()


def normalise_choice(name):
    """Return ``name`` (or the ``BACKBONE`` setting) as one of :data:`BACKBONE_CHOICES`."""
    choice = (name or salon_settings.BACKBONE or "auto").strip().lower()
    if choice not in BACKBONE_CHOICES:
        raise ImproperlyConfigured(
            f"Unknown backbone {choice!r}: use one of {', '.join(BACKBONE_CHOICES)} "
            "(SALON_BACKBONE or the --backbone option)."
        )
    return choice


def get_backbone(name=None):
    """Return the loaded backbone for ``name`` (``auto``, ``clip`` or ``handcrafted``).

    ``None`` reads the ``BACKBONE`` setting. The result is cached per process
    and per CLIP setting, so ``auto`` resolves and warns once.

    Raises
    ------
    BackboneUnavailable
        When ``clip`` is asked for explicitly and cannot load.
    django.core.exceptions.ImproperlyConfigured
        For an unknown backbone, model name or pretrained tag.
    """
    choice = normalise_choice(name)
    key = (choice, _settings_key())
    with _lock:
        _forget_after_fork()
        if key not in _loaded:
            _loaded[key] = _load(choice)
        return _loaded[key]


def _load(choice):
    from scoring.backbones.handcrafted import HandcraftedBackbone

    if choice == "handcrafted":
        return HandcraftedBackbone()

    from scoring.backbones.clip import load_clip_backbone

    if choice == "clip":
        return load_clip_backbone()
    try:
        return load_clip_backbone()
    except BackboneUnavailable as error:
        logger.warning("Backbone auto: clip is unavailable, using handcrafted features. Reason: %s", error)
        return HandcraftedBackbone()


def set_worker_concurrency(concurrency):
    """Record how many worker processes share this machine's cores (read by :func:`torch_thread_count`)."""
    global _worker_concurrency
    _worker_concurrency = concurrency if isinstance(concurrency, int) and concurrency > 0 else None


def available_cores():
    """Return the number of CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover (not Linux)
        return os.cpu_count() or 1


def torch_thread_count():
    """Return the torch intra-op thread count: ``TORCH_THREADS``, or cores divided by worker processes.

    Two worker processes with 2 threads each on 2 cores run at half the
    speed of 2 x 1 threads, because their threads compete for the same cores.
    """
    configured = salon_settings.TORCH_THREADS
    if configured:
        return configured
    return max(1, available_cores() // (_worker_concurrency or 1))


def configure_torch_threads(threads=None):
    """Apply the torch thread count to this process and return it.

    Sets the OpenMP and MKL variables too, so that a torch imported later in
    this process starts with the same count.
    """
    threads = threads or torch_thread_count()
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)
    return threads


def l2_normalise(vectors, axis=-1):
    """Return ``vectors`` scaled to unit L2 norm along ``axis``; zero vectors stay zero."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=axis, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
