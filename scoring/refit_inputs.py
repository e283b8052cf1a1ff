"""What a refit reads from the database: the backbone, the judgments, the clip features.

A cohort's refit fits:

- judgments of the cohort with ``id <= mark`` answered left or right; ties and
  skips are counted, not fitted;
- simulated judgments only in a simulation cohort, one whose members are all
  simulated raters (``simulate_raters`` makes those), so simulated votes never
  mix into a real cohort's taste;
- judgments of members with ``rater_weight > 0`` that are not flagged (a
  flagged member is under review; a curator sets the weight to restore or
  drop their votes), each weighted ``0.5 ** (age / half_life) * rater_weight``
  with ages measured from the newest fitted judgment, so the same mark always
  gives the same weights;
- ready clips of the cohort's pool with valid features for the backbone; a
  pair with a clip outside that set is dropped and counted.

:func:`fit_readiness` applies the same rules to say why a cohort has no fit yet.
"""

import dataclasses
import math
from collections import Counter
from pathlib import Path

import numpy as np
from django.db.models import Count, Max, Q
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from comparisons.models import Clip, Cohort, Judgment, Membership
from scoring.models import ClipFeatures
from taste_site.conf import salon_settings

# Same tolerance as scoring.taste applies to stored float32 unit vectors.
UNIT_NORM_ATOL = 1e-3
SECONDS_PER_DAY = 86400.0


# --------------------------------------------------------------------------
# Backbones
# --------------------------------------------------------------------------


def clip_backbone_name():
    """Return the stored name that the ``clip`` backbone gets under the current settings.

    NOTE: this repeats the label rule of ``scoring.backbones.clip.load_clip_backbone``
    (checkpoint file name, else the pretrained tag, else ``none``). Web
    processes and the scheduler use it to name the backbone without importing
    open_clip, so a change to one rule must change the other.
    """
    from scoring.backbones.clip import RANDOM_WEIGHTS

    if salon_settings.CLIP_CHECKPOINT:
        label = Path(salon_settings.CLIP_CHECKPOINT).expanduser().name
    else:
        tag = (salon_settings.CLIP_PRETRAINED or "").strip()
        label = tag if tag and tag.lower() != RANDOM_WEIGHTS else RANDOM_WEIGHTS
    return f"clip:{salon_settings.CLIP_MODEL}:{label}"


def configured_backbone_names(choice=None):
    """Return the stored backbone names that ``choice`` (default: the BACKBONE setting) allows, preferred first.

    ``auto`` allows both, ``clip`` first, because auto uses clip whenever its
    weights load.
    """
    from scoring.backbones import normalise_choice
    from scoring.backbones.handcrafted import NAME as HANDCRAFTED_NAME

    choice = normalise_choice(choice)
    names = []
    if choice in ("auto", "clip"):
        names.append(clip_backbone_name())
    if choice in ("auto", "handcrafted"):
        names.append(HANDCRAFTED_NAME)
    return names


def resolve_backbone(cohort, requested=None):
    """Return the stored backbone name to fit ``cohort`` with, or None when no candidate has features.

    ``requested`` is a stored name such as ``handcrafted:v1`` (used as given),
    a choice (``auto``, ``clip``, ``handcrafted``) or None for the BACKBONE
    setting. A choice allows one or two names (see
    :func:`configured_backbone_names`); the one with features for the most
    ready clips of the pool wins, the preferred one on a tie.
    """
    if requested and ":" in requested:
        return requested
    candidates = configured_backbone_names(requested)
    counts = dict(
        ClipFeatures.objects.filter(
            clip__pools=cohort.pool, clip__status=Clip.Status.READY, backbone__in=candidates
        ).values_list("backbone").annotate(n=Count("id"))
    )
    best = max(candidates, key=lambda name: counts.get(name, 0))
    return best if counts.get(best) else None


# --------------------------------------------------------------------------
# Judgments
# --------------------------------------------------------------------------


def is_simulation_cohort(cohort):
    """Return whether every member of ``cohort`` is a simulated rater (and it has members)."""
    counts = Membership.objects.filter(cohort=cohort).aggregate(
        total=Count("id"), simulated=Count("id", filter=Q(is_simulated=True))
    )
    return counts["total"] > 0 and counts["total"] == counts["simulated"]


def current_mark(cohort=None):
    """Return the id of the newest judgment of ``cohort`` (of every cohort for None), 0 without any."""
    judgments = Judgment.objects.all() if cohort is None else Judgment.objects.filter(comparison__cohort=cohort)
    return judgments.aggregate(mark=Max("id"))["mark"] or 0


@dataclasses.dataclass
class JudgmentSet:
    """Decided judgments that may be fitted, oldest first, and counts of those left out.

    ``winners`` and ``losers`` hold clip ids; ``half_lives`` is per judgment
    because the all-judgments model mixes cohorts with different half-lives.
    """

    ids: np.ndarray
    winners: np.ndarray
    losers: np.ndarray
    rater_weights: np.ndarray
    half_lives: np.ndarray
    answered_at: list
    counts: dict

    def __len__(self):
        return int(self.ids.size)

    def subset(self, keep):
        """Return the judgments selected by the boolean array ``keep``, with the same counts."""
        return JudgmentSet(
            self.ids[keep], self.winners[keep], self.losers[keep], self.rater_weights[keep],
            self.half_lives[keep], [when for when, kept in zip(self.answered_at, keep) if kept], dict(self.counts),
        )


def gather_judgments(cohorts, mark, *, simulated_cohort_ids=()):
    """Return the fittable judgments of ``cohorts`` with ``id <= mark``.

    Parameters
    ----------
    cohorts : list of Cohort
    mark : int
        High-water judgment id.
    simulated_cohort_ids : collection of int
        Cohorts whose simulated judgments count; in every other cohort they
        are left out and counted.

    Returns
    -------
    JudgmentSet
        Ordered by answer time, then id. ``counts`` has ``total`` (every
        judgment up to the mark), ``ties``, ``skips``, ``simulated``,
        ``no_membership``, ``flagged``, ``zero_weight`` and ``decided``.
    """
    cohort_by_id = {cohort.pk: cohort for cohort in cohorts}
    members = {
        (cohort_id, user_id): (weight, status)
        for cohort_id, user_id, weight, status in Membership.objects.filter(cohort__in=cohorts).values_list(
            "cohort_id", "user_id", "rater_weight", "status"
        )
    }
    rows = (
        Judgment.objects.filter(comparison__cohort__in=cohorts, id__lte=mark)
        .order_by("created_at", "id")
        .values_list(
            "id", "choice", "is_simulated", "created_at", "comparison__cohort_id", "comparison__rater_id",
            "comparison__left_id", "comparison__right_id",
        )
    )
    counts = Counter(total=0, ties=0, skips=0, simulated=0, no_membership=0, flagged=0, zero_weight=0, decided=0)
    ids, winners, losers, weights, half_lives, answered_at = [], [], [], [], [], []
    for judgment_id, choice, simulated, created_at, cohort_id, rater_id, left_id, right_id in rows:
        counts["total"] += 1
        if choice == Judgment.Choice.TIE:
            counts["ties"] += 1
            continue
        if choice == Judgment.Choice.SKIP:
            counts["skips"] += 1
            continue
        if simulated and cohort_id not in simulated_cohort_ids:
            counts["simulated"] += 1
            continue
        membership = members.get((cohort_id, rater_id))
        if membership is None:
            counts["no_membership"] += 1
            continue
        weight, status = membership
        if status == Membership.Status.FLAGGED:
            counts["flagged"] += 1
            continue
        if weight <= 0:
            counts["zero_weight"] += 1
            continue
        counts["decided"] += 1
        left_won = choice == Judgment.Choice.LEFT
        ids.append(judgment_id)
        winners.append(left_id if left_won else right_id)
        losers.append(right_id if left_won else left_id)
        weights.append(weight)
        half_lives.append(cohort_by_id[cohort_id].half_life_days)
        answered_at.append(created_at)
    return JudgmentSet(
        np.asarray(ids, dtype=np.int64), np.asarray(winners, dtype=np.int64), np.asarray(losers, dtype=np.int64),
        np.asarray(weights, dtype=np.float64), np.asarray(half_lives, dtype=np.float64), answered_at, dict(counts),
    )


def judgment_weights(judgments):
    """Return ``omega_j = 0.5 ** (age_j / half_life_j) * rater_weight_j`` of ``judgments``.

    Ages are measured from the newest judgment in the set, not from now, so
    a refit of the same mark gives the same weights whenever it runs.
    """
    from scoring.taste import decay_weights

    newest = max(judgments.answered_at)
    ages = np.array([(newest - when).total_seconds() / SECONDS_PER_DAY for when in judgments.answered_at])
    weights = np.empty(len(judgments))
    for half_life in np.unique(judgments.half_lives):
        group = judgments.half_lives == half_life
        weights[group] = decay_weights(ages[group], float(half_life), judgments.rater_weights[group])
    return weights


# --------------------------------------------------------------------------
# Clip features
# --------------------------------------------------------------------------


@dataclasses.dataclass
class PoolFeatures:
    """Per-clip inputs of the taste function for the clips that have valid features.

    ``clip_ids[i]`` is the clip of row ``i`` of ``inputs``. ``inputs`` is None
    when fewer than 2 clips have features, because the terms cannot be
    standardised over one clip.
    """

    backbone: str
    clip_ids: np.ndarray
    inputs: object
    n_ready: int
    n_missing: int
    n_invalid: int

    def index_of(self, clip_ids):
        """Return the row of each clip id in ``inputs``, -1 for clips without features."""
        position = {clip_id: index for index, clip_id in enumerate(self.clip_ids.tolist())}
        return np.array([position.get(int(clip_id), -1) for clip_id in clip_ids], dtype=np.int64)


def load_pool_features(clips, backbone):
    """Load the taste inputs of ``clips`` (``(id, kind)`` pairs of ready clips) for ``backbone``.

    A clip whose stored features have the wrong dimension (not that of most
    clips), a non-unit or non-finite embedding or non-finite incoherence is
    counted as invalid and left out, like a clip without features.
    """
    from scoring.taste import TasteInputs

    kinds = dict(clips)
    rows = list(
        ClipFeatures.objects.filter(clip_id__in=list(kinds), backbone=backbone)
        .order_by("clip_id")
        .values_list("clip_id", "dim", "mean_embedding", "semantic", "frame_dissimilarity", "flicker")
    )
    n_missing = len(kinds) - len(rows)
    dims = Counter(row[1] for row in rows)
    dim = dims.most_common(1)[0][0] if dims else 0

    clip_ids, embeddings, semantic, incoherence, is_still = [], [], [], [], []
    n_invalid = 0
    for clip_id, row_dim, mean_embedding, semantic_score, dissimilarity, flicker in rows:
        embedding = np.frombuffer(bytes(mean_embedding), dtype="<f4").astype(np.float64)
        valid = (
            row_dim == dim
            and embedding.size == dim
            and np.all(np.isfinite(embedding))
            and abs(float(np.linalg.norm(embedding)) - 1.0) <= UNIT_NORM_ATOL
            and math.isfinite(dissimilarity)
            and math.isfinite(flicker)
            and (semantic_score is None or math.isfinite(semantic_score))
        )
        if not valid:
            n_invalid += 1
            continue
        clip_ids.append(clip_id)
        embeddings.append(embedding)
        semantic.append(np.nan if semantic_score is None else semantic_score)
        incoherence.append((dissimilarity, flicker))
        is_still.append(kinds[clip_id] == Clip.Kind.IMAGE)

    inputs = None
    if len(clip_ids) >= 2:
        inputs = TasteInputs(
            np.asarray(semantic), np.vstack(embeddings), np.asarray(incoherence), np.asarray(is_still, dtype=bool)
        )
    return PoolFeatures(backbone, np.asarray(clip_ids, dtype=np.int64), inputs, len(kinds), n_missing, n_invalid)


# --------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------


@dataclasses.dataclass
class FitReadiness:
    """Whether a cohort has what a fit needs, and a sentence saying what is missing.

    ``usable`` counts decided judgments of counted raters whose two clips are
    ready, in the pool and have features for ``backbone``.
    """

    cohort: Cohort
    backbone: str | None
    candidates: list
    usable: int
    needed: int
    clips_with_features: int
    counts: dict

    @property
    def ready(self):
        return self.backbone is not None and self.clips_with_features >= 2 and self.usable >= self.needed

    @property
    def reason(self):
        """Return why there is no fit, as a translated sentence, or "" when a fit can run."""
        if self.backbone is None:
            return _(
                "No clip of the pool has %(backbones)s features yet. Extract the features of the pool's clips "
                "(manage.py extract_features --all) and the next refit will run."
            ) % {"backbones": _(" or ").join(self.candidates)}
        if self.clips_with_features < 2:
            return ngettext(
                "Only %(count)d clip of the pool has %(backbone)s features; a fit needs at least 2.",
                "Only %(count)d clips of the pool have %(backbone)s features; a fit needs at least 2.",
                self.clips_with_features,
            ) % {"count": self.clips_with_features, "backbone": self.backbone}
        if self.usable < self.needed:
            return ngettext(
                "%(usable)d of %(needed)d judgment needed to fit.",
                "%(usable)d of %(needed)d judgments needed to fit.",
                self.needed,
            ) % {"usable": self.usable, "needed": self.needed}
        return ""

    @property
    def left_out(self):
        """Return a translated sentence with the judgments that do not count, or ""."""
        counts = self.counts
        parts = []
        undecided = counts.get("ties", 0) + counts.get("skips", 0)
        if undecided:
            parts.append(ngettext("%(n)d tie or skip", "%(n)d ties and skips", undecided) % {"n": undecided})
        excluded = counts.get("no_membership", 0) + counts.get("flagged", 0) + counts.get("zero_weight", 0)
        if excluded:
            parts.append(
                ngettext(
                    "%(n)d judgment by a flagged, removed or zero-weight rater",
                    "%(n)d judgments by flagged, removed or zero-weight raters",
                    excluded,
                ) % {"n": excluded}
            )
        if counts.get("simulated", 0):
            parts.append(
                ngettext("%(n)d simulated judgment", "%(n)d simulated judgments", counts["simulated"])
                % {"n": counts["simulated"]}
            )
        if counts.get("unscored_clip", 0):
            parts.append(
                ngettext(
                    "%(n)d judgment of a clip without features",
                    "%(n)d judgments of clips without features",
                    counts["unscored_clip"],
                ) % {"n": counts["unscored_clip"]}
            )
        if not parts:
            return ""
        return _("Not counted: %(parts)s.") % {"parts": ", ".join(parts)}


def minimum_judgments(cohort):
    """Return the usable judgments a fit of ``cohort`` needs: its setting, at least 1."""
    return max(1, cohort.min_judgments)


def fit_readiness(cohort, backbone=None, mark=None):
    """Return the :class:`FitReadiness` of ``cohort`` for ``backbone`` (resolved when None) up to ``mark``.

    Counts the way :func:`run_refit` filters, except that stored features are
    not opened, so a clip with damaged features still counts here.
    """
    candidates = configured_backbone_names(backbone if backbone and ":" not in backbone else None)
    backbone = resolve_backbone(cohort, backbone)
    mark = current_mark(cohort) if mark is None else mark
    simulated = {cohort.pk} if is_simulation_cohort(cohort) else set()
    judgments = gather_judgments([cohort], mark, simulated_cohort_ids=simulated)
    counts = dict(judgments.counts)
    usable, clips_with_features = 0, 0
    if backbone is not None:
        with_features = set(
            ClipFeatures.objects.filter(
                clip__pools=cohort.pool, clip__status=Clip.Status.READY, backbone=backbone
            ).values_list("clip_id", flat=True)
        )
        clips_with_features = len(with_features)
        scored = np.array(
            [winner in with_features and loser in with_features for winner, loser in zip(judgments.winners, judgments.losers)],
            dtype=bool,
        )
        usable = int(scored.sum())
        counts["unscored_clip"] = len(judgments) - usable
    return FitReadiness(cohort, backbone, candidates, usable, minimum_judgments(cohort), clips_with_features, counts)
