"""A cohort with a planted taste, stored features and judgments, for the refit tests.

The clips' features come from :func:`scoring.simulation.plant_taste`, so the
true taste of every clip is known, and judgments follow the Bradley-Terry
model around it. Judgments are written with ``make_judgment`` (the vote path
has its own tests); ``simulate_raters`` tests use the real vote path.
"""

import dataclasses
import datetime
import itertools
import math

import numpy as np
from django.utils import timezone

from comparisons.models import Clip, Pool
from scoring.simulation import plant_taste, simulate_judgments
from tests.factories import make_clip, make_cohort, make_features, make_judgment, make_rater

BACKBONE = "handcrafted:v1"
_names = itertools.count(1)


@dataclasses.dataclass
class PlantedCohort:
    cohort: object
    clips: list
    planted: object
    raters: list
    next_time: datetime.datetime

    @property
    def true_scores(self):
        return self.planted.true_scores

    def true_score_of(self):
        """Return ``{clip id: true score}``."""
        return {clip.pk: float(score) for clip, score in zip(self.clips, self.planted.true_scores)}


def build_planted_cohort(n_clips=24, n_judgments=120, dim=8, seed=0, n_raters=3, backbone=BACKBONE,
                         alpha=0.5, beta=2.0, gamma=0.5, **cohort_fields):
    """Create a pool with features, a cohort, raters and ``n_judgments`` decided judgments."""
    planted = plant_taste(
        n_clips=n_clips, dim=dim, n_factors=3, alpha=alpha, beta=beta, gamma=gamma, seed=seed,
    )
    inputs = planted.inputs
    pool = Pool.objects.create(name=f"planted-{next(_names)}")
    clips = []
    for index in range(n_clips):
        kind = Clip.Kind.IMAGE if inputs.is_still[index] else Clip.Kind.VIDEO
        clip = make_clip(kind, caption=f"planted clip {index}")
        semantic = inputs.semantic[index]
        make_features(
            clip, inputs.embeddings[index], backbone=backbone,
            semantic=None if math.isnan(semantic) else float(semantic),
            frame_dissimilarity=float(inputs.incoherence[index, 0]), flicker=float(inputs.incoherence[index, 1]),
        )
        clips.append(clip)
    pool.clips.add(*clips)
    cohort_fields.setdefault("min_judgments", 20)
    cohort = make_cohort(pool, **cohort_fields)
    raters = [make_rater(cohort) for _ in range(n_raters)]
    start = timezone.now() - datetime.timedelta(days=2)
    dataset = PlantedCohort(cohort, clips, planted, raters, start)
    add_judgments(dataset, n_judgments, seed=seed + 1)
    return dataset


def add_judgments(dataset, n, seed, choice=None, raters=None, **judgment_fields):
    """Add ``n`` judgments of random pairs, one minute apart, after the dataset's last one.

    With ``choice`` (``tie`` or ``skip``) every judgment gets that answer;
    otherwise the winner follows the planted taste and sits on a random side.
    """
    if n == 0:
        return []
    pairs = simulate_judgments(dataset.true_scores, n, seed=seed)
    rng = np.random.default_rng(seed)
    raters = raters or dataset.raters
    judgments = []
    for j in range(n):
        winner, loser = dataset.clips[pairs.winners[j]], dataset.clips[pairs.losers[j]]
        winner_left = bool(rng.random() < 0.5)
        left, right = (winner, loser) if winner_left else (loser, winner)
        answer = choice or ("left" if winner_left else "right")
        dataset.next_time += datetime.timedelta(minutes=1)
        judgments.append(make_judgment(
            dataset.cohort, raters[j % len(raters)], left, right, choice=answer,
            served_at=dataset.next_time - datetime.timedelta(seconds=3), answered_at=dataset.next_time,
            **judgment_fields,
        ))
    return judgments
