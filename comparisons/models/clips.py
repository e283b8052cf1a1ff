"""Clips, the pools that group them, and the prompts they were made from."""

from django.db import models
from django.utils.translation import gettext_lazy as _


def clip_upload_path(prefix):
    """Return an ``upload_to`` callable that files clips by their sha256."""

    def upload_to(instance, filename):
        suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else "bin"
        return f"clips/{prefix}/{instance.sha256[:2]}/{instance.sha256}.{suffix}"

    upload_to.__name__ = f"upload_{prefix}"
    upload_to.__qualname__ = upload_to.__name__
    return upload_to


upload_original = clip_upload_path("original")
upload_rendition = clip_upload_path("rendition")
upload_poster = clip_upload_path("poster")


class Prompt(models.Model):
    """A generation prompt; clips made from the same prompt can be paired."""

    text = models.TextField(_("text"), unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("prompt")
        verbose_name_plural = _("prompts")
        ordering = ["id"]

    def __str__(self):
        return self.text if len(self.text) <= 60 else self.text[:57] + "..."


class Clip(models.Model):
    """One media file, image or video, with what the pages and features need."""

    class Kind(models.TextChoices):
        IMAGE = "image", _("image")
        VIDEO = "video", _("video")

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        READY = "ready", _("ready")
        FAILED = "failed", _("failed")

    sha256 = models.CharField(_("sha256"), max_length=64, unique=True)
    kind = models.CharField(_("kind"), max_length=5, choices=Kind.choices)
    original_name = models.CharField(_("file name"), max_length=255)
    source_path = models.CharField(_("imported from"), max_length=1024, blank=True)
    original = models.FileField(_("original file"), upload_to=upload_original, max_length=255)
    rendition = models.FileField(
        _("browser rendition"), upload_to=upload_rendition, max_length=255, blank=True
    )
    poster = models.ImageField(_("poster frame"), upload_to=upload_poster, max_length=255, blank=True)

    caption = models.TextField(_("caption"), blank=True)
    prompt = models.ForeignKey(
        Prompt, verbose_name=_("prompt"), null=True, blank=True, on_delete=models.SET_NULL, related_name="clips"
    )
    generator = models.JSONField(
        _("generator metadata"), default=dict, blank=True, help_text=_("Model, seed and settings, when known.")
    )
    licence = models.CharField(_("licence"), max_length=255, blank=True)
    credit = models.CharField(_("credit"), max_length=500, blank=True)
    source = models.CharField(_("source"), max_length=1000, blank=True)

    width = models.PositiveIntegerField(_("width"), null=True, blank=True)
    height = models.PositiveIntegerField(_("height"), null=True, blank=True)
    duration = models.FloatField(_("duration (s)"), null=True, blank=True)
    fps = models.FloatField(_("frames per second"), null=True, blank=True)
    codec = models.CharField(_("source codec"), max_length=64, blank=True)

    status = models.CharField(_("status"), max_length=7, choices=Status.choices, default=Status.PENDING)
    failure_reason = models.TextField(_("failure reason"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("clip")
        verbose_name_plural = _("clips")
        ordering = ["id"]
        indexes = [models.Index(fields=["status", "kind"])]

    def __str__(self):
        return f"{self.original_name} ({self.sha256[:8]})"

    @property
    def is_video(self):
        return self.kind == self.Kind.VIDEO

    @property
    def display_text(self):
        """Return the caption, or the prompt text when there is no caption."""
        if self.caption:
            return self.caption
        return self.prompt.text if self.prompt_id else ""


class Pool(models.Model):
    """A named set of clips that one or more cohorts judge."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    description = models.TextField(_("description"), blank=True)
    clips = models.ManyToManyField(Clip, verbose_name=_("clips"), related_name="pools", blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("pool")
        verbose_name_plural = _("pools")
        ordering = ["name"]

    def __str__(self):
        return self.name
