"""Rows of a comparisons export, read from the database with a streaming iterator.

Judgments are read with ``QuerySet.iterator`` in id order, so memory does not
grow with the number of judgments. Values that repeat across rows (clip metadata,
features, scores, memberships, pseudonyms) are loaded once into dictionaries
keyed by id. Those dictionaries grow with the pools and raters, not with the
judgments.
"""

import json
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from django.db.models import Count, Max

from comparisons.exports.options import ExportError
from comparisons.exports.pseudonyms import Pseudonymizer
from comparisons.exports.schema import columns_for
from comparisons.exports.writers import Vector
from comparisons.models import Clip, Comparison, Judgment, Membership
from scoring.models import ClipFeatures, ClipScore, TasteModel

# Rows fetched per database round trip by the streaming iterator.
ITERATOR_CHUNK_ROWS = 5000

_NO_FEATURES = (None, None, None, None, None)
_NO_SIDE_SCORES = (None, None, None, None)
_NO_PLATFORM = ("", "", "", "")


def encode_json(value):
    """Return compact JSON text with sorted keys, the form every export uses for metadata."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


@dataclass
class ClipInfo:
    """The cells an export writes about one clip, encoded once, with its licence and credit."""

    cells: tuple
    licence: str
    credit: str


@dataclass
class CohortContext:
    """The backbone and taste model an export uses for one cohort."""

    cohort: object
    backbone: str | None = None
    taste_model: TasteModel | None = None
    scores: dict = field(default_factory=dict)


@dataclass
class ExportStats:
    """Tallies gathered while rows are written; the dataset card reports them."""

    rows: int = 0
    counts: Counter = field(default_factory=Counter)
    raters: dict = field(default_factory=dict)
    clip_ids: set = field(default_factory=set)
    first_answered: object = None
    last_answered: object = None


def resolve_backbone(cohort, requested=""):
    """Return the feature backbone to export for ``cohort``.

    A requested backbone wins. Otherwise it is the backbone of the cohort's
    active taste model (the newest, if several backbones have one). Without an
    active model it is the backbone with features for the most clips of the
    cohort's pool, and None when no clip has features.
    """
    if requested:
        return requested
    active = (
        TasteModel.objects.filter(cohort=cohort, is_active=True)
        .order_by("-finished_at", "-id").values_list("backbone", flat=True).first()
    )
    if active:
        return active
    top = (
        ClipFeatures.objects.filter(clip__pools=cohort.pool_id)
        .values("backbone").annotate(n=Count("id")).order_by("-n", "backbone").first()
    )
    return top["backbone"] if top else None


class ExportRows:
    """The rows of one export, iterated once; ``stats`` fills in as they are read."""

    def __init__(self, options, cohorts, pseudonymizer=None):
        self.options = options
        self.cohorts = cohorts
        self.columns = columns_for(
            platform_ids=options.platform_ids, features=options.features, scores=options.scores
        )
        self.pseudonymize = pseudonymizer or Pseudonymizer()
        self.stats = ExportStats()
        self._check_backbone()

        self.contexts = {cohort.id: self._cohort_context(cohort) for cohort in cohorts}

        base = self._filtered_judgments()
        # Freeze the last judgment id now, so votes arriving during a long export
        # neither appear half-way nor make the card disagree with the rows.
        self.high_water_judgment_id = base.aggregate(mark=Max("id"))["mark"] or 0
        self.queryset = base.filter(id__lte=self.high_water_judgment_id).order_by("id")

        self._clips = {}
        self._features = {}
        self._platform = {}
        self._load_clips()
        if options.platform_ids:
            self._platform = {
                (user_id, cohort_id): tuple(ids)
                for user_id, cohort_id, *ids in Membership.objects.filter(cohort__in=cohorts).values_list(
                    "user_id", "cohort_id", "platform", "participant_id", "study_id", "session_id"
                )
            }

    def _cohort_context(self, cohort):
        context = CohortContext(cohort)
        if self.options.features or self.options.scores:
            context.backbone = resolve_backbone(cohort, self.options.backbone)
        if not (self.options.scores and context.backbone):
            return context
        context.taste_model = TasteModel.objects.filter(
            cohort=cohort, backbone=context.backbone, is_active=True
        ).first()
        if context.taste_model is not None:
            scores = ClipScore.objects.filter(taste_model=context.taste_model).values_list(
                "clip_id", "total", "semantic", "aesthetic", "incoherence"
            )
            context.scores = {clip_id: tuple(terms) for clip_id, *terms in scores}
        return context

    def _check_backbone(self):
        requested = self.options.backbone
        if not requested or not (self.options.features or self.options.scores):
            return
        if ClipFeatures.objects.filter(backbone=requested).exists():
            return
        if TasteModel.objects.filter(backbone=requested).exists():
            return
        known = sorted(set(ClipFeatures.objects.values_list("backbone", flat=True).distinct()))
        raise ExportError(
            f"Unknown backbone {requested!r}: no clip features or taste model use it. "
            f"Backbones with features: {', '.join(known) if known else 'none yet'}."
        )

    def _filtered_judgments(self):
        options = self.options
        judgments = Judgment.objects.filter(comparison__cohort__in=[cohort.id for cohort in self.cohorts])
        if options.since is not None:
            judgments = judgments.filter(created_at__gte=options.since)
        if options.until is not None:
            judgments = judgments.filter(created_at__lt=options.until)
        if not options.include_simulated:
            judgments = judgments.filter(is_simulated=False)
        excluded = []
        if not options.ties:
            excluded.append(Judgment.Choice.TIE)
        if not options.skips:
            excluded.append(Judgment.Choice.SKIP)
        if excluded:
            judgments = judgments.exclude(choice__in=excluded)
        return judgments

    # Caches -----------------------------------------------------------------

    def _load_clips(self, ids=None):
        if ids is None:
            clips = Clip.objects.filter(pools__in={cohort.pool_id for cohort in self.cohorts}).distinct()
        else:
            clips = Clip.objects.filter(id__in=ids)
        fields = ("id", "sha256", "original_name", "kind", "caption", "prompt__text", "generator", "licence", "credit")
        for clip_id, sha256, name, kind, caption, prompt, generator, licence, credit in clips.values_list(*fields):
            cells = (clip_id, sha256, name, kind, caption, prompt or "", encode_json(generator or {}))
            self._clips[clip_id] = ClipInfo(cells, licence, credit)

    def clip(self, clip_id):
        """Return the :class:`ClipInfo` of a clip, loading it when it has left the pools since."""
        info = self._clips.get(clip_id)
        if info is None:
            self._load_clips([clip_id])
            info = self._clips[clip_id]
        return info

    def _feature_cells(self, backbone, clip_id):
        by_clip = self._features.get(backbone)
        if by_clip is None:
            by_clip = self._features[backbone] = {}
            pools = {cohort.pool_id for cohort in self.cohorts}
            self._read_features(backbone, ClipFeatures.objects.filter(backbone=backbone, clip__pools__in=pools).distinct())
        if clip_id not in by_clip:
            self._read_features(backbone, ClipFeatures.objects.filter(backbone=backbone, clip_id=clip_id))
            by_clip.setdefault(clip_id, _NO_FEATURES)
        return by_clip[clip_id]

    def _read_features(self, backbone, features):
        by_clip = self._features[backbone]
        fields = ("clip_id", "semantic", "frame_dissimilarity", "flicker", "mean_embedding", "dim")
        for clip_id, semantic, dissimilarity, flicker, embedding, dim in features.values_list(*fields):
            vector = Vector.from_array(np.frombuffer(bytes(embedding), dtype="<f4", count=dim))
            by_clip[clip_id] = (backbone, semantic, dissimilarity, flicker, vector)

    # Rows -------------------------------------------------------------------

    def __iter__(self):
        options = self.options
        stats = self.stats
        contexts = self.contexts
        pseudonymize = self.pseudonymize
        clip = self.clip
        platform = self._platform
        counts = stats.counts
        clip_ids = stats.clip_ids
        slugs = {cohort.id: cohort.slug for cohort in self.cohorts}
        raters = {cohort.slug: set() for cohort in self.cohorts}
        stats.raters = raters
        gold, repeat = Comparison.Reason.GOLD, Comparison.Reason.REPEAT
        left_choice, right_choice = Judgment.Choice.LEFT, Judgment.Choice.RIGHT

        fields = (
            "id", "comparison_id", "comparison__cohort_id", "comparison__rater_id",
            "comparison__left_id", "comparison__right_id", "choice", "client_ms", "server_ms",
            "comparison__served_at", "created_at", "comparison__reason", "is_simulated",
        )
        judgments = self.queryset.values_list(*fields).iterator(chunk_size=ITERATOR_CHUNK_ROWS)
        for (judgment_id, comparison_id, cohort_id, rater_id, left_id, right_id, choice,
             client_ms, server_ms, served_at, answered_at, reason, is_simulated) in judgments:
            slug = slugs[cohort_id]
            left, right = clip(left_id), clip(right_id)
            if choice == left_choice:
                winner = left_id
            elif choice == right_choice:
                winner = right_id
            else:
                winner = None
            row = (
                (comparison_id, judgment_id, slug, pseudonymize(rater_id))
                + left.cells + right.cells
                + (choice, winner, client_ms, server_ms, served_at, answered_at, reason,
                   reason == gold, reason == repeat, is_simulated)
            )
            if options.platform_ids:
                row += platform.get((rater_id, cohort_id), _NO_PLATFORM)
            context = contexts[cohort_id]
            if options.features:
                if context.backbone:
                    row += self._feature_cells(context.backbone, left_id)
                    row += self._feature_cells(context.backbone, right_id)
                else:
                    row += _NO_FEATURES + _NO_FEATURES
            if options.scores:
                model = context.taste_model
                if model is None:
                    row += (None, None, None) + _NO_SIDE_SCORES + _NO_SIDE_SCORES
                else:
                    row += (
                        (model.id, model.version, model.backbone)
                        + context.scores.get(left_id, _NO_SIDE_SCORES)
                        + context.scores.get(right_id, _NO_SIDE_SCORES)
                    )

            stats.rows += 1
            counts[slug, choice] += 1
            raters[slug].add(rater_id)
            clip_ids.add(left_id)
            clip_ids.add(right_id)
            if stats.first_answered is None or answered_at < stats.first_answered:
                stats.first_answered = answered_at
            if stats.last_answered is None or answered_at > stats.last_answered:
                stats.last_answered = answered_at
            yield row

    def clip_infos(self):
        """Return the :class:`ClipInfo` of every clip that appeared in the rows read so far."""
        return [self.clip(clip_id) for clip_id in sorted(self.stats.clip_ids)]
