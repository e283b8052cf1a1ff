"""Computing and storing ClipFeatures: values, skips, idempotence, the task and the command."""

import io

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from comparisons.models import Clip, Prompt
from scoring import backbones
from scoring.backbones import get_backbone, l2_normalise
from scoring.features import clip_text, compute_features, frame_dissimilarity, semantic_score
from scoring.models import ClipFeatures
from scoring.tasks.base import DECLARED_QUEUES, salon_task
from scoring.tasks.features import clean_clip_ids, extract_features
from tests.factories import make_clip, make_file_clip, mp4_bytes, png_bytes
from tests.openclip_tiny import TINY_DIM, TINY_MODEL, tiny_clip, tiny_config_path, tiny_salon_settings  # noqa: F401

pytestmark = pytest.mark.django_db

TINY_NAME = f"clip:{TINY_MODEL}:none"
ATOL = 1e-5


@pytest.fixture(autouse=True)
def fresh_backbones():
    backbones.clear_cache()
    yield
    backbones.clear_cache()


@pytest.fixture
def video_clip(tmp_path):
    def make(caption="", frames=24, seed=None, **fields):
        path = tmp_path / f"video-{len(list(tmp_path.iterdir()))}.mp4"
        mp4_bytes(path, width=64, height=48, frames=frames, fps=12, seed=seed)
        return make_file_clip(path, kind=Clip.Kind.VIDEO, caption=caption, **fields)

    return make


def features_of(clip, backbone=TINY_NAME):
    return ClipFeatures.objects.get(clip=clip, backbone=backbone)


# Stored values.

def test_image_and_video_features_written(tiny_clip, video_clip):
    image = make_clip(caption="a noisy picture", content=png_bytes(48, 40))
    video = video_clip(caption="moving noise")

    run = compute_features([image.pk, video.pk])

    assert run.backbone == TINY_NAME
    assert sorted(run.written) == sorted([image.pk, video.pk])
    assert run.frames == 9
    for clip, n_frames in ((image, 1), (video, 8)):
        row = features_of(clip)
        assert row.n_frames == n_frames
        assert row.dim == TINY_DIM
        assert row.frames.shape == (n_frames, TINY_DIM)
        assert np.isfinite(row.frames).all()
        assert np.linalg.norm(row.frames, axis=1) == pytest.approx(np.ones(n_frames), abs=1e-5)
        assert np.linalg.norm(row.embedding) == pytest.approx(1.0, abs=1e-5)
        assert 0.0 <= row.semantic <= 1.0
        assert row.extract_ms >= 0


def test_mean_embedding_is_normalised_mean_of_frames(tiny_clip, video_clip):
    video = video_clip()

    compute_features([video.pk])
    row = features_of(video)

    assert np.allclose(row.embedding, l2_normalise(row.frames.mean(axis=0)), atol=ATOL)


def test_still_has_no_incoherence(tiny_clip):
    image = make_clip()

    compute_features([image.pk])
    row = features_of(image)

    assert row.frame_dissimilarity == 0.0
    assert row.flicker == 0.0


def test_video_incoherence_matches_its_frames(tiny_clip, video_clip):
    video = video_clip()

    compute_features([video.pk])
    row = features_of(video)

    assert row.frame_dissimilarity == pytest.approx(frame_dissimilarity(row.frames), abs=1e-6)
    assert row.frame_dissimilarity > 0.0
    assert row.flicker > 0.0


def test_semantic_none_without_caption_or_prompt(tiny_clip):
    image = make_clip(caption="")

    compute_features([image.pk])

    assert features_of(image).semantic is None


def test_prompt_wins_over_caption(tiny_clip):
    # With the seeded random tiny model and this fixed image, the prompt's
    # cosines are positive and the caption's all negative, so the two
    # texts give different scores.
    prompt = Prompt.objects.create(text="blue sky")
    image = make_clip(caption="some noise", prompt=prompt, content=png_bytes(32, 24, seed=7))

    compute_features([image.pk])
    row = features_of(image)
    text = l2_normalise(get_backbone().embed_texts([prompt.text, "some noise"]))
    from_prompt = semantic_score(row.frames, text[0])
    from_caption = semantic_score(row.frames, text[1])

    assert from_prompt != pytest.approx(from_caption, abs=1e-4)
    assert row.semantic == pytest.approx(from_prompt, abs=1e-6)


def test_clip_text_prefers_prompt():
    prompt = Prompt.objects.create(text="  a red kite  ")

    assert clip_text(make_clip(caption="kite", prompt=prompt)) == "a red kite"
    assert clip_text(make_clip(caption=" kite ")) == "kite"
    assert clip_text(make_clip(caption="")) == ""


def test_handcrafted_has_no_semantic_term():
    image = make_clip(caption="a caption the handcrafted backbone cannot read")

    run = compute_features([image.pk], backbone="handcrafted")
    row = features_of(image, "handcrafted:v1")

    assert run.backbone == "handcrafted:v1"
    assert row.semantic is None
    assert row.dim == 15
    assert np.isfinite(row.frames).all()


def test_semantic_score_clips_negative_cosines():
    frames = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])

    assert semantic_score(frames, np.array([1.0, 0.0])) == pytest.approx(1 / 3)


def test_frame_dissimilarity_of_known_vectors():
    frames = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])

    assert frame_dissimilarity(frames) == pytest.approx(0.5)
    assert frame_dissimilarity(frames[:1]) == 0.0


def test_features_do_not_depend_on_batch_composition(settings, tiny_config_path, video_clip):
    """Frames of several clips share encoder batches without changing any clip's result."""
    clips = [video_clip(caption=f"clip {i}") for i in range(3)]
    settings.SALON = tiny_salon_settings(tiny_config_path, ENCODER_BATCH_FRAMES=5)

    compute_features([clip.pk for clip in clips])
    together = {clip.pk: features_of(clip).frames.copy() for clip in clips}
    for clip in clips:
        compute_features([clip.pk], force=True)

    for clip in clips:
        assert np.allclose(features_of(clip).frames, together[clip.pk], atol=ATOL)


# Skips and reruns.

def test_second_run_is_a_no_op(tiny_clip):
    image = make_clip(caption="once")
    compute_features([image.pk])
    first = features_of(image)

    run = compute_features([image.pk])

    assert run.written == []
    assert run.existing == [image.pk]
    again = features_of(image)
    assert again.pk == first.pk
    assert again.created_at == first.created_at
    assert bytes(again.frame_embeddings) == bytes(first.frame_embeddings)


def test_force_recomputes_in_place(tiny_clip):
    image = make_clip()
    compute_features([image.pk])
    first = features_of(image)

    run = compute_features([image.pk], force=True)

    assert run.written == [image.pk]
    assert ClipFeatures.objects.filter(clip=image).count() == 1
    assert features_of(image).pk == first.pk


def test_each_backbone_gets_its_own_row(tiny_clip):
    image = make_clip()

    compute_features([image.pk])
    compute_features([image.pk], backbone="handcrafted")

    assert sorted(ClipFeatures.objects.filter(clip=image).values_list("backbone", flat=True)) == sorted(
        ["handcrafted:v1", TINY_NAME]
    )


def test_pending_and_missing_clips_skipped(tiny_clip):
    pending = make_clip(status=Clip.Status.PENDING)
    failed = make_clip(status=Clip.Status.FAILED)

    run = compute_features([pending.pk, failed.pk, 999_999])

    assert run.not_ready == [pending.pk, failed.pk, 999_999]
    assert run.written == []
    assert not ClipFeatures.objects.exists()


def test_undecodable_clip_skipped_rest_written(tiny_clip):
    broken = make_clip(kind=Clip.Kind.VIDEO, content=b"garbage, not a video")
    good = make_clip()

    run = compute_features([broken.pk, good.pk])

    assert run.written == [good.pk]
    assert list(run.failed) == [broken.pk]
    assert "ffmpeg" in run.failed[broken.pk]
    assert not ClipFeatures.objects.filter(clip=broken).exists()


def test_missing_file_skipped(tiny_clip):
    clip = make_clip()
    clip.rendition.storage.delete(clip.rendition.name)

    run = compute_features([clip.pk])

    assert list(run.failed) == [clip.pk]
    assert "missing" in run.failed[clip.pk]


def test_original_used_when_there_is_no_rendition(tiny_clip, tmp_path):
    path = tmp_path / "source.mp4"
    mp4_bytes(path, frames=12)
    clip = make_file_clip(path, rendition=False)

    compute_features([clip.pk])

    assert features_of(clip).n_frames == 8


# The task, run in this process.

def test_task_computes_a_small_batch(tiny_clip):
    image = make_clip(caption="task")

    summary = extract_features.apply(args=[[image.pk]]).get()

    assert summary["written"] == [image.pk]
    assert summary["backbone"] == TINY_NAME
    assert features_of(image).n_frames == 1


def test_task_rejects_bad_ids():
    for bad in ("12", [1, "2"], [True], 5):
        with pytest.raises(ValueError, match="clip_ids"):
            clean_clip_ids(bad)
    assert clean_clip_ids([3, 1, 3]) == [3, 1]


def test_task_is_bounded_and_survives_worker_loss():
    route = extract_features.app.amqp.router.route({}, extract_features.name)

    assert extract_features.name == "scoring.tasks.features.extract_features"
    assert route["queue"].name == "gpu"
    assert extract_features.acks_late is True
    assert extract_features.reject_on_worker_lost is True
    assert extract_features.max_retries == 5
    assert 0 < extract_features.soft_time_limit < extract_features.time_limit


def test_declared_queues_match_routes():
    """Every task declared with salon_task(queue=...) is routed to that queue by CELERY_TASK_ROUTES."""
    import scoring.tasks  # noqa: F401  (registers the scoring tasks)

    assert DECLARED_QUEUES["scoring.tasks.features.extract_features"] == "gpu"
    for name, queue in DECLARED_QUEUES.items():
        assert extract_features.app.amqp.router.route({}, name)["queue"].name == queue, name


def test_task_time_limits_checked():
    with pytest.raises(ValueError, match="soft_time_limit"):
        salon_task(name="scoring.tasks.example", soft_time_limit=60, time_limit=60)


# The management command.

def test_command_computes_all_ready_clips_in_process(settings):
    settings.SALON = {**settings.SALON, "FEATURE_BATCH_CLIPS": 2}
    ready = [make_clip() for _ in range(3)]
    make_clip(status=Clip.Status.PENDING)
    output = io.StringIO()

    call_command("extract_features", "--all", "--sync", "--backbone", "handcrafted", stdout=output)

    assert ClipFeatures.objects.filter(backbone="handcrafted:v1").count() == 3
    assert set(ClipFeatures.objects.values_list("clip_id", flat=True)) == {clip.pk for clip in ready}
    assert "3 clips written" in output.getvalue()


def test_command_needs_ids_or_all():
    with pytest.raises(CommandError, match="--all"):
        call_command("extract_features")


def test_command_reports_failures(settings):
    broken = make_clip(kind=Clip.Kind.VIDEO, content=b"garbage")

    with pytest.raises(CommandError, match="1 clips failed"):
        call_command(
            "extract_features", str(broken.pk), "--sync", "--backbone", "handcrafted",
            stdout=io.StringIO(), stderr=io.StringIO(),
        )


# Admin.

def test_admin_lists_features_with_backbone(admin_client, tiny_clip):
    image = make_clip()
    compute_features([image.pk], backbone="handcrafted")

    listing = admin_client.get("/admin/scoring/clipfeatures/")
    adding = admin_client.get("/admin/scoring/clipfeatures/add/")

    assert listing.status_code == 200
    assert b"handcrafted:v1" in listing.content
    assert adding.status_code == 403
