"""Per-clip features, versioned taste models and the scores they give clips."""

import numpy as np
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from comparisons.models import Clip, Cohort


def array_to_bytes(array):
    """Return ``array`` as little-endian float32 bytes for a BinaryField."""
    return np.ascontiguousarray(array, dtype="<f4").tobytes()


def bytes_to_array(data, shape):
    """Return the float32 array stored by :func:`array_to_bytes`."""
    return np.frombuffer(bytes(data), dtype="<f4").reshape(shape)


class ClipFeatures(models.Model):
    """What one backbone extracted from one clip; computed once per clip."""

    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="features")
    backbone = models.CharField(
        _("backbone"), max_length=200, help_text=_("Backbone and model, such as clip:ViT-B-32:openai or handcrafted:v1.")
    )
    n_frames = models.PositiveIntegerField(_("frames"))
    dim = models.PositiveIntegerField(_("embedding dimension"))
    frame_embeddings = models.BinaryField(_("frame embeddings (float32, n_frames x dim)"))
    mean_embedding = models.BinaryField(_("mean embedding (float32, L2-normalised)"))
    semantic = models.FloatField(_("semantic score"), null=True, blank=True)
    frame_dissimilarity = models.FloatField(_("frame-to-frame dissimilarity"), default=0.0)
    flicker = models.FloatField(_("flicker"), default=0.0)
    extract_ms = models.PositiveIntegerField(_("extraction time (ms)"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("clip features")
        verbose_name_plural = _("clip features")
        constraints = [models.UniqueConstraint(fields=["clip", "backbone"], name="features_unique_clip_backbone")]

    def __str__(self):
        return f"{self.clip_id} / {self.backbone}"

    @property
    def frames(self):
        return bytes_to_array(self.frame_embeddings, (self.n_frames, self.dim))

    @property
    def embedding(self):
        return bytes_to_array(self.mean_embedding, (self.dim,))


class TasteModel(models.Model):
    """One immutable fitted version of a cohort's taste function.

    A row with no cohort is the hidden all-judgments model of its backbone,
    which each cohort's aesthetic direction is pulled towards.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        FINISHED = "finished", _("finished")
        FAILED = "failed", _("failed")

    cohort = models.ForeignKey(
        Cohort, null=True, blank=True, on_delete=models.CASCADE, related_name="taste_models"
    )
    backbone = models.CharField(_("backbone"), max_length=200)
    version = models.PositiveIntegerField(_("version"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.RUNNING)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    is_active = models.BooleanField(_("active"), default=False)

    weights_mode = models.CharField(_("weights"), max_length=8)
    alpha = models.FloatField(_("alpha"), null=True, blank=True)
    beta = models.FloatField(_("beta"), null=True, blank=True)
    gamma = models.FloatField(_("gamma"), null=True, blank=True)
    margin = models.FloatField(_("margin"))
    half_life_days = models.FloatField(_("half-life (days)"))
    head = models.BinaryField(_("aesthetic direction w (float32, unit norm)"), null=True, blank=True)
    head_dim = models.PositiveIntegerField(_("head dimension"), default=0)
    standardisation = models.JSONField(
        _("standardisation"), default=dict, blank=True,
        help_text=_("Mean and standard deviation of each term over the pool, computed inside the fit."),
    )

    high_water_judgment_id = models.BigIntegerField(_("high-water judgment id"))
    n_judgments = models.PositiveIntegerField(_("judgments fitted"), default=0)
    window_start = models.DateTimeField(_("first judgment"), null=True, blank=True)
    window_end = models.DateTimeField(_("last judgment"), null=True, blank=True)
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    task_id = models.CharField(_("task id"), max_length=64, blank=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    class Meta:
        verbose_name = _("taste model")
        verbose_name_plural = _("taste models")
        ordering = ["cohort_id", "backbone", "-version"]
        constraints = [
            # A refit is keyed on (cohort, backbone, high-water mark): a duplicate
            # run of the same refit finds this row instead of adding a version.
            # Coalesce maps the all-judgments model (no cohort) to 0, because
            # NULLs never collide in a plain unique index on SQLite.
            models.UniqueConstraint(
                Coalesce("cohort", 0), "backbone", "high_water_judgment_id",
                name="taste_unique_cohort_backbone_mark",
            ),
            models.UniqueConstraint(Coalesce("cohort", 0), "backbone", "version", name="taste_unique_version"),
            models.UniqueConstraint(
                Coalesce("cohort", 0), "backbone",
                condition=Q(is_active=True),
                name="taste_one_active_per_cohort_backbone",
            ),
        ]

    def __str__(self):
        owner = self.cohort.name if self.cohort_id else _("all judgments")
        return f"{owner} / {self.backbone} v{self.version}"

    @property
    def w(self):
        if not self.head_dim:
            return None
        return bytes_to_array(self.head, (self.head_dim,))


class ClipScore(models.Model):
    """A clip's taste score under one taste model, with each term."""

    taste_model = models.ForeignKey(TasteModel, on_delete=models.CASCADE, related_name="scores")
    clip = models.ForeignKey(Clip, on_delete=models.CASCADE, related_name="scores")
    total = models.FloatField(_("total"))
    semantic = models.FloatField(_("semantic (z)"), null=True, blank=True)
    aesthetic = models.FloatField(_("aesthetic (z)"))
    incoherence = models.FloatField(_("incoherence (z)"))
    rank = models.PositiveIntegerField(_("rank"))

    class Meta:
        verbose_name = _("clip score")
        verbose_name_plural = _("clip scores")
        ordering = ["taste_model", "rank"]
        constraints = [models.UniqueConstraint(fields=["taste_model", "clip"], name="score_unique_model_clip")]

    def __str__(self):
        return f"{self.clip_id}: {self.total:.3f}"
