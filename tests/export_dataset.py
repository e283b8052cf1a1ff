"""A small but complete dataset for the export tests, with values that are easy to grep."""

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
from django.contrib.auth import get_user_model

from comparisons.models import Clip, Cohort, Prompt
from scoring.models import ClipFeatures, ClipScore, TasteModel, array_to_bytes
from tests.factories import make_clip, make_cohort, make_judgment, make_pool

T0 = datetime(2026, 11, 2, 9, 30, 0, 123456, tzinfo=timezone.utc)
BACKBONE = "handcrafted:v1"
OTHER_BACKBONE = "clip:tiny-test"
DIM = 8

# Identifying values that must never reach an export unless platform ids are asked for.
SECRETS = {
    "usernames": ["zzq-username-alice-7731", "zzq-username-bob-7732", "zzq-username-sim-7733"],
    "emails": ["alice.7731@zzq-mail.example", "bob.7732@zzq-mail.example", "sim.7733@zzq-mail.example"],
    "participant_ids": ["PID-ZZQ-5F3A91", "WORKER-ZZQ-A22B7"],
    "study_ids": ["STUDY-ZZQ-0077"],
    "session_ids": ["SESSION-ZZQ-0099"],
}


@dataclass
class ExportDataset:
    cohort: Cohort
    other: Cohort
    unexported: Cohort
    clips: list
    raters: list
    judgments: list = field(default_factory=list)
    taste_model: TasteModel | None = None


def _embedding(seed):
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


def build_dataset():
    """Create three cohorts, four raters (one simulated), features, a taste model and 13 judgments."""
    prompt = Prompt.objects.create(text="a red fox, jumping over snow")
    pool = make_pool(n_images=0, name="Fox pool")
    clips = [
        make_clip(
            Clip.Kind.IMAGE, caption='Fox, "quoted", with a comma', prompt=prompt,
            generator={"model": "gen-x", "seed": 7, "settings": {"steps": 20, "cfg": 6.5}},
            licence="CC-BY-4.0", credit="Ana Example",
        ),
        make_clip(Clip.Kind.IMAGE, caption="Fuchs im Schnee: ä ö ü ß\nzweite Zeile", prompt=prompt,
                  generator={"model": "gen-y", "seed": 8}, licence="CC-BY-4.0", credit="Ana Example"),
        make_clip(Clip.Kind.IMAGE, caption="", licence="CC0-1.0", credit="Bo Sample"),
        make_clip(Clip.Kind.VIDEO, caption="A fox running", licence="", credit=""),
    ]
    pool.clips.add(*clips)

    cohort = make_cohort(
        pool=pool, name="Painters", slug="painters", question="Which clip is more beautiful?",
        instructions="Look at both clips fully.", same_prompt=True, weights_mode=Cohort.WeightsMode.DECLARED,
        alpha=0.5, beta=2.0, gamma=1.5, margin=0.8, half_life_days=14.0,
    )
    other = make_cohort(pool=pool, name="Crowd", slug="crowd")
    unexported = make_cohort(pool=pool, name="Hidden", slug="hidden")

    User = get_user_model()
    alice = User.objects.create_user(username=SECRETS["usernames"][0], email=SECRETS["emails"][0])
    bob = User.objects.create_user(username=SECRETS["usernames"][1], email=SECRETS["emails"][1])
    sim = User.objects.create_user(username=SECRETS["usernames"][2], email=SECRETS["emails"][2])
    carol = User.objects.create_user(username="zzq-username-carol-7734", email="carol.7734@zzq-mail.example")
    alice.memberships.create(
        cohort=cohort, platform="prolific", participant_id=SECRETS["participant_ids"][0],
        study_id=SECRETS["study_ids"][0], session_id=SECRETS["session_ids"][0],
    )
    alice.memberships.create(cohort=other)
    bob.memberships.create(cohort=cohort, platform="mturk", participant_id=SECRETS["participant_ids"][1])
    sim.memberships.create(cohort=cohort, is_simulated=True)
    carol.memberships.create(cohort=unexported)

    data = ExportDataset(cohort, other, unexported, clips, [alice, bob, sim, carol])
    a, b, c, d = clips
    plan = [
        # cohort, rater, left, right, choice, reason, minutes after T0, client_ms, simulated
        (cohort, alice, a, b, "left", "random", 0, 812, False),
        (cohort, alice, b, a, "right", "active", 10, None, False),
        (cohort, bob, c, a, "tie", "gold", 20, 1500, False),
        (cohort, bob, a, c, "skip", "repeat", 30, 2200, False),
        (cohort, sim, b, c, "left", "random", 40, 10, True),
        (cohort, bob, c, b, "right", "random", 50, 3100, False),
        (other, alice, a, b, "left", "random", 60, 900, False),
        (other, alice, b, c, "tie", "active", 70, 950, False),
        (unexported, carol, a, b, "left", "random", 80, 700, False),
        (cohort, alice, d, a, "left", "random", 24 * 60, 1200, False),
        (cohort, bob, a, d, "right", "gold", 24 * 60 + 5, 1300, False),
        (other, alice, c, d, "skip", "random", 24 * 60 + 10, 800, False),
        (other, sim, d, c, "right", "random", 24 * 60 + 15, 600, True),
    ]
    for index, (owner, rater, left, right, choice, reason, minutes, client_ms, simulated) in enumerate(plan):
        answered = T0 + timedelta(minutes=minutes)
        data.judgments.append(make_judgment(
            owner, rater, left, right, choice=choice, reason=reason, client_ms=client_ms,
            server_ms=2000 + index, is_simulated=simulated,
            served_at=answered - timedelta(seconds=3, microseconds=250), answered_at=answered,
        ))

    for index, clip in enumerate(clips):
        ClipFeatures.objects.create(
            clip=clip, backbone=BACKBONE, n_frames=1, dim=DIM,
            frame_embeddings=array_to_bytes(_embedding(index)), mean_embedding=array_to_bytes(_embedding(index)),
            semantic=None if not clip.caption else 0.25 + index / 10,
            frame_dissimilarity=0.0 if clip.kind == Clip.Kind.IMAGE else 0.125,
            flicker=0.0 if clip.kind == Clip.Kind.IMAGE else 3.5,
        )
    # A second backbone with features for only two clips, so the default (the
    # taste model's backbone, or the one covering most clips) is tested.
    for index, clip in enumerate(clips[:2]):
        ClipFeatures.objects.create(
            clip=clip, backbone=OTHER_BACKBONE, n_frames=1, dim=4,
            frame_embeddings=array_to_bytes(np.ones(4)), mean_embedding=array_to_bytes(np.full(4, 0.5)),
            semantic=0.9, frame_dissimilarity=0.0, flicker=0.0,
        )

    head = _embedding(99)
    model = TasteModel.objects.create(
        cohort=cohort, backbone=BACKBONE, version=3, status=TasteModel.Status.FINISHED, is_active=True,
        weights_mode="declared", alpha=0.5, beta=2.0, gamma=1.5, margin=0.8, half_life_days=14.0,
        head=array_to_bytes(head), head_dim=DIM,
        standardisation={"semantic": {"mean": 0.3, "std": 0.1}},
        high_water_judgment_id=data.judgments[5].id, n_judgments=5,
        window_start=T0, window_end=T0 + timedelta(minutes=50), metrics={"heldout_accuracy": 0.75},
        finished_at=T0 + timedelta(hours=2),
    )
    TasteModel.objects.create(
        cohort=cohort, backbone=BACKBONE, version=2, status=TasteModel.Status.FINISHED, is_active=False,
        weights_mode="declared", alpha=0.5, beta=2.0, gamma=1.5, margin=0.8, half_life_days=14.0,
        high_water_judgment_id=data.judgments[2].id, n_judgments=3, finished_at=T0 + timedelta(hours=1),
    )
    for rank, clip in enumerate(clips[:3], start=1):
        ClipScore.objects.create(
            taste_model=model, clip=clip, total=1.5 - rank / 4, semantic=None if not clip.caption else 0.1 * rank,
            aesthetic=-0.5 * rank, incoherence=0.0, rank=rank,
        )
    data.taste_model = model
    return data
