"""Rater cohorts ("critics") and their members."""

import secrets

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from comparisons.models.clips import Pool


def new_invite_token():
    return secrets.token_urlsafe(18)


class Cohort(models.Model):
    """A group of raters judging one pool, with its own taste function."""

    class Sampler(models.TextChoices):
        UNIFORM = "uniform", _("uniform over unjudged pairs")

    class WeightsMode(models.TextChoices):
        DECLARED = "declared", _("declared by the curator")
        LEARNED = "learned", _("learned from judgments")

    name = models.CharField(_("name"), max_length=200)
    slug = models.SlugField(_("slug"), max_length=80, unique=True)
    pool = models.ForeignKey(Pool, verbose_name=_("pool"), on_delete=models.PROTECT, related_name="cohorts")
    question = models.CharField(_("question"), max_length=300, default="Which clip do you prefer?")
    instructions = models.TextField(_("instructions"), blank=True)
    show_captions = models.BooleanField(_("show captions"), default=True)
    same_prompt = models.BooleanField(
        _("same prompt only"), default=False, help_text=_("Pair only clips made from the same prompt.")
    )
    sampler = models.CharField(_("sampler"), max_length=20, choices=Sampler.choices, default=Sampler.UNIFORM)
    daily_goal = models.PositiveIntegerField(
        _("daily goal"), default=50, help_text=_("Judgments per rater per day; 0 for no goal.")
    )
    min_view_ms = models.PositiveIntegerField(
        _("minimum view time (ms)"), default=1500, help_text=_("Votes faster than this are rejected.")
    )
    completion_after = models.PositiveIntegerField(
        _("completion after"), null=True, blank=True,
        help_text=_("Show the completion code after this many judgments."),
    )
    completion_code = models.CharField(_("completion code"), max_length=100, blank=True)
    return_url = models.URLField(_("return URL"), max_length=1000, blank=True)

    weights_mode = models.CharField(
        _("taste weights"), max_length=8, choices=WeightsMode.choices, default=WeightsMode.LEARNED
    )
    alpha = models.FloatField(_("alpha (semantic)"), default=1.0)
    beta = models.FloatField(_("beta (aesthetic)"), default=1.0)
    gamma = models.FloatField(_("gamma (incoherence)"), default=1.0)
    margin = models.FloatField(_("margin"), default=1.0)
    half_life_days = models.FloatField(_("half-life (days)"), default=30.0)
    refit_interval_minutes = models.PositiveIntegerField(_("refit interval (minutes)"), default=60)
    min_judgments = models.PositiveIntegerField(_("minimum judgments to fit"), default=50)
    auto_activate = models.BooleanField(_("activate new versions automatically"), default=True)

    invite_token = models.CharField(_("invite token"), max_length=64, unique=True, default=new_invite_token)
    is_open = models.BooleanField(_("open for voting"), default=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("cohort")
        verbose_name_plural = _("cohorts")
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(margin__gt=0), name="cohort_margin_positive"),
            models.CheckConstraint(condition=models.Q(half_life_days__gt=0), name="cohort_half_life_positive"),
            models.CheckConstraint(
                condition=models.Q(alpha__gte=0, beta__gte=0, gamma__gte=0), name="cohort_weights_non_negative"
            ),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("compare", args=[self.slug])

    def get_join_url(self):
        return reverse("join", args=[self.invite_token])


class Membership(models.Model):
    """A rater in a cohort, with recruitment-platform ids when they came from one."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        INACTIVE = "inactive", _("inactive")
        FLAGGED = "flagged", _("flagged")

    class Platform(models.TextChoices):
        NONE = "", _("none")
        PROLIFIC = "prolific", _("Prolific")
        MTURK = "mturk", _("MTurk")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="memberships")
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.ACTIVE)
    platform = models.CharField(_("platform"), max_length=10, choices=Platform.choices, blank=True, default="")
    participant_id = models.CharField(_("participant id"), max_length=128, blank=True)
    study_id = models.CharField(_("study id"), max_length=128, blank=True)
    session_id = models.CharField(_("session id"), max_length=128, blank=True)
    rater_weight = models.FloatField(_("rater weight"), default=1.0)
    is_simulated = models.BooleanField(_("simulated rater"), default=False)
    joined_at = models.DateTimeField(_("joined at"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        ordering = ["cohort", "joined_at"]
        constraints = [
            models.UniqueConstraint(fields=["user", "cohort"], name="membership_unique_user_cohort"),
            models.UniqueConstraint(
                fields=["cohort", "platform", "participant_id"],
                condition=~models.Q(participant_id=""),
                name="membership_unique_participant",
            ),
            models.CheckConstraint(condition=models.Q(rater_weight__gte=0), name="membership_weight_non_negative"),
        ]

    def __str__(self):
        return f"{self.user} in {self.cohort}"

    @property
    def can_vote(self):
        return self.status == self.Status.ACTIVE
