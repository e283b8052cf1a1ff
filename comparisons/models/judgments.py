"""Comparisons served to raters and the judgments that answer them."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from comparisons.models.clips import Clip
from comparisons.models.cohorts import Cohort


class Comparison(models.Model):
    """A pair of clips served to one rater in one cohort."""

    class Reason(models.TextChoices):
        RANDOM = "random", _("random")
        ACTIVE = "active", _("active")
        GOLD = "gold", _("gold")
        REPEAT = "repeat", _("repeat")

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="comparisons")
    rater = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comparisons")
    left = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    right = models.ForeignKey(Clip, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("why this pair"), max_length=6, choices=Reason.choices, default=Reason.RANDOM)
    served_at = models.DateTimeField(_("served at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("comparison")
        verbose_name_plural = _("comparisons")
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(condition=~Q(left=F("right")), name="comparison_two_different_clips"),
        ]
        indexes = [models.Index(fields=["cohort", "rater", "served_at"])]

    def __str__(self):
        return f"#{self.pk}: {self.left_id} vs {self.right_id}"


class Judgment(models.Model):
    """The answer to exactly one comparison."""

    class Choice(models.TextChoices):
        LEFT = "left", _("left")
        RIGHT = "right", _("right")
        TIE = "tie", _("tie")
        SKIP = "skip", _("skip")

    comparison = models.OneToOneField(Comparison, on_delete=models.CASCADE, related_name="judgment")
    choice = models.CharField(_("choice"), max_length=5, choices=Choice.choices)
    client_ms = models.PositiveIntegerField(_("client response time (ms)"), null=True, blank=True)
    server_ms = models.PositiveIntegerField(_("server response time (ms)"))
    is_simulated = models.BooleanField(_("simulated"), default=False)
    created_at = models.DateTimeField(_("answered at"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("judgment")
        verbose_name_plural = _("judgments")
        ordering = ["id"]

    def __str__(self):
        return f"{self.comparison_id}: {self.choice}"

    @property
    def winner_id(self):
        """Return the id of the preferred clip, or None for a tie or skip."""
        if self.choice == self.Choice.LEFT:
            return self.comparison.left_id
        if self.choice == self.Choice.RIGHT:
            return self.comparison.right_id
        return None
