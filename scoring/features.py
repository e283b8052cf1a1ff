"""Compute and store :class:`~scoring.models.ClipFeatures` for a batch of clips.

For each clip and backbone: the L2-normalised embedding of each sampled
frame, their L2-normalised mean (the ``e(x)`` of the aesthetic term), the
semantic score against the clip's prompt or caption, and the two temporal
incoherence components, frame-to-frame dissimilarity and flicker.

Frames of all clips in a batch go to the encoder together, so a batch of
short clips fills the encoder's batches instead of sending 8 frames at a time.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np
from django.db import IntegrityError

from comparisons.models import Clip
from scoring.backbones import get_backbone, l2_normalise
from scoring.frames import DecodeError, decode_clip
from scoring.models import ClipFeatures, array_to_bytes

logger = logging.getLogger(__name__)


@dataclass
class FeatureRun:
    """Outcome of one :func:`compute_features` call, by clip id."""

    backbone: str
    written: list = field(default_factory=list)
    existing: list = field(default_factory=list)
    not_ready: list = field(default_factory=list)
    failed: dict = field(default_factory=dict)
    frames: int = 0
    decode_ms: int = 0
    encode_ms: int = 0
    ms: int = 0

    def as_dict(self):
        return {
            "backbone": self.backbone, "written": self.written, "existing": self.existing,
            "not_ready": self.not_ready, "failed": {str(key): value for key, value in self.failed.items()},
            "frames": self.frames, "decode_ms": self.decode_ms, "encode_ms": self.encode_ms, "ms": self.ms,
        }


def clip_text(clip):
    """Return the text a clip's semantic score is measured against: its prompt, else its caption.

    A prompt is what the clip was generated to show, so it wins over a
    caption written afterwards. Returns ``""`` when the clip has neither.
    """
    if clip.prompt_id and clip.prompt.text.strip():
        return clip.prompt.text.strip()
    return clip.caption.strip()


def semantic_score(frame_embeddings, text_embedding):
    """Return the CLIPScore-style agreement of a clip's frames with a text.

    Parameters
    ----------
    frame_embeddings : ndarray of shape (n, d)
        L2-normalised frame embeddings.
    text_embedding : ndarray of shape (d,)
        L2-normalised text embedding.

    Returns
    -------
    float
        ``mean_t max(0, cos(frame_t, text))``, in [0, 1].
    """
    cosines = np.asarray(frame_embeddings, dtype=np.float64) @ np.asarray(text_embedding, dtype=np.float64)
    return float(np.maximum(cosines, 0.0).mean())


def frame_dissimilarity(frame_embeddings):
    """Return the mean ``1 - cos`` of adjacent frames, in [0, 2]; 0 for fewer than 2 frames.

    Parameters
    ----------
    frame_embeddings : ndarray of shape (n, d)
        L2-normalised embeddings of frames in time order.
    """
    frames = np.asarray(frame_embeddings, dtype=np.float64)
    if len(frames) < 2:
        return 0.0
    cosines = np.einsum("ij,ij->i", frames[:-1], frames[1:])
    return float(np.mean(1.0 - cosines))


def summarise_clip(frame_embeddings, text_embedding=None):
    """Return the stored features of one clip from its raw frame embeddings.

    Returns
    -------
    dict
        ``frames`` (n, d) and ``mean`` (d,) L2-normalised float32 arrays,
        ``semantic`` (None without a text embedding) and
        ``frame_dissimilarity``.
    """
    frames = l2_normalise(frame_embeddings)
    mean = l2_normalise(frames.mean(axis=0))
    semantic = None
    if text_embedding is not None:
        semantic = semantic_score(frames, l2_normalise(text_embedding))
    return {
        "frames": frames, "mean": mean, "semantic": semantic,
        "frame_dissimilarity": frame_dissimilarity(frames),
    }


def embed_decoded(backbone, decoded, texts):
    """Embed the frames of several decoded clips in one encoder pass and summarise each clip.

    Parameters
    ----------
    backbone : scoring.backbones.Backbone
    decoded : list of scoring.frames.DecodedClip
    texts : list of str
        One per clip; ``""`` when the clip has no prompt or caption.

    Returns
    -------
    list of dict
        :func:`summarise_clip` of each clip, plus ``flicker``, ``n_frames``
        and ``extract_ms`` (decode time plus the clip's share of the encoder
        time, in proportion to its frames).
    """
    segments = [len(item.frames) for item in decoded]
    all_frames = [frame for item in decoded for frame in item.frames]
    started = time.perf_counter()
    embeddings = backbone.embed_frames(all_frames, segments=segments)
    text_embeddings = {}
    wanted = sorted({text for text in texts if text})
    if wanted and backbone.has_text:
        vectors = backbone.embed_texts(wanted)
        text_embeddings = dict(zip(wanted, vectors))
    encode_ms = (time.perf_counter() - started) * 1000

    results = []
    start = 0
    for item, text, size in zip(decoded, texts, segments):
        summary = summarise_clip(embeddings[start:start + size], text_embeddings.get(text))
        share = encode_ms * size / max(len(all_frames), 1)
        summary.update(flicker=item.flicker, n_frames=size, extract_ms=round(item.decode_ms + share))
        results.append(summary)
        start += size
    return results


def compute_features(clip_ids, backbone=None, force=False):
    """Compute and store the features of ``clip_ids`` with one backbone.

    Clips that are missing or not ready, and clips that already have
    features for this backbone (unless ``force``), are skipped, so running
    the same batch twice writes nothing the second time. A clip whose file
    fails to decode is logged and skipped; the rest of the batch goes on.

    Parameters
    ----------
    clip_ids : iterable of int
    backbone : str, optional
        ``auto``, ``clip`` or ``handcrafted``; default the ``BACKBONE`` setting.
    force : bool, default=False
        Recompute clips that already have features for this backbone.

    Returns
    -------
    FeatureRun
    """
    started = time.perf_counter()
    model = get_backbone(backbone)
    run = FeatureRun(backbone=model.name)
    ids = list(dict.fromkeys(int(clip_id) for clip_id in clip_ids))

    clips = {
        clip.pk: clip
        for clip in Clip.objects.filter(pk__in=ids, status=Clip.Status.READY).select_related("prompt")
    }
    run.not_ready = [clip_id for clip_id in ids if clip_id not in clips]
    if not force:
        done = set(
            ClipFeatures.objects.filter(clip_id__in=list(clips), backbone=model.name).values_list("clip_id", flat=True)
        )
        run.existing = [clip_id for clip_id in ids if clip_id in done]
        clips = {clip_id: clip for clip_id, clip in clips.items() if clip_id not in done}

    decoded, todo = [], []
    decode_started = time.perf_counter()
    for clip_id, clip in clips.items():
        try:
            decoded.append(decode_clip(clip))
            todo.append(clip)
        except DecodeError as error:
            run.failed[clip_id] = str(error)
            logger.warning("Skipped clip %d: %s", clip_id, error)
    run.decode_ms = round((time.perf_counter() - decode_started) * 1000)

    if todo:
        encode_started = time.perf_counter()
        results = embed_decoded(model, decoded, [clip_text(clip) for clip in todo])
        run.encode_ms = round((time.perf_counter() - encode_started) * 1000)
        for clip, result in zip(todo, results):
            if _store(clip, model, result):
                run.written.append(clip.pk)
                run.frames += result["n_frames"]
            else:
                run.failed[clip.pk] = "the clip was deleted while its features were computed"

    run.ms = round((time.perf_counter() - started) * 1000)
    logger.info(
        "Features with %s: wrote %d clips (%d frames) in %d ms (decode %d ms, encode %d ms); "
        "skipped %d with features, %d missing or not ready, %d failed",
        model.name, len(run.written), run.frames, run.ms, run.decode_ms, run.encode_ms,
        len(run.existing), len(run.not_ready), len(run.failed),
    )
    return run


def _store(clip, backbone, result):
    try:
        ClipFeatures.objects.update_or_create(
            clip=clip, backbone=backbone.name,
            defaults={
                "n_frames": result["n_frames"],
                "dim": int(result["frames"].shape[1]),
                "frame_embeddings": array_to_bytes(result["frames"]),
                "mean_embedding": array_to_bytes(result["mean"]),
                "semantic": result["semantic"],
                "frame_dissimilarity": result["frame_dissimilarity"],
                "flicker": result["flicker"],
                "extract_ms": result["extract_ms"],
            },
        )
    except IntegrityError:
        # The clip row vanished between the read and this write.
        if Clip.objects.filter(pk=clip.pk).exists():
            raise
        logger.info("Clip %d was deleted before its features were stored", clip.pk)
        return False
    return True
